"""The Notebook controller: keep one JupyterLab service workload running per started notebook.

Phases: `Pending` (waiting for admission, the `notebooks` quota or an environment build) →
`Starting` (process up, `/api/status` not answering yet) → `Running` (condition `Ready`) /
`Stopped` (annotation `kubeflow-resource-stopped`, set by users or by culling) / `Failed`
(with the last log lines; stop and start the notebook to try again, or change its spec).

Readiness is polled without blocking the loop: a reconcile probes once and, while the server
is not up, asks to be queued again 0.2 s later. Running notebooks are re-checked for
idleness on a timer of their own. Each start gets a fresh namespace-scoped API token for the
notebook's creator (the previous one is revoked); a stop or delete revokes it too. Deleting a
notebook stops its workload but keeps every volume.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

from flowyard.accounts import Principal
from flowyard.controllers.loop import OWNER_KIND, OWNER_NAME, OWNER_NAMESPACE, Controller, owner_labels
from flowyard.errors import FlowyardError, Invalid, NotFound, QuotaExceeded
from flowyard.executor.base import Phase, WorkloadStatus
from flowyard.executor.errors import WorkloadNotFound
from flowyard.kinds import Manifest
from flowyard.namespaces import PROFILE, quota_of
from flowyard.notebooks import culling, launch, probe
from flowyard.kinds import CREATOR as API_CREATOR
from flowyard.notebooks.kind import NOTEBOOK, STOPPED, container_of
from flowyard.notebooks.secret import proxy_secret
from flowyard.platform import Platform
from flowyard.status import set_condition
from flowyard.store.resources import now

log = logging.getLogger(__name__)
UID_LABEL = "notebooks.flowyard.io/uid"
POLL_SECONDS = 0.2
START_TIMEOUT = 300.0
"""Seconds a started server may take to answer before the notebook is marked Failed."""
MAX_CHECK_SECONDS = 60.0
_timers: dict[tuple[str, str], asyncio.TimerHandle] = {}


# -- helpers ---------------------------------------------------------------------------------

def _later(p: Platform, obj: Manifest, delay: float) -> None:
    """Queue `obj` again after `delay` seconds (one pending timer per notebook)."""
    key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
    old = _timers.pop(key, None)
    if old is not None:
        old.cancel()
    if p.controllers is not None:
        _timers[key] = asyncio.get_running_loop().call_later(delay, p.controllers.enqueue, NOTEBOOK.name, *key)


def _token_prefix(namespace: str, name: str) -> str:
    return f"notebook:{namespace}/{name}"[:110]


def _token_name(obj: Manifest) -> str:
    meta = obj["metadata"]
    return f"{_token_prefix(meta['namespace'], meta['name'])}/{meta['uid'][:8]}"


def _revoke(p: Platform, st: dict[str, Any]) -> None:
    token_id = st.pop("tokenId", None)
    if token_id:
        try:
            p.accounts.revoke_token(token_id, None)
        except NotFound:
            pass


def _creator(p: Platform, obj: Manifest) -> str:
    """Whose token the notebook gets: its creator as the API recorded it, else the namespace owner.

    Only the API's own annotation counts (users cannot forge it); the user must still hold
    `edit` in the namespace, so a notebook cannot keep the rights of a removed member.
    """
    ns = obj["metadata"]["namespace"]
    user = obj["metadata"]["annotations"].get(API_CREATOR)
    if not user:
        user = p.store.get(PROFILE, "", ns)["spec"]["owner"]["name"]
    try:
        info = p.accounts.get_user(user)
        p.namespaces.require(Principal(user, bool(info["admin"])), ns, "edit")
    except FlowyardError as e:
        raise Invalid(f"cannot act as '{user}' (the notebook's creator): {e.message}") from None
    return user


def _running_elsewhere(p: Platform, obj: Manifest) -> int:
    """Notebooks of the namespace, other than `obj`, whose server is queued or running."""
    assert p.executor is not None
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    return len({(w.labels or {}).get(OWNER_NAME) for w in p.executor.list(ns)
                if (w.labels or {}).get(OWNER_KIND) == NOTEBOOK.name and not w.finished
                and (w.labels or {}).get(OWNER_NAME) != name})


def _wake_waiting(p: Platform, namespace: str) -> None:
    """Queue the namespace's Pending notebooks: a stop may have made room under the quota."""
    if p.controllers is None:
        return
    for other in p.store.list(NOTEBOOK, namespace)[0]:
        if (other.get("status") or {}).get("phase") == "Pending":
            p.controllers.enqueue(NOTEBOOK.name, namespace, other["metadata"]["name"])


def _notebook_quota(p: Platform, obj: Manifest) -> str | None:
    """Why the namespace's `notebooks` quota does not allow one more running (None if it does)."""
    ns = obj["metadata"]["namespace"]
    try:
        hard = quota_of(p.store.get(PROFILE, "", ns)["spec"]).get("notebooks")
    except NotFound:
        return None
    if hard is None:
        return None
    running = _running_elsewhere(p, obj)
    if running + 1 > hard:
        return (f"namespace '{ns}' may run {int(hard)} notebook(s) and {running} already run: "
                "stop one (annotation kubeflow-resource-stopped) or ask an admin to raise the quota")
    return None


def _environment(p: Platform, name: str) -> str | None:
    """Why the environment cannot be used yet (None when ready); Invalid when it cannot ever."""
    from flowyard.controllers.environment import ENVIRONMENT

    if name == "default":
        return None
    try:
        phase = (p.store.get(ENVIRONMENT, "", name).get("status") or {}).get("phase", "Pending")
    except NotFound:
        raise Invalid(f"environment '{name}' not found (spec.template.spec.containers[0].image): create it "
                      f"with `flowyard env create {name} -r requirements.txt` or use an existing one "
                      "(`flowyard env list`)") from None
    if phase == "Failed":
        raise Invalid(f"environment '{name}' failed to build: see `flowyard logs environment {name}`")
    return None if phase == "Ready" else f"waiting for environment '{name}' to build ({phase})"


def _fail(p: Platform, obj: Manifest, st: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    st.update(phase="Failed", message=message, endpoint=None, generation=obj["metadata"]["generation"])
    set_condition(st, "Ready", False, reason, message)
    p.store.record_event(obj, "Failed", message, "Warning")
    _revoke(p, st)
    return st


def _pending(st: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    st.update(phase="Pending", message=message, endpoint=None)
    set_condition(st, "Ready", False, reason, message)
    return st


def _current(p: Platform, st: dict[str, Any]) -> WorkloadStatus | None:
    assert p.executor is not None
    wid = st.get("workload")
    if not wid:
        return None
    try:
        return p.executor.status(wid)
    except WorkloadNotFound:
        return None


async def _warm(p: Platform, environment: str) -> str | None:
    """The socket of the environment's JupyterLab zygote, started lazily (a system workload).

    The notebook that starts it usually starts cold: its launcher finds no socket yet and runs
    `python -m jupyterlab`; so does any launcher whose zygote is gone or refuses."""
    assert p.executor is not None
    wid = launch.warm_workload_id(environment)
    try:
        ws = p.executor.status(wid)
    except WorkloadNotFound:
        ws = None
    try:
        if ws is None or ws.finished:
            if ws is not None:
                p.executor.remove(wid)
            await p.executor.submit(launch.warm_workload(p, environment))
    except Exception:  # never let warm starts stop a notebook from starting
        log.exception("cannot start the JupyterLab zygote of environment %r", environment)
    return launch.warm_socket(p, environment)


# -- the phases ------------------------------------------------------------------------------

async def _stop(p: Platform, obj: Manifest, st: dict[str, Any], ws: WorkloadStatus | None) -> dict[str, Any]:
    """Stop the server (grace period, then kill) and revoke its token; volumes stay."""
    assert p.executor is not None
    if ws is not None and not ws.finished:
        await p.executor.stop(ws.id)
        _wake_waiting(p, obj["metadata"]["namespace"])
    if st.get("phase") != "Stopped" and not st.get("stopReason"):
        st["message"] = f"stopped: remove the annotation {STOPPED} to start it again"
        p.store.record_event(obj, "Stopped", "stopped on request; volumes are kept")
    _revoke(p, st)
    st.update(phase="Stopped", endpoint=None)
    set_condition(st, "Ready", False, st.get("stopReason") or "Stopped", st.get("message", ""))
    return st


async def _start(p: Platform, obj: Manifest, st: dict[str, Any], old: WorkloadStatus | None) -> dict[str, Any]:
    assert p.executor is not None
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    st.pop("stopReason", None)
    try:
        waiting = _environment(p, container_of(obj["spec"]).get("image") or "default")
        if waiting:
            return _pending(st, "EnvironmentNotReady", waiting)
        over = _notebook_quota(p, obj)
        if over:
            return _pending(st, "QuotaExceeded", over)
        user = _creator(p, obj)
        workspace = await asyncio.to_thread(launch.prepare_workspace, p, obj)
    except QuotaExceeded as e:  # a volume waiting for storage quota: retried at resync
        return _pending(st, "VolumeQuotaExceeded", e.message)
    except Invalid as e:
        return _fail(p, obj, st, "InvalidSpec", e.message)
    if old is not None and old.finished:
        p.executor.remove(old.id)
    _revoke(p, st)
    token = p.accounts.create_token(user, _token_name(obj), namespace=ns)
    st["tokenId"] = token["id"]
    attempt = int(st.get("starts", 0)) + 1
    wid = f"{ns}.nb.{name}.{obj['metadata']['uid'][:8]}-{attempt}"
    try:
        await asyncio.to_thread(launch.write_kfp_context, workspace, ns, token["token"])
        sock = await _warm(p, container_of(obj["spec"]).get("image") or "default")
        work = launch.workload(p, obj, wid, workspace, token["token"], proxy_secret(p.session_key, obj["metadata"]["uid"]),
                               {**owner_labels(obj), UID_LABEL: obj["metadata"]["uid"]}, warm_socket=sock)
    except Invalid as e:
        return _fail(p, obj, st, "InvalidSpec", e.message)
    ws = await p.executor.submit(work)
    st.update(workload=wid, starts=attempt, generation=obj["metadata"]["generation"], creator=user,
              startTime=now(), message="", lastActivity=None, readyTime=None)
    p.store.record_event(obj, "Starting", f"starting JupyterLab as {user} (workload {wid})")
    return _follow(p, obj, st, ws)


def _follow(p: Platform, obj: Manifest, st: dict[str, Any], ws: WorkloadStatus) -> dict[str, Any]:
    """Mirror a live workload's phase (Pending or just started) into status."""
    st.update(limitsMode=ws.limits_mode, gpus=list(ws.gpus))
    if ws.phase == Phase.Pending:
        _pending(st, ws.reason or "Queued", ws.message)
        set_condition(st, "Admitted", False, ws.reason or "Queued", ws.message)
        return st
    st.update(phase="Starting", endpoint=ws.endpoint, message="waiting for JupyterLab to answer")
    set_condition(st, "Admitted", True, "Admitted", ws.message)
    set_condition(st, "Ready", False, "Starting", "waiting for JupyterLab to answer")
    _later(p, obj, POLL_SECONDS)
    return st


async def _check_running(p: Platform, obj: Manifest, st: dict[str, Any], ws: WorkloadStatus) -> dict[str, Any]:
    """Probe a running server: readiness first, then activity and culling."""
    base = st["url"]
    secret = proxy_secret(p.session_key, obj["metadata"]["uid"])
    st.update(endpoint=ws.endpoint, limitsMode=ws.limits_mode, gpus=list(ws.gpus))
    if not ws.endpoint:
        return _fail(p, obj, st, "NoEndpoint", "the executor gave the notebook server no address")
    server = await probe.status(ws.endpoint, base, secret)
    if server is None:
        if st.get("phase") == "Running":  # was up; a passing hiccup or dying: look again soon
            _later(p, obj, 1.0)
            return st
        started = ws.started_at or time.time()
        if time.time() - started > START_TIMEOUT:
            assert p.executor is not None
            await p.executor.stop(ws.id)
            return _fail(p, obj, st, "StartTimeout", f"JupyterLab did not answer within {START_TIMEOUT:g} s")
        _follow(p, obj, st, ws)
        return st
    if st.get("phase") != "Running":
        took = time.time() - (ws.started_at or time.time())
        st.update(phase="Running", message="", readyTime=now())
        set_condition(st, "Ready", True, "Ready", "")
        p.store.record_event(obj, "Ready", f"JupyterLab is ready at {st['url']} ({took:.1f} s after start)")
    if server.last_activity and server.last_activity != st.get("lastActivity"):
        st["lastActivity"] = server.last_activity
    return await _cull(p, obj, st, ws, server, secret)


async def _cull(p: Platform, obj: Manifest, st: dict[str, Any], ws: WorkloadStatus, server: probe.ServerStatus,
                secret: str) -> dict[str, Any]:
    timeout = culling.idle_timeout(p, obj["metadata"]["namespace"])
    if timeout <= 0:
        _later(p, obj, MAX_CHECK_SECONDS)
        return st
    idle = culling.seconds_since(server.last_activity) if server.last_activity else None
    if idle is None or idle < timeout:
        left = timeout - (idle or 0.0)
        _later(p, obj, min(MAX_CHECK_SECONDS, max(0.5, left + 0.1)))
        return st
    assert ws.endpoint is not None
    busy = await probe.busy_kernels(ws.endpoint, st["url"], secret)
    if busy != 0:  # busy kernels (or no answer): not idle; look again later
        _later(p, obj, min(MAX_CHECK_SECONDS, max(1.0, timeout / 2)))
        return st
    message = f"stopped after {culling.describe(idle)} idle (idle timeout {culling.describe(timeout)})"
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    p.store.patch(NOTEBOOK, ns, name, {"metadata": {"annotations": {STOPPED: now()}}})
    p.store.record_event(obj, "Culled", message)
    st.update(stopReason="Culled", message=message)
    return await _stop(p, obj, st, ws)


# -- reconcile and finalize ------------------------------------------------------------------

async def reconcile(p: Platform, obj: Manifest) -> dict[str, Any]:
    assert p.executor is not None
    meta = obj["metadata"]
    st = copy.deepcopy(obj["status"]) or {"phase": "Pending"}
    st["url"] = launch.base_url(meta["namespace"], meta["name"])
    ws = _current(p, st)
    if STOPPED in meta["annotations"]:
        return await _stop(p, obj, st, ws)
    if ws is not None and not ws.finished and st.get("generation") not in (None, meta["generation"]):
        p.store.record_event(obj, "Restarting", "the spec changed: restarting JupyterLab")
        await p.executor.stop(ws.id)
        ws = _current(p, st)
    if ws is None or ws.finished:
        live = st.get("phase") in ("Pending", "Starting", "Running")
        if ws is not None and ws.phase == Phase.Failed and live and ws.reason != "Lost":
            return _fail(p, obj, st, ws.reason or "Error", f"JupyterLab exited: {ws.message}")
        if ws is not None and ws.phase == Phase.Succeeded:  # shut down from inside Jupyter: stay stopped
            p.store.patch(NOTEBOOK, meta["namespace"], meta["name"], {"metadata": {"annotations": {STOPPED: now()}}})
            st.update(stopReason="ShutDown", message="JupyterLab was shut down from inside; start it again to use it")
            p.store.record_event(obj, "Stopped", st["message"])
            return await _stop(p, obj, st, ws)
        if st.get("phase") == "Failed" and st.get("generation") == meta["generation"]:
            return st  # stays failed until the spec changes or it is stopped and started
        return await _start(p, obj, st, ws)
    if ws.phase == Phase.Pending:
        return _follow(p, obj, st, ws)
    return await _check_running(p, obj, st, ws)


async def finalize(p: Platform, namespace: str, name: str) -> None:
    """Stop the servers of a deleted notebook and revoke its tokens; its volumes are kept."""
    assert p.executor is not None
    try:
        keep = p.store.get(NOTEBOOK, namespace, name)["metadata"]["uid"]  # recreated under the same name
    except NotFound:
        keep = None
        timer = _timers.pop((namespace, name), None)
        if timer is not None:
            timer.cancel()
    for w in p.executor.list(namespace):
        labels = w.labels or {}
        if (labels.get(OWNER_KIND), labels.get(OWNER_NAMESPACE), labels.get(OWNER_NAME)) != (NOTEBOOK.name, namespace, name):
            continue
        if keep is not None and labels.get(UID_LABEL) == keep:
            continue
        if not w.finished:
            await p.executor.stop(w.id)
            _wake_waiting(p, namespace)
        p.executor.remove(w.id)
    prefix = _token_prefix(namespace, name)
    for token in p.accounts.list_tokens(None):
        head, _, uid8 = token["name"].rpartition("/")
        if head == prefix and (keep is None or uid8 != keep[:8]):
            try:
                p.accounts.revoke_token(token["id"], None)
            except NotFound:
                pass


CONTROLLER = Controller(NOTEBOOK, reconcile, finalize)
