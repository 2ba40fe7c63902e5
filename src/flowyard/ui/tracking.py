"""The Tracking and Models pages of the dashboard.

`/tracking` (experiments with tracked runs), `/tracking/experiments/{id}` (the compare table:
params and latest metrics as columns, filter, sort, pages, parallel coordinates),
`/tracking/compare?runs=a,b` (metric curves, parameter differences, parallel coordinates),
`/models` and `/models/{name}` (versions, aliases, deploy, lineage, endpoint monitoring) and
`/lineage?node=` (the lineage explorer). Pages are thin shells: `static/tracking.js` reads
the tracking, registry and lineage APIs with the session and draws tables and SVG charts.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from flowyard.errors import NotFound


def _render(request: Request, active: str, template: str, **context: Any) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, active)
    return render(sh, template, **context)


def experiments_page(request: Request) -> Response:
    return _render(request, "tracking", "tracking_experiments.html")


def experiment_page(request: Request, experiment: str) -> Response:
    from flowyard.tracking.store import experiment_id
    from flowyard.ui.routes import render, shell

    sh = shell(request, "tracking")
    title = experiment
    if sh.namespace is not None:
        uid = experiment_id(sh.platform, sh.namespace, experiment)
        try:
            from flowyard.pipelines.kinds import EXPERIMENT

            found = [e for e in sh.platform.store.list(EXPERIMENT, sh.namespace)[0] if e["metadata"]["uid"] == uid]
            title = found[0]["spec"]["displayName"] if found else experiment
        except (NotFound, ImportError):
            pass
        experiment = uid
    return render(sh, "tracking_runs.html", experiment=experiment, title=title)


def compare_page(request: Request) -> Response:
    return _render(request, "tracking", "tracking_compare.html", runs=request.query_params.get("runs", ""))


def models_page(request: Request) -> Response:
    from flowyard.registry.kinds import MODEL_VERSION, REGISTERED_MODEL
    from flowyard.ui.routes import render, shell

    sh = shell(request, "tracking")
    models: list[dict[str, Any]] = []
    if sh.namespace is not None:
        counts: dict[str, int] = {}
        token = None
        while True:
            items, token = sh.platform.store.list(MODEL_VERSION, sh.namespace, continue_=token)
            for v in items:
                counts[v["spec"]["model"]] = max(counts.get(v["spec"]["model"], 0), v["spec"]["version"])
            if not token:
                break
        for m in sh.platform.store.list(REGISTERED_MODEL, sh.namespace)[0]:
            models.append({"name": m["metadata"]["name"], "description": m["spec"]["description"],
                           "aliases": sorted(m["spec"]["aliases"].items()), "latest": counts.get(m["metadata"]["name"]),
                           "created": m["metadata"]["creationTimestamp"]})
    return render(sh, "models.html", models=models)


def model_page(request: Request, name: str) -> Response:
    from flowyard.registry.kinds import REGISTERED_MODEL, versions_of
    from flowyard.ui.routes import render, shell

    sh = shell(request, "tracking")
    if sh.namespace is None:
        return render(sh, "model_detail.html", model=None, name=name)
    try:
        model = sh.platform.store.get(REGISTERED_MODEL, sh.namespace, name)
    except NotFound:
        return render(sh, "model_detail.html", model=None, name=name, status_code=404)
    versions = versions_of(sh.platform, sh.namespace, name)
    held: dict[int, list[str]] = {}
    for alias, number in model["spec"]["aliases"].items():
        held.setdefault(number, []).append(alias)
    return render(sh, "model_detail.html", model=model, name=name, versions=list(reversed(versions)), held=held,
                  editable=sh.can("edit"))


def lineage_page(request: Request) -> Response:
    return _render(request, "tracking", "lineage.html", node=request.query_params.get("node", ""))


def install(app: FastAPI) -> None:
    for path, endpoint in (("/tracking", experiments_page), ("/tracking/compare", compare_page),
                           ("/tracking/experiments/{experiment}", experiment_page), ("/models", models_page),
                           ("/models/{name}", model_page), ("/lineage", lineage_page)):
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
