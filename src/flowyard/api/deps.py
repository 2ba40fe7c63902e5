"""Who is calling: bearer token or session cookie, with CSRF checks for cookie writes."""

from __future__ import annotations

from fastapi import Depends, Request
from starlette.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeSerializer

from flowyard.accounts import Principal
from flowyard.errors import Forbidden, Unauthorized
from flowyard.platform import Platform

SESSION_COOKIE = "flowyard_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = {"GET", "HEAD", "OPTIONS"}
# The dependencies are coroutines on purpose: FastAPI runs a plain `def` dependency in the
# thread pool, and that hop costs more than the cached lookups they do.
_bearer = HTTPBearer(auto_error=False, description="An API token from POST /api/v1/auth/token")


async def platform(request: Request) -> Platform:
    return request.app.state.platform


def sign_session(p: Platform, sid: str) -> str:
    return URLSafeSerializer(p.session_key, salt="session").dumps(sid)


def session_id(p: Platform, cookie: str) -> str | None:
    try:
        return str(URLSafeSerializer(p.session_key, salt="session").loads(cookie))
    except BadSignature:
        return None


def credentials(conn: HTTPConnection) -> Principal | None:
    """Who sent a request or WebSocket: bearer token, else session cookie; None when neither.

    Bad credentials raise. Cross-site checks (CSRF, Origin) are the caller's job, since HTTP
    API calls and proxied WebSockets need different ones; `who.session` tells a cookie login."""
    p: Platform = conn.app.state.platform
    auth = conn.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("use 'Authorization: Bearer <token>'")
        return p.accounts.authenticate_token(token.strip())
    cookie = conn.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    sid = session_id(p, cookie)
    if sid is None:
        raise Unauthorized("your session cookie is invalid: log in again")
    return p.accounts.authenticate_session(sid)


def optional_principal(request: Request) -> Principal | None:
    """The caller, or None when no credentials were sent (bad credentials still raise)."""
    who = credentials(request)
    if who is not None and who.session and request.method not in _SAFE \
            and request.headers.get(CSRF_HEADER) != who.csrf:
        raise Forbidden(f"missing or wrong {CSRF_HEADER} header for a cookie-authenticated change")
    return who


async def principal(request: Request, _: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    """The caller; 401 when anonymous."""
    who = optional_principal(request)
    if who is None:
        raise Unauthorized("log in first: send 'Authorization: Bearer <token>' (POST /api/v1/auth/token)")
    return who


async def admin(who: Principal = Depends(principal)) -> Principal:
    if not who.admin:
        raise Forbidden("this needs a platform administrator")
    return who
