"""Where the client finds its server and credentials: arguments, environment, saved login.

`flowyard login` saves `{"url", "token", "tokenId", "namespace", "verify"}` to
`$FLOWYARD_CONFIG` or `~/.config/flowyard/config.json`, readable only by its owner, since
it holds a bearer token.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from flowyard.errors import Invalid


@dataclass
class Saved:
    """A saved login."""

    url: str
    token: str
    namespace: str | None = None
    verify: bool | str = True
    tokenId: str | None = None  # noqa: N815 - the key as written in the file


def config_path() -> Path:
    """`$FLOWYARD_CONFIG`, else `~/.config/flowyard/config.json`."""
    env = os.environ.get("FLOWYARD_CONFIG")
    return Path(env).expanduser() if env else Path.home() / ".config" / "flowyard" / "config.json"


def load() -> Saved | None:
    """The saved login, or None when there is none."""
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise Invalid(f"cannot read {path}: {e}; run `flowyard login` again") from e
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not isinstance(data.get("token"), str):
        raise Invalid(f"{path} is not a Flowyard login: run `flowyard login` again")
    fields = Saved.__dataclass_fields__
    return Saved(**{k: v for k, v in data.items() if k in fields})


def save(saved: Saved) -> Path:
    """Write the login atomically with mode 0600 (its folder 0700); return the path."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".json")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(saved), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def forget() -> bool:
    """Remove the saved login; True if there was one."""
    try:
        config_path().unlink()
        return True
    except FileNotFoundError:
        return False
