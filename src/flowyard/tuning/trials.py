"""One trial: its record, its workload (or pipeline run), and its status from them and its metrics.

A Trial record naming its workload is written before the workload is submitted. A crash
between the two leaves a trial whose workload the executor does not know, and it is
submitted after the restart; one the executor knows is never submitted again, so no trial
runs twice. Phases follow Katib's conditions: Pending, Running, Succeeded, Failed (also
when the objective metric never appeared: reason MetricsUnavailable), EarlyStopped, Killed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import re
import secrets
from typing import Any

from flowyard.controllers.loop import owner_labels
from flowyard.errors import AlreadyExists, NotFound
from flowyard.executor.base import Phase, WorkloadSpec, WorkloadStatus
from flowyard.executor.errors import WorkloadNotFound
from flowyard.kinds import CREATOR, Manifest
from flowyard.pipelines.kinds import RUN
from flowyard.platform import Platform
from flowyard.status import set_condition
from flowyard.store.resources import now
from flowyard.tuning import metrics
from flowyard.tuning.algorithms import assignment
from flowyard.tuning.kinds import API_VERSION, EXPERIMENT_LABEL, TRIAL
from flowyard.workloads import from_container

TERMINAL = ("Succeeded", "Failed", "EarlyStopped", "Killed")
TRIAL_LABEL = "tuning.flowyard.io/trial"
TOKEN_HEADER = "X-Flowyard-Trial-Token"
LOG_TAIL = 10
PYC = "flowyard.tuning.pyc"
_META = re.compile(r"\$\{trialSpec\.(Name|Namespace|Kind|APIVersion)\}")


def token(session_key: bytes, trial_uid: str) -> str:
    """The secret a trial's workload presents to push its metrics (an HMAC: nothing is stored)."""
    return hmac.new(session_key, f"trial:{trial_uid}".encode(), hashlib.sha256).hexdigest()


def _substitute(value: Any, params: dict[str, str], meta: dict[str, str]) -> Any:
    if isinstance(value, str):
        value = re.sub(r"\$\{trialParameters\.([^}]*)\}", lambda m: params.get(m.group(1), m.group(0)), value)
        return _META.sub(lambda m: meta[m.group(1)], value)
    if isinstance(value, list):
        return [_substitute(v, params, meta) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, params, meta) for k, v in value.items()}
    return value


def create(p: Platform, exp: Manifest, params: dict[str, Any], system_attrs: dict[str, Any], seq: int) -> Manifest:
    """Store a new Trial of `exp` with these parameter values (Katib substitutes them into the Job)."""
    spec, ns, exp_name = exp["spec"], exp["metadata"]["namespace"], exp["metadata"]["name"]
    values = {name: assignment(v) for name, v in params.items()}
    name = f"{exp_name}-{secrets.token_hex(4)}"
    tt = spec["trialTemplate"]
    by_trial_param = {tp["name"]: values.get(tp["reference"], "") for tp in tt.get("trialParameters") or []}
    meta = {"Name": name, "Namespace": ns, "Kind": "Job", "APIVersion": "batch/v1"}
    manifest = {
        "apiVersion": API_VERSION, "kind": "Trial",
        "metadata": {"name": name, "labels": {EXPERIMENT_LABEL: exp_name}},
        "spec": {
            "objective": spec["objective"],
            "parameterAssignments": [{"name": p["name"], "value": values[p["name"]]} for p in spec["parameters"]],
            "runSpec": _substitute(copy.deepcopy(tt["trialSpec"]), by_trial_param, meta),
            "metricsCollector": spec["metricsCollectorSpec"],
            "primaryContainerName": tt.get("primaryContainerName", ""),
            "retainRun": bool(tt.get("retain")),
        },
    }
    work = {"run": name} if tt["trialSpec"].get("kind") == "Run" else {"workload": f"{ns}.trial.{name}"}
    status = {"phase": "Pending", **work, "optuna": {"seq": seq, "systemAttrs": jsonable(system_attrs)}}
    set_condition(status, "Created", True, "TrialCreated", "Trial is created")
    return p.store.create(TRIAL, ns, manifest, status=status)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON (Optuna's system attributes may hold tuples and numpy numbers)."""
    import orjson

    return orjson.loads(orjson.dumps(value, default=str))


def _container(trial: Manifest) -> dict[str, Any]:
    containers = trial["spec"]["runSpec"]["spec"]["template"]["spec"]["containers"]
    primary = trial["spec"].get("primaryContainerName")
    return next((c for c in containers if primary and c.get("name") == primary), containers[0])


def workload_id(trial: Manifest) -> str:
    meta = trial["metadata"]
    return trial["status"].get("workload") or f"{meta['namespace']}.trial.{meta['name']}"


def is_pipeline(trial: Manifest) -> bool:
    """A trial that runs a KFP pipeline (Flowyard's addition) rather than a Job."""
    return trial["spec"]["runSpec"].get("kind") == "Run"


def submitted(p: Platform, trial: Manifest) -> bool:
    """Whether the trial's work exists: its workload is known to the executor (which persists
    it before it starts), or its pipeline Run is stored."""
    assert p.executor is not None
    try:
        if is_pipeline(trial):
            p.store.get(RUN, trial["metadata"]["namespace"], trial["metadata"]["name"])
        else:
            p.executor.status(workload_id(trial))
    except (WorkloadNotFound, NotFound):
        return False
    return True


def _start_run(p: Platform, exp: Manifest, trial: Manifest) -> None:
    """Store the pipeline Run of a pipeline trial (named as the trial); its controller runs it."""
    meta = trial["metadata"]
    creator = (exp["metadata"].get("annotations") or {}).get(CREATOR)
    manifest = {"apiVersion": RUN.api_version, "kind": "Run",
                "metadata": {"name": meta["name"], "labels": dict(meta["labels"], **{TRIAL_LABEL: meta["name"]}),
                             "annotations": {CREATOR: creator} if creator else {}},
                "spec": {**(trial["spec"]["runSpec"].get("spec") or {}), "displayName": meta["name"]}}
    try:
        p.store.create(RUN, meta["namespace"], manifest)
    except AlreadyExists:
        pass


async def start(p: Platform, exp: Manifest, trial: Manifest) -> None:
    """Submit the trial's workload; submitting an id the executor has is a no-op, so a trial
    recorded just before a crash starts once, after the restart."""
    assert p.executor is not None
    if is_pipeline(trial):
        _start_run(p, exp, trial)
        return
    container = dict(_container(trial))
    command = [str(a) for a in list(container.get("command") or []) + list(container.get("args") or [])]
    container.update(command=metrics.wrap_command(command, trial["spec"]["metricsCollector"]), args=[])
    deadline = (trial["spec"]["runSpec"].get("spec") or {}).get("activeDeadlineSeconds")
    labels = {**owner_labels(exp), TRIAL_LABEL: trial["metadata"]["name"]}
    env = {"FLOWYARD_TRIAL_NAME": trial["metadata"]["name"],
           "FLOWYARD_TRIAL_TOKEN": token(p.session_key, trial["metadata"]["uid"])}
    work = from_container(p, trial, container, workload_id(trial), labels=labels, extra_env=env,
                          timeout=float(deadline) if deadline else None)
    await p.executor.submit(_warm(work))


def _warm(work: WorkloadSpec) -> WorkloadSpec:
    """`python -c CODE ...` in the default environment becomes a warm-startable equivalent:
    forked from a zygote, a trial costs a fork instead of a runner and an interpreter."""
    argv = list(work.command)
    if argv[1:2] == ["-u"]:
        argv.pop(1)
    if work.environment != "default" or len(argv) < 3 or argv[0] not in ("python", "python3") or argv[1] != "-c" \
            or not hasattr(work, "warm"):  # an executor without warm starts
        return work
    return dataclasses.replace(work, command=["python", "-m", PYC, *argv[2:]], warm=[PYC])


async def logs(p: Platform, trial: Manifest, follow: bool, tail: int | None) -> Any:
    """`LOG_SOURCES["Trial"]`: a Job trial's workload log, or a pipeline trial's run log."""
    from flowyard.api import resources

    if is_pipeline(trial):
        from flowyard.pipelines.api_logs import run_log

        run = p.store.get(RUN, trial["metadata"]["namespace"], trial["metadata"]["name"])
        return await run_log(p, run, follow, tail)
    return await resources._workload_log(p, trial, follow, tail)


async def log_text(p: Platform, wid: str, tail: int | None = None) -> str:
    assert p.executor is not None
    chunks = [c async for c in p.executor.logs(wid, tail=tail)]
    return b"".join(chunks).decode(errors="replace")


async def points(p: Platform, exp: Manifest, trial: Manifest, wid: str) -> list[metrics.Point]:
    """Every metric point of a trial so far: from its output, or pushed."""
    names = metrics.names_of(exp["spec"])
    collector = exp["spec"]["metricsCollectorSpec"]
    if collector["collector"]["kind"] == "Push":
        return metrics.pushed(p, trial["metadata"]["namespace"], trial["metadata"]["uid"], names)
    try:
        text = await (run_text(p, trial) if is_pipeline(trial) else log_text(p, wid))
    except (WorkloadNotFound, NotFound):
        return []
    return metrics.parse(text, names, collector)


async def run_text(p: Platform, trial: Manifest, tail: int | None = None) -> str:
    """The log of a pipeline trial's Run: every task's lines, prefixed with `[task] `."""
    from flowyard.pipelines.api_logs import run_log

    run = p.store.get(RUN, trial["metadata"]["namespace"], trial["metadata"]["name"])
    text = b"".join([c async for c in await run_log(p, run, False, None)]).decode(errors="replace")
    return "\n".join(text.splitlines()[-tail:]) if tail else text


def finish(trial: Manifest, st: dict[str, Any], phase: str, reason: str, message: str) -> dict[str, Any]:
    st.update(phase=phase, message=message, completionTime=now())
    set_condition(st, "Running", False, reason, "")
    set_condition(st, "MetricsUnavailable" if reason == "MetricsUnavailable" else phase, True, reason, message)
    return st


async def observe(p: Platform, exp: Manifest, trial: Manifest) -> tuple[dict[str, Any], list[float]]:
    """The trial's new status (not terminal before its workload is) and its objective history."""
    assert p.executor is not None
    st = copy.deepcopy(trial["status"])
    wid = workload_id(trial)
    try:
        ws = _run_status(p, trial) if is_pipeline(trial) else p.executor.status(wid)
    except (WorkloadNotFound, NotFound):
        return finish(trial, st, "Failed", "Lost", f"its {'run' if is_pipeline(trial) else 'workload'} is gone"), []
    objective = exp["spec"]["objective"]["objectiveMetricName"]
    names = metrics.names_of(exp["spec"])
    if ws.phase == Phase.Pending:
        st.update(phase="Pending", message=ws.message)
        return st, []
    if ws.phase == Phase.Running and st.get("phase") != "Running":
        st.update(phase="Running", startTime=st.get("startTime") or now(), message="")
        set_condition(st, "Running", True, "TrialRunning", "Trial is running")
    found = await points(p, exp, trial, wid)
    st["observation"] = metrics.observation(found, names)
    history = [v for n, v in found if n == objective]
    if ws.phase == Phase.Running:
        return st, history
    st.update(exitCode=ws.exit_code, startTime=st.get("startTime") or now())
    if ws.phase == Phase.Succeeded:
        missing = [n for n in names[:1 + len(exp["spec"]["objective"].get("additionalObjectives") or [])]
                   if not any(m["name"] == n for m in st["observation"]["metrics"])]
        if not missing:
            return finish(trial, st, "Succeeded", "TrialSucceeded", "Trial has succeeded"), history
        tail = await _tail(p, trial, wid)
        where = "pushed metrics" if exp["spec"]["metricsCollectorSpec"]["collector"]["kind"] == "Push" else "output"
        message = f"metric {missing[0]} not found in {where}; last lines of its log:\n{tail.rstrip() or '(empty)'}"
        return finish(trial, st, "Failed", "MetricsUnavailable", message), history
    if ws.phase == Phase.Stopped:
        return finish(trial, st, "Killed", ws.reason or "Stopped", ws.message or "its workload was stopped"), history
    tail = await _tail(p, trial, wid)
    message = f"{ws.message or 'the trial failed'}; last lines of its log:\n{tail.rstrip() or '(empty)'}"
    return finish(trial, st, "Failed", ws.reason or "TrialFailed", message), history


async def _tail(p: Platform, trial: Manifest, wid: str) -> str:
    try:
        return await (run_text(p, trial, LOG_TAIL) if is_pipeline(trial) else log_text(p, wid, tail=LOG_TAIL))
    except (WorkloadNotFound, NotFound):
        return ""


_RUN_PHASES = {"PENDING": Phase.Pending, "RUNNING": Phase.Running, "CANCELING": Phase.Running,
               "PAUSED": Phase.Running, "SUCCEEDED": Phase.Succeeded, "SKIPPED": Phase.Succeeded,
               "FAILED": Phase.Failed, "CANCELED": Phase.Stopped}


def _run_status(p: Platform, trial: Manifest) -> WorkloadStatus:
    """A pipeline Run's state, seen as a workload's."""
    run = p.store.get(RUN, trial["metadata"]["namespace"], trial["metadata"]["name"])
    st = run.get("status") or {}
    state = st.get("state") or "PENDING"
    error = st.get("error") if isinstance(st.get("error"), dict) else {}
    message = (error or {}).get("message") or st.get("message") or f"pipeline run {state.lower()}"
    return WorkloadStatus(id=run["metadata"]["name"], namespace=run["metadata"]["namespace"], kind="batch",
                          phase=_RUN_PHASES.get(state, Phase.Pending), reason="RunFailed" if state == "FAILED" else "",
                          message=message if state in ("FAILED", "CANCELED") else "")


async def stop(p: Platform, trial: Manifest, st: dict[str, Any], phase: str, reason: str,
               message: str) -> dict[str, Any]:
    """End a running trial now (early stopping, or the experiment is over)."""
    import asyncio

    assert p.executor is not None
    wid = st.get("workload")
    if is_pipeline(trial):
        try:
            p.store.patch(RUN, trial["metadata"]["namespace"], trial["metadata"]["name"], {"spec": {"terminate": True}})
        except NotFound:
            pass
    elif wid:
        try:
            if not p.executor.status(wid).finished:
                task = asyncio.create_task(p.executor.stop(wid, grace=2.0))
                _pending.add(task)
                task.add_done_callback(_pending.discard)
        except WorkloadNotFound:
            pass
    return finish(trial, st, phase, reason, message)


_pending: set[Any] = set()

