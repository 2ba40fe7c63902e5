"""`Environment`: a named Python environment, the local analogue of a container image.

Cluster-scoped, so one build serves every namespace. Builds run in the background; the
builder caches by content hash, so two environments with the same requirements share one
virtualenv. `default` is the platform's own interpreter and always exists.
"""

from __future__ import annotations

import asyncio
import copy
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from flowyard.controllers.loop import Controller
from flowyard.environments.builder import EnvironmentBuildError
from flowyard.errors import Invalid, NotFound
from flowyard.executor.logfile import stream_log
from flowyard.kinds import Kind, Manifest, register
from flowyard.platform import Platform
from flowyard.status import set_condition

_builds: dict[str, asyncio.Task[Path]] = {}


def _requirements(spec: dict[str, Any]) -> list[str]:
    reqs = spec.get("requirements") or []
    if isinstance(reqs, str):
        reqs = reqs.splitlines()
    return [r.strip() for r in reqs if r.strip() and not r.strip().startswith("#")]


def _env_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = dict(manifest.get("spec") or {})
    reqs = spec.get("requirements", [])
    if not isinstance(reqs, (list, str)) or (isinstance(reqs, list) and not all(isinstance(r, str) for r in reqs)):
        raise Invalid("spec.requirements must be a list of requirement lines (as in requirements.txt)")
    spec["requirements"] = _requirements(spec)
    if spec.get("python") is not None and not isinstance(spec["python"], str):
        raise Invalid("spec.python must be a Python version or interpreter path, e.g. '3.11'")
    if not isinstance(spec.get("systemSitePackages", True), bool):
        raise Invalid("spec.systemSitePackages must be true or false")
    return spec


ENVIRONMENT = register(Kind("Environment", ("flowyard.io/v1",), namespaced=False, spec_from=_env_spec))


def _hash(p: Platform, spec: dict[str, Any]) -> str:
    assert p.environments is not None
    return p.environments.spec_hash(spec["requirements"], spec.get("python"), spec.get("systemSitePackages", True))


def log_path(p: Platform, digest: str) -> Path:
    assert p.environments is not None
    return p.environments.root / f"{digest}.log"


def bin_dir(p: Platform, name: str) -> Path:
    """The bin folder of a built environment (what the executor puts first on PATH)."""
    if name == "default":
        return Path(sys.executable).parent
    assert p.environments is not None
    status = p.store.get(ENVIRONMENT, "", name).get("status") or {}
    if status.get("phase") != "Ready":
        raise NotFound(f"environment '{name}' is not ready")
    return p.environments.bin_dir(status["hash"])


def _ready(st: dict[str, Any], message: str) -> dict[str, Any]:
    st.update(phase="Ready", message=message)
    set_condition(st, "Ready", True, "Built", message)
    return st


async def reconcile(p: Platform, obj: Manifest) -> dict[str, Any]:
    assert p.environments is not None
    name, spec = obj["metadata"]["name"], obj["spec"]
    st = copy.deepcopy(obj["status"]) or {}
    if name == "default":
        st["python"] = sys.executable
        return _ready(st, "the platform's own interpreter")
    digest = _hash(p, spec)
    if st.get("hash") != digest:
        st.update(hash=digest, phase="Pending", message="")
    task = _builds.get(name)
    if task is not None and task.done():
        _builds.pop(name)
        try:
            task.result()
        except EnvironmentBuildError as e:
            st.update(phase="Failed", message=str(e))
            set_condition(st, "Ready", False, "BuildFailed", str(e))
            p.store.record_event(obj, "BuildFailed", str(e), "Warning")
            return st
    if p.environments.is_built(digest):
        if st.get("phase") != "Ready":
            p.store.record_event(obj, "Built", f"environment ready ({len(spec['requirements'])} requirements)")
        return _ready(st, f"{len(spec['requirements'])} requirements installed")
    if st.get("phase") == "Failed" and task is None:
        return st
    if name not in _builds:
        _builds[name] = asyncio.create_task(_build(p, name, spec, digest))
        p.store.record_event(obj, "Building", "building the virtualenv; follow with `flowyard logs environment "
                             f"{name} -f`")
    st.update(phase="Building", message="installing requirements")
    set_condition(st, "Ready", False, "Building", "installing requirements")
    return st


async def _build(p: Platform, name: str, spec: dict[str, Any], digest: str) -> Path:
    assert p.environments is not None and p.controllers is not None
    try:
        return await p.environments.build(spec["requirements"], spec.get("python"),
                                          spec.get("systemSitePackages", True), log_path=log_path(p, digest))
    finally:
        p.controllers.enqueue("Environment", "", name)


async def logs(p: Platform, obj: Manifest, follow: bool, tail: int | None) -> AsyncIterator[bytes]:
    digest = (obj.get("status") or {}).get("hash")
    if not digest:
        raise NotFound(f"environment '{obj['metadata']['name']}' has no build log")
    name = obj["metadata"]["name"]
    return stream_log(log_path(p, digest), lambda: name not in _builds, follow=follow, tail=tail)


CONTROLLER = Controller(ENVIRONMENT, reconcile)
