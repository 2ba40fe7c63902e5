"""Helpers for the `status` block every resource carries: phase, conditions, message."""

from __future__ import annotations

from typing import Any

from flowyard.store.resources import now


def set_condition(status: dict[str, Any], type_: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    """Set condition `type_` in `status`, keeping lastTransitionTime unless it flips."""
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    value = "True" if ok else "False"
    for cond in conditions:
        if cond["type"] == type_:
            if cond["status"] != value:
                cond["lastTransitionTime"] = now()
            cond.update(status=value, reason=reason, message=message)
            return status
    conditions.append(
        {"type": type_, "status": value, "reason": reason, "message": message, "lastTransitionTime": now()}
    )
    return status


def condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)
