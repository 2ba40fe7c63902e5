"""The on-disk layout of one workload, which is what survives a server restart.

root/<id>/spec.json   the WorkloadSpec as submitted
root/<id>/state.json  phase, pid + create time, timestamps, gpus, limits (executor-owned)
root/<id>/log         stdout+stderr of the command (and of the runner)
root/<id>/exit        exit code, written atomically by the runner (or a warm zygote's helper)
root/<id>/work/       default working directory
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["write_json", "read_json", "read_exit_code", "tail_lines"]


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (tmp + rename) so a crash never leaves half a file.

    Not fsynced (1-5 ms each, on the event loop, several per workload): a crash of the server
    keeps the page cache, and a power cut ends the workloads too (they are then `Lost`)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    with open(path) as fh:
        return json.load(fh)


def read_exit_code(path: Path) -> int | None:
    """The code in an `exit` file, or None when there is none (yet)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def tail_lines(path: Path, count: int, max_bytes: int = 64 * 1024) -> bytes:
    """The last `count` lines of a file (reading at most `max_bytes` from its end)."""
    if count <= 0:
        return b""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-count:])
