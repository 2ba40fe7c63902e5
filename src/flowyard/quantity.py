"""Kubernetes-style resource quantities ("500m" cpu, "4Gi" memory).

Users already write resources the Kubernetes way (KFP `set_cpu_limit("500m")`, Katib and
KServe specs), so Flowyard accepts the same notation everywhere and converts it here, once:
cpu to a float number of cores, memory to an integer number of bytes.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

__all__ = ["parse_cpu", "parse_memory", "format_memory", "format_cpu"]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_MEMORY_RE = re.compile(
    r"^(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<exp>[eE][+-]?[0-9]+)?"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
)
_CPU_RE = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<milli>m)?$")
_MEMORY_HELP = "use a number with an optional suffix Ki, Mi, Gi, Ti, k, M, G, T"
_CPU_HELP = "use a number of cores such as 2 or 0.5, or millicores such as 500m"


def parse_cpu(value: str | int | float) -> float:
    """Return a cpu quantity in cores: "500m" -> 0.5, "2" -> 2.0, 1.5 -> 1.5."""
    if isinstance(value, bool):
        raise ValueError(f"invalid cpu quantity {value!r}: {_CPU_HELP}")
    if isinstance(value, (int, float)):
        cores = float(value)
    elif isinstance(value, str):
        match = _CPU_RE.match(value.strip())
        if not match:
            raise ValueError(f"invalid cpu quantity {value!r}: {_CPU_HELP}")
        cores = float(match["num"]) / (1000 if match["milli"] else 1)
    else:
        raise ValueError(f"invalid cpu quantity {value!r}: {_CPU_HELP}")
    if not math.isfinite(cores) or cores < 0:
        raise ValueError(f"invalid cpu quantity {value!r}: must be a finite number >= 0")
    return cores


def parse_memory(value: str | int | float) -> int:
    """Return a memory quantity in bytes ("4Gi", "512Mi", "1G", "1e3", 1024).

    Fractions of a byte are rounded up, as Kubernetes does.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid memory quantity {value!r}: {_MEMORY_HELP}")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"invalid memory quantity {value!r}: must be finite")
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        match = _MEMORY_RE.match(value.strip())
        if not match:
            raise ValueError(f"invalid memory quantity {value!r}: {_MEMORY_HELP}")
        try:
            amount = Decimal(match["num"] + (match["exp"] or ""))
        except InvalidOperation:  # pragma: no cover - the regex admits only valid numbers
            raise ValueError(f"invalid memory quantity {value!r}: {_MEMORY_HELP}") from None
        suffix = match["suffix"]
        if suffix:
            amount *= _BINARY.get(suffix) or _DECIMAL[suffix]
    else:
        raise ValueError(f"invalid memory quantity {value!r}: {_MEMORY_HELP}")
    if amount < 0:
        raise ValueError(f"invalid memory quantity {value!r}: must be >= 0")
    return int(amount.to_integral_value(rounding="ROUND_CEILING"))


def format_memory(nbytes: int) -> str:
    """Format bytes with the largest suffix that represents them exactly ("1536Mi", "1G").

    The result always parses back to the same number with `parse_memory`.
    """
    if nbytes < 0:
        raise ValueError(f"invalid memory amount {nbytes}: must be >= 0")
    if nbytes == 0:
        return "0"
    for suffixes in (_BINARY, _DECIMAL):
        for suffix, factor in sorted(suffixes.items(), key=lambda kv: -kv[1]):
            if nbytes % factor == 0:
                return f"{nbytes // factor}{suffix}"
    return str(nbytes)


def format_cpu(cores: float) -> str:
    """Format cores for messages: 2.0 -> "2", 0.5 -> "0.5", 0.25 -> "250m"."""
    if cores == int(cores):
        return str(int(cores))
    milli = cores * 1000
    if abs(milli - round(milli)) < 1e-6 and round(milli) % 100 != 0:
        return f"{round(milli)}m"
    return f"{cores:g}"
