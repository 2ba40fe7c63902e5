"""Watching a process we may not be the parent of (re-adopted after a restart).

A pid alone is not an identity (pids are reused), so processes are recognised by
pid + psutil create_time. Exit is awaited with a pidfd on Linux (no polling, works for
non-children); elsewhere by polling.
"""

from __future__ import annotations

import asyncio
import os
import subprocess

import psutil

__all__ = ["create_time", "is_alive", "wait_exit"]

POLL_INTERVAL = 0.5


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_alive(pid: int, started: float | None) -> bool:
    """True if `pid` is still the same (non-zombie) process that started at `started`."""
    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 0.01:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def wait_exit(pid: int, started: float | None, popen: subprocess.Popen | None) -> None:
    """Return once the process has exited (reaping it when it is our child)."""
    if popen is not None and popen.poll() is not None:
        return
    loop = asyncio.get_running_loop()
    fd: int | None = None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        done = loop.create_future()
        loop.add_reader(fd, lambda: done.done() or done.set_result(None))
        try:
            if is_alive(pid, started):
                await done
        finally:
            loop.remove_reader(fd)
            os.close(fd)
    else:
        while is_alive(pid, started) and (popen is None or popen.poll() is None):
            await asyncio.sleep(POLL_INTERVAL)
    if popen is not None:
        popen.wait()
