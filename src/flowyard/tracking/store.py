"""Writing and reading tracking rows: which runs exist for tracking, and their metrics, params, tags.

Every run that tracking knows has a `tracking_runs` row keyed by its uid: KFP Runs get one
when the Run controller first sees them (`sync_run`), other resources (a tuning `Trial`) on
their first log, and runs started from a notebook or script are *only* that row (source
`Notebook`), so the pipeline engine never sees them. Metric points are appended; the latest
value per (run, key) — highest step, then newest timestamp — is kept in `latest_metrics` by
an upsert, so the compare view never scans the points.
"""

from __future__ import annotations

import importlib
import math
import time
import uuid
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, or_, select, update

from flowyard.errors import Invalid, NotFound
from flowyard.platform import Platform
from flowyard.store.resources import now
from flowyard.store.tables import resources
from flowyard.tracking.tables import (latest_metrics, metric_points, run_params, run_tags, tracking_keys,
                                      tracking_runs)

STATES = ("RUNNING", "SUCCEEDED", "FAILED", "CANCELED")
MAX_BATCH = 100_000
_KEY_MAX = 250
_VALUE_MAX = 6000
_EXPERIMENT_LABELS = ("pipelines.kubeflow.org/experiment-id", "katib.kubeflow.org/experiment",
                      "flowyard.io/experiment")


def _insert(engine: Engine, table: Any) -> Any:
    """The engine's own dialect INSERT (SQLite's or PostgreSQL's), which has ON CONFLICT clauses;
    its module is the one the engine loaded already."""
    return importlib.import_module(f"sqlalchemy.dialects.{engine.dialect.name}").insert(table)


def _upsert(engine: Engine, table: Any, rows: list[dict[str, Any]], keys: list[str], values: list[str],
            where: Any = None, conn: Any = None) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE (values), on SQLite and PostgreSQL alike."""
    if not rows:
        return
    stmt = _insert(engine, table)
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={v: stmt.excluded[v] for v in values},
                                      where=where(stmt.excluded) if where is not None else None)
    conn.execute(stmt, rows)


def _note_keys(engine: Engine, conn: Any, run: dict[str, Any], kind: str, keys: Any) -> None:
    """Remember which metric/param names the run's experiment uses (the compare view's columns)."""
    rows = [{"namespace": run["namespace"], "experiment": run["experiment"], "kind": kind, "key": k} for k in set(keys)]
    if rows:
        conn.execute(_insert(engine, tracking_keys).on_conflict_do_nothing(), rows)


def _newer(excluded: Any) -> Any:
    return or_(excluded.step > latest_metrics.c.step,
               and_(excluded.step == latest_metrics.c.step, excluded.timestamp >= latest_metrics.c.timestamp))


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _text(value: Any, what: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > _VALUE_MAX:
        raise Invalid(f"{what} is too long (at most {_VALUE_MAX} characters)")
    return text


def _key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > _KEY_MAX or any(c in key for c in "\n\r\t`"):
        raise Invalid(f"{what} name {key!r} is invalid: use 1 to {_KEY_MAX} characters, no backquote or newline")
    return key


# -- runs --------------------------------------------------------------------------------------


def _row(r: Any) -> dict[str, Any]:
    return {"uid": r.uid, "namespace": r.namespace, "experiment": r.experiment, "name": r.name,
            "source": r.source, "state": r.state, "createdAt": r.created_at, "finishedAt": r.finished_at}


def find_run(p: Platform, namespace: str, run: str) -> dict[str, Any]:
    """The tracking row of `run` (uid, or name) in `namespace`, made on first use for resources."""
    with p.store.engine.connect() as conn:
        row = conn.execute(select(tracking_runs).where(
            tracking_runs.c.namespace == namespace,
            or_(tracking_runs.c.uid == run, tracking_runs.c.name == run))).first()
        if row is not None:
            return _row(row)
        res = conn.execute(select(resources).where(
            resources.c.namespace == namespace, or_(resources.c.uid == run, resources.c.name == run),
            resources.c.kind.in_(("Run", "Trial")))).first()
    if res is None:
        raise NotFound(f"run '{run}' not found in namespace '{namespace}'")
    return register(p, {"metadata": {"uid": res.uid, "name": res.name, "namespace": res.namespace,
                                      "labels": res.labels, "creationTimestamp": res.created_at},
                        "kind": res.kind, "spec": res.spec, "status": res.status})


def _experiment_of(obj: dict[str, Any]) -> str:
    spec = obj.get("spec") or {}
    if spec.get("experimentId"):
        return str(spec["experimentId"])
    labels = obj["metadata"].get("labels") or {}
    return next((labels[k] for k in _EXPERIMENT_LABELS if labels.get(k)), "")


def state_of(obj: dict[str, Any]) -> str:
    state = str((obj.get("status") or {}).get("state") or (obj.get("status") or {}).get("phase") or "RUNNING").upper()
    return {"SKIPPED": "SUCCEEDED", "SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "CANCELED": "CANCELED",
            "EARLYSTOPPED": "SUCCEEDED", "KILLED": "CANCELED"}.get(state, "RUNNING")


def register(p: Platform, obj: dict[str, Any]) -> dict[str, Any]:
    """Make (or keep) the tracking row of a resource that runs (a KFP Run, a Trial)."""
    meta = obj["metadata"]
    row = {"uid": meta["uid"], "namespace": meta["namespace"], "experiment": _experiment_of(obj),
           "name": meta["name"], "source": obj.get("kind") or "Run", "state": state_of(obj),
           "created_at": meta.get("creationTimestamp") or now(), "finished_at": None}
    params = (obj.get("spec") or {}).get("parameters")
    engine = p.store.engine
    with engine.begin() as conn:
        done = conn.execute(_insert(engine, tracking_runs).values(**row).on_conflict_do_nothing()).rowcount
        if done and isinstance(params, dict):
            given = {k: v for k, v in params.items() if v is not None}
            _write_params(engine, conn, meta["uid"], given)
            _note_keys(engine, conn, row, "param", given)
    return find_run(p, meta["namespace"], meta["uid"])


def set_state(p: Platform, uid: str, state: str) -> None:
    """Record a run's state (the Run controller calls this when a KFP Run's state changes)."""
    values: dict[str, Any] = {"state": state}
    if state != "RUNNING":
        values["finished_at"] = now()
    with p.store.engine.begin() as conn:
        conn.execute(update(tracking_runs).where(tracking_runs.c.uid == uid).values(**values))


def refresh_states(p: Platform, namespace: str, experiment: str | None) -> None:
    """Bring the tracked state of running resources other than KFP Runs (tuning trials, whose
    controller does not tell tracking) up to date from their status; cheap: only running rows."""
    query = (select(tracking_runs.c.uid, resources.c.status)
             .join(resources, resources.c.uid == tracking_runs.c.uid)
             .where(tracking_runs.c.namespace == namespace, tracking_runs.c.state == "RUNNING",
                    tracking_runs.c.source.not_in(("Run", "Notebook"))))
    if experiment is not None:
        query = query.where(tracking_runs.c.experiment == experiment)
    with p.store.engine.connect() as conn:
        rows = conn.execute(query).all()
    for uid, status in rows:
        state = state_of({"status": status})
        if state != "RUNNING":
            set_state(p, uid, state)


def create_run(p: Platform, namespace: str, experiment: str, name: str | None, creator: str) -> dict[str, Any]:
    """A run started from a notebook or script: a tracking row only (never executed)."""
    exp = experiment_id(p, namespace, experiment, create=True, creator=creator) if experiment else ""
    uid = str(uuid.uuid4())
    if name is not None and (not isinstance(name, str) or len(name) > 253):
        raise Invalid("name must be a string of at most 253 characters")
    row = {"uid": uid, "namespace": namespace, "experiment": exp, "name": name or f"run-{uid[:8]}",
           "source": "Notebook", "state": "RUNNING", "created_at": now(), "finished_at": None}
    with p.store.engine.begin() as conn:
        conn.execute(insert(tracking_runs).values(**row))
    return find_run(p, namespace, uid)


def end_run(p: Platform, namespace: str, run: str, state: str) -> dict[str, Any]:
    if state not in STATES[1:]:
        raise Invalid(f"state must be one of {', '.join(STATES[1:])}")
    row = find_run(p, namespace, run)
    if row["source"] != "Notebook":
        raise Invalid(f"run '{run}' is a {row['source']}: its state follows the {row['source']}, not the SDK")
    set_state(p, row["uid"], state)
    return find_run(p, namespace, row["uid"])


def delete_run(p: Platform, namespace: str, name: str, source: str = "Run") -> str | None:
    """Drop the tracking rows of a deleted resource; its uid, or None when it had none."""
    with p.store.engine.begin() as conn:
        uid = conn.execute(select(tracking_runs.c.uid).where(
            tracking_runs.c.namespace == namespace, tracking_runs.c.name == name,
            tracking_runs.c.source == source)).scalar()
        if uid is None:
            return None
        for table in (metric_points, latest_metrics, run_params, run_tags):
            conn.execute(delete(table).where(table.c.run_uid == uid))
        conn.execute(delete(tracking_runs).where(tracking_runs.c.uid == uid))
    return str(uid)


def experiment_id(p: Platform, namespace: str, experiment: str, *, create: bool = False,
                  creator: str = "") -> str:
    """The uid of the KFP Experiment named (uid, name or display name) `experiment`; with
    `create`, a missing one is made, so notebook runs and pipeline runs share experiments."""
    from flowyard.kinds import CREATOR
    from flowyard.pipelines.kinds import EXPERIMENT, slug

    with p.store.engine.connect() as conn:
        rows = conn.execute(select(resources.c.uid, resources.c.name, resources.c.spec).where(
            resources.c.kind == "Experiment", resources.c.namespace == namespace)).all()
    for r in rows:
        if experiment in (r.uid, r.name):
            return str(r.uid)
    for r in rows:
        if (r.spec or {}).get("displayName") == experiment:
            return str(r.uid)
    if not create:
        return experiment  # a tuning experiment's name, or a label value
    obj = p.store.create(EXPERIMENT, namespace, {
        "metadata": {"name": slug(experiment, "experiment"), "annotations": {CREATOR: creator} if creator else {}},
        "spec": {"displayName": experiment}})
    return str(obj["metadata"]["uid"])


# -- logging ----------------------------------------------------------------------------------


def _write_params(engine: Engine, conn: Any, uid: str, params: dict[str, Any]) -> None:
    rows = []
    for k, v in params.items():
        text = _text(v, f"param '{k}'")
        rows.append({"run_uid": uid, "key": _key(k, "param"), "value": text, "num": _number(text)})
    _upsert(engine, run_params, rows, ["run_uid", "key"], ["value", "num"], conn=conn)


def _metric_rows(uid: str, metrics: Any) -> list[dict[str, Any]]:
    if not isinstance(metrics, list):
        raise Invalid("metrics must be a list of {key, value, step, timestamp} objects")
    if len(metrics) > MAX_BATCH:
        raise Invalid(f"at most {MAX_BATCH} metric points per request: send several batches")
    stamp = int(time.time() * 1000)
    rows = []
    for i, m in enumerate(metrics):
        if isinstance(m, (list, tuple)) and 2 <= len(m) <= 4:  # compact form [key, value, step, timestamp]
            m = dict(zip(("key", "value", "step", "timestamp"), m))
        if not isinstance(m, dict):
            raise Invalid(f"metrics[{i}] must be an object with key and value")
        value = m.get("value")
        try:
            number = math.nan if value is None else float(value)  # None: NaN or an infinity
        except (TypeError, ValueError):
            raise Invalid(f"metrics[{i}].value must be a number, got {value!r}") from None
        if isinstance(value, bool):
            raise Invalid(f"metrics[{i}].value must be a number, got {value!r}")
        step, ts = m.get("step") or 0, m.get("timestamp") or stamp
        if not isinstance(step, int) or isinstance(step, bool) or not isinstance(ts, int) or isinstance(ts, bool):
            raise Invalid(f"metrics[{i}]: step and timestamp (milliseconds) must be whole numbers")
        rows.append({"run_uid": uid, "key": _key(m.get("key"), "metric"),
                     "value": number if math.isfinite(number) else None, "step": step, "timestamp": ts})
    return rows


def log(p: Platform, namespace: str, run: str, metrics: Any = None, params: Any = None, tags: Any = None) -> int:
    """Append metric points and set params and tags of a run, in one transaction; the count of points."""
    row = find_run(p, namespace, run)
    uid = row["uid"]
    points = _metric_rows(uid, metrics or [])
    for what, value in (("params", params), ("tags", tags)):
        if value is not None and not isinstance(value, dict):
            raise Invalid(f"{what} must be a map of name to value")
    latest: dict[str, dict[str, Any]] = {}
    for pt in points:
        best = latest.get(pt["key"])
        if best is None or (pt["step"], pt["timestamp"]) >= (best["step"], best["timestamp"]):
            latest[pt["key"]] = pt
    engine = p.store.engine
    with engine.begin() as conn:
        if points:
            conn.execute(insert(metric_points), points)
            _upsert(engine, latest_metrics, list(latest.values()), ["run_uid", "key"],
                    ["value", "step", "timestamp"], where=_newer, conn=conn)
            _note_keys(engine, conn, row, "metric", latest)
        if params:
            _write_params(engine, conn, uid, params)
            _note_keys(engine, conn, row, "param", params)
        if tags:
            rows = [{"run_uid": uid, "key": _key(k, "tag"), "value": _text(v, f"tag '{k}'")} for k, v in tags.items()]
            _upsert(engine, run_tags, rows, ["run_uid", "key"], ["value"], conn=conn)
    return len(points)


# -- reading ----------------------------------------------------------------------------------


def details(p: Platform, uids: list[str]) -> dict[str, dict[str, Any]]:
    """Params, tags and latest metrics of several runs: {uid: {params, tags, metrics}}."""
    out: dict[str, dict[str, Any]] = {u: {"params": {}, "tags": {}, "metrics": {}} for u in uids}
    if not uids:
        return out
    with p.store.engine.connect() as conn:
        for r in conn.execute(select(run_params.c.run_uid, run_params.c.key, run_params.c.value)
                              .where(run_params.c.run_uid.in_(uids))):
            out[r.run_uid]["params"][r.key] = r.value
        for r in conn.execute(select(run_tags).where(run_tags.c.run_uid.in_(uids))):
            out[r.run_uid]["tags"][r.key] = r.value
        for r in conn.execute(select(latest_metrics).where(latest_metrics.c.run_uid.in_(uids))):
            out[r.run_uid]["metrics"][r.key] = {"value": r.value, "step": r.step, "timestamp": r.timestamp}
    return out


def get_run(p: Platform, namespace: str, run: str) -> dict[str, Any]:
    row = find_run(p, namespace, run)
    return {**row, **details(p, [row["uid"]])[row["uid"]]}


def history(p: Platform, namespace: str, run: str, keys: list[str] | None = None,
            limit: int = 100_000) -> dict[str, list[dict[str, Any]]]:
    """Every point of the run's metrics (or of `keys`), ordered by step then time."""
    uid = find_run(p, namespace, run)["uid"]
    query = select(metric_points.c.key, metric_points.c.value, metric_points.c.step, metric_points.c.timestamp) \
        .where(metric_points.c.run_uid == uid)
    if keys:
        query = query.where(metric_points.c.key.in_(keys))
    query = query.order_by(metric_points.c.key, metric_points.c.step, metric_points.c.timestamp, metric_points.c.id)
    out: dict[str, list[dict[str, Any]]] = {}
    with p.store.engine.connect() as conn:
        for r in conn.execute(query.limit(limit)):
            out.setdefault(r.key, []).append({"step": r.step, "value": r.value, "timestamp": r.timestamp})
    return out
