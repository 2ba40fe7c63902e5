"""Helpers shared by the executor tests (imported by name: tests have no packages)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from flowyard.executor import LocalExecutor, Phase, Resources, WorkloadSpec

T = TypeVar("T")
PY = sys.executable


def run(coro: Awaitable[T]) -> T:
    """Run one async test body on a fresh event loop."""
    return asyncio.run(coro)  # type: ignore[arg-type]


def spec(id: str, code: str = "pass", **kwargs: Any) -> WorkloadSpec:
    """A batch workload running a Python snippet."""
    kwargs.setdefault("namespace", "team")
    return WorkloadSpec(id=id, command=[PY, "-c", code], **kwargs)


async def read_logs(executor: LocalExecutor, workload_id: str, **kwargs: Any) -> bytes:
    return b"".join([chunk async for chunk in executor.logs(workload_id, **kwargs)])


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def wait_running(executor: LocalExecutor, workload_id: str) -> None:
    await wait_for(lambda: executor.status(workload_id).phase == Phase.Running)

