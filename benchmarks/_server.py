"""Start and stop a throwaway Flowyard server for a benchmark."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PASSWORD = "bench-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, home: Path | None = None, db: str | None = None) -> None:
        self.home = home or Path(tempfile.mkdtemp(prefix="fy-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db

    def start(self) -> float:
        """Start the server; seconds from spawn to the first /readyz 200."""
        env = {**os.environ, "FLOWYARD_ADMIN_PASSWORD": PASSWORD, "FLOWYARD_HOME": str(self.home)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure as installed by pip: with cached bytecode
        args = [sys.executable, "-m", "flowyard", "up", "--port", str(self.port), "--home", str(self.home)]
        if self.db:
            args += ["--db", self.db]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with httpx.Client() as c:
            while True:
                try:
                    if c.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                        return time.perf_counter() - t0
                except httpx.HTTPError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError("server exited")
                time.sleep(0.005)

    def token(self) -> str:
        r = httpx.post(f"{self.url}/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
        return r.json()["token"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
