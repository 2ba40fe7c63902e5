"""The columns `flowyard get` shows for each kind (NAME, a status column, AGE, and extras)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowyard.cli.output import age, mapping

Manifest = dict[str, Any]
Column = tuple[str, Callable[[Manifest], object]]


def _status(obj: Manifest) -> dict[str, Any]:
    return obj.get("status") or {}


def _phase(obj: Manifest) -> str:
    """`status.phase`, or `status.state` for KFP kinds (Run: SUCCEEDED, FAILED, ...)."""
    st = _status(obj)
    return str(st.get("phase") or st.get("state") or "-")


def _container(obj: Manifest) -> dict[str, Any]:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
    return containers[0] if isinstance(containers[0], dict) else {}


def _command(obj: Manifest) -> str:
    c = _container(obj)
    words = [str(w) for w in list(c.get("command") or []) + list(c.get("args") or [])]
    text = " ".join(words)
    return text if len(text) <= 40 else text[:37] + "..."


_NAME: Column = ("name", lambda o: o["metadata"]["name"])
_AGE: Column = ("age", lambda o: age(o["metadata"].get("creationTimestamp")))
_STATUS: Column = ("status", _phase)

_BY_KIND: dict[str, list[Column]] = {
    "Secret": [_NAME, ("type", lambda o: o.get("type", "Opaque")), ("data", lambda o: len(o.get("data") or {})),
               _AGE],
    "Profile": [_NAME, ("owner", lambda o: ((o.get("spec") or {}).get("owner") or {}).get("name", "")), _AGE],
    "Environment": [_NAME, _STATUS, ("requirements", lambda o: len((o.get("spec") or {}).get("requirements") or [])),
                    _AGE],
    "Job": [_NAME, _STATUS, ("exit", lambda o: _status(o).get("exitCode", "")), _AGE],
    "Run": [_NAME, _STATUS, ("pipeline", lambda o: (((o.get("spec") or {}).get("pipelineSpec") or {})
                                                    .get("pipelineInfo") or {}).get("name", "")), _AGE],
}
_WIDE: dict[str, list[Column]] = {
    "Job": [("environment", lambda o: _container(o).get("image") or "default"), ("command", _command)],
    "Environment": [("python", lambda o: (o.get("spec") or {}).get("python") or "")],
}
_WIDE_ALL: list[Column] = [("message", lambda o: _status(o).get("message") or ""),
                           ("labels", lambda o: mapping(o["metadata"].get("labels")))]


def columns(kind: str, wide: bool = False, all_namespaces: bool = False) -> list[Column]:
    """The columns for `kind`: kubectl-like by default, more with `wide`, NAMESPACE first with -A."""
    cols = list(_BY_KIND.get(kind, [_NAME, _STATUS, _AGE]))
    if wide:
        cols += _WIDE.get(kind, []) + _WIDE_ALL
    if all_namespaces:
        cols.insert(0, ("namespace", lambda o: o["metadata"].get("namespace", "")))
    return cols
