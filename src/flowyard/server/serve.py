"""`flowyard up`: lock the home, prepare it on first start, and serve until a signal."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterator

import uvicorn

from flowyard.config import Settings
from flowyard.controllers.environment import ENVIRONMENT
from flowyard.errors import NotFound
from flowyard.namespaces import PROFILE
from flowyard.platform import Platform
from flowyard.server.app import create_app
from flowyard.server.lock import HomeLock


class _Server(uvicorn.Server):
    """uvicorn, but SIGINT/SIGTERM end in a clean exit 0 instead of being re-raised."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bootstrap(p: Platform) -> str | None:
    """On first start: the `admin` user (and their namespace) and the `default` environment.

    Returns the generated admin password when one was made (to be printed once)."""
    generated = None
    if not p.accounts.has_users():
        password = os.environ.get("FLOWYARD_ADMIN_PASSWORD")
        if not password:
            password = generated = secrets.token_urlsafe(12)
        p.accounts.add_user("admin", password, admin=True)
        if not p.namespaces.exists("admin"):
            p.store.create(PROFILE, "", {"metadata": {"name": "admin"}, "spec": {"owner": {"name": "admin"}}})
        p.namespaces.set_member("admin", "admin", "admin")
    try:
        p.store.get(ENVIRONMENT, "", "default")
    except NotFound:
        p.store.create(ENVIRONMENT, "", {"metadata": {"name": "default", "annotations": {
            "flowyard.io/description": "the platform's own Python interpreter"}}, "spec": {"requirements": []}})
    return generated


def serve(settings: Settings) -> None:
    """Run the server in this process until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings.home.mkdir(parents=True, exist_ok=True)
    lock = HomeLock(settings.home)
    lock.acquire(settings.url)
    try:
        p = Platform.open(settings)
        generated = bootstrap(p)
        ssl: dict = {}
        if settings.tls or settings.cert:
            from flowyard.server.tls import ensure_certificate

            cert, key = (settings.cert, settings.key) if settings.cert else ensure_certificate(settings.home, settings.host)
            ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        print(f"Flowyard is starting at {settings.url}  (home {settings.home})", flush=True)
        if generated:
            print(f"First start: created user 'admin' with password {generated}\n"
                  "  (shown only this once; change it with `flowyard user passwd admin`)", flush=True)
        config = uvicorn.Config(create_app(p), host=settings.host, port=settings.port, log_level="warning",
                                access_log=False, lifespan="on", server_header=False, **ssl)
        _Server(config).run()
        print("Flowyard stopped", flush=True)
    finally:
        lock.release()
    sys.stdout.flush()
