"""Fixtures for executor tests: a fresh executor root per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowyard.executor import LocalExecutor, Resources


@pytest.fixture
def make_executor(tmp_path: Path) -> Callable[..., LocalExecutor]:
    """Factory for executors on one root (call twice to simulate a restart)."""

    def make(**kwargs: Any) -> LocalExecutor:
        kwargs.setdefault("capacity", Resources(cpu=4, memory=8 * 2**30))
        return LocalExecutor(tmp_path / "workloads", **kwargs)

    return make
