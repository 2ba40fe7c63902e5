"""The controller's view into a running notebook server: `/api/status` and `/api/kernels`.

Requests go straight to the executor's endpoint with `Authorization: token <proxy secret>`,
which the notebook's identity provider accepts. Neither call counts as user activity
(`/api/status` is not tracked; `/api/kernels` is asked with `no_track_activity=1`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

_clients: dict[int, httpx.AsyncClient] = {}


@dataclass(frozen=True)
class ServerStatus:
    """What `/api/status` says: the server's last activity (RFC 3339) and counts."""

    last_activity: str
    kernels: int
    connections: int


def _client() -> httpx.AsyncClient:
    """One pooled client per event loop (no proxies from the environment: this is loopback)."""
    loop = id(asyncio.get_running_loop())
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(3.0, connect=1.0))
    return client


async def _get(endpoint: str, base_url: str, path: str, secret: str) -> Any | None:
    try:
        r = await _client().get(f"http://{endpoint}{base_url}{path}",
                                headers={"Authorization": f"token {secret}"})
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    try:
        return r.json()
    except ValueError:
        return None


async def status(endpoint: str, base_url: str, secret: str) -> ServerStatus | None:
    """The server's status, or None while it does not answer 200."""
    data = await _get(endpoint, base_url, "api/status", secret)
    if not isinstance(data, dict):
        return None
    return ServerStatus(str(data.get("last_activity") or data.get("started") or ""),
                        int(data.get("kernels") or 0), int(data.get("connections") or 0))


async def busy_kernels(endpoint: str, base_url: str, secret: str) -> int | None:
    """How many kernels are executing right now (None when the server does not answer)."""
    data = await _get(endpoint, base_url, "api/kernels?no_track_activity=1", secret)
    if not isinstance(data, list):
        return None
    return sum(1 for k in data if isinstance(k, dict) and k.get("execution_state") == "busy")
