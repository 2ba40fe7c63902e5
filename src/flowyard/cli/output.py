"""Plain-text output: aligned tables, ages, and JSON/YAML dumps."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import click
import yaml


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], indent: str = "") -> None:
    """Print rows under upper-case headers, columns aligned and three spaces apart."""
    cells = [[str(h).upper() for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        click.echo(indent + "   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """How long ago an RFC 3339 time was, kubectl style: 45s, 3m12s, 7m, 2h5m, 5h, 3d."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 1:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if days < 2:
        return f"{hours}h"
    return f"{days}d"


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def to_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def dump(data: Any, fmt: str) -> None:
    """Print `data` as json or yaml."""
    click.echo(to_json(data) if fmt == "json" else to_yaml(data).rstrip("\n"))


def mapping(values: dict[str, str] | None) -> str:
    """`k=v,k2=v2`, or `<none>`."""
    return ",".join(f"{k}={v}" for k, v in (values or {}).items()) or "<none>"
