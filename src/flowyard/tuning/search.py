"""Search-space helpers for `flowyard.tune`, like Katib's `katib.search`.

Each returns a Katib parameter spec without its name: `{"parameterType", "feasibleSpace"}`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any


def _space(low: float, high: float, step: float | None, log: bool) -> dict[str, str]:
    space = {"min": str(low), "max": str(high)}
    if step is not None:
        space["step"] = str(step)
    if log:
        space["distribution"] = "logUniform"
    return space


def double(min: float, max: float, step: float | None = None, log: bool = False) -> dict[str, Any]:
    """A real number in [min, max] (on a grid of `step`; log-uniform with `log`)."""
    return {"parameterType": "double", "feasibleSpace": _space(min, max, step, log)}


def int(min: builtins.int, max: builtins.int, step: builtins.int | None = None, log: bool = False) -> dict[str, Any]:
    """A whole number in [min, max]."""
    return {"parameterType": "int", "feasibleSpace": _space(min, max, step, log)}


def categorical(values: Sequence[Any]) -> dict[str, Any]:
    """One of `values` (passed to the objective as strings)."""
    return {"parameterType": "categorical", "feasibleSpace": {"list": [str(v) for v in values]}}


def discrete(values: Sequence[float]) -> dict[str, Any]:
    """One of these numbers."""
    return {"parameterType": "discrete", "feasibleSpace": {"list": [str(v) for v in values]}}
