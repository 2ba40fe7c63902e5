"""Settings of one Flowyard server, read from flags and `FLOWYARD_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_home() -> Path:
    """`$FLOWYARD_HOME`, else `~/.flowyard`."""
    return Path(os.environ.get("FLOWYARD_HOME") or Path.home() / ".flowyard").expanduser()


@dataclass
class Settings:
    """Everything `flowyard up` can be told."""

    home: Path = field(default_factory=default_home)
    """Folder for the database, artifacts, logs, environments, keys and the lock."""
    host: str = "127.0.0.1"
    port: int = 8080
    db: str | None = None
    """SQLAlchemy URL; default SQLite (WAL) at `<home>/flowyard.db`."""
    artifacts: str | None = None
    """fsspec URL of the artifact store; default `file://<home>/artifacts`."""
    tls: bool = False
    cert: Path | None = None
    key: Path | None = None
    keep_workloads: bool = False
    """On shutdown leave workloads running, to be re-adopted at the next start."""
    resync_seconds: float = 10.0
    """How often controllers re-reconcile every object even without a change."""

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().resolve()

    @property
    def db_url(self) -> str:
        url = self.db or os.environ.get("FLOWYARD_DB") or f"sqlite:///{self.home / 'flowyard.db'}"
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        return url

    @property
    def artifacts_url(self) -> str:
        return self.artifacts or os.environ.get("FLOWYARD_ARTIFACTS") or f"file://{self.home / 'artifacts'}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls or self.cert else "http"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{self.scheme}://{host}:{self.port}"
