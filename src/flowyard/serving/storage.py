"""Where a model is: `storageUri` resolved (registry references) and fetched to a local folder.

A replica reads its model from a local directory. `file://` folders are used where they are;
a `file://` file (e.g. `.../model.joblib`) and every other fsspec URL are copied once into
`<home>/serving/cache/<hash of the URL>/`, written under a temporary name and renamed when
complete, so a crash never leaves a half-fetched model that looks whole.
`models:/<name>/<version-or-alias>` is resolved by the model registry (`flowyard.registry`),
imported lazily so serving works on a server without it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flowyard.errors import Invalid, NotFound

REGISTRY_SCHEME = "models:"


async def resolve(platform: Any, namespace: str, uri: str) -> tuple[str, str | None]:
    """(storage URI, model format or None): registry references resolved, others as they are."""
    if not uri.startswith(REGISTRY_SCHEME):
        return uri, None
    try:
        from flowyard.registry import resolve_model_uri
    except ImportError:
        raise Invalid(f"storageUri '{uri}' names a model-registry version, but this server has no model "
                      "registry: give a file:// or fsspec URL instead") from None
    return await asyncio.to_thread(resolve_model_uri, platform, namespace, uri)


def version_of(uri: str) -> str | None:
    """The version number in a `models:/<name>/<version>` reference (None for an alias or a URL)."""
    if uri.startswith(REGISTRY_SCHEME):
        last = uri.rstrip("/").rsplit("/", 1)[-1]
        return last if last.isdigit() else None
    return None


def _local(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(unquote(urlsplit(uri).path))
    return None


def fetch(cache: Path, uri: str) -> Path:
    """A local folder holding the model at `uri` (blocking: call it in a thread)."""
    local = _local(uri)
    if local is not None and local.is_dir():
        return local
    if local is not None and not local.exists():
        raise NotFound(f"storageUri '{uri}': no such file or folder on the server")
    target = cache / hashlib.sha256(uri.encode()).hexdigest()[:24]
    if (target / ".complete").exists():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if local is not None:
            shutil.copy2(local, tmp / local.name)
        else:
            _download(uri, tmp)
        (tmp / ".complete").write_text(uri)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _download(uri: str, into: Path) -> None:
    from fsspec.core import url_to_fs

    try:
        fs, path = url_to_fs(uri)
    except (ValueError, ImportError) as e:
        raise Invalid(f"storageUri '{uri}': cannot open it ({e})") from None
    try:
        if fs.isdir(path):
            fs.get(path.rstrip("/") + "/", str(into) + "/", recursive=True)
        elif fs.isfile(path):
            fs.get(path, str(into / path.rstrip("/").rsplit("/", 1)[-1]))
        else:
            raise NotFound(f"storageUri '{uri}': nothing there")
    except (NotFound, Invalid):
        raise
    except Exception as e:  # a remote store's own error: say which URI and why
        raise NotFound(f"storageUri '{uri}' could not be fetched: {type(e).__name__}: {e}") from None
