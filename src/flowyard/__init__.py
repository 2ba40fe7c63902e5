"""Flowyard: an MLOps platform in one process.

For programs: `flowyard.Client(url, token)` talks to a running platform (it reads
`FLOWYARD_URL` / `FLOWYARD_TOKEN`, or what `flowyard login` saved, when not given).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from flowyard.sdk import Client


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the server and the runner do not pay for the client.
    if name == "Client":
        from flowyard.sdk import Client

        return Client
    raise AttributeError(f"module 'flowyard' has no attribute {name!r}")
