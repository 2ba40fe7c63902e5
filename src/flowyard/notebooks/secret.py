"""The shared secret between the gateway and one notebook server.

Derived (HMAC of the platform's session key and the notebook's uid), so nothing secret is
stored in the notebook's status, and the gateway and the controller agree without talking.
Jupyter refuses any request that does not carry it, so the loopback port is useless to
other local processes.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Flowyard-Proxy-Secret"
USER_HEADER = "X-Flowyard-User"
ENV = "FLOWYARD_PROXY_SECRET"


def proxy_secret(session_key: bytes, uid: str) -> str:
    return hmac.new(session_key, f"notebook:{uid}".encode(), hashlib.sha256).hexdigest()
