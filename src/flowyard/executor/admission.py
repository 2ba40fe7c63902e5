"""Admission: may a workload start now, later, or never, and why not.

Pure functions over amounts, so the rules are easy to read and test: a workload runs when its
requests fit both the host's free capacity and what is left of its namespace's quota. The
messages say exactly what is missing, because a user looking at a Pending workload wants to
know what it waits for.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowyard.executor.base import Quota, Resources
from flowyard.quantity import format_cpu, format_memory

__all__ = ["Verdict", "never_fits", "check_admission"]

INSUFFICIENT = "Insufficient"
QUOTA_EXCEEDED = "QuotaExceeded"
UNSCHEDULABLE = "Unschedulable"


@dataclass(frozen=True)
class Verdict:
    """Why a workload cannot start: `reason` for programs, `message` for people."""

    reason: str
    message: str


def _fmt(resource: str, amount: float) -> str:
    if resource == "cpu":
        return format_cpu(amount)
    if resource == "memory":
        return format_memory(int(amount))
    return str(int(amount))


def _quota_dict(quota: Quota) -> dict[str, float | int | None]:
    return {"cpu": quota.cpu, "memory": quota.memory, "gpu": quota.gpu}


def never_fits(
    requests: Resources, capacity: Resources, quota: Quota | None, namespace: str
) -> Verdict | None:
    """A verdict when the workload can never run here (beyond total capacity or quota)."""
    if quota is not None:
        for name, ceiling in _quota_dict(quota).items():
            wanted = getattr(requests, name)
            if ceiling is not None and wanted > ceiling + 1e-9:
                return Verdict(
                    QUOTA_EXCEEDED,
                    f"requests {_fmt(name, wanted)} {name} but the quota of namespace "
                    f"{namespace!r} allows {_fmt(name, ceiling)} {name} in total",
                )
    for name in ("cpu", "memory", "gpu"):
        wanted, total = getattr(requests, name), getattr(capacity, name)
        if wanted > total + 1e-9:
            return Verdict(
                UNSCHEDULABLE,
                f"requests {_fmt(name, wanted)} {name} but this host has "
                f"{_fmt(name, total)} {name} in total",
            )
    return None


def check_admission(
    requests: Resources,
    free: Resources,
    capacity: Resources,
    quota: Quota | None,
    used_in_namespace: Resources,
    namespace: str,
) -> Verdict | None:
    """None when the workload may start now, else why it has to wait."""
    if quota is not None:
        missing = []
        for name, ceiling in _quota_dict(quota).items():
            if ceiling is None:
                continue
            wanted = getattr(requests, name)
            left = max(0, ceiling - getattr(used_in_namespace, name))
            if wanted > left + 1e-9:
                missing.append(
                    f"{_fmt(name, wanted)} {name}: {_fmt(name, left)} of "
                    f"{_fmt(name, ceiling)} left"
                )
        if missing:
            return Verdict(
                QUOTA_EXCEEDED,
                f"waiting for quota of namespace {namespace!r}: " + "; ".join(missing),
            )
    missing = []
    for name in ("cpu", "memory", "gpu"):
        wanted, available = getattr(requests, name), getattr(free, name)
        if wanted > available + 1e-9:
            missing.append(
                f"{_fmt(name, wanted)} {name}: {_fmt(name, available)} of "
                f"{_fmt(name, getattr(capacity, name))} free on this host"
            )
    if missing:
        return Verdict(INSUFFICIENT, "waiting for " + "; ".join(missing))
    return None
