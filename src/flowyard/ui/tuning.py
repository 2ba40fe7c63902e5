"""The Tuning pages of the dashboard: Katib experiments and their trials.

`/tuning` lists the namespace's experiments; `/tuning/{name}` shows one: its status and
reason, the best trial, a trials table sortable by any column, the objective over the
trials and a parallel-coordinates view of the parameters (drawn as SVG by
`static/tuning.js` from the JSON the page carries).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from flowyard.errors import NotFound
from flowyard.tuning import metrics
from flowyard.tuning.controller import list_trials
from flowyard.tuning.kinds import EXPERIMENT

TERMINAL = ("Succeeded", "Failed")


def _objective_value(spec: dict[str, Any], trial: dict[str, Any]) -> float | None:
    values = metrics.objective_values(spec, (trial.get("status") or {}).get("observation") or {})
    return values[0] if values else None


def experiment_row(exp: dict[str, Any]) -> dict[str, Any]:
    """What the experiments table shows of one experiment."""
    spec, st = exp["spec"], exp.get("status") or {}
    best = st.get("currentOptimalTrial") or {}
    best_value = metrics.value_of(best.get("observation") or {}, spec["objective"]["objectiveMetricName"],
                                  next(s["value"] for s in spec["objective"]["metricStrategies"]))
    return {"name": exp["metadata"]["name"], "phase": st.get("phase") or "Created",
            "algorithm": spec["algorithm"]["algorithmName"],
            "objective": f"{spec['objective']['type']} {spec['objective']['objectiveMetricName']}",
            "succeeded": st.get("trialsSucceeded", 0), "trials": st.get("trials", 0),
            "max": spec.get("maxTrialCount"), "failed": st.get("trialsFailed", 0),
            "best": best_value, "message": st.get("message") or "",
            "created": exp["metadata"].get("creationTimestamp", "")}


def trial_row(spec: dict[str, Any], t: dict[str, Any]) -> dict[str, Any]:
    st = t.get("status") or {}
    names = metrics.names_of(spec)
    obs = st.get("observation") or {}
    strategies = {s["name"]: s["value"] for s in spec["objective"]["metricStrategies"]}
    return {"name": t["metadata"]["name"], "phase": st.get("phase") or "Created",
            "seq": (st.get("optuna") or {}).get("seq", 0),
            "params": {a["name"]: a["value"] for a in t["spec"]["parameterAssignments"]},
            "metrics": {n: metrics.value_of(obs, n, strategies.get(n, "latest")) for n in names},
            "value": _objective_value(spec, t), "message": st.get("message") or "",
            "started": st.get("startTime", ""), "finished": st.get("completionTime", "")}


def fmt(value: Any) -> str:
    """A metric or parameter for a table cell."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:.6g}" if "." in str(value) else str(value)


def tuning_page(request: Request) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "tuning")
    if sh.namespace is None:
        return render(sh, "tuning.html", rows=[])
    out: list[dict[str, Any]] = []
    token = None
    while True:
        items, token = sh.platform.store.list(EXPERIMENT, sh.namespace, continue_=token)
        out += items
        if not token:
            break
    rows = sorted((experiment_row(e) for e in out), key=lambda r: r["created"], reverse=True)
    return render(sh, "tuning.html", rows=rows, fmt=fmt)


def experiment_page(request: Request, name: str) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "tuning")
    if sh.namespace is None:
        return render(sh, "tuning.html", rows=[])
    try:
        exp = sh.platform.store.get(EXPERIMENT, sh.namespace, name)
    except NotFound:
        return render(sh, "tuning_detail.html", status_code=404, missing=name, exp=None)
    spec, st = exp["spec"], exp.get("status") or {}
    trials = sorted((trial_row(spec, t) for t in list_trials(sh.platform, sh.namespace, name)),
                    key=lambda r: r["seq"])
    best = next((t for t in trials if t["name"] == (st.get("currentOptimalTrial") or {}).get("bestTrialName")), None)
    reason = next((c for c in reversed(st.get("conditions") or []) if c["status"] == "True"), {})
    data = {"objective": spec["objective"]["objectiveMetricName"], "type": spec["objective"]["type"],
            "parameters": [{"name": p["name"], "type": p["parameterType"],
                            "list": p["feasibleSpace"].get("list"),
                            "min": p["feasibleSpace"].get("min"), "max": p["feasibleSpace"].get("max"),
                            "log": p["feasibleSpace"].get("distribution") == "logUniform"}
                           for p in spec["parameters"]],
            "trials": trials, "best": best["name"] if best else None,
            "running": st.get("phase") not in TERMINAL}
    return render(sh, "tuning_detail.html", exp=exp, row=experiment_row(exp), trials=trials, best=best,
                  reason=reason, data=data, fmt=fmt, metric_names=metrics.names_of(spec),
                  param_names=[p["name"] for p in spec["parameters"]])


def install(app: FastAPI) -> None:
    """Add the tuning pages to `app` (called by `flowyard.ui.routes.install`)."""
    app.add_api_route("/tuning", tuning_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/tuning/{name}", experiment_page, methods=["GET"], include_in_schema=False)
