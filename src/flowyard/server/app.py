"""The ASGI application: API, UI and gateway on one origin, with the controllers in its lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import Response
from sqlalchemy import text

from flowyard import __version__
from flowyard.api import auth, errors, namespaces, resources
from flowyard.api import artifacts
from flowyard.api.json import JSON
from flowyard.controllers import environment, job
from flowyard.controllers import recurringrun, run
from flowyard.controllers.loop import Manager
from flowyard.notebooks import controller as notebooks
from flowyard.notebooks import volumes
from flowyard.notebooks import gateway
from flowyard.pipelines import api as kfp_api
from flowyard.pipelines import api_cache as pipeline_cache
from flowyard.pipelines import api_logs as pipeline_logs
from flowyard.platform import Platform
from flowyard.server import proxy
from flowyard.server.metrics import MetricsMiddleware, exposition
from flowyard.tuning import api as tuning_api
from flowyard.tuning import controller as tuning
from flowyard.serving import api as serving_api
from flowyard.serving import controller as serving
from flowyard.serving import endpoints as serving_endpoints
from flowyard.serving import pages as serving_pages
from flowyard.serving import router as serving_router
from flowyard.tracking import api as tracking_api
from flowyard.registry import api as registry_api
from flowyard.registry import monitoring as registry_monitoring

log = logging.getLogger("flowyard")
CONTROLLERS = [environment.CONTROLLER, job.CONTROLLER, volumes.CONTROLLER, notebooks.CONTROLLER,
               run.CONTROLLER, recurringrun.CONTROLLER, serving.CONTROLLER, tuning.CONTROLLER]


async def start(p: Platform) -> None:
    """Start the executor and the controllers (also used by tests that need no HTTP)."""
    from flowyard import workloads
    from flowyard.artifacts import ArtifactStore
    from flowyard.environments.builder import EnvironmentBuilder
    from flowyard.executor.local import LocalExecutor

    home = p.settings.home
    p.artifacts = ArtifactStore(p.settings.artifacts_url)
    p.environments = EnvironmentBuilder(home / "envs")
    p.executor = LocalExecutor(
        home / "workloads",
        quota=lambda ns: workloads.quota(p, ns),
        resolve_environment=lambda name: environment.bin_dir(p, name),
    )
    await p.executor.start()
    p.controllers = Manager(p, CONTROLLERS, resync=p.settings.resync_seconds)
    resources.LOG_SOURCES["Environment"] = environment.logs
    resources.LOG_SOURCES["InferenceService"] = serving.logs
    await p.controllers.start()
    registry_monitoring.start()
    p.ready = True


async def stop(p: Platform) -> None:
    p.ready = False
    if p.controllers is not None:
        await p.controllers.stop()
    if p.executor is not None:
        await p.executor.close(stop_workloads=not p.settings.keep_workloads)
    if serving_endpoints.table(p):  # grpcio is imported only once an endpoint has run
        from flowyard.serving import grpc_front

        await grpc_front.close_all(p)
    await proxy.close()


def _openapi(app: FastAPI) -> dict:
    """The generated schema, with the known kinds' plurals as the enum of `{plural}`."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        from flowyard.kinds import all_kinds

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path, ops in schema["paths"].items():
            namespaced = path.startswith("/api/v1/namespaces/{namespace}/{plural}")
            plurals = sorted(k.plural for k in all_kinds() if k.namespaced or not namespaced)
            for op in ops.values():
                for param in op.get("parameters", []):
                    if param["name"] == "plural":
                        param["schema"] = {"type": "string", "enum": plurals, "title": "Plural"}
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(p: Platform) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await start(p)
        try:
            yield
        finally:
            await stop(p)

    app = FastAPI(title="Flowyard", version=__version__, lifespan=lifespan, default_response_class=JSON,
                  docs_url="/api/docs", redoc_url=None,
                  description="Flowyard's REST API. Authenticate with 'Authorization: Bearer <token>'.")
    app.state.platform = p
    errors.install(app)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The server is ready: store reachable, controllers running",
             responses={503: {"description": "not ready"}})
    def readyz() -> JSON:
        try:
            with p.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as e:
            return errors.error_response(503, "Unavailable", f"the database is unreachable: {type(e).__name__}")
        if not p.ready:
            return errors.error_response(503, "Unavailable", "starting")
        return JSON({"status": "ready"})

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.include_router(auth.router)
    app.include_router(namespaces.router)
    app.include_router(artifacts.router)
    app.include_router(pipeline_logs.router)  # before resources: /namespaces/{ns}/lineage is no {plural}
    app.include_router(pipeline_cache.router)
    app.include_router(tuning_api.router)  # before resources: /trials/{name}/metrics
    app.include_router(tracking_api.router)  # before resources: /namespaces/{ns}/tracking/... is no {plural}
    app.include_router(registry_api.router)  # before resources: .../registeredmodels/{m}/versions is no {name}
    app.include_router(serving_api.router)  # before resources: /namespaces/{ns}/servingstats is no {plural}
    app.include_router(resources.router)
    app.include_router(kfp_api.router)
    gateway.install(app)
    serving_router.install(app)
    serving_pages.install(app)
    try:
        from flowyard.ui import routes as ui_routes
    except ImportError:
        ui_routes = None  # type: ignore[assignment]
    if ui_routes is not None and hasattr(ui_routes, "install"):
        ui_routes.install(app)
    app.add_middleware(MetricsMiddleware)
    return app


