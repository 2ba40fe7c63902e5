"""RecurringRun controller: creates Runs on a cron or periodic schedule.

No catch-up: a slot missed (server down, or `maxConcurrency` runs still active) is skipped and
the next slot is computed from now. Cron takes 5 fields (minute first) or the 6 fields kfp
documents (seconds first), with `*`, lists, ranges, steps, month/day names and `@hourly`-style
macros.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from flowyard.controllers.loop import Controller
from flowyard.errors import Invalid
from flowyard.kinds import Manifest
from flowyard.platform import Platform
from flowyard.pipelines.kinds import LABEL_EXPERIMENT, LABEL_RECURRING, RECURRING_RUN, RUN, TERMINAL, slug

_MACROS = {"@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
           "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *"}
_NAMES = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10,
          "nov": 11, "dec": 12, "sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))


def _field(text: str, what: str, lo: int, hi: int) -> tuple[set[int], bool]:
    """The values a cron field allows, and whether it was restricted (not `*`/`?`)."""
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) < 1:
                raise Invalid(f"cron {what} step '{step_text}' must be a positive number")
            step = int(step_text)
        if part in ("*", "?"):
            start, end = lo, hi
        else:
            a, _, b = part.partition("-")
            try:
                start = int(_NAMES.get(a.lower(), a))
                end = int(_NAMES.get(b.lower(), b)) if b else (hi if step > 1 else start)
            except ValueError:
                raise Invalid(f"cron {what} '{part}' is not a number, range or name") from None
            if not (lo <= start <= hi and lo <= end <= hi and start <= end):
                raise Invalid(f"cron {what} '{part}' is out of range {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return values, text not in ("*", "?")


def parse_cron(expr: str) -> dict[str, Any]:
    """Parse a cron expression; raises `Invalid` with what to fix."""
    text = _MACROS.get(expr.strip().lower(), expr.strip())
    parts = text.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) != 6:
        raise Invalid(f"cron '{expr}' must have 5 fields (minute hour day month weekday) or 6 (seconds first)")
    out: dict[str, Any] = {}
    for (what, lo, hi), part in zip(_FIELDS, parts):
        out[what], out[what + "*"] = _field(part, what, lo, hi)
    if 7 in out["day of week"]:
        out["day of week"].add(0)
    return out


def next_cron(expr: str, after: datetime) -> datetime | None:
    """The first time strictly after `after` (UTC) that `expr` matches; None within 5 years."""
    c = parse_cron(expr)
    start = after.replace(microsecond=0) + timedelta(seconds=1)
    day = start.replace(hour=0, minute=0, second=0)
    for _ in range(366 * 5):
        dom_ok = day.day in c["day of month"]
        dow_ok = (day.isoweekday() % 7) in c["day of week"]
        if c["day of month*"] and c["day of week*"]:
            day_ok = dom_ok or dow_ok  # cron: both restricted means either
        else:
            day_ok = dom_ok and dow_ok
        if day.month in c["month"] and day_ok:
            for h in sorted(c["hour"]):
                for m in sorted(c["minute"]):
                    for s in sorted(c["second"]):
                        t = day.replace(hour=h, minute=m, second=s)
                        if t >= start:
                            return t
        day += timedelta(days=1)
    return None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _fmt(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_time(trigger: dict[str, Any], after: datetime) -> datetime | None:
    start = _parse_time(trigger.get("startTime"))
    base = max(after, start - timedelta(seconds=1)) if start else after
    if trigger.get("cron"):
        t = next_cron(trigger["cron"], base)
    else:
        t = (start if start and start > after else after + timedelta(seconds=int(trigger["intervalSecond"])))
    end = _parse_time(trigger.get("endTime"))
    if t is not None and end is not None and t > end:
        return None
    return t


def _active_runs(p: Platform, ns: str, uid: str) -> int:
    items, _ = p.store.list(RUN, ns, label_selector=f"{LABEL_RECURRING}={uid}")
    return sum(1 for r in items if (r.get("status") or {}).get("state") not in TERMINAL)


_TIMERS: dict[tuple[int, str, str], asyncio.TimerHandle] = {}


def _wake(p: Platform, ns: str, name: str, delay: float | None) -> None:
    """Reconcile (ns, name) again after `delay` seconds (one timer per object; None cancels)."""
    key = (id(p), ns, name)
    old = _TIMERS.pop(key, None)
    if old is not None:
        old.cancel()
    if p.controllers is None or delay is None:
        return
    loop = asyncio.get_running_loop()
    _TIMERS[key] = loop.call_later(max(delay, 0.05), p.controllers.enqueue, RECURRING_RUN.name, ns, name)


def _create_run(p: Platform, obj: Manifest, at: datetime) -> Manifest:
    spec, meta = obj["spec"], obj["metadata"]
    run_spec = {k: spec[k] for k in ("description", "experiment", "experimentId", "pipelineSpec", "platformSpec",
                                     "pipelineVersionReference", "parameters", "pipelineRoot", "serviceAccount")
                if spec.get(k) is not None}
    run_spec["displayName"] = f"{spec['displayName']} {at.strftime('%Y-%m-%d %H-%M-%S')}"
    run_spec["recurringRunId"] = meta["uid"]
    labels = {LABEL_RECURRING: meta["uid"]}
    if spec.get("experimentId"):
        labels[LABEL_EXPERIMENT] = spec["experimentId"]
    if "pipelineSpec" not in run_spec and spec.get("pipelineVersionReference"):
        from flowyard.pipelines.api_common import version_spec  # resolve the version now

        run_spec["pipelineSpec"] = version_spec(p, meta["namespace"], spec["pipelineVersionReference"])
    annotations = {"pipelines.kubeflow.org/scheduled-at": _fmt(at)}
    creator = (meta.get("annotations") or {}).get("flowyard.io/creator")
    if creator:
        annotations["flowyard.io/creator"] = creator
    return p.store.create(RUN, meta["namespace"], {
        "apiVersion": RUN.api_version, "kind": "Run",
        "metadata": {"name": slug(meta["name"][:40], "run"), "labels": labels, "annotations": annotations},
        "spec": run_spec})


async def reconcile(p: Platform, obj: Manifest) -> dict[str, Any]:
    spec, meta = obj["spec"], obj["metadata"]
    ns, name = meta["namespace"], meta["name"]
    st = dict(obj.get("status") or {})
    now = datetime.now(timezone.utc)
    if not spec.get("enabled", True):
        st.update(status="DISABLED", nextRunAt=None, observedGeneration=meta["generation"])
        _wake(p, ns, name, None)
        return st
    st["status"] = "ENABLED"
    nxt = _parse_time(st.get("nextRunAt"))
    if nxt is None or st.get("observedGeneration") != meta["generation"]:
        nxt = next_time(spec["trigger"], now)  # (re)enabled or changed: no catch-up
        st["observedGeneration"] = meta["generation"]
    if nxt is not None and nxt <= now:
        if _active_runs(p, ns, meta["uid"]) >= spec.get("maxConcurrency", 1):
            st["message"] = f"skipped a run at {_fmt(nxt)}: {spec.get('maxConcurrency', 1)} run(s) still active"
        else:
            run = _create_run(p, obj, nxt)
            st.update(lastRunAt=_fmt(now), lastRun=run["metadata"]["name"], message="",
                      runsCreated=st.get("runsCreated", 0) + 1)
        nxt = next_time(spec["trigger"], now)
    st["nextRunAt"] = _fmt(nxt) if nxt else None
    _wake(p, ns, name, (nxt - datetime.now(timezone.utc)).total_seconds() if nxt else None)
    return st


async def finalize(p: Platform, namespace: str, name: str) -> None:
    _wake(p, namespace, name, None)


CONTROLLER = Controller(RECURRING_RUN, reconcile, finalize)
