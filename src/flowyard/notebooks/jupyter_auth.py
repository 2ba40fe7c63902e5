"""Jupyter Server identity provider for notebook servers behind Flowyard's gateway.

This file runs inside the notebook's own environment, so it imports only the standard
library and jupyter_server, never flowyard: the controller copies it next to the server and
puts that folder on PYTHONPATH, then starts Jupyter with
`--ServerApp.identity_provider_class=flowyard_jupyter_auth.FlowyardIdentityProvider`.

A request is accepted only when it proves it comes from the platform:
- the gateway sends `X-Flowyard-Proxy-Secret: <secret>` and the user in `X-Flowyard-User`;
- the controller's probes send `Authorization: token <secret>`.
The secret comes from env `FLOWYARD_PROXY_SECRET`, read once at start and then removed from
the environment, so kernels and terminals do not inherit it. Comparisons are constant-time.
Neither way marks the request token-authenticated, so Jupyter's XSRF and Origin checks stay
on for browser traffic. There is no Jupyter token and no login page: anything else gets 403.
"""

from __future__ import annotations

import hmac
import os
import re
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Bool  # a dependency of jupyter_server

SECRET_ENV = "FLOWYARD_PROXY_SECRET"
SECRET_HEADER = "X-Flowyard-Proxy-Secret"
USER_HEADER = "X-Flowyard-User"
PROBE_USER = "flowyard-controller"
_TOKEN = re.compile(r"token\s+(\S+)\s*$", re.IGNORECASE)


def _same(given: str | None, secret: bytes) -> bool:
    """Constant-time equality of a header value with the secret (never true for an empty secret)."""
    if not given or not secret:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret)


class FlowyardIdentityProvider(IdentityProvider):
    """Trust the gateway's user header when the request carries the notebook's proxy secret."""

    need_token = Bool(False)  # no generated Jupyter token: users never see or need one

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._secret = os.environ.pop(SECRET_ENV, "").encode()
        if not self._secret:
            self.log.error("%s is not set: every request will be refused", SECRET_ENV)

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return False  # unauthenticated page requests get 403, not a login form

    @property
    def logout_available(self) -> bool:
        return False

    def get_user(self, handler: Any) -> User | None:
        headers = handler.request.headers
        if _same(headers.get(SECRET_HEADER), self._secret):
            name = (headers.get(USER_HEADER) or "").strip()
            return User(username=name, name=name, display_name=name) if name else None
        match = _TOKEN.match(headers.get("Authorization", ""))
        if match and _same(match.group(1), self._secret):
            return User(username=PROBE_USER, name=PROBE_USER, display_name=PROBE_USER)
        return None
