"""The Pipelines and Runs pages of the dashboard.

`/pipelines` (list, upload), `/pipelines/{name}` (graph of a version, new version, create-run
and recurring-run form), `/runs` (search, filter, sort, page, compare), `/runs/{name}` (live
graph, task panel, logs, artifacts), `/runs/compare?runs=a,b`, `/experiments` (list, create,
archive) and `/recurringruns` (list, enable/disable, delete). The server reads the store
directly; `static/pipelines.js` draws the graphs and the live run page, `static/pipelines_forms.js`
drives the forms, both through the KFP API (`/apis/v2beta1`) and the generic API with the session.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import Response

from flowyard.errors import NotFound
from flowyard.kinds import Kind, lookup

PAGE_SIZE = 20
ACTIVE = ("PENDING", "RUNNING", "CANCELING", "PAUSED")
STATES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELING", "CANCELED", "SKIPPED")
COMPARE_MAX = 6


def _kind(name: str) -> Kind | None:
    try:
        return lookup(name)
    except NotFound:
        return None


def _all(p: Any, kind: Kind | None, ns: str) -> list[dict[str, Any]]:
    if kind is None:
        return []
    out: list[dict[str, Any]] = []
    token = None
    while True:
        items, token = p.store.list(kind, ns, continue_=token)
        out += items
        if not token:
            return out


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def duration_text(seconds: float | None) -> str:
    """'3.2 s', '4 min 5 s', '2 h 3 min'; '—' when unknown."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return "< 1 s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _params_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The pipeline's input parameters: name, type, default (or None), optional."""
    defs = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    out = []
    for name, d in defs.items():
        d = d or {}
        out.append({"name": name, "type": d.get("parameterType", "STRING"), "has_default": "defaultValue" in d,
                    "default": d.get("defaultValue"), "optional": bool(d.get("isOptional")),
                    "description": d.get("description") or ""})
    return out


def run_row(run: dict[str, Any], pipelines: dict[str, str], experiments: dict[str, str],
            now: datetime | None = None) -> dict[str, Any]:
    """What the runs table shows of one Run manifest."""
    meta, spec, st = run["metadata"], run.get("spec") or {}, run.get("status") or {}
    state = st.get("state") or "PENDING"
    ref = spec.get("pipelineVersionReference") or {}
    pipeline = pipelines.get(ref.get("pipelineId", ""), "") or \
        ((spec.get("pipelineSpec") or {}).get("pipelineInfo") or {}).get("name", "")
    created = meta.get("creationTimestamp") or ""
    start, end = _time(st.get("startedAt") or created), _time(st.get("finishedAt"))
    if state in ACTIVE:
        end = now or datetime.now(timezone.utc)
    seconds = (end - start).total_seconds() if start and end else None
    return {"name": meta["name"], "uid": meta.get("uid", ""), "display_name": spec.get("displayName") or meta["name"],
            "pipeline": pipeline, "pipeline_id": ref.get("pipelineId", ""),
            "experiment": experiments.get(spec.get("experimentId", ""), spec.get("experiment") or ""),
            "experiment_id": spec.get("experimentId", ""), "state": state, "active": state in ACTIVE,
            "created": created, "seconds": seconds, "duration": duration_text(seconds),
            "message": st.get("message") or ""}


def _lookup_tables(p: Any, ns: str) -> tuple[dict[str, str], dict[str, str], list[dict[str, str]]]:
    pipelines = {x["metadata"]["uid"]: x["spec"]["displayName"] for x in _all(p, _kind("Pipeline"), ns)}
    exps = sorted(_all(p, _kind("Experiment"), ns), key=lambda e: e["spec"]["displayName"].lower())
    experiments = {e["metadata"]["uid"]: e["spec"]["displayName"] for e in exps}
    return pipelines, experiments, [{"id": e["metadata"]["uid"], "name": e["spec"]["displayName"]} for e in exps]


def _find_run(p: Any, ns: str, name: str) -> dict[str, Any] | None:
    """The Run called `name`, or whose uid (the KFP run id) is `name`."""
    kind = _kind("Run")
    if kind is None:
        return None
    try:
        return p.store.get(kind, ns, name)
    except NotFound:
        return next((r for r in _all(p, kind, ns) if r["metadata"].get("uid") == name), None)


# -- pages ---------------------------------------------------------------------------------------


def pipelines_page(request: Request) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "pipelines")
    if sh.namespace is None:
        return render(sh, "pipelines.html")
    p = sh.platform
    kind = _kind("Pipeline")
    versions: dict[str, list[dict[str, Any]]] = {}
    for v in _all(p, _kind("PipelineVersion"), sh.namespace):
        versions.setdefault(v["spec"].get("pipelineId", ""), []).append(
            {"name": v["metadata"]["name"], "display_name": v["spec"]["displayName"],
             "created": v["metadata"].get("creationTimestamp", ""), "uid": v["metadata"]["uid"]})
    rows = []
    for x in _all(p, kind, sh.namespace):
        vs = sorted(versions.get(x["metadata"]["uid"], []), key=lambda v: v["created"], reverse=True)
        rows.append({"name": x["metadata"]["name"], "uid": x["metadata"]["uid"],
                     "display_name": x["spec"]["displayName"], "description": x["spec"].get("description") or "",
                     "created": x["metadata"].get("creationTimestamp", ""), "versions": vs})
    rows.sort(key=lambda r: r["created"], reverse=True)
    return render(sh, "pipelines.html", available=kind is not None, rows=rows, editable=sh.can("edit"))


def pipeline_page(request: Request, name: str) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "pipelines")
    if sh.namespace is None:
        return render(sh, "pipelines_detail.html")
    p = sh.platform
    kind = _kind("Pipeline")
    pipeline = None
    if kind is not None:
        try:
            pipeline = p.store.get(kind, sh.namespace, name)
        except NotFound:
            pipeline = next((x for x in _all(p, kind, sh.namespace) if x["metadata"]["uid"] == name), None)
    if pipeline is None:
        return render(sh, "pipelines_detail.html", status_code=404, missing=name)
    versions = sorted((v for v in _all(p, _kind("PipelineVersion"), sh.namespace)
                       if v["spec"].get("pipelineId") == pipeline["metadata"]["uid"]),
                      key=lambda v: v["metadata"].get("creationTimestamp", ""), reverse=True)
    asked = request.query_params.get("version")
    version = next((v for v in versions if asked in (v["metadata"]["name"], v["metadata"]["uid"])), None) \
        if asked else None
    version = version or (versions[0] if versions else None)
    spec = version["spec"]["pipelineSpec"] if version else {}
    _, _, experiments = _lookup_tables(p, sh.namespace)
    runs = []
    run_kind = _kind("Run")
    if run_kind is not None:
        pipelines = {pipeline["metadata"]["uid"]: pipeline["spec"]["displayName"]}
        exp_names = {e["id"]: e["name"] for e in experiments}
        runs = sorted((run_row(r, pipelines, exp_names) for r in _all(p, run_kind, sh.namespace)
                       if (r["spec"].get("pipelineVersionReference") or {}).get("pipelineId")
                       == pipeline["metadata"]["uid"]), key=lambda r: r["created"], reverse=True)[:10]
    return render(sh, "pipelines_detail.html", pipeline=pipeline, versions=versions, version=version,
                  spec=spec, params=_params_of(spec), experiments=experiments, runs=runs,
                  editable=sh.can("edit"), mode=request.query_params.get("mode") or "once")


def runs_page(request: Request) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "runs")
    if sh.namespace is None:
        return render(sh, "runs.html")
    p = sh.platform
    q = request.query_params
    kind = _kind("Run")
    pipelines, exp_names, experiments = _lookup_tables(p, sh.namespace)
    now = datetime.now(timezone.utc)
    archived = q.get("storage") == "archived"
    rows = [run_row(r, pipelines, exp_names, now) for r in _all(p, kind, sh.namespace)
            if ((r.get("spec") or {}).get("storageState", "AVAILABLE") == "ARCHIVED") == archived]
    total_all = len(rows)
    state, experiment, text = q.get("state") or "", q.get("experiment") or "", (q.get("q") or "").strip()
    if text:
        rows = [r for r in rows if text.lower() in r["display_name"].lower()]
    if state == "active":
        rows = [r for r in rows if r["active"]]
    elif state:
        rows = [r for r in rows if r["state"] == state]
    if experiment:
        rows = [r for r in rows if r["experiment_id"] == experiment]
    sort = q.get("sort") or "-created"
    key = sort.lstrip("-")
    if key == "duration":
        rows.sort(key=lambda r: (r["seconds"] is None, r["seconds"] or 0), reverse=sort.startswith("-"))
        if sort.startswith("-"):  # unknown durations last either way
            rows.sort(key=lambda r: r["seconds"] is None)
    elif key == "name":
        rows.sort(key=lambda r: r["display_name"].lower(), reverse=sort.startswith("-"))
    else:
        sort = sort if key == "created" else "-created"
        rows.sort(key=lambda r: r["created"], reverse=sort.startswith("-"))
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    try:
        page = min(max(1, int(q.get("page") or 1)), pages)
    except ValueError:
        page = 1
    shown = rows[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]

    def link(**change: Any) -> str:
        params = {"ns": sh.namespace, "storage": "archived" if archived else "", "q": text, "state": state,
                  "experiment": experiment, "sort": sort, "page": page}
        params.update(change)
        return "/runs?" + urlencode({k: v for k, v in params.items() if v not in ("", None, 1)
                                     or k == "ns"})

    return render(sh, "runs.html", available=kind is not None, rows=shown, total=len(rows), total_all=total_all,
                  page=page, pages=pages, state=state, experiment=experiment, q=text, sort=sort, states=STATES,
                  archived=archived,
                  experiments=experiments, link=link, any_active=any(r["active"] for r in rows),
                  editable=sh.can("edit"))


def _flat_metrics(run: dict[str, Any]) -> dict[str, Any]:
    """'task/artifact: key' → value of every Metrics artifact's scalar metadata of a run."""
    out: dict[str, Any] = {}
    for path, t in sorted(((run.get("status") or {}).get("tasks") or {}).items()):
        for aname, arts in (((t or {}).get("outputs") or {}).get("artifacts") or {}).items():
            for a in arts or []:
                if ((a or {}).get("type") or {}).get("schemaTitle") != "system.Metrics":
                    continue
                for k, v in ((a or {}).get("metadata") or {}).items():
                    if isinstance(v, (int, float, str, bool)) and k != "display_name":
                        out[f"{path} · {k}"] = v
    return out


def compare_page(request: Request) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "runs")
    if sh.namespace is None:
        return render(sh, "runs_compare.html")
    p = sh.platform
    q = request.query_params
    names = [n for n in (q.get("runs") or "").split(",") + q.getlist("run") if n]
    names = list(dict.fromkeys(names))[:COMPARE_MAX]
    pipelines, exp_names, _ = _lookup_tables(p, sh.namespace)
    runs, missing = [], []
    for n in names:
        r = _find_run(p, sh.namespace, n)
        if r is None:
            missing.append(n)
        else:
            runs.append(r)
    rows = [run_row(r, pipelines, exp_names) for r in runs]

    def table(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keys = sorted({k for v in values for k in v})
        out = []
        for k in keys:
            cells = [v.get(k) for v in values]
            shown = ["—" if c is None else str(c) for c in cells]
            out.append({"key": k, "cells": shown, "differs": len(set(shown)) > 1})
        return out

    params = table([(r.get("spec") or {}).get("parameters") or {} for r in runs])
    outputs = table([(((r.get("status") or {}).get("outputs") or {}).get("parameters") or {}) for r in runs])
    metrics = table([_flat_metrics(r) for r in runs])
    return render(sh, "runs_compare.html", runs=rows, missing=missing, params=params, outputs=outputs,
                  metrics=metrics, enough=len(rows) >= 2)


def run_page(request: Request, name: str) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "runs")
    if sh.namespace is None:
        return render(sh, "runs_detail.html")
    p = sh.platform
    run = _find_run(p, sh.namespace, name)
    if run is None:
        return render(sh, "runs_detail.html", status_code=404, missing=name)
    pipelines, exp_names, _ = _lookup_tables(p, sh.namespace)
    row = run_row(run, pipelines, exp_names)
    st = run.get("status") or {}
    spec = (run.get("spec") or {}).get("pipelineSpec") or {}
    pipeline_name = ""
    pid = row["pipeline_id"]
    if pid:
        pipeline_name = next((x["metadata"]["name"] for x in _all(p, _kind("Pipeline"), sh.namespace)
                              if x["metadata"]["uid"] == pid), "")
    recurring = ""
    rid = (run.get("spec") or {}).get("recurringRunId")
    if rid:
        recurring = next((x["spec"].get("displayName", "") for x in _all(p, _kind("RecurringRun"), sh.namespace)
                          if x["metadata"].get("uid") == rid), "(deleted)")
    return render(sh, "runs_detail.html", run=run, row=row, spec=spec, status=st, recurring=recurring,
                  parameters=(run.get("spec") or {}).get("parameters") or {}, pipeline_name=pipeline_name,
                  editable=sh.can("edit"))


def _every(seconds: Any) -> str:
    """'every 90 s', 'every 5 min', 'every 2 h', 'every 1 day' for an interval trigger."""
    try:
        n = int(seconds)
    except (TypeError, ValueError):
        return f"every {seconds} s"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if n >= size and n % size == 0:
            count = n // size
            return f"every {count} {unit}{'s' if unit == 'day' and count != 1 else ''}"
    return f"every {n} s"


def recurring_row(rr: dict[str, Any], pipelines: dict[str, str], experiments: dict[str, str]) -> dict[str, Any]:
    """What the recurring-runs table shows of one RecurringRun manifest."""
    meta, spec, st = rr["metadata"], rr.get("spec") or {}, rr.get("status") or {}
    trig = spec.get("trigger") or {}
    ref = spec.get("pipelineVersionReference") or {}
    pipeline = pipelines.get(ref.get("pipelineId", ""), "") or \
        ((spec.get("pipelineSpec") or {}).get("pipelineInfo") or {}).get("name", "")
    return {"name": meta["name"], "uid": meta.get("uid", ""), "display_name": spec.get("displayName") or meta["name"],
            "pipeline": pipeline, "experiment": experiments.get(spec.get("experimentId", ""), ""),
            "experiment_id": spec.get("experimentId", ""),
            "trigger": f"cron {trig['cron']}" if trig.get("cron") else _every(trig.get("intervalSecond")),
            "start": trig.get("startTime"), "end": trig.get("endTime"),
            "max_concurrency": spec.get("maxConcurrency", 1), "enabled": spec.get("enabled", True),
            "next": st.get("nextRunAt"), "last": st.get("lastRun"), "last_at": st.get("lastRunAt"),
            "runs_created": st.get("runsCreated", 0), "message": st.get("message") or "",
            "parameters": spec.get("parameters") or {}, "created": meta.get("creationTimestamp", "")}


def recurring_page(request: Request) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "runs")
    if sh.namespace is None:
        return render(sh, "recurring.html")
    p = sh.platform
    kind = _kind("RecurringRun")
    pipelines, exp_names, _ = _lookup_tables(p, sh.namespace)
    rows = sorted((recurring_row(r, pipelines, exp_names) for r in _all(p, kind, sh.namespace)),
                  key=lambda r: r["created"], reverse=True)
    choices = sorted(({"name": x["metadata"]["name"], "display_name": x["spec"]["displayName"]}
                      for x in _all(p, _kind("Pipeline"), sh.namespace)), key=lambda c: c["display_name"].lower())
    return render(sh, "recurring.html", available=kind is not None, rows=rows, pipelines=choices,
                  editable=sh.can("edit"))


def experiments_page(request: Request) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "runs")
    if sh.namespace is None:
        return render(sh, "experiments.html")
    p = sh.platform
    kind = _kind("Experiment")
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in _all(p, _kind("Run"), sh.namespace):
        runs.setdefault((r.get("spec") or {}).get("experimentId", ""), []).append(r)
    recurring: dict[str, int] = {}
    for rr in _all(p, _kind("RecurringRun"), sh.namespace):
        eid = (rr.get("spec") or {}).get("experimentId", "")
        recurring[eid] = recurring.get(eid, 0) + 1
    rows = []
    for e in _all(p, kind, sh.namespace):
        uid = e["metadata"]["uid"]
        mine = sorted(runs.get(uid, []), key=lambda r: r["metadata"].get("creationTimestamp", ""), reverse=True)
        rows.append({"name": e["metadata"]["name"], "uid": uid, "display_name": e["spec"]["displayName"],
                     "description": e["spec"].get("description") or "",
                     "archived": e["spec"].get("storageState") == "ARCHIVED",
                     "created": e["metadata"].get("creationTimestamp", ""), "runs": len(mine),
                     "recent": [{"name": r["metadata"]["name"], "display_name": r["spec"].get("displayName", ""),
                                 "state": (r.get("status") or {}).get("state") or "PENDING"} for r in mine[:5]],
                     "recurring": recurring.get(uid, 0)})
    rows.sort(key=lambda r: (r["archived"], r["display_name"].lower()))
    return render(sh, "experiments.html", available=kind is not None, rows=rows, editable=sh.can("edit"))


def install(app: FastAPI) -> None:
    """Add the pipelines pages to `app` (called by `flowyard.ui.routes.install`)."""
    app.add_api_route("/pipelines", pipelines_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/pipelines/{name}", pipeline_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/runs", runs_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/runs/compare", compare_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/runs/{name}", run_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/experiments", experiments_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/recurringruns", recurring_page, methods=["GET"], include_in_schema=False)
