"""When an idle notebook is stopped: the namespace's idle timeout and the idleness rule.

The timeout is the Profile annotation `flowyard.io/notebook-idle-timeout` (seconds, or a
Go-style duration such as `90m` or `1h30m`), else env `FLOWYARD_NOTEBOOK_IDLE_TIMEOUT`
(same forms), else 24 h; `0` turns culling off. A notebook is idle when Jupyter's own
`last_activity` (kernels, terminals, API use through the gateway) is older than the timeout
and no kernel is busy, so a long computation is never culled.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone

from flowyard.errors import Invalid, NotFound
from flowyard.namespaces import PROFILE
from flowyard.platform import Platform

ANNOTATION = "flowyard.io/notebook-idle-timeout"
ENV = "FLOWYARD_NOTEBOOK_IDLE_TIMEOUT"
DEFAULT_SECONDS = 24 * 3600.0
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in `text`: a plain number of seconds or a Go duration (`1h30m`, `45s`, `1.5h`)."""
    text = str(text).strip()
    try:
        value = float(text)
    except ValueError:
        pos, value = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            value += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise Invalid(f"'{text}' is not a duration: use seconds or e.g. 30m, 1h30m, 24h") from None
    if value < 0:
        raise Invalid(f"'{text}' is negative: an idle timeout must be >= 0 (0 = never cull)")
    return value


def idle_timeout(p: Platform, namespace: str) -> float:
    """Seconds of idleness after which notebooks of `namespace` are stopped (0 = never)."""
    try:
        profile = p.store.get(PROFILE, "", namespace)
        raw = profile["metadata"]["annotations"].get(ANNOTATION)
    except NotFound:
        raw = None
    raw = raw if raw is not None else os.environ.get(ENV)
    if raw is None:
        return DEFAULT_SECONDS
    try:
        return parse_duration(raw)
    except Invalid:
        return DEFAULT_SECONDS


def seconds_since(timestamp: str) -> float | None:
    """Seconds from an RFC 3339 time (as Jupyter writes it) to now; None when unparseable."""
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - then).total_seconds()


def describe(seconds: float) -> str:
    """A short human duration: 45s, 12m, 3h, 1.5h."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.3g}h"
