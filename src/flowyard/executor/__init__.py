"""The executor seam: `WorkloadSpec` in, `WorkloadStatus`, logs and endpoint out.

`LocalExecutor` runs workloads as local processes; a distributed executor implements the
same `Executor` protocol.
"""

from flowyard.executor.base import (
    TERMINAL_PHASES,
    Executor,
    Phase,
    Quota,
    Resources,
    WorkloadSpec,
    WorkloadStatus,
)
from flowyard.executor.errors import (
    ExecutorError,
    InvalidWorkload,
    UnknownEnvironment,
    WorkloadActive,
    WorkloadNotFound,
)
from flowyard.executor.local import LocalExecutor, default_environment

__all__ = [
    "TERMINAL_PHASES",
    "Executor",
    "ExecutorError",
    "InvalidWorkload",
    "LocalExecutor",
    "Phase",
    "Quota",
    "Resources",
    "UnknownEnvironment",
    "WorkloadActive",
    "WorkloadNotFound",
    "WorkloadSpec",
    "WorkloadStatus",
    "default_environment",
]
