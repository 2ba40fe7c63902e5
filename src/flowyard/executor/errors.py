"""Typed errors of the executor seam, so callers (API, controllers) can map them to answers."""

from __future__ import annotations

__all__ = [
    "ExecutorError",
    "InvalidWorkload",
    "WorkloadNotFound",
    "WorkloadActive",
    "UnknownEnvironment",
]


class ExecutorError(Exception):
    """Base class of every error raised by an executor."""


class InvalidWorkload(ExecutorError, ValueError):
    """A `WorkloadSpec` is malformed (bad id, empty command, negative resources...)."""


class WorkloadNotFound(ExecutorError, KeyError):
    """No workload with this id is known to the executor."""

    def __init__(self, workload_id: str) -> None:
        super().__init__(workload_id)
        self.workload_id = workload_id

    def __str__(self) -> str:
        return f"workload {self.workload_id!r} not found"


class WorkloadActive(ExecutorError):
    """The operation needs a finished workload, but this one is still pending or running."""


class UnknownEnvironment(ExecutorError, LookupError):
    """A workload names an environment the executor cannot resolve to an interpreter."""
