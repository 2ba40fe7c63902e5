"""The InferenceService controller: revisions, replicas, traffic, autoscaling.

Every change of the model part of `spec.predictor` (model, storage, resources, batching,
timeout, logging; or the registry alias moving, with `follow-alias`) makes a new *revision*.
A revision runs as replicas (service workloads of the executor); the gateway sends traffic
only to replicas whose `/v2/health/ready` answered.

Rollout without failed requests: a new revision starts as many replicas as the serving one
has, and gets traffic only once they are ready; the old revision's replicas then leave the
routing table at once but are stopped only when their in-flight requests are done. With
`canaryTrafficPercent` the new revision gets that share and the previous one the rest until the
canary is promoted (100 or removed) or rolled back (0).

Autoscaling targets `scaleTarget` in-flight requests per replica (mean since the last tick,
about a second) between `minReplicas` and `maxReplicas`: up at once, down after
`serving.flowyard.io/scale-down-delay` seconds of lower load, and to zero (when `minReplicas` is
0) after `serving.flowyard.io/scale-to-zero-after` idle seconds. A request that finds no replica
flags its revision; the controller starts one and the request waits (the cold start, measured
into status, events and `flowyard_serving_cold_start_seconds`).

A revision whose replica exits before it is ready failed to load: the reason (the runtime's
`model failed to load: …` line) goes into status and a Warning event, and the revision stays
failed (without restarts) until the spec changes; the previous revision keeps serving.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from flowyard.controllers.loop import OWNER_KIND, OWNER_NAME, OWNER_NAMESPACE, Controller, owner_labels
from flowyard.errors import FlowyardError, Invalid, NotFound
from flowyard.executor.base import WorkloadStatus
from flowyard.executor.errors import WorkloadActive, WorkloadNotFound
from flowyard.kinds import Manifest
from flowyard.namespaces import PROFILE
from flowyard.platform import Platform
from flowyard.serving import autoscale, metrics, replicas, storage, upstream
from flowyard.serving.endpoints import Endpoint, Replica, Revision, serving_secret, table
from flowyard.serving.kind import ALLOW_PUBLIC, FOLLOW_ALIAS, INFERENCE_SERVICE, PUBLIC, Predictor, predictor_of
from flowyard.status import set_condition
from flowyard.store.resources import now

POLL_SECONDS = 0.25
TICK_SECONDS = 1.0
START_TIMEOUT = 300.0
_timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
_tasks: set[asyncio.Task[Any]] = set()


def base_url(p: Platform, namespace: str, name: str) -> str:
    """The REST base of an endpoint (`status.url`): tritonclient's `url`, curl's prefix."""
    return f"{p.settings.url}/serving/{namespace}/{name}"


def _later(p: Platform, obj: Manifest, delay: float) -> None:
    key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
    old = _timers.get(key)
    loop = asyncio.get_running_loop()
    if old is not None and not old.cancelled() and loop.time() < old.when() <= loop.time() + delay:
        return  # an earlier wake-up is already pending
    if old is not None:
        old.cancel()
    if p.controllers is not None:
        _timers[key] = loop.call_later(delay, p.controllers.enqueue, INFERENCE_SERVICE.name, *key)


def _background(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


# -- the endpoint and its revisions --------------------------------------------------------------


def _public(p: Platform, obj: Manifest, st: dict[str, Any]) -> bool:
    """Whether anonymous callers may use the endpoint: it asks and its namespace allows it."""
    if obj["metadata"]["annotations"].get(PUBLIC) != "true":
        st.pop("public", None)
        return False
    try:
        profile = p.store.get(PROFILE, "", obj["metadata"]["namespace"])
    except NotFound:
        profile = {"metadata": {"annotations": {}}}
    allowed = (profile["metadata"].get("annotations") or {}).get(ALLOW_PUBLIC) == "true"
    st["public"] = allowed
    if not allowed:
        set_condition(st, "PublicAccess", False, "NotAllowed",
                      f"the namespace does not allow public endpoints: its owner can set the Profile "
                      f"annotation {ALLOW_PUBLIC}: \"true\"; callers still need a member's token")
    else:
        set_condition(st, "PublicAccess", True, "Public", "anyone who can reach the gateway may call this endpoint")
    return allowed


def _grpc() -> Any:
    """The gRPC front, imported on first use: grpcio costs start-up time a server without endpoints need not pay."""
    from flowyard.serving import grpc_front

    return grpc_front


async def _endpoint(p: Platform, obj: Manifest) -> Endpoint:
    meta = obj["metadata"]
    key = (meta["namespace"], meta["name"])
    ep = table(p).get(key)
    if ep is None or ep.uid != meta["uid"]:
        if ep is not None:  # deleted and created again under the same name
            await _grpc().close(p, ep)
        ep = table(p)[key] = Endpoint(meta["namespace"], meta["name"], meta["uid"], serving_secret(p.session_key, meta["uid"]))
    return ep


async def _resolve(p: Platform, obj: Manifest, st: dict[str, Any], pred: Predictor, ep: Endpoint) -> dict[str, Any]:
    """What the latest revision should serve: {storageUri, format, version, key}; cached per generation."""
    meta = obj["metadata"]
    revs = st.get("revisions") or []
    last = revs[-1] if revs else None
    follow = meta["annotations"].get(FOLLOW_ALIAS) == "true" and pred.storage_uri.startswith(storage.REGISTRY_SCHEME)
    due = follow and time.monotonic() - ep.extra.get("resolved", 0.0) >= p.settings.resync_seconds
    if last is not None and last.get("generation") == meta["generation"] and not due:
        return {k: last[k] for k in ("storageUri", "format", "version", "key")}
    uri, registry_format = await storage.resolve(p, meta["namespace"], pred.storage_uri)
    ep.extra["resolved"] = time.monotonic()
    fmt = pred.format or (registry_format or "").lower()
    if not fmt:
        raise Invalid("spec.predictor.model.modelFormat.name is required: the registry does not say the model's format")
    version = storage.version_of(pred.storage_uri) or ""
    return {"storageUri": uri, "format": fmt, "version": version, "key": pred.revision_key(uri, fmt)}


def _new_revision(p: Platform, obj: Manifest, st: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    revs = st.setdefault("revisions", [])
    number = int(st.get("nextRevision", 1))
    st["nextRevision"] = number + 1
    name = f"{obj['metadata']['name']}-predictor-{number:05d}"
    rev = {"name": name, "number": number, "generation": obj["metadata"]["generation"], **want,
           "version": want["version"] or str(number), "state": "Starting", "created": now()}
    if revs and revs[-1]["storageUri"] != want["storageUri"] and revs[-1].get("generation") == rev["generation"]:
        p.store.record_event(obj, "AliasMoved", f"{obj['spec']['predictor'].get('model', {}).get('storageUri')} now "
                             f"points at {want['storageUri']}: rolling out {name}")
    revs.append(rev)
    p.store.record_event(obj, "RevisionCreated", f"revision {name} serves {want['storageUri']} ({want['format']})")
    return rev


# -- replicas ------------------------------------------------------------------------------------


def _workloads(p: Platform, obj: Manifest) -> list[WorkloadStatus]:
    assert p.executor is not None
    meta = obj["metadata"]
    return [w for w in p.executor.list(meta["namespace"])
            if (w.labels or {}).get(OWNER_KIND) == INFERENCE_SERVICE.name
            and (w.labels or {}).get(OWNER_NAME) == meta["name"]
            and (w.labels or {}).get(replicas.UID_LABEL) == meta["uid"]]


def _forget(ep: Endpoint, rep: Replica) -> None:
    """Drop pooled connections to a replica on its way out."""
    if rep.http:
        upstream.forget(rep.http)
    _grpc().forget(ep, rep.grpc)


async def _stop(p: Platform, wid: str, remove: bool = True) -> None:
    assert p.executor is not None
    try:
        await p.executor.stop(wid)
        if remove:
            p.executor.remove(wid)
    except (WorkloadNotFound, WorkloadActive):
        pass


async def _start(p: Platform, obj: Manifest, ep: Endpoint, rev: dict[str, Any], pred: Predictor) -> None:
    assert p.executor is not None
    meta = obj["metadata"]
    model_dir = ep.extra.get(("dir", rev["name"]))
    if model_dir is None:
        model_dir = await asyncio.to_thread(storage.fetch, p.settings.home / "serving" / "cache", rev["storageUri"])
        ep.extra[("dir", rev["name"])] = model_dir
    payload = None
    if pred.payload_log and p.artifacts is not None:
        payload = p.artifacts.uri(meta["namespace"], pred.payload_log)
    count = int(ep.extra.get(("started", rev["name"]), 0)) + 1
    ep.extra[("started", rev["name"])] = count
    wid = f"{meta['namespace']}.isvc.{meta['name']}.{rev['number']}.{meta['uid'][:8]}-{count}"[:253]
    port = replicas.free_port()
    argv = replicas.command(meta["name"], rev["format"], str(model_dir), rev["version"], port, pred, payload)
    work = replicas.workload(obj, wid, rev["name"], argv, pred, port, ep.secret, owner_labels(obj))
    ws = await p.executor.submit(work)
    _track(ep.revisions[rev["name"]], ws)


def _track(revision: Revision, ws: WorkloadStatus) -> Replica | None:
    """The replica of a live workload; one still waiting for admission has no address yet."""
    rep = revision.replicas.get(ws.id)
    if rep is None and not ws.finished:
        rep = revision.replicas[ws.id] = Replica(ws.id, ws.endpoint or "", replicas.grpc_address(ws))
    if rep is not None:
        if ws.endpoint and not rep.http:
            rep.http, rep.grpc, rep.started = ws.endpoint, replicas.grpc_address(ws), time.monotonic()
        rep.waiting = ws.message if ws.phase.value == "Pending" else ""
    return rep


async def _sync(p: Platform, obj: Manifest, ep: Endpoint, rev: dict[str, Any],
                works: list[WorkloadStatus]) -> tuple[str, str] | None:
    """Match the revision's replicas to its workloads and probe the unready; a load failure if one."""
    revision = ep.revisions[rev["name"]]
    seen = set()
    failure = None
    for ws in works:
        seen.add(ws.id)
        if ws.finished:
            rep = revision.replicas.pop(ws.id, None)
            if ws.phase.value == "Failed" and not (rep is not None and rep.draining):
                reason, message = replicas.failure_reason(ws)
                if rev["state"] != "Ready":
                    failure = (reason, message)
                    continue  # keep the failed workload (and its log) while the revision shows the failure
                p.store.record_event(obj, "ReplicaFailed", f"replica {ws.id} of {rev['name']} exited: {message}",
                                     "Warning")
            try:
                p.executor.remove(ws.id)  # type: ignore[union-attr]
            except (WorkloadNotFound, WorkloadActive):
                pass
            continue
        _track(revision, ws)
    for gone in set(revision.replicas) - seen:
        del revision.replicas[gone]
    unready = [r for r in revision.replicas.values() if not r.ready and not r.draining and r.http]
    if unready:
        results = await asyncio.gather(*(replicas.ready(r.http, ep.secret) for r in unready))
        for rep, ok in zip(unready, results):
            rep.ready = ok
            if not ok and time.monotonic() - rep.started > START_TIMEOUT:
                failure = ("StartTimeout", f"the model server did not become ready within {START_TIMEOUT:g} s")
    revision.refresh()
    return failure


async def _scale(p: Platform, obj: Manifest, ep: Endpoint, rev: dict[str, Any], pred: Predictor, target: int) -> bool:
    """Start or drain replicas towards `target`; True while something is still changing."""
    revision = ep.revisions[rev["name"]]
    before = revision.target
    revision.target = target
    live = [r for r in revision.replicas.values() if not r.draining]
    busy = False
    if before is not None and target != before and rev["state"] == "Ready":
        what = "ScaledToZero" if target == 0 else ("ScaledUp" if target > before else "ScaledDown")
        p.store.record_event(obj, what, f"{rev['name']}: {before} → {target} replica(s)")
    for _ in range(target - len(live)):
        await _start(p, obj, ep, rev, pred)
        busy = True
    if len(live) > target:
        # drain the newest unready first, then the least busy
        order = sorted(live, key=lambda r: (r.ready, -r.inflight, -r.started), reverse=False)
        for rep in order[: len(live) - target]:
            rep.draining = True
        revision.refresh()
    for rep in [r for r in revision.replicas.values() if r.draining]:
        drained = rep.inflight <= 0 or time.monotonic() - rep.started > pred.timeout + START_TIMEOUT
        if drained:
            revision.replicas.pop(rep.id, None)
            _forget(ep, rep)
            _background(_stop(p, rep.id))
        else:
            busy = True
    revision.refresh()
    return busy or any(not r.ready for r in revision.replicas.values())


async def _retire(p: Platform, ep: Endpoint, name: str, works: list[WorkloadStatus]) -> bool:
    """Take a revision out of service: drain its replicas, then stop them; True when it is gone."""
    revision = ep.revisions.get(name)
    if revision is not None:
        for rep in revision.replicas.values():
            rep.draining = True
        revision.refresh()
        if any(r.inflight > 0 for r in revision.replicas.values()):
            return False
        for rep in revision.replicas.values():
            _forget(ep, rep)
        ep.revisions.pop(name, None)
        metrics.forget(ep.namespace, ep.name, name)
    for ws in works:
        _background(_stop(p, ws.id))
    return True


# -- traffic and status --------------------------------------------------------------------------


def _traffic(st: dict[str, Any], pred: Predictor) -> dict[str, int]:
    pc = st.setdefault("components", {}).setdefault("predictor", {})
    revs = {r["name"]: r for r in st.get("revisions") or []}
    latest = st["revisions"][-1] if st.get("revisions") else None
    stable = revs.get(pc.get("latestRolledoutRevision") or "")
    if latest is None:
        return {}
    if latest["state"] != "Ready":
        return {stable["name"]: 100} if stable else {}
    if stable is not None and stable is not latest and pred.canary is not None and pred.canary < 100:
        return {latest["name"]: pred.canary, stable["name"]: 100 - pred.canary}
    if stable is not latest:
        pc["previousRolledoutRevision"] = stable["name"] if stable else None
        pc["latestRolledoutRevision"] = latest["name"]
    return {latest["name"]: 100}


def _status(p: Platform, obj: Manifest, st: dict[str, Any], ep: Endpoint, split: dict[str, int]) -> None:
    pc = st.setdefault("components", {}).setdefault("predictor", {})
    revs = st.get("revisions") or []
    latest = revs[-1] if revs else None
    ready_revs = [r for r in revs if r["state"] == "Ready"]
    pc.update(url=st["url"], latestCreatedRevision=latest["name"] if latest else None,
              latestReadyRevision=ready_revs[-1]["name"] if ready_revs else None)
    pc["traffic"] = [{"revisionName": name, "percent": pct, "latestRevision": bool(latest and name == latest["name"]),
                      "tag": "latest" if latest and name == latest["name"] else "prev"}
                     for name, pct in sorted(split.items(), key=lambda kv: -kv[1])]
    total_ready = 0
    for r in revs:
        revision = ep.revisions.get(r["name"])
        reps = list(revision.replicas.values()) if revision else []
        r["replicas"] = len([x for x in reps if not x.draining])
        r["readyReplicas"] = len([x for x in reps if x.routable])
        r["percent"] = split.get(r["name"], 0)
        total_ready += r["readyReplicas"] if r["percent"] else 0
        for state, n in (("ready", r["readyReplicas"]), ("starting", r["replicas"] - r["readyReplicas"])):
            metrics.REPLICAS.labels(ep.namespace, ep.name, r["name"], state).set(n)
        metrics.TRAFFIC.labels(ep.namespace, ep.name, r["name"]).set(r["percent"])
    serving = bool(split) and all(_named(revs, n)["state"] == "Ready" for n in split)
    failed = latest is not None and latest["state"] == "Failed"
    ms = st.setdefault("modelStatus", {})
    if failed:
        assert latest is not None
        ms["lastFailureInfo"] = {"reason": latest.get("reason"), "message": latest.get("message"),
                                 "time": latest.get("failedAt")}
    ms["transitionStatus"] = "BlockedByFailedLoad" if failed else ("UpToDate" if latest and latest["state"] == "Ready"
                                                                  else "InProgress")
    active = "Loaded" if serving else ("FailedToLoad" if failed else "Loading")
    ms["states"] = {"activeModelState": active, "targetModelState": "FailedToLoad" if failed else "Loaded"}
    ms["copies"] = {"totalCopies": total_ready}
    if serving:
        idle = total_ready == 0
        reason, message = ("ScaledToZero", "scaled to zero: the next request starts a replica") if idle else ("Ready", "")
        st["phase"] = "Idle" if idle else "Ready"
    elif failed and latest is not None:
        reason, message = latest.get("reason") or "ModelLoadFailed", latest.get("message") or ""
        st["phase"] = "Failed"
    else:
        reason, message = "Starting", "waiting for the model server to load the model"
        revision = ep.revisions.get(latest["name"]) if latest else None
        waiting = [r.waiting for r in revision.replicas.values() if r.waiting] if revision else []
        if waiting:
            reason, message = "Pending", f"waiting for resources: {waiting[0]}"
        st["phase"] = "Pending" if waiting else "Starting"
    set_condition(st, "PredictorReady", serving, reason, message)
    set_condition(st, "IngressReady", bool(split), "Ready" if split else "NoTraffic", "")
    if latest is not None:
        ok = latest["state"] == "Ready"
        set_condition(st, "LatestDeploymentReady", ok, "Ready" if ok else latest.get("reason", "Starting"),
                      "" if ok else latest.get("message", ""))
    set_condition(st, "Ready", serving, "Ready" if serving else reason, "" if serving else message)
    st["message"] = message
    if failed and serving and latest is not None:
        st["message"] = f"revision {latest['name']} failed ({latest.get('message', '')}); the previous one still serves"
    st["observedGeneration"] = obj["metadata"]["generation"]


def _named(revs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in revs if r["name"] == name)


def _fail_revision(p: Platform, obj: Manifest, rev: dict[str, Any], reason: str, message: str) -> None:
    rev.update(state="Failed", reason=reason, message=message, failedAt=now())
    p.store.record_event(obj, reason, f"revision {rev['name']}: {message}", "Warning")


# -- reconcile -----------------------------------------------------------------------------------


async def reconcile(p: Platform, obj: Manifest) -> dict[str, Any]:
    assert p.executor is not None
    meta = obj["metadata"]
    ns, name = meta["namespace"], meta["name"]
    st = copy.deepcopy(obj["status"]) or {}
    ep = await _endpoint(p, obj)
    st["url"] = base_url(p, ns, name)
    st["address"] = {"url": st["url"]}
    pred = predictor_of(obj["spec"])
    ep.timeout = pred.timeout
    ep.public = _public(p, obj, st)
    st["grpcAddress"] = await _grpc().ensure(p, ep, st.get("grpcAddress"))
    revs: list[dict[str, Any]] = st.setdefault("revisions", [])
    try:
        want = await _resolve(p, obj, st, pred, ep)
    except FlowyardError as e:
        want = None
        if st.get("resolveError") != e.message:
            p.store.record_event(obj, "StorageUnresolved", e.message, "Warning")
        st["resolveError"] = e.message
        if not revs:
            st.update(phase="Failed", message=e.message)
            set_condition(st, "Ready", False, "StorageUnresolved", e.message)
            set_condition(st, "PredictorReady", False, "StorageUnresolved", e.message)
            return st
    else:
        st.pop("resolveError", None)
    retry = bool(revs) and revs[-1]["state"] == "Failed" and revs[-1].get("generation") != meta["generation"]
    if want is not None and (not revs or revs[-1]["key"] != want["key"] or retry):
        _new_revision(p, obj, st, want)  # a new model, or any edit of a spec whose latest revision failed
    elif want is not None and revs[-1].get("generation") != meta["generation"]:
        revs[-1]["generation"] = meta["generation"]  # a scaling or traffic change: same revision
    latest = revs[-1]
    works = _workloads(p, obj)
    by_rev: dict[str, list[WorkloadStatus]] = {}
    for ws in works:
        by_rev.setdefault(ws.labels.get(replicas.REVISION_LABEL, ""), []).append(ws)
    for r in revs:
        ep.revisions.setdefault(r["name"], Revision(r["name"], r["version"]))

    # which revisions live: the latest (unless it failed) and the rolled-out one while it has traffic
    pc = st.setdefault("components", {}).setdefault("predictor", {})
    stable = pc.get("latestRolledoutRevision")
    busy = False
    for r in revs:
        if r["state"] in ("Starting", "Ready") and (r is latest or r["name"] == stable):
            failure = await _sync(p, obj, ep, r, by_rev.get(r["name"], []))
            revision = ep.revisions[r["name"]]
            if failure and r["state"] == "Starting":
                _fail_revision(p, obj, r, *failure)
                for ws in by_rev.get(r["name"], []):
                    if not ws.finished:
                        _background(_stop(p, ws.id, remove=False))
                revision.replicas.clear()
                revision.refresh()
            elif r["state"] == "Starting" and revision.routable() and \
                    all(x.ready for x in revision.replicas.values() if not x.draining):
                r["state"] = "Ready"
                took = time.monotonic() - min(x.started for x in revision.replicas.values())
                p.store.record_event(obj, "RevisionReady", f"revision {r['name']} is ready "
                                     f"({len(revision.routable())} replica(s), {took:.1f} s after start)")
    split = _traffic(st, pred)
    ep.set_traffic(split)
    if split != {t["revisionName"]: t["percent"] for t in pc.get("traffic") or []}:
        text = ", ".join(f"{pct}% → {n}" for n, pct in split.items()) or "none"
        p.store.record_event(obj, "TrafficShifted", f"traffic: {text}")
    keep = set(split) | ({latest["name"]} if latest["state"] != "Failed" else set())
    for r in list(revs):
        if r["name"] in keep:
            busy |= await _run_revision(p, obj, st, ep, r, pred, _stable_replicas(ep, pc))
        elif r is latest:  # failed: keep it listed with its reason
            continue
        elif await _retire(p, ep, r["name"], by_rev.pop(r["name"], [])):
            if r["name"] not in (pc.get("latestRolledoutRevision"), pc.get("previousRolledoutRevision")):
                revs.remove(r)
        else:
            busy = True
    for orphan, ws_list in by_rev.items():  # workloads of revisions no longer listed
        if orphan not in {r["name"] for r in revs}:
            for ws in ws_list:
                _background(_stop(p, ws.id))
    _status(p, obj, st, ep, split)
    if busy:
        _later(p, obj, POLL_SECONDS)
    elif any(r["name"] in split for r in revs) and (pred.min_replicas != pred.max_replicas or pred.min_replicas == 0):
        _later(p, obj, TICK_SECONDS)
    return st


def _stable_replicas(ep: Endpoint, pc: dict[str, Any]) -> int:
    stable = ep.revisions.get(pc.get("latestRolledoutRevision") or "")
    return len(stable.routable()) if stable else 0


async def _run_revision(p: Platform, obj: Manifest, st: dict[str, Any], ep: Endpoint, rev: dict[str, Any],
                        pred: Predictor, stable_count: int) -> bool:
    revision = ep.revisions[rev["name"]]
    if rev["state"] == "Starting":
        target = revision.target if revision.target is not None else max(pred.min_replicas, stable_count, 1)
    else:
        target = autoscale.replicas(obj, pred, revision)
    was_wanted = revision.wanted
    try:
        busy = await _scale(p, obj, ep, rev, pred, target)
    except FlowyardError as e:
        if rev["state"] == "Starting":
            _fail_revision(p, obj, rev, "StorageFetchFailed" if isinstance(e, NotFound) else "InvalidSpec", e.message)
            return False
        raise
    if was_wanted is not None and revision.routable():
        took = time.monotonic() - was_wanted
        st["lastColdStartSeconds"] = round(took, 3)
        metrics.COLD_START.labels(ep.namespace, ep.name).observe(took)
        p.store.record_event(obj, "Activated", f"{rev['name']} woke up for a request in {took:.2f} s")
        revision.wanted = None
        revision.last_request = time.monotonic()
    return busy or revision.wanted is not None


async def finalize(p: Platform, namespace: str, name: str) -> None:
    """Stop the replicas of a deleted InferenceService and close its gRPC listener."""
    assert p.executor is not None
    try:
        keep = p.store.get(INFERENCE_SERVICE, namespace, name)["metadata"]["uid"]
    except NotFound:
        keep = None
        timer = _timers.pop((namespace, name), None)
        if timer is not None:
            timer.cancel()
        ep = table(p).pop((namespace, name), None)
        if ep is not None:
            await _grpc().close(p, ep)
            for rev in ep.revisions:
                metrics.forget(namespace, name, rev)
    for w in p.executor.list(namespace):
        labels = w.labels or {}
        if (labels.get(OWNER_KIND), labels.get(OWNER_NAMESPACE), labels.get(OWNER_NAME)) != \
                (INFERENCE_SERVICE.name, namespace, name) or (keep and labels.get(replicas.UID_LABEL) == keep):
            continue
        await _stop(p, w.id)


async def logs(p: Platform, obj: Manifest, follow: bool, tail: int | None) -> Any:
    """`flowyard logs inferenceservice NAME`: the newest replica's log (a failed one is kept while it shows)."""
    assert p.executor is not None
    works = sorted(_workloads(p, obj), key=lambda w: w.created_at or 0.0)
    if not works:
        raise NotFound(f"inference service '{obj['metadata']['name']}' has no replica now (scaled to zero?)")
    return p.executor.logs(works[-1].id, follow=follow, tail=tail)


CONTROLLER = Controller(INFERENCE_SERVICE, reconcile, finalize)
