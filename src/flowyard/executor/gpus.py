"""Which GPUs this host has, so admission can hand out whole devices.

`FLOWYARD_GPUS` overrides discovery ("0,1" to use exactly those indices, "none" or "" for
none); otherwise `nvidia-smi` is asked when it is on PATH. Workloads see their devices
through `CUDA_VISIBLE_DEVICES`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Gpu", "discover_gpus"]

_QUERY = ["--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class Gpu:
    """One device: `index` is what goes into CUDA_VISIBLE_DEVICES."""

    index: str
    uuid: str = ""
    name: str = ""
    memory: int = 0  # bytes; 0 when unknown


def discover_gpus(environ: Mapping[str, str] | None = None) -> list[Gpu]:
    """GPUs usable by workloads: from `FLOWYARD_GPUS` if set, else from nvidia-smi."""
    environ = os.environ if environ is None else environ
    override = environ.get("FLOWYARD_GPUS")
    if override is not None:
        value = override.strip()
        if value.lower() in ("", "none"):
            return []
        return [Gpu(index=part.strip()) for part in value.split(",") if part.strip()]
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, *_QUERY], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return _parse_smi(out)


def _parse_smi(out: str) -> list[Gpu]:
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        try:
            memory = int(float(parts[3]) * 2**20)  # nounits: MiB
        except ValueError:
            memory = 0
        gpus.append(Gpu(index=parts[0], uuid=parts[1], name=parts[2], memory=memory))
    return gpus
