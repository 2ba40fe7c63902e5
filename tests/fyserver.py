"""Real Flowyard servers for tests on free loopback ports, on SQLite or PostgreSQL.

`FLOWYARD_TEST_DB=postgresql` (or `--db postgresql`) runs every server on a fresh database
of the PostgreSQL at 127.0.0.1:5432 (CI has one, trust auth); the default is SQLite. Imported by conftest.py and by tests that need the helpers
(a module of its own, since several test folders have a `conftest`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ADMIN_PASSWORD = "admin-password-1"
PG_ADMIN_URL = os.environ.get("FLOWYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SHARED = Path(__file__).resolve().parents[2] / "shared"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_database() -> str:
    """A fresh PostgreSQL database for one server; its URL."""
    import psycopg

    name = f"flowyard_t_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Server:
    """A running `flowyard up` process and handy clients for it."""

    home: Path
    port: int
    db: str | None
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    scheme: str = "http"
    extra_args: list[str] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        args = [sys.executable, "-m", "flowyard", "up", "--port", str(self.port), "--home", str(self.home),
                *self.extra_args]
        if self.db:
            args += ["--db", self.db]
        self.log = open(self.home.parent / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.read_log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", verify=False, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout}s: {self.read_log()[-3000:]}")

    def read_log(self) -> str:
        return (self.home.parent / f"server-{self.port}.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def token(self, user: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        if user not in self._tokens:
            r = httpx.post(f"{self.url}/api/v1/auth/token", json={"username": user, "password": password},
                           verify=False)
            r.raise_for_status()
            self._tokens[user] = r.json()["token"]
        return self._tokens[user]

    def client(self, user: str | None = "admin", password: str = ADMIN_PASSWORD) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(user, password)}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, verify=False, timeout=30)

    def add_user(self, name: str, password: str | None = None, admin: bool = False, namespace: bool = True) -> str:
        password = password or f"{name}-password-1"
        with self.client() as c:
            r = c.post("/api/v1/users", json={"username": name, "password": password, "admin": admin,
                                              "namespace": namespace})
            assert r.status_code == 201, r.text
        self.token(name, password)
        return password


def make_server(tmp_path: Path, request: pytest.FixtureRequest, *extra: str) -> Iterator[Server]:
    db = _pg_database() if request.config.getoption("--db") == "postgresql" else None
    home = tmp_path / "home"
    env = {**os.environ, "FLOWYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, "FLOWYARD_HOME": str(home),
           "PYTHONUNBUFFERED": "1"}
    env.pop("FLOWYARD_URL", None)
    env.pop("FLOWYARD_TOKEN", None)
    server = Server(home=home, port=free_port(), db=db, env=env, extra_args=list(extra),
                    scheme="https" if "--tls" in extra else "http")
    try:
        server.start()
        yield server
    finally:  # also when the start failed: never leave a server process behind
        server.stop()
        if db:
            _drop_pg_database(db)


@contextlib.contextmanager
def serve_app(app: Any, port: int | None = None) -> Iterator[str]:
    """Run an ASGI `app` with uvicorn on a free loopback port in a thread (no lifespan); yields 'host:port'."""
    import threading

    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def require(condition: bool, what: str) -> None:
    """Skip locally when a tool is missing, but fail in CI (CI=true), where nothing may be skipped."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is required in CI")
        pytest.skip(f"{what} is not available")


def shared_mnist() -> Path:
    """The real MNIST test set shipped beside the project (`../shared/datasets/mnist`, or
    `$FLOWYARD_TEST_MNIST`): required in CI, a skip elsewhere when absent."""
    folder = Path(os.environ.get("FLOWYARD_TEST_MNIST") or Path(__file__).resolve().parents[2] / "shared/datasets/mnist")
    require((folder / "t10k-images-idx3-ubyte.gz").is_file(), f"the MNIST test data at {folder}")
    return folder.resolve()
