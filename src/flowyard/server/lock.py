"""One server per home folder: an advisory lock held for the life of the process."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO

from flowyard.errors import Conflict


class HomeLock:
    """`flock` on `<home>/flowyard.lock`; the file says who holds it."""

    def __init__(self, home: Path) -> None:
        self.path = home / "flowyard.lock"
        self._fh: IO[str] | None = None

    def acquire(self, url: str) -> None:
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            try:
                holder = json.loads(fh.read() or "{}")
            except ValueError:
                holder = {}
            fh.close()
            raise Conflict(
                f"Flowyard is already running on home {self.path.parent} (pid {holder.get('pid', '?')}, "
                f"{holder.get('url', 'unknown url')}): stop it first, or pass another --home"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "url": url}))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
