"""Run controller: drives a KFP Run through the pipeline engine.

`spec.terminate` (set by `POST /runs/{id}:terminate`) turns into `terminate_run`; a bump of
`spec.retry` restarts a finished run that did not succeed; deleting a Run calls `finalize_run`.
"""

from __future__ import annotations

from typing import Any

from flowyard.controllers.loop import Controller
from flowyard.kinds import Manifest
from flowyard.pipelines import engine as eng
from flowyard.pipelines.kinds import RUN, TERMINAL
from flowyard.platform import Platform
from flowyard.store.resources import now
from flowyard.tracking import runs as tracking

def _with_history(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    history = list(old.get("stateHistory") or [])
    state = new.get("state")
    if state and (not history or history[-1].get("state") != state):
        history.append({"state": state, "updateTime": now()})
    return {**new, "stateHistory": history[-50:]}


async def reconcile(p: Platform, obj: Manifest) -> dict[str, Any]:
    spec = obj["spec"]
    st = dict(obj.get("status") or {})
    retry = spec.get("retry", 0)
    if retry != st.get("observedRetry", 0):
        # a retry: keep the tasks that succeeded, run the rest again
        tasks = st.get("tasks") or {}
        if isinstance(tasks, dict):
            tasks = {k: v for k, v in tasks.items() if isinstance(v, dict) and v.get("state") == "SUCCEEDED"}
        st = {"state": "PENDING", "tasks": tasks, "observedRetry": retry, "stateHistory": st.get("stateHistory"),
              "message": f"retry {retry}"}
        obj = {**obj, "status": st}
    if st.get("state") in TERMINAL:
        return st
    if "pipelineSpec" not in spec and spec.get("pipelineVersionReference"):
        from flowyard.pipelines.api_common import version_spec

        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        resolved = version_spec(p, ns, spec["pipelineVersionReference"])
        p.store.patch(RUN, ns, name, {"spec": {"pipelineSpec": resolved}})
        return st  # the write queues this run again, with the spec resolved
    if spec.get("terminate"):
        new = await eng.terminate_run(p, obj)
    else:
        new = await eng.reconcile_run(p, obj)
    if new is None:
        return st
    new = dict(new)
    if retry:
        new["observedRetry"] = retry
    tracking.sync_run(p, obj, new)  # run state and Metrics artifacts into tracking; task tokens revoked at the end
    return _with_history(st, new)


async def finalize(p: Platform, namespace: str, name: str) -> None:
    await eng.finalize_run(p, namespace, name)
    tracking.forget_run(p, namespace, name)


CONTROLLER = Controller(RUN, reconcile, finalize)
