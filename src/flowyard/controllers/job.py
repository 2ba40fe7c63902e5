"""`Job` (`batch/v1`): run a container spec to completion, with retries and a deadline.

The smallest complete controller, and the template for the others: the spec is validated
on write, `reconcile` submits one executor workload per attempt and mirrors its phase into
status, events mark each transition, and `finalize` stops the work of a deleted Job.
"""

from __future__ import annotations

import copy
from typing import Any

from flowyard.controllers.loop import OWNER_KIND, OWNER_NAME, OWNER_NAMESPACE, Controller, owner_labels
from flowyard.errors import Invalid
from flowyard.executor.base import Phase
from flowyard.executor.errors import WorkloadNotFound
from flowyard.kinds import Kind, Manifest, register
from flowyard.platform import Platform
from flowyard.status import set_condition
from flowyard.store.resources import now
from flowyard.workloads import check_container, from_container

_NO_RETRY = {"Unschedulable", "QuotaExceeded", "InvalidSpec", "DeadlineExceeded"}


def _container(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["template"]["spec"]["containers"][0]


def _job_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = manifest.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
    if not isinstance(containers, list) or not containers:
        raise Invalid("spec.template.spec.containers must list the container to run")
    check_container(containers[0], "spec.template.spec.containers[0]")
    for field in ("backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise Invalid(f"spec.{field} must be a whole number >= 0")
    if old is not None and old["spec"].get("template") != spec.get("template"):
        raise Invalid("spec.template of a Job cannot change: delete the Job and create it again")
    return spec


JOB = register(Kind("Job", ("batch/v1", "flowyard.io/v1"), spec_from=_job_spec))


def _workload_id(obj: Manifest, attempt: int) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}.job.{meta['name']}.{meta['uid'][:8]}-{attempt}"


def _finish(p: Platform, obj: Manifest, st: dict[str, Any], ok: bool, reason: str, message: str) -> dict[str, Any]:
    st.update(phase="Succeeded" if ok else "Failed", message=message, completionTime=now())
    set_condition(st, "Complete" if ok else "Failed", True, reason, message)
    p.store.record_event(obj, "Completed" if ok else reason or "Failed", message or "job succeeded",
                         "Normal" if ok else "Warning")
    return st


async def reconcile(p: Platform, obj: Manifest) -> dict[str, Any]:
    assert p.executor is not None
    st = copy.deepcopy(obj["status"]) or {"phase": "Pending", "failed": 0, "succeeded": 0, "active": 0}
    if st.get("phase") in ("Succeeded", "Failed"):
        return st
    spec = obj["spec"]
    if not st.get("workload"):
        attempt = st.get("failed", 0)
        deadline = spec.get("activeDeadlineSeconds")
        try:
            work = from_container(p, obj, _container(spec), _workload_id(obj, attempt),
                                  labels=owner_labels(obj), timeout=float(deadline) if deadline else None)
        except Invalid as e:
            return _finish(p, obj, st, False, "InvalidSpec", e.message)
        await p.executor.submit(work)
        st.update(workload=work.id, startTime=st.get("startTime") or now())
        p.store.record_event(obj, "Created", f"workload {work.id} submitted")
    try:
        ws = p.executor.status(st["workload"])
    except WorkloadNotFound:
        return _finish(p, obj, st, False, "Lost", f"workload {st['workload']} is gone")
    st.update(limitsMode=ws.limits_mode, gpus=list(ws.gpus), active=int(not ws.finished))
    if ws.phase == Phase.Pending:
        st.update(phase="Pending", message=ws.message)
        set_condition(st, "Admitted", False, ws.reason or "Queued", ws.message)
    elif ws.phase == Phase.Running:
        if st.get("phase") != "Running":
            p.store.record_event(obj, "Started", f"running as pid {ws.pid} (limits: {ws.limits_mode})")
        st.update(phase="Running", message="")
        set_condition(st, "Admitted", True, "Admitted", "")
    elif ws.phase == Phase.Succeeded:
        st.update(succeeded=1, exitCode=ws.exit_code)
        return _finish(p, obj, st, True, "Completed", "")
    else:
        st.update(failed=st.get("failed", 0) + 1, exitCode=ws.exit_code)
        if ws.reason not in _NO_RETRY and st["failed"] <= spec.get("backoffLimit", 0):
            p.store.record_event(obj, "BackoffRetry", f"attempt {st['failed']} failed: {ws.message}", "Warning")
            st.update(workload=None, phase="Pending")
            return st
        return _finish(p, obj, st, False, ws.reason or "Failed", ws.message)
    return st


async def finalize(p: Platform, namespace: str, name: str) -> None:
    """Stop and forget the workloads of a deleted Job."""
    assert p.executor is not None
    for w in p.executor.list(namespace):
        labels = w.labels or {}
        if (labels.get(OWNER_KIND), labels.get(OWNER_NAMESPACE), labels.get(OWNER_NAME)) == ("Job", namespace, name):
            if not w.finished:
                await p.executor.stop(w.id)
            p.executor.remove(w.id)


CONTROLLER = Controller(JOB, reconcile, finalize)
