"""The Experiment controller: ask Optuna for parameters, run trials, tell it the results.

Level-triggered like every controller: each pass reads the experiment's Trial records,
brings the active ones up to date from their workloads (stopping those the pruner or
medianstop rejects), tells the study what finished, decides whether the experiment is over
(goal reached, trial budget spent, too many failures, grid exhausted), and otherwise fills
the free `parallelTrialCount` slots with new trials. The study is a cache rebuilt from the
records after a restart. The status has Katib's shape.
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from typing import Any

from flowyard.controllers.loop import OWNER_KIND, OWNER_NAME, OWNER_NAMESPACE, Controller
from flowyard.errors import Invalid, NotFound
from flowyard.kinds import Manifest
from flowyard.platform import Platform
from flowyard.status import set_condition
from flowyard.store.resources import now
from flowyard.tuning import metrics, trials
from flowyard.tuning.algorithms import Search
from flowyard.tuning.kinds import EXPERIMENT, EXPERIMENT_LABEL, TRIAL

_SEARCHES: dict[str, Search] = {}
_POLL = {True: 0.3, False: 2.0}  # seconds between passes while trials run: with pruning, without
_scheduled: set[tuple[str, str]] = set()
COUNTS = {"Succeeded": "trialsSucceeded", "Failed": "trialsFailed", "EarlyStopped": "trialsEarlyStopped",
          "Killed": "trialsKilled", "Running": "trialsRunning", "Pending": "trialsPending", "Created": "trialsPending"}


def _order(t: Manifest) -> tuple[int, str]:
    return (t["status"].get("optuna") or {}).get("seq", 0), t["metadata"]["creationTimestamp"]


def list_trials(p: Platform, ns: str, name: str) -> list[Manifest]:
    """The experiment's trials, oldest first."""
    out: list[Manifest] = []
    token = None
    while True:
        items, token = p.store.list(TRIAL, ns, label_selector=f"{EXPERIMENT_LABEL}={name}", continue_=token)
        out += items
        if not token:
            break
    return sorted(out, key=_order)


class _Records:
    """The trials of one experiment as this controller last wrote them: it writes every trial
    status, so a pass need not read them all back (they are re-read every `RELOAD` seconds,
    and at once after a trial is deleted by hand)."""

    RELOAD = 10.0

    def __init__(self) -> None:
        self.by_name: dict[str, Manifest] = {}
        self.loaded = -math.inf
        self.deleted: list[Manifest] = []
        """Trials deleted by hand since the last pass (their work must stop)."""

    def load(self, p: Platform, ns: str, name: str) -> list[Manifest]:
        if time.monotonic() - self.loaded > self.RELOAD:
            fresh = {t["metadata"]["name"]: t for t in list_trials(p, ns, name)}
            self.deleted += [t for n, t in self.by_name.items() if n not in fresh]
            self.by_name = fresh
            self.loaded = time.monotonic()
        return sorted(self.by_name.values(), key=_order)

    def save(self, p: Platform, t: Manifest, status: dict[str, Any]) -> Manifest:
        """Write a trial's new status; the trial as it is now."""
        meta = t["metadata"]
        written = p.store.set_status(TRIAL, meta["namespace"], meta["name"], status)
        out = written if written is not None else {**t, "status": status}
        self.by_name[meta["name"]] = out
        return out


_RECORDS: dict[str, _Records] = {}
_watching: set[int] = set()


def _watch_deletes(p: Platform) -> None:
    """Re-read an experiment's trials at once when one is deleted by hand (once per platform)."""
    if id(p) in _watching:
        return
    _watching.add(id(p))
    loop = asyncio.get_running_loop()

    def on_change(kind: str, ns: str, name: str, op: str) -> None:  # any thread
        if kind != TRIAL.name or op != "delete" or p.controllers is None:
            return
        for cache in list(_RECORDS.values()):
            cache.loaded = -math.inf
        loop.call_soon_threadsafe(p.controllers.enqueue, EXPERIMENT.name, ns, name.rpartition("-")[0])

    p.store.watch(on_change)


def _search(exp: Manifest, records: list[Manifest]) -> Search:
    uid = exp["metadata"]["uid"]
    search = _SEARCHES.get(uid)
    if search is not None:
        return search
    search = Search(exp["spec"], seed_offset=len(records))
    for t in records:
        st = t["status"]
        phase = st.get("phase")
        values = metrics.objective_values(exp["spec"], st.get("observation") or {}) if phase == "Succeeded" else None
        state = {"Succeeded": "complete" if values else "fail", "Failed": "fail", "Killed": "fail",
                 "EarlyStopped": "pruned"}.get(phase or "", "running")
        search.restore(t["metadata"]["name"], {a["name"]: a["value"] for a in t["spec"]["parameterAssignments"]},
                       state, values, dict(enumerate(st.get("intermediate") or [])),
                       (st.get("optuna") or {}).get("systemAttrs") or {})
    _SEARCHES[uid] = search
    return search


def _better(objective: dict[str, Any], a: float, b: float) -> bool:
    return a > b if objective["type"] == "maximize" else a < b


def _optimal(spec: dict[str, Any], done: list[Manifest]) -> tuple[Manifest | None, list[str]]:
    """The best succeeded trial, and (with several objectives) the Pareto front's trial names."""
    scored = [(t, v) for t in done if (v := metrics.objective_values(spec, t["status"].get("observation") or {}))]
    if not scored:
        return None, []
    obj = spec["objective"]
    signs = [1 if d == "minimize" else -1 for d in [obj["type"], *(o["type"] for o in obj.get("additionalObjectives") or [])]]
    best = min(scored, key=lambda tv: signs[0] * tv[1][0])[0]
    if len(signs) == 1:
        return best, []

    def dominates(a: list[float], b: list[float]) -> bool:
        pairs = [(s * x, s * y) for s, x, y in zip(signs, a, b)]
        return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)

    front = [t["metadata"]["name"] for t, v in scored if not any(dominates(w, v) for _, w in scored)]
    return best, front


def _count_status(st: dict[str, Any], records: list[Manifest]) -> None:
    lists: dict[str, list[str]] = {k: [] for k in ("Succeeded", "Failed", "EarlyStopped", "Killed", "Running", "Pending")}
    for t in records:
        phase = t["status"].get("phase") or "Created"
        lists["Pending" if phase == "Created" else phase].append(t["metadata"]["name"])
    st["trials"] = len(records)
    for phase, names in lists.items():
        st[COUNTS[phase]] = len(names)
        st[f"{phase[0].lower()}{phase[1:]}TrialList"] = names


def _goal_reached(spec: dict[str, Any], best: Manifest | None) -> bool:
    goal = spec["objective"].get("goal")
    if goal is None or best is None:
        return False
    values = metrics.objective_values(spec, best["status"].get("observation") or {})
    return bool(values) and (values[0] >= goal if spec["objective"]["type"] == "maximize" else values[0] <= goal)


def _verdict(exp: Manifest, st: dict[str, Any], search: Search, best: Manifest | None,
             records: list[Manifest]) -> tuple[str, str, str] | None:
    """(phase, reason, message) when the experiment is over."""
    spec = exp["spec"]
    failed = st["trialsFailed"]
    limit = spec.get("maxFailedTrialCount")
    if limit is not None and failed >= max(limit, 1):
        last = next((t for t in reversed(records) if t["status"].get("phase") == "Failed"), None)
        why = f"; the last one: {last['metadata']['name']}: {last['status'].get('message', '')}" if last else ""
        return "Failed", "ExperimentMaxFailedTrialsReached", \
            f"{failed} trials failed, which reaches maxFailedTrialCount {limit}{why}"
    if _goal_reached(spec, best):
        return "Succeeded", "ExperimentGoalReached", \
            f"trial {best['metadata']['name']} reached the objective goal {spec['objective']['goal']}"  # type: ignore[index]
    active = st["trialsRunning"] + st["trialsPending"]
    completed = len(records) - active
    if spec.get("maxTrialCount") is not None and completed >= spec["maxTrialCount"]:
        return "Succeeded", "ExperimentMaxTrialsReached", f"all {spec['maxTrialCount']} trials are done"
    if search.exhausted() and active == 0:
        return "Succeeded", "ExperimentSuggestionEndReached", "every point of the grid has been tried"
    return None


async def _advance(p: Platform, exp: Manifest, search: Search, t: Manifest) -> dict[str, Any]:
    """Bring one active trial up to date; tell the study when it ends."""
    st = copy.deepcopy(t["status"])
    name = t["metadata"]["name"]
    if not trials.submitted(p, t):
        try:
            await trials.start(p, exp, t)
        except Invalid as e:
            st = trials.finish(t, st, "Failed", "InvalidSpec", e.message)
            st.setdefault("optuna", {})["systemAttrs"] = trials.jsonable(search.tell(name, "fail"))
            return st
    st, history = await trials.observe(p, exp, t)
    if st.get("phase") == "Running" and search.pruning and history \
            and await asyncio.to_thread(search.report, name, history):
        best = (max if exp["spec"]["objective"]["type"] == "maximize" else min)(history)
        why = ("hyperband stopped it at step {}: its best value so far, {!r}, is not among the best of its rung"
               if exp["spec"]["algorithm"]["algorithmName"] == "hyperband" else
               "medianstop stopped it at step {}: its best value so far, {!r}, is worse than the median of the "
               "completed trials at that step")
        st = await trials.stop(p, t, st, "EarlyStopped", "EarlyStopped", why.format(len(history), best))
    if st.get("phase") in trials.TERMINAL:
        if history:
            st["intermediate"] = history[-1000:]
        state = {"Succeeded": "complete", "EarlyStopped": "pruned"}.get(st["phase"], "fail")
        values = metrics.objective_values(exp["spec"], st.get("observation") or {}) if state == "complete" else None
        if state == "complete" and values is None:
            state = "fail"
        attrs = await asyncio.to_thread(search.tell, name, state, values)
        st.setdefault("optuna", {})["systemAttrs"] = trials.jsonable(attrs)
    return st


def _requeue(p: Platform, exp: Manifest, delay: float) -> None:
    key = (exp["metadata"]["namespace"], exp["metadata"]["name"])
    if key in _scheduled or p.controllers is None:
        return
    _scheduled.add(key)

    def fire() -> None:
        _scheduled.discard(key)
        if p.controllers is not None:
            p.controllers.enqueue(EXPERIMENT.name, *key)

    asyncio.get_running_loop().call_later(delay, fire)


async def reconcile(p: Platform, exp: Manifest) -> dict[str, Any]:
    spec, ns, name = exp["spec"], exp["metadata"]["namespace"], exp["metadata"]["name"]
    st = copy.deepcopy(exp["status"]) or {}
    if not st:
        st = {"phase": "Created", "startTime": now()}
        set_condition(st, "Created", True, "ExperimentCreated", "Experiment is created")
        p.store.record_event(exp, "Created", "experiment created")
    uid = exp["metadata"]["uid"]
    if st.get("phase") in ("Succeeded", "Failed"):
        if not _resumable(spec, st):
            _SEARCHES.pop(uid, None)  # its trials were stopped when it ended; nothing to keep
            _RECORDS.pop(uid, None)
            return st
        st["phase"] = "Running"
        set_condition(st, "Succeeded", False, "ExperimentRestarting", "maxTrialCount was raised")
        st.pop("completionTime", None)
        p.store.record_event(exp, "Restarted", f"resumed (resumePolicy {spec['resumePolicy']}) for more trials")
    _watch_deletes(p)
    cache = _RECORDS.setdefault(uid, _Records())
    records = cache.load(p, ns, name)
    search = _search(exp, records)
    for t in cache.deleted:  # a trial deleted by hand: stop its work, the study counts it failed
        if t["status"].get("phase") not in trials.TERMINAL:
            await trials.stop(p, t, copy.deepcopy(t["status"]), "Killed", "Deleted", "the trial was deleted")
            search.tell(t["metadata"]["name"], "fail")
    cache.deleted.clear()
    changed = []
    for i, t in enumerate(records):
        if t["status"].get("phase") in trials.TERMINAL:
            continue
        new = await _advance(p, exp, search, t)
        if new != t["status"]:
            records[i] = {**t, "status": new}
            changed.append(i)

    def save_changed() -> None:
        # written after the next trials are submitted: they start sooner, and a crash before
        # this only means the next pass finds the same ends again in the executor
        for i in changed:
            records[i] = cache.save(p, records[i], records[i]["status"])

    _count_status(st, records)
    done = [t for t in records if t["status"].get("phase") == "Succeeded"]
    best, front = _optimal(spec, done)
    if best is not None:
        st["currentOptimalTrial"] = {"bestTrialName": best["metadata"]["name"],
                                     "parameterAssignments": best["spec"]["parameterAssignments"],
                                     "observation": best["status"].get("observation") or {"metrics": []}}
    if front:
        st["paretoOptimalTrials"] = front
    verdict = _verdict(exp, st, search, best, records)
    if verdict is not None:
        phase, reason, message = verdict
        save_changed()
        await _kill_active(p, exp, records, message)
        _count_status(st, records)
        st.update(phase=phase, message=message, completionTime=now())
        set_condition(st, "Running", False, reason, message)
        set_condition(st, phase, True, reason, message)
        p.store.record_event(exp, reason, message, "Normal" if phase == "Succeeded" else "Warning")
        return st
    await _fill(p, exp, search, records, st)
    save_changed()
    if st.get("phase") != "Running":
        st.update(phase="Running", message="")
        set_condition(st, "Running", True, "ExperimentRunning", "Experiment is running")
    if st["trialsRunning"] + st["trialsPending"]:
        pipelines = spec["trialTemplate"]["trialSpec"].get("kind") == "Run"  # a Run's progress wakes no one
        _requeue(p, exp, _POLL[search.pruning or pipelines])
    return st


async def _fill(p: Platform, exp: Manifest, search: Search, records: list[Manifest], st: dict[str, Any]) -> None:
    """Create trials for the free parallel slots, within the budget."""
    spec = exp["spec"]
    active = st["trialsRunning"] + st["trialsPending"]
    room = spec["parallelTrialCount"] - active
    if spec.get("maxTrialCount") is not None:
        room = min(room, spec["maxTrialCount"] - len(records))
    created = []
    for _ in range(max(room, 0)):
        if search.exhausted():
            break
        params, attrs = await asyncio.to_thread(search.ask)
        trial = trials.create(p, exp, params, attrs, len(records) + len(created))
        search.bind(trial["metadata"]["name"])
        _RECORDS[exp["metadata"]["uid"]].by_name[trial["metadata"]["name"]] = trial
        created.append(trial)
    for trial in created:
        status = trial["status"]
        try:
            await trials.start(p, exp, trial)
        except Invalid as e:
            status = trials.finish(trial, copy.deepcopy(status), "Failed", "InvalidSpec", e.message)
            status["optuna"]["systemAttrs"] = trials.jsonable(search.tell(trial["metadata"]["name"], "fail"))
            trial = _RECORDS[exp["metadata"]["uid"]].save(p, trial, status)
        records.append(trial)
    if created:
        _count_status(st, records)


def _resumable(spec: dict[str, Any], st: dict[str, Any]) -> bool:
    """A finished experiment that may go on: resumePolicy allows it and its budget grew."""
    reason = next((c["reason"] for c in st.get("conditions", []) if c["type"] == "Succeeded" and c["status"] == "True"), "")
    return (spec["resumePolicy"] != "Never" and reason == "ExperimentMaxTrialsReached"
            and spec.get("maxTrialCount") is not None and spec["maxTrialCount"] > st.get("trials", 0))


async def _kill_active(p: Platform, exp: Manifest, records: list[Manifest], message: str) -> None:
    search = _SEARCHES.get(exp["metadata"]["uid"])
    for i, t in enumerate(records):
        if t["status"].get("phase") in trials.TERMINAL:
            continue
        st = await trials.stop(p, t, copy.deepcopy(t["status"]), "Killed", "ExperimentCompleted", message)
        if search is not None:
            search.tell(t["metadata"]["name"], "fail")
        records[i] = _RECORDS.setdefault(exp["metadata"]["uid"], _Records()).save(p, t, st)


async def finalize(p: Platform, namespace: str, name: str) -> None:
    """A deleted experiment: stop and forget its workloads, delete its trials."""
    assert p.executor is not None
    for w in p.executor.list(namespace):
        labels = w.labels or {}
        if (labels.get(OWNER_KIND), labels.get(OWNER_NAMESPACE), labels.get(OWNER_NAME)) == (EXPERIMENT.name,
                                                                                           namespace, name):
            if not w.finished:
                await p.executor.stop(w.id, grace=2.0)
            p.executor.remove(w.id)
    from flowyard.pipelines.kinds import RUN

    for kind in (RUN, TRIAL):
        items, _ = p.store.list(kind, namespace, label_selector=f"{EXPERIMENT_LABEL}={name}")
        for t in items:
            try:
                p.store.delete(kind, namespace, t["metadata"]["name"])
            except NotFound:
                pass
    live = _live_uids(p)
    for cache in (_SEARCHES, _RECORDS):
        for uid in [u for u in cache if u not in live]:
            cache.pop(uid, None)


def _live_uids(p: Platform) -> set[str]:
    items, _ = p.store.list(EXPERIMENT, None)
    return {i["metadata"]["uid"] for i in items}


CONTROLLER = Controller(EXPERIMENT, reconcile, finalize)
