"""Namespaced `Secret` resources, encrypted at rest.

Values are Fernet-encrypted with a key kept in the home folder (`secrets.key`, mode 0600).
The API never returns a value; workloads get them as environment variables through
`valueFrom.secretKeyRef`, resolved by `reveal()` just before they start.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

from flowyard.errors import Invalid, NotFound
from flowyard.kinds import Kind, Manifest, register

REDACTED = "<redacted>"
_key_path: Path | None = None
_fernet: Any = None


def configure(home: Path) -> None:
    """Load (or create on first start) the encryption key in `home`."""
    global _key_path, _fernet
    _key_path, _fernet = home / "secrets.key", None
    if not _key_path.exists():
        fd = os.open(_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.urlsafe_b64encode(os.urandom(32)))


def _cipher() -> Any:
    """The Fernet cipher, made on first use (importing cryptography costs start-up time)."""
    global _fernet
    if _fernet is None:
        from cryptography.fernet import Fernet

        if _key_path is None:
            raise RuntimeError("vault.configure() was not called")
        _fernet = Fernet(_key_path.read_bytes().strip())
    return _fernet


def _secret_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    values: dict[str, bytes] = {}
    data, string_data = manifest.get("data") or {}, manifest.get("stringData") or {}
    if not isinstance(data, dict) or not isinstance(string_data, dict):
        raise Invalid("data and stringData must be maps of key to value")
    for key, value in data.items():
        try:
            values[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError) as e:
            raise Invalid(f"data.{key} must be base64; put plain text in stringData instead") from e
    for key, value in string_data.items():
        if not isinstance(value, str):
            raise Invalid(f"stringData.{key} must be a string")
        values[key] = value.encode()
    for key in values:
        if not key or not all(c.isalnum() or c in "-._" for c in key):
            raise Invalid(f"secret key '{key}' is invalid: use letters, digits, '-', '_' or '.'")
    previous = (old or {}).get("spec", {}).get("data", {})

    def encrypt(key: str, value: bytes) -> str:
        # Keep the stored ciphertext of an unchanged value, so re-applying is a no-op.
        if key in previous and _cipher().decrypt(previous[key].encode()) == value:
            return previous[key]
        return _cipher().encrypt(value).decode()

    return {"type": str(manifest.get("type") or "Opaque"), "data": {k: encrypt(k, v) for k, v in values.items()}}


def _present(manifest: Manifest) -> Manifest:
    spec = manifest.get("spec") or {}
    out = {k: v for k, v in manifest.items() if k not in ("spec", "status")}
    out["type"] = spec.get("type", "Opaque")
    out["data"] = {k: REDACTED for k in spec.get("data", {})}
    return out


SECRET = register(Kind("Secret", ("v1",), spec_from=_secret_spec, present=_present, min_read_role="edit"))


def reveal(secret: Manifest, key: str) -> str:
    """The plain value of `key` in a stored Secret (for injection into a workload only)."""
    token = (secret.get("spec") or {}).get("data", {}).get(key)
    if token is None:
        raise NotFound(f"secret '{secret['metadata']['name']}' has no key '{key}'")
    return _cipher().decrypt(token.encode()).decode()
