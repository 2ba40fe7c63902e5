"""Enforcing a workload's cpu/memory limits: cgroup v2 when the host allows it, rlimits if not.

cgroup v2 is the real thing (memory.max counts resident memory of the whole process tree,
cpu.max throttles to a fraction of cores, OOM kills are reported). It is only usable when
the unified hierarchy is mounted at /sys/fs/cgroup, the cpu and memory controllers can be
delegated to a child group of ours, and we may write there. That is tested for real, once,
by creating a probe group. Everywhere else (hybrid hierarchies, unprivileged containers) the
fallback is weaker and says so:
- memory: RLIMIT_AS, a ceiling on *address space*, not resident memory. Allocations beyond
  it fail (MemoryError in Python). Runtimes that reserve large virtual areas (many threads,
  JIT, CUDA) need a generous limit.
- cpu: pinning to ceil(cpu) cores with sched_setaffinity; fractions are rounded up.
The runner (`_runner.py`) applies what `prepare` returns.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from flowyard.executor.base import Resources
from flowyard.quantity import format_cpu, format_memory

__all__ = ["Limiter", "LimitPlan", "detect_limiter"]

log = logging.getLogger(__name__)
Mode = Literal["cgroup", "rlimit"]
_CPU_PERIOD = 100_000


@dataclass(frozen=True)
class LimitPlan:
    """What the runner must apply to one workload, plus a sentence saying what that is."""

    mode: Mode
    cgroup: str | None = None
    rlimit_as: int = 0
    cpus: list[int] = field(default_factory=list)
    description: str = "no limits set"

    def runner_config(self) -> dict[str, Any]:
        return {"cgroup": self.cgroup, "rlimit_as": self.rlimit_as, "cpus": self.cpus}


class Limiter:
    """Prepares and cleans up per-workload limits in the mode detected at executor start."""

    def __init__(self, mode: Mode, cgroup_parent: Path | None = None, why: str = "") -> None:
        self.mode: Mode = mode
        self.cgroup_parent = cgroup_parent
        self.why = why  # why cgroup v2 is not used, for logs
        self._next_core = 0

    def prepare(self, workload_id: str, limits: Resources) -> LimitPlan:
        """Create what the limits need (a cgroup) and describe them for the runner."""
        if self.mode == "cgroup" and self.cgroup_parent is not None:
            return self._prepare_cgroup(workload_id, limits)
        return self._prepare_rlimit(limits)

    def release(self, plan: LimitPlan | None) -> None:
        """Remove the workload's cgroup once its processes are gone (best effort)."""
        if plan is None or not plan.cgroup:
            return
        group = Path(plan.cgroup)
        if not group.exists():
            return
        try:
            group.rmdir()
        except OSError:
            self.kill_all(plan)
            try:
                group.rmdir()
            except OSError as exc:
                log.warning("cannot remove cgroup %s: %s", group, exc)

    def kill_all(self, plan: LimitPlan | None) -> None:
        """SIGKILL every process in the workload's cgroup, wherever it wandered off to."""
        if plan is None or not plan.cgroup:
            return
        try:
            (Path(plan.cgroup) / "cgroup.kill").write_text("1")
        except OSError:
            pass

    def oom_killed(self, plan: LimitPlan | None) -> bool:
        """True when the kernel OOM-killed a process of this workload (cgroup mode only)."""
        if plan is None or not plan.cgroup:
            return False
        try:
            text = (Path(plan.cgroup) / "memory.events").read_text()
        except OSError:
            return False
        counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(counts.get("oom_kill", "0")) > 0

    def _prepare_cgroup(self, workload_id: str, limits: Resources) -> LimitPlan:
        assert self.cgroup_parent is not None
        group = self.cgroup_parent / workload_id
        group.mkdir(exist_ok=True)
        memory = str(limits.memory) if limits.memory else "max"
        quota = str(max(1000, round(limits.cpu * _CPU_PERIOD))) if limits.cpu else "max"
        (group / "memory.max").write_text(memory)
        swap = group / "memory.swap.max"
        if limits.memory and swap.exists():
            try:
                swap.write_text("0")  # like Kubernetes: the limit is not escaped by swapping
            except OSError:
                pass
        (group / "cpu.max").write_text(f"{quota} {_CPU_PERIOD}")
        parts = []
        if limits.memory:
            parts.append(f"memory {format_memory(limits.memory)} (cgroup memory.max)")
        if limits.cpu:
            parts.append(f"cpu {format_cpu(limits.cpu)} (cgroup cpu.max)")
        description = "limits: " + ", ".join(parts) if parts else "no limits set"
        return LimitPlan("cgroup", cgroup=str(group), description=description)

    def _prepare_rlimit(self, limits: Resources) -> LimitPlan:
        parts = []
        cpus: list[int] = []
        if limits.memory:
            parts.append(
                f"memory {format_memory(limits.memory)} of address space (RLIMIT_AS)"
            )
        if limits.cpu:
            allowed = sorted(os.sched_getaffinity(0))
            count = min(len(allowed), max(1, math.ceil(limits.cpu - 1e-9)))
            start = self._next_core % len(allowed)
            cpus = sorted((allowed * 2)[start : start + count])
            self._next_core = (start + count) % len(allowed)
            parts.append(f"cpu pinned to {count} core(s) {cpus} (affinity)")
        description = "limits: " + ", ".join(parts) if parts else "no limits set"
        return LimitPlan("rlimit", rlimit_as=limits.memory, cpus=cpus, description=description)


def detect_limiter(
    key: str, mount: Path = Path("/sys/fs/cgroup"), delegated: str | None = None
) -> Limiter:
    """Probe cgroup v2 for real and return a cgroup limiter, or an rlimit one.

    `key` names our group of workload cgroups (stable per executor root, so a restarted
    server finds its workloads' groups again). The groups go under our own cgroup, which
    works only where it may hold sub-groups (cgroup v2 forbids enabling controllers on a
    non-root group that has processes). `delegated` (default: env
    `FLOWYARD_CGROUP_PARENT`) names an empty cgroup directory delegated to Flowyard to use
    instead, e.g. a systemd `Delegate=yes` slice or a group made by an administrator.
    """
    if delegated is None:
        delegated = os.environ.get("FLOWYARD_CGROUP_PARENT") or None
    name = "flowyard-" + hashlib.sha1(key.encode()).hexdigest()[:10]
    try:
        parent = _probe_cgroup(mount, name, Path(delegated) if delegated else None)
    except _NoCgroup as exc:
        log.info("cgroup v2 limits unavailable (%s); using rlimits", exc)
        return Limiter("rlimit", why=str(exc))
    return Limiter("cgroup", cgroup_parent=parent)


class _NoCgroup(Exception):
    pass


def _probe_cgroup(mount: Path, name: str, delegated: Path | None = None) -> Path:
    if not (mount / "cgroup.controllers").is_file():
        raise _NoCgroup(f"no unified cgroup v2 hierarchy at {mount}")
    base = delegated or mount / _own_cgroup().lstrip("/")
    needed = {"cpu", "memory"}
    try:
        available = set((base / "cgroup.controllers").read_text().split())
        if not needed <= available:
            raise _NoCgroup(f"controllers {sorted(needed - available)} not delegated to {base}")
        enabled = set((base / "cgroup.subtree_control").read_text().split())
        if not needed <= enabled:
            (base / "cgroup.subtree_control").write_text("+cpu +memory")
        parent = base / name
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+cpu +memory")
        probe = parent / f"probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        try:
            (probe / "memory.max").write_text("max")
            (probe / "cpu.max").write_text(f"max {_CPU_PERIOD}")
        finally:
            probe.rmdir()
    except OSError as exc:
        raise _NoCgroup(f"cannot set up a cgroup under {base}: {exc}") from None
    return parent


def _own_cgroup() -> str:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:].strip() or "/"
    except OSError as exc:
        raise _NoCgroup(f"cannot read /proc/self/cgroup: {exc}") from None
    raise _NoCgroup("this process is not in a cgroup v2 hierarchy")
