"""Building named Python environments: the local analogue of container images.

An environment is a virtualenv built from a requirements list. It is stored under the hash
of its content (normalised requirements, Python version, system-site-packages flag), so the
same content is built once and shared by every name and namespace that asks for it. Builds
use `uv` when it is available (seconds) and `venv` + `pip` otherwise; their output goes to a
log file while they run. A `.ready` marker, written last, tells a finished environment from
one a crash interrupted (which is wiped and rebuilt).

Note: a requirement that is a local path is hashed by its text, not its files; change the
path (or add a version) to force a rebuild.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import site
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Literal

__all__ = ["EnvironmentBuilder", "EnvironmentBuildError", "normalize_requirements"]

_READY = ".ready"
_TAIL_LINES = 15
Installer = Literal["auto", "uv", "pip"]


class EnvironmentBuildError(Exception):
    """Building an environment failed; the message ends with the last lines of its log."""


def normalize_requirements(requirements: Iterable[str]) -> list[str]:
    """Stripped, de-duplicated, sorted requirement lines without blanks and comments."""
    lines = set()
    for requirement in requirements:
        line = requirement.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.add(line)
    return sorted(lines)


class EnvironmentBuilder:
    """Builds and caches virtualenvs under `root/<hash>/`.

    `installer` chooses the tool: "auto" (uv if found, else pip), "uv" or "pip".
    """

    def __init__(self, root: Path, *, installer: Installer = "auto") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._uv = _find_uv() if installer in ("auto", "uv") else None
        if installer == "uv" and self._uv is None:
            raise EnvironmentBuildError("uv was requested but is not installed")
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def installer(self) -> str:
        """ "uv" or "pip": what builds use."""
        return "uv" if self._uv else "pip"

    def spec_hash(
        self, requirements: Sequence[str], python: str | None = None,
        system_site_packages: bool = True,
    ) -> str:
        """Content hash naming the environment: same content, same hash, one build."""
        content = {
            "requirements": normalize_requirements(requirements),
            "python": python or ".".join(map(str, sys.version_info[:3])),
            "system_site_packages": bool(system_site_packages),
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:24]

    def path_for(self, env_hash: str) -> Path:
        return self.root / env_hash

    def bin_dir(self, env_hash: str) -> Path:
        """Directory with the environment's `python`; what an executor puts first on PATH."""
        return self.path_for(env_hash) / "bin"

    def is_built(self, env_hash: str) -> bool:
        return (self.path_for(env_hash) / _READY).is_file()

    def delete(self, env_hash: str) -> None:
        """Remove an environment (do not call while workloads use it)."""
        shutil.rmtree(self.path_for(env_hash), ignore_errors=True)

    async def build(
        self,
        requirements: Sequence[str],
        python: str | None = None,
        system_site_packages: bool = True,
        *,
        log_path: Path | None = None,
    ) -> Path:
        """Build the environment unless already built; return its directory.

        Output is appended to `log_path` (default `root/<hash>.log`) as it happens.
        Concurrent builds of the same content wait for the first. Raises
        `EnvironmentBuildError` with the log's tail on failure.
        """
        env_hash = self.spec_hash(requirements, python, system_site_packages)
        path = self.path_for(env_hash)
        log_path = Path(log_path) if log_path else self.root / f"{env_hash}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        lock = self._locks.setdefault(env_hash, asyncio.Lock())
        async with lock:
            with open(log_path, "ab") as log:
                if self.is_built(env_hash):
                    _note(log, f"environment {env_hash} is already built at {path}")
                    return path
                if path.exists():
                    _note(log, f"removing incomplete build at {path}")
                    shutil.rmtree(path)
                started = time.monotonic()
                _note(log, f"building environment {env_hash} with {self.installer} in {path}")
                try:
                    await self._build(path, normalize_requirements(requirements), python,
                                      system_site_packages, log, log_path)
                except BaseException:
                    shutil.rmtree(path, ignore_errors=True)
                    raise
                (path / _READY).write_text(env_hash + "\n")
                _note(log, f"environment ready in {time.monotonic() - started:.1f} s")
        return path

    async def _build(
        self, path: Path, requirements: list[str], python: str | None,
        system_site_packages: bool, log: IO[bytes], log_path: Path,
    ) -> None:
        interpreter = python or sys.executable
        flag = ["--system-site-packages"] if system_site_packages else []
        venv_python = str(path / "bin" / "python")
        if self._uv:
            await _run([*self._uv, "venv", *flag, "--python", interpreter, str(path)],
                       log, log_path, self.root)
        else:
            await _run([_resolve_python(interpreter), "-m", "venv", *flag, str(path)],
                       log, log_path, self.root)
        if system_site_packages and python is None:
            _link_platform_packages(path)
        if not requirements:
            return
        req_file = path / "requirements.txt"
        req_file.write_text("\n".join(requirements) + "\n")
        if self._uv:
            install = [*self._uv, "pip", "install", "--python", venv_python, "-r", str(req_file)]
        else:
            install = [venv_python, "-m", "pip", "install", "--disable-pip-version-check",
                       "--no-input", "-r", str(req_file)]
        await _run(install, log, log_path, self.root)


def _find_uv() -> list[str] | None:
    found = shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable))
    if found:
        return [found]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    return None


def _resolve_python(python: str) -> str:
    """A path, or a version like "3.11" looked up as `python3.11` on PATH."""
    if os.sep in python:
        return python
    found = shutil.which(python) or shutil.which(f"python{python}")
    if not found:
        raise EnvironmentBuildError(f"no Python interpreter {python!r} found on PATH")
    return found


def _link_platform_packages(path: Path) -> None:
    """Let an environment see the platform's own packages (flowyard, its SDK deps).

    When the platform runs in a virtualenv, --system-site-packages only reaches the *base*
    interpreter's packages, so add the platform's site-packages after the environment's own
    (which therefore take precedence).
    """
    if sys.prefix == sys.base_prefix:
        return
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site_dir = path / "lib" / version / "site-packages"
    if site_dir.is_dir():
        # addsitedir (not a bare path) so the platform's own .pth files (editable installs)
        # are processed too.
        lines = [f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()]
        (site_dir / "_flowyard_platform.pth").write_text("\n".join(lines) + "\n")


def _note(log: IO[bytes], message: str) -> None:
    log.write(f"[flowyard] {message}\n".encode())
    log.flush()


async def _run(command: list[str], log: IO[bytes], log_path: Path, cwd: Path) -> None:
    _note(log, "$ " + shlex.join(command))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=cwd, env=env,
        )
    except OSError as exc:
        raise EnvironmentBuildError(f"cannot run {command[0]}: {exc}") from None
    try:
        code = await proc.wait()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    if code != 0:
        log.flush()
        with open(log_path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 16384))
            lines = fh.read().decode("utf-8", "replace").splitlines()[-_TAIL_LINES:]
        raise EnvironmentBuildError(
            f"{shlex.join(command[:3])} ... failed with exit code {code}; last log lines:\n"
            + "\n".join(lines)
        )
