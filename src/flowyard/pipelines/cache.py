"""KFP task caching: a finished task's outputs, found again by a key made of what it ran on.

The key (SHA-256) covers the component's input and output definitions, the executor's
container (image, command, args, env), the task's input parameter values, each input
artifact's type, metadata and content digest (not its uri, so equal data produced by two runs
hits), and `cachingOptions.cacheKey` when the user gave one. Entries are small JSON files in
the artifact store, `<ns>/.cache/<key>.json`, holding the outputs (artifacts by reference:
a hit reuses the producer's files, and an entry whose files are gone is a miss).
`clear(p, ns)` forgets a namespace's entries (`DELETE /api/v1/namespaces/{ns}/pipelinecache`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from flowyard.platform import Platform
from flowyard.store.resources import now

__all__ = ["cache_key", "lookup", "store", "clear", "digest"]

log = logging.getLogger(__name__)
_FULL_HASH_LIMIT = 256 * 1024 * 1024  # bigger files are identified by size + mtime


def _root(p: Platform, ns: str) -> Path | None:
    from fsspec.implementations.local import LocalFileSystem

    art = p.artifacts
    if art is None or not isinstance(art.fs, LocalFileSystem):
        return None
    return Path(art.root) / ns / ".cache"


def _file_digest(path: Path, h: Any) -> None:
    st = path.stat()
    if st.st_size > _FULL_HASH_LIMIT:
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        return
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)


def digest(uri: str) -> str:
    """Content digest of a local artifact (a file or a folder); '' when it does not exist."""
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
    h = hashlib.sha256()
    try:
        if path.is_file():
            _file_digest(path, h)
        elif path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in sorted(filenames):
                    f = Path(dirpath) / name
                    h.update(str(f.relative_to(path)).encode() + b"\0")
                    _file_digest(f, h)
        else:
            return ""
    except OSError:
        return ""
    return h.hexdigest()


def cache_key(component: dict[str, Any], executor: dict[str, Any], inputs: dict[str, Any],
              custom: str | None = None) -> str:
    container = executor.get("container") or {}
    arts = {}
    for name, items in sorted((inputs.get("artifacts") or {}).items()):
        arts[name] = [{"type": (a.get("type") or {}).get("schemaTitle"), "metadata": a.get("metadata") or {},
                       "digest": digest(a.get("uri", "")) or a.get("uri", "")} for a in items]
    material = {
        "inputDefinitions": component.get("inputDefinitions") or {},
        "outputDefinitions": component.get("outputDefinitions") or {},
        "container": {k: container.get(k) for k in ("image", "command", "args", "env")},
        "parameters": inputs.get("parameters") or {},
        "artifacts": arts,
        "cacheKey": custom or "",
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def lookup(p: Platform, ns: str, key: str) -> dict[str, Any] | None:
    """The cache entry for `key` (its outputs still on disk), or None."""
    root = _root(p, ns)
    if root is None:
        return None
    try:
        entry = json.loads((root / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    for items in ((entry.get("outputs") or {}).get("artifacts") or {}).values():
        for a in items:
            uri = a.get("uri", "")
            if not os.path.exists(uri[len("file://"):] if uri.startswith("file://") else uri):
                return None
    return entry


def store(p: Platform, ns: str, key: str, outputs: dict[str, Any], run: str, task: str) -> None:
    root = _root(p, ns)
    if root is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"key": key, "outputs": outputs, "run": run, "task": task, "createdAt": now()}))
        os.replace(tmp, root / f"{key}.json")
    except OSError as e:  # a cache that cannot be written only costs a re-run later
        log.warning("cannot write pipeline cache entry %s in %s: %s", key, ns, e)


def clear(p: Platform, ns: str) -> int:
    """Forget every cache entry of a namespace; how many there were."""
    root = _root(p, ns)
    if root is None or not root.is_dir():
        return 0
    n = 0
    for f in root.iterdir():
        if f.suffix in (".json", ".tmp"):
            try:
                f.unlink()
                n += f.suffix == ".json"
            except OSError:
                pass
    return n
