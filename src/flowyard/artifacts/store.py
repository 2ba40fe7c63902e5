"""The artifact store: `<root>/<namespace>/<path>` on any fsspec filesystem.

Writes go to a temporary name under `<root>/.uploads/` and are moved into place only when
complete, so a crash never leaves a half-written artifact visible. Workloads that read or
write artifacts themselves get the full fsspec URL from `uri()` (never a server path).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import IO, Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from flowyard.errors import Conflict, Invalid, NotFound
from flowyard.store.resources import check_name

CHUNK = 1 << 20
"""Bytes per read/write when streaming."""
MAX_PATH = 1024
_UPLOADS = ".uploads"
_FORBIDDEN = set("\\*?[]") | {chr(c) for c in range(32)} | {"\x7f"}


def check_path(path: str, *, prefix: bool = False) -> str:
    """Return `path` if it is a safe relative artifact path, else raise `Invalid` saying what to fix.

    With `prefix=True` the empty string and a trailing '/' are allowed (a listing prefix).
    """
    what = "artifact prefix" if prefix else "artifact path"
    if not isinstance(path, str) or (not path and not prefix):
        raise Invalid(f"the {what} is empty: give a relative path such as 'models/model.pkl'")
    if len(path) > MAX_PATH:
        raise Invalid(f"the {what} is {len(path)} characters long: use at most {MAX_PATH}")
    if path.startswith("/"):
        raise Invalid(f"the {what} '{path}' is absolute: drop the leading '/' (paths are relative to the namespace)")
    bad = sorted({c for c in path if c in _FORBIDDEN})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise Invalid(f"the {what} contains {shown}: use '/' to separate folders and no backslashes, "
                      "wildcards ('*?[]') or control characters")
    parts = path.split("/")
    if prefix and parts[-1] == "":
        parts = parts[:-1]
    if any(p in ("", ".", "..") for p in parts):
        raise Invalid(f"the {what} '{path}' has an empty, '.' or '..' segment: "
                      "name each folder, e.g. 'runs/42/model.pkl'")
    return path


def _modified(info: dict[str, Any]) -> str | None:
    """The modification time of an fsspec `info` entry as ISO 8601 UTC (backends name it differently)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, timezone.utc).isoformat()
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).isoformat()
        if isinstance(value, str) and value:
            return value
    return None


class Upload:
    """One artifact being written: `write()` chunks, then `commit()` (atomic move) or `abort()`."""

    def __init__(self, store: ArtifactStore, final: str, path: str) -> None:
        self._store, self._final, self.path = store, final, path
        self._tmp = f"{store.root}/{_UPLOADS}/{secrets.token_hex(12)}"
        store.fs.makedirs(f"{store.root}/{_UPLOADS}", exist_ok=True)
        self._file: IO[bytes] | None = store.fs.open(self._tmp, "wb")
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append `chunk` to the temporary file."""
        assert self._file is not None, "upload already finished"
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self) -> dict[str, Any]:
        """Move the finished file into place; returns `{path, size, uri}`."""
        assert self._file is not None, "upload already finished"
        self._file.close()
        self._file = None
        fs, final = self._store.fs, self._final
        try:
            if fs.isdir(final):
                raise Conflict(f"'{self.path}' is a folder of artifacts: choose another name")
            if any(fs.isfile(folder) for folder in self._store._parents(final)):
                raise Conflict(f"a folder in '{self.path}' is already an artifact file: choose another path")
            fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            fs.mv(self._tmp, final)
        except BaseException:
            self._discard()
            raise
        return {"path": self.path, "size": self.size, "uri": fs.unstrip_protocol(final)}

    def abort(self) -> None:
        """Drop the temporary file; the artifact (if any) is left as it was."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
        self._discard()

    def _discard(self) -> None:
        try:
            self._store.fs.rm_file(self._tmp)
        except (FileNotFoundError, OSError):
            pass


class ArtifactStore:
    """Artifacts of every namespace under one fsspec URL (`file://...`, `s3://bucket/prefix`, `memory://`)."""

    def __init__(self, url: str) -> None:
        self.fs, root = url_to_fs(url)
        self.root = root.rstrip("/")
        self.url = self.fs.unstrip_protocol(self.root or "/")
        self.fs.makedirs(self.root or "/", exist_ok=True)

    # -- paths -------------------------------------------------------------------------------

    def _ns_root(self, ns: str) -> str:
        check_name(ns, "namespace", max_len=63)
        return f"{self.root}/{ns}"

    def _full(self, ns: str, path: str) -> str:
        return f"{self._ns_root(ns)}/{check_path(path)}"

    def _parents(self, full: str) -> Iterator[str]:
        """Folders strictly between the namespace root and `full` (deepest last)."""
        rel = full[len(self.root) + 1:].split("/")
        for i in range(2, len(rel)):
            yield f"{self.root}/{'/'.join(rel[:i])}"

    def _file_info(self, ns: str, path: str) -> dict[str, Any]:
        full = self._full(ns, path)
        try:
            info = self.fs.info(full)
        except (FileNotFoundError, NotADirectoryError):
            info = None
        if not info or info.get("type") != "file":
            raise NotFound(f"artifact '{path}' not found in namespace '{ns}'")
        return info

    def uri(self, ns: str, path: str) -> str:
        """The full fsspec URL of an artifact, for workloads that open it themselves."""
        return self.fs.unstrip_protocol(self._full(ns, path))

    # -- reading -----------------------------------------------------------------------------

    def exists(self, ns: str, path: str) -> bool:
        """Whether the artifact exists (a folder of artifacts does not count)."""
        return self.fs.isfile(self._full(ns, path))

    def size(self, ns: str, path: str) -> int:
        """The artifact's size in bytes; `NotFound` if missing."""
        return int(self._file_info(ns, path)["size"])

    def open_read(self, ns: str, path: str) -> IO[bytes]:
        """Open the artifact for reading (binary; the caller closes it); `NotFound` if missing."""
        full = self._full(ns, path)
        try:
            if self.fs.isfile(full):
                return self.fs.open(full, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            pass
        raise NotFound(f"artifact '{path}' not found in namespace '{ns}'")

    def list(self, ns: str, prefix: str = "") -> list[dict[str, Any]]:
        """Artifacts whose path starts with `prefix` (a plain string prefix, as in S3), sorted by path."""
        base = self._ns_root(ns)
        check_path(prefix, prefix=True)
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = f"{base}/{folder}" if folder else base
        try:
            found = self.fs.find(start, detail=True) if self.fs.isdir(start) else {}
        except (FileNotFoundError, NotADirectoryError):
            found = {}
        entries = []
        for full, info in found.items():
            rel = full[len(base) + 1:]
            if info.get("type") == "file" and rel.startswith(prefix):
                entries.append({"path": rel, "size": int(info.get("size") or 0), "modified": _modified(info)})
        return sorted(entries, key=lambda e: e["path"])

    # -- writing -----------------------------------------------------------------------------

    def begin(self, ns: str, path: str) -> Upload:
        """Start writing an artifact chunk by chunk (for async callers that feed it themselves)."""
        return Upload(self, self._full(ns, path), path)

    def write(self, ns: str, path: str, data: bytes | IO[bytes] | Iterable[bytes]) -> dict[str, Any]:
        """Write (or replace) an artifact from bytes, a binary file or an iterable of chunks; `{path, size, uri}`."""
        upload = self.begin(ns, path)
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                upload.write(bytes(data))
            elif hasattr(data, "read"):
                while chunk := data.read(CHUNK):  # type: ignore[union-attr]
                    upload.write(chunk)
            else:
                for chunk in data:
                    upload.write(chunk)
        except BaseException:
            upload.abort()
            raise
        return upload.commit()

    def delete(self, ns: str, path: str) -> None:
        """Delete an artifact; `NotFound` if missing. Empty local folders left behind are removed."""
        full = self._full(ns, path)
        self._file_info(ns, path)
        try:
            self.fs.rm_file(full)
        except FileNotFoundError:
            raise NotFound(f"artifact '{path}' not found in namespace '{ns}'") from None
        if isinstance(self.fs, LocalFileSystem):
            for folder in reversed(list(self._parents(full))):
                try:
                    os.rmdir(folder)
                except OSError:
                    break
