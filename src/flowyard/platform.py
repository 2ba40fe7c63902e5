"""The running platform: one object holding the parts every request and controller uses."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flowyard.accounts import Accounts
from flowyard.config import Settings
from flowyard.namespaces import Namespaces
from flowyard.store.db import connect, migrate
from flowyard.store.resources import ResourceStore

if TYPE_CHECKING:
    from flowyard.artifacts.store import ArtifactStore
    from flowyard.controllers.loop import Manager
    from flowyard.environments.builder import EnvironmentBuilder
    from flowyard.executor.local import LocalExecutor


def _key(path: Path, size: int = 32) -> bytes:
    """A random key kept in `path` (mode 0600), created on first use."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(size).encode())
    return path.read_bytes().strip()


@dataclass
class Platform:
    """Settings, store, accounts, namespaces; the executor and controllers once started."""

    settings: Settings
    store: ResourceStore
    accounts: Accounts
    namespaces: Namespaces
    session_key: bytes
    executor: LocalExecutor | None = None
    environments: EnvironmentBuilder | None = None
    controllers: Manager | None = None
    artifacts: ArtifactStore | None = None
    ready: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings) -> Platform:
        """Open the home folder and the database (migrating it) without starting anything."""
        from flowyard import vault

        settings.home.mkdir(parents=True, exist_ok=True)
        engine = connect(settings.db_url)
        migrate(engine)
        vault.configure(settings.home)
        return cls(
            settings=settings,
            store=ResourceStore(engine),
            accounts=Accounts(engine),
            namespaces=Namespaces(engine),
            session_key=_key(settings.home / "session.key"),
        )
