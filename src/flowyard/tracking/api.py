"""REST routes of tracking, under `/api/v1/namespaces/{ns}/tracking/`.

- `POST runs` starts a run from a notebook or script (a tracking record, never executed);
  `GET runs/{run}` its params, tags and latest metrics; `POST runs/{run}/log` a batch of
  metric points, params and tags; `POST runs/{run}/end` its final state;
  `GET runs/{run}/metrics?key=` the metric histories.
- `GET experiments` the experiments with tracked runs; `GET experiments/{experiment}/runs`
  the compare view (`filter`, `order_by`, `page_size`, `page_token`; see `query.py`).
- `GET compare?runs=a,b` params (and which differ) and metric histories of a few runs.

`{run}` is a run uid (what `FLOWYARD_RUN` holds) or name; `{experiment}` a KFP experiment
uid, name or display name. Reads need `view`, writes `edit`; a tuning trial may also log to
itself with its `X-Flowyard-Trial-Token` (`FLOWYARD_TRIAL_TOKEN` in its workload).
"""

from __future__ import annotations

from typing import Any

import hmac

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from sqlalchemy import func, select

from flowyard.accounts import Principal
from flowyard.api.deps import optional_principal, platform, principal
from flowyard.api.json import JSON
from flowyard.errors import Invalid, NotFound, Unauthorized
from flowyard.platform import Platform
from flowyard.store.tables import resources
from flowyard.tracking import query, store
from flowyard.tracking.tables import tracking_runs

router = APIRouter(prefix="/api/v1/namespaces/{namespace}/tracking", tags=["tracking"])
_COMPARE_MAX = 20
TRIAL_TOKEN = "X-Flowyard-Trial-Token"


@router.post("/runs", status_code=201, summary="Start a run from a notebook or script")
def start_run(namespace: str, body: dict[str, Any] = Body(default={}, description="{experiment, name, params, tags}"),
              who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "edit")
    if not isinstance(body, dict):
        raise Invalid("the body must be an object: {experiment, name, params, tags}")
    experiment = body.get("experiment") or ""
    if not isinstance(experiment, str):
        raise Invalid("experiment must be an experiment name")
    row = store.create_run(p, namespace, experiment, body.get("name"), who.user)
    if body.get("params") or body.get("tags"):
        store.log(p, namespace, row["uid"], params=body.get("params"), tags=body.get("tags"))
    return JSON(store.get_run(p, namespace, row["uid"]), status_code=201)


@router.get("/runs/{run}", summary="A run's params, tags and latest metrics")
def get_run(namespace: str, run: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "view")
    return JSON(store.get_run(p, namespace, run))


def _trial_may_log(p: Platform, namespace: str, run: str, token: str) -> None:
    """A tuning trial logs with its own `X-Flowyard-Trial-Token` (no user token in its workload)."""
    try:
        from flowyard.tuning.kinds import TRIAL
        from flowyard.tuning.trials import token as trial_token
    except ImportError:
        raise Unauthorized("trial tokens need the tuning area on this server") from None
    try:
        uid = p.store.get(TRIAL, namespace, run)["metadata"]["uid"]
    except NotFound:
        uid = ""
    if not uid or not hmac.compare_digest(token, trial_token(p.session_key, uid)):
        raise Unauthorized(f"the {TRIAL_TOKEN} is not the token of trial '{run}'")


@router.post("/runs/{run}/log", summary="Log a batch of metric points, params and tags")
def log_batch(namespace: str, run: str, request: Request,
              body: dict[str, Any] = Body(..., description="{metrics: [{key, value, step, timestamp}], params: {}, tags: {}}"),
              trial: str | None = Header(None, alias=TRIAL_TOKEN, description="A tuning trial's own token"),
              p: Platform = Depends(platform)) -> JSON:
    who = optional_principal(request)
    if who is not None:
        p.namespaces.require(who, namespace, "edit")
    elif trial:
        _trial_may_log(p, namespace, run, trial)
    else:
        raise Unauthorized("log in first: send 'Authorization: Bearer <token>' (or a trial's " + TRIAL_TOKEN + ")")
    if not isinstance(body, dict):
        raise Invalid("the body must be an object: {metrics, params, tags}")
    count = store.log(p, namespace, run, body.get("metrics"), body.get("params"), body.get("tags"))
    return JSON({"metrics": count})


@router.post("/runs/{run}/end", summary="End a run started from a notebook or script")
def end_run(namespace: str, run: str, body: dict[str, Any] = Body(default={}, description="{state: SUCCEEDED|FAILED|CANCELED}"),
            who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "edit")
    state = (body or {}).get("state", "SUCCEEDED") if isinstance(body, dict) else None
    return JSON(store.end_run(p, namespace, run, str(state)))


@router.get("/runs/{run}/metrics", summary="Metric histories of a run")
def metric_history(namespace: str, run: str, key: list[str] | None = Query(None, description="Metric names (all when none)"),
                   who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "view")
    return JSON({"metrics": store.history(p, namespace, run, key)})


@router.get("/experiments", summary="Experiments with their tracked run counts")
def experiments(namespace: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "view")
    with p.store.engine.connect() as conn:
        counts = dict(conn.execute(select(tracking_runs.c.experiment, func.count()).where(
            tracking_runs.c.namespace == namespace).group_by(tracking_runs.c.experiment)).all())
        exps = conn.execute(select(resources.c.uid, resources.c.name, resources.c.spec, resources.c.created_at).where(
            resources.c.kind == "Experiment", resources.c.namespace == namespace)).all()
    items = [{"id": e.uid, "name": e.name, "displayName": (e.spec or {}).get("displayName") or e.name,
              "description": (e.spec or {}).get("description") or "", "createdAt": e.created_at,
              "runs": counts.pop(e.uid, 0)} for e in exps]
    items += [{"id": k, "name": k, "displayName": k or "(no experiment)", "description": "", "createdAt": None,
               "runs": n} for k, n in counts.items()]
    items.sort(key=lambda e: str(e["displayName"]).lower())
    return JSON({"experiments": items})


@router.get("/experiments/{experiment}/runs", summary="Runs of an experiment with params and latest metrics")
def experiment_runs(namespace: str, experiment: str,
                    filter: str = Query("", description="e.g. metrics.accuracy > 0.9 AND params.lr IN (0.1, 0.01)"),
                    order_by: list[str] | None = Query(None, description="e.g. 'metrics.accuracy DESC'"),
                    page_size: int = Query(50, ge=1, le=query.MAX_PAGE), page_token: str | None = None,
                    who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "view")
    exp = None if experiment == "-" else store.experiment_id(p, namespace, experiment)
    store.refresh_states(p, namespace, exp)
    return JSON(query.search(p, namespace, exp, filter, order_by, page_size, page_token))


@router.get("/compare", summary="Params and metric histories of a few runs, side by side")
def compare(namespace: str, runs: str = Query(..., description="Comma-separated run uids or names"),
            who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "view")
    names = [r for r in runs.split(",") if r.strip()]
    if not 1 <= len(names) <= _COMPARE_MAX:
        raise Invalid(f"give 1 to {_COMPARE_MAX} runs to compare")
    items = [store.get_run(p, namespace, r.strip()) for r in names]
    for item in items:
        item["history"] = store.history(p, namespace, item["uid"])
    keys = sorted({k for i in items for k in i["params"]})
    differ = [k for k in keys if len({i["params"].get(k) for i in items}) > 1]
    return JSON({"runs": items, "paramKeys": keys, "differentParams": differ,
                 "metricKeys": sorted({k for i in items for k in i["metrics"]})})
