"""Running compiled KFP pipelines through the engine without an HTTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler

from flowyard.artifacts import ArtifactStore
from flowyard.config import Settings
from flowyard.controllers import environment
from flowyard.executor.local import LocalExecutor
from flowyard.kinds import Kind
from flowyard.pipelines.engine import FINAL_STATES, reconcile_run, terminate_run
from flowyard.platform import Platform
from flowyard.server.serve import bootstrap
from flowyard import workloads

# A stand-in for the real Run kind, deliberately not registered (so it never replaces it).
RUN = Kind("Run", ("pipelines.kubeflow.org/v2beta1",))
NS = "admin"


def compile_spec(func: Callable[..., Any], tmp: Path) -> dict[str, Any]:
    """Compile a @dsl.pipeline with the real kfp compiler; return its PipelineSpec dict."""
    path = tmp / "pipeline.yaml"
    compiler.Compiler().compile(func, str(path))
    return next(iter(yaml.safe_load_all(path.read_text())))


async def open_platform(home: Path) -> Platform:
    """Like `flowyard.server.app.start`, minus the controller manager (the test drives reconcile)."""
    p = Platform.open(Settings(home=home))
    bootstrap(p)
    p.artifacts = ArtifactStore(p.settings.artifacts_url)
    p.executor = LocalExecutor(home / "workloads", quota=lambda ns: workloads.quota(p, ns),
                               resolve_environment=lambda name: environment.bin_dir(p, name))
    await p.executor.start()
    return p


async def close_platform(p: Platform) -> None:
    if p.executor is not None:
        await p.executor.close(stop_workloads=True)


def create_run(p: Platform, spec: dict[str, Any], parameters: dict[str, Any] | None = None,
               name: str = "run") -> dict[str, Any]:
    return p.store.create(RUN, NS, {"metadata": {"name": name},
                                    "spec": {"pipelineSpec": spec, "parameters": parameters or {}}})


async def drive(p: Platform, run: dict[str, Any], timeout: float = 120.0,
                until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Reconcile until the run is final (or `until(status)`); return the last status."""
    deadline = time.monotonic() + timeout
    ns, name = run["metadata"]["namespace"], run["metadata"]["name"]
    while True:
        run = p.store.get(RUN, ns, name)
        status = await reconcile_run(p, run)
        p.store.set_status(RUN, ns, name, status)
        if status.get("state") in FINAL_STATES or (until is not None and until(status)):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"run not finished after {timeout}s: {status}")
        await asyncio.sleep(0.05)


async def terminate(p: Platform, name: str) -> dict[str, Any]:
    run = p.store.get(RUN, NS, name)
    status = await terminate_run(p, run)
    p.store.set_status(RUN, NS, name, status)
    return status


def run_pipeline(tmp: Path, func: Callable[..., Any], parameters: dict[str, Any] | None = None,
                 timeout: float = 120.0) -> tuple[dict[str, Any], float, Platform]:
    """Compile, run to the end on a fresh platform; (status, seconds, platform)."""
    spec = compile_spec(func, tmp)

    async def main() -> tuple[dict[str, Any], float, Platform]:
        p = await open_platform(tmp / "home")
        try:
            run = create_run(p, spec, parameters)
            t0 = time.monotonic()
            status = await drive(p, run, timeout)
            return status, time.monotonic() - t0, p
        finally:
            await close_platform(p)

    return asyncio.run(main())


def leaf_tasks(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: t for k, t in status["tasks"].items() if t.get("type") == "container"}
