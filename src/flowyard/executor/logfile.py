"""Reading a workload's log file: all of it, its last lines, or following it as it grows."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

__all__ = ["stream_log", "tail_offset"]

_CHUNK = 64 * 1024
FOLLOW_INTERVAL = 0.1


def tail_offset(fh, count: int) -> int:  # type: ignore[no-untyped-def]
    """Offset in a binary file where its last `count` lines start."""
    fh.seek(0, os.SEEK_END)
    end = pos = fh.tell()
    if count <= 0:
        return end
    newlines = 0
    # A final newline terminates the last line, it does not start a new one.
    if end:
        fh.seek(end - 1)
        if fh.read(1) == b"\n":
            newlines = -1
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        fh.seek(pos)
        block = fh.read(step)
        for i in range(len(block) - 1, -1, -1):
            if block[i] == 0x0A:
                newlines += 1
                if newlines == count:
                    return pos + i + 1
    return 0


async def stream_log(
    path: Path, finished: Callable[[], bool], follow: bool = False, tail: int | None = None
) -> AsyncIterator[bytes]:
    """Yield the log in chunks; with `follow`, keep going until `finished()` and EOF."""
    while not path.exists():
        if not follow or finished():
            return
        await asyncio.sleep(FOLLOW_INTERVAL)
    with open(path, "rb") as fh:
        start = tail_offset(fh, tail) if tail is not None else 0
        fh.seek(start)
        while True:
            data = fh.read(_CHUNK)
            if data:
                yield data
                continue
            if not follow:
                return
            if finished():
                rest = fh.read()
                if rest:
                    yield rest
                return
            await asyncio.sleep(FOLLOW_INTERVAL)
