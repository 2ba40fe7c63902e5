"""`flowyard describe`: one object in readable form, with its conditions and events."""

from __future__ import annotations

from typing import Any

import click

from flowyard.cli.output import age, mapping, table, to_yaml

Manifest = dict[str, Any]
MAX_SPEC_LINES = 40


def _field(label: str, value: object) -> None:
    click.echo(f"{label + ':':<14}{value}")


def _block(title: str, data: object, limit: int | None = None) -> None:
    """A titled, indented YAML block, cut after `limit` lines."""
    if data in (None, {}, []):
        _field(title, "<none>")
        return
    lines = to_yaml(data).rstrip("\n").splitlines()
    click.echo(f"{title}:")
    shown = lines if limit is None or len(lines) <= limit else lines[:limit]
    for line in shown:
        click.echo("  " + line)
    if len(shown) < len(lines):
        click.echo(f"  ... {len(lines) - len(shown)} more lines (-o yaml shows all)")


def render(obj: Manifest, events: list[dict[str, Any]]) -> None:
    """Print metadata, spec summary, status, conditions and events of `obj`."""
    meta = obj.get("metadata") or {}
    _field("Name", meta.get("name"))
    if "namespace" in meta:
        _field("Namespace", meta["namespace"])
    _field("Kind", f"{obj.get('kind')} ({obj.get('apiVersion')})")
    _field("Labels", mapping(meta.get("labels")))
    _field("Annotations", mapping(meta.get("annotations")))
    _field("Created", f"{meta.get('creationTimestamp')} ({age(meta.get('creationTimestamp'))} ago)")
    _field("Generation", meta.get("generation"))
    for key, value in obj.items():
        if key not in ("apiVersion", "kind", "metadata", "spec", "status"):
            if isinstance(value, (dict, list)):
                _block(key.capitalize(), value)
            else:
                _field(key.capitalize(), value)
    if "spec" in obj:
        _block("Spec", obj.get("spec"), MAX_SPEC_LINES)
    status = dict(obj.get("status") or {})
    conditions = status.pop("conditions", None) or []
    if "status" in obj:
        _block("Status", status)
    if conditions:
        click.echo("Conditions:")
        rows = [(c.get("type"), c.get("status"), c.get("reason", ""), age(c.get("lastTransitionTime")),
                 c.get("message", "")) for c in conditions]
        _indented(["type", "status", "reason", "age", "message"], rows)
    if not events:
        _field("Events", "<none>")
        return
    click.echo("Events:")
    rows = [(e.get("type"), e.get("reason"), _event_age(e), e.get("message", "")) for e in events]
    _indented(["type", "reason", "age", "message"], rows)


def _event_age(event: dict[str, Any]) -> str:
    last = age(event.get("lastTimestamp"))
    count = event.get("count") or 1
    return f"{last} (x{count} over {age(event.get('firstTimestamp'))})" if count > 1 else last


def _indented(headers: list[str], rows: list[tuple[object, ...]]) -> None:
    table(headers, rows, indent="  ")
