"""The executor seam: what to run (`WorkloadSpec`), what it is doing (`WorkloadStatus`).

Pipeline tasks, tuning trials, notebook servers and model servers are all described as a
`WorkloadSpec` and handed to an `Executor`. Controllers only ever talk to this protocol, so a
second implementation (a distributed engine) moves every kind of work at once. Nothing here
may assume the workload runs on the server's machine: the address of a service, its logs and
its exit status come from the executor.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, Protocol, runtime_checkable

from flowyard.executor.errors import InvalidWorkload
from flowyard.quantity import format_cpu, format_memory, parse_cpu, parse_memory

__all__ = [
    "Resources",
    "Quota",
    "WorkloadSpec",
    "Phase",
    "WorkloadStatus",
    "Executor",
    "TERMINAL_PHASES",
]

_EPS = 1e-9
_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
Kind = Literal["batch", "service"]


@dataclass(frozen=True)
class Resources:
    """An amount of cpu (cores), memory (bytes) and gpu (devices); 0 means "none"."""

    cpu: float = 0.0
    memory: int = 0
    gpu: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cpu) and self.cpu >= 0):
            raise InvalidWorkload(f"cpu must be a finite number >= 0, got {self.cpu!r}")
        if int(self.memory) != self.memory or self.memory < 0:
            raise InvalidWorkload(
                f"memory must be a whole number of bytes >= 0, got {self.memory!r}"
            )
        if int(self.gpu) != self.gpu or self.gpu < 0:
            raise InvalidWorkload(f"gpu must be a whole number >= 0, got {self.gpu!r}")

    @classmethod
    def of(cls, cpu: str | float = 0, memory: str | int = 0, gpu: int = 0) -> Resources:
        """Build from Kubernetes quantities: `Resources.of(cpu="500m", memory="1Gi")`."""
        try:
            return cls(parse_cpu(cpu), parse_memory(memory), int(gpu))
        except ValueError as exc:
            raise InvalidWorkload(str(exc)) from None

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            round(self.cpu + other.cpu, 6), self.memory + other.memory, self.gpu + other.gpu
        )

    def __sub__(self, other: Resources) -> Resources:
        """Subtract, clamping at zero (free capacity never goes negative)."""
        return Resources(
            max(0.0, round(self.cpu - other.cpu, 6)),
            max(0, self.memory - other.memory),
            max(0, self.gpu - other.gpu),
        )

    def fits(self, available: Resources) -> bool:
        """True when this amount fits within `available` in every dimension."""
        return (
            self.cpu <= available.cpu + _EPS
            and self.memory <= available.memory
            and self.gpu <= available.gpu
        )

    def is_zero(self) -> bool:
        return self.cpu == 0 and self.memory == 0 and self.gpu == 0

    def describe(self) -> str:
        """Human-readable form for messages: "2 cpu, 4Gi memory, 1 gpu"."""
        parts = []
        if self.cpu:
            parts.append(f"{format_cpu(self.cpu)} cpu")
        if self.memory:
            parts.append(f"{format_memory(self.memory)} memory")
        if self.gpu:
            parts.append(f"{self.gpu} gpu")
        return ", ".join(parts) or "nothing"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Resources:
        data = data or {}
        return cls(float(data.get("cpu", 0)), int(data.get("memory", 0)), int(data.get("gpu", 0)))


@dataclass(frozen=True)
class Quota:
    """A namespace's hard limit on the requests of its running workloads.

    Each field is a ceiling; `None` means that resource is not limited, `0` means none of it
    may be used. A namespace without any quota is represented by `None`, not by `Quota()`.
    """

    cpu: float | None = None
    memory: int | None = None
    gpu: int | None = None


@dataclass(frozen=True)
class WorkloadSpec:
    """What to run. `id` is chosen by the caller, unique per executor, chars `[a-z0-9.-]`.

    `service` workloads get a free port: exposed as env `PORT` and substituted for the literal
    `{port}` in `command`. If `limits` are set but `requests` are not, each request defaults
    to its limit (Kubernetes semantics), see `effective_requests`. `warm` lists what a warm
    zygote of the environment pre-imports (module names, and `NAME=VALUE` variables set before
    the imports): a `python -m MODULE …` command may then be forked from it instead of started
    (an executor that cannot just starts it).
    """

    id: str
    namespace: str
    command: list[str]
    kind: Kind = "batch"
    env: dict[str, str] = field(default_factory=dict)
    environment: str = "default"
    workdir: str | None = None
    requests: Resources = field(default_factory=Resources)
    limits: Resources = field(default_factory=Resources)
    grace_period: float = 10.0
    timeout: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    warm: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise InvalidWorkload(
                f"invalid workload id {self.id!r}: use 1-253 characters a-z, 0-9, '.' and '-', "
                "starting and ending with a letter or digit"
            )
        if not self.namespace or not isinstance(self.namespace, str):
            raise InvalidWorkload("namespace must be a non-empty string")
        if not self.command or not all(isinstance(a, str) for a in self.command):
            raise InvalidWorkload("command must be a non-empty list of strings")
        if self.kind not in ("batch", "service"):
            raise InvalidWorkload(f"kind must be 'batch' or 'service', got {self.kind!r}")
        for key, value in {**self.env, **self.labels}.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidWorkload(f"env and labels must map strings to strings ({key!r})")
        if any("=" in k or not k for k in self.env):
            raise InvalidWorkload("environment variable names must be non-empty and contain no '='")
        if not (self.grace_period >= 0):
            raise InvalidWorkload("grace_period must be >= 0 seconds")
        if self.timeout is not None and not (self.timeout > 0):
            raise InvalidWorkload("timeout must be > 0 seconds or None")
        if not isinstance(self.requests, Resources) or not isinstance(self.limits, Resources):
            raise InvalidWorkload("requests and limits must be Resources")
        if not isinstance(self.warm, list) or not all(isinstance(w, str) and w for w in self.warm):
            raise InvalidWorkload("warm must be a list of module names and NAME=VALUE strings")

    def effective_requests(self) -> Resources:
        """Requests used for admission: each unset (0) request defaults to its limit."""
        return Resources(
            self.requests.cpu or self.limits.cpu,
            self.requests.memory or self.limits.memory,
            self.requests.gpu or self.limits.gpu,
        )

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["requests"] = self.requests.to_dict()
        data["limits"] = self.limits.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkloadSpec:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["requests"] = Resources.from_dict(data.get("requests"))
        values["limits"] = Resources.from_dict(data.get("limits"))
        return cls(**values)


class Phase(enum.StrEnum):
    """Lifecycle of a workload; the last three are terminal."""

    Pending = "Pending"
    Running = "Running"
    Succeeded = "Succeeded"
    Failed = "Failed"
    Stopped = "Stopped"


TERMINAL_PHASES = frozenset({Phase.Succeeded, Phase.Failed, Phase.Stopped})


@dataclass(frozen=True)
class WorkloadStatus:
    """What a workload is doing; immutable snapshot, a new one is made on every change.

    `reason` is a short CamelCase word a program can branch on (`Insufficient`,
    `QuotaExceeded`, `Unschedulable`, `Error`, `DeadlineExceeded`, `Lost`, ...); `message`
    is for humans. Times are epoch seconds. `endpoint` is "host:port" for services.
    """

    id: str
    namespace: str
    kind: Kind
    phase: Phase
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    pid: int | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    endpoint: str | None = None
    limits_mode: str = ""
    gpus: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL_PHASES

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["phase"] = str(self.phase)
        data["gpus"] = list(self.gpus)
        data["labels"] = dict(self.labels)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkloadStatus:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["phase"] = Phase(values["phase"])
        return cls(**values)

    def evolve(self, **changes: Any) -> WorkloadStatus:
        """A copy with some fields changed."""
        return replace(self, **changes)


@runtime_checkable
class Executor(Protocol):
    """Runs workloads somewhere. All methods are called from the server's event loop."""

    async def start(self) -> None:
        """Load persisted workloads and re-adopt those still running; start admitting."""

    async def close(self, stop_workloads: bool = True) -> None:
        """Stop watching; with `stop_workloads` also stop every running workload."""

    async def submit(self, spec: WorkloadSpec) -> WorkloadStatus:
        """Queue a workload; submitting an id that exists returns its current status."""

    def status(self, workload_id: str) -> WorkloadStatus:
        """Current status; raises `WorkloadNotFound`."""

    def list(self, namespace: str | None = None) -> list[WorkloadStatus]:
        """Statuses of all workloads (of one namespace), oldest first."""

    async def stop(self, workload_id: str, grace: float | None = None) -> WorkloadStatus:
        """SIGTERM, then SIGKILL after `grace` (default: the spec's grace_period)."""

    def remove(self, workload_id: str) -> None:
        """Forget a finished workload and delete its files; raises `WorkloadActive`."""

    def logs(
        self, workload_id: str, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[bytes]:
        """Combined stdout+stderr; `follow` streams until the workload finishes."""

    async def wait(self, workload_id: str, timeout: float | None = None) -> WorkloadStatus:
        """Wait for a terminal phase; raises `TimeoutError` after `timeout` seconds."""

    def on_change(self, callback: Callable[[WorkloadStatus], None]) -> Callable[[], None]:
        """Call `callback(status)` on every phase change; returns an unsubscribe function."""
