"""The gateway to notebook servers: `/notebook/<namespace>/<name>/…`, HTTP and WebSockets.

Every request is authenticated (session cookie or bearer token) and authorised: running
code needs the `edit` role in the namespace, so viewers are refused here, before Jupyter.
The request then goes to the notebook's `status.endpoint` with the caller's name and the
notebook's proxy secret (`flowyard.notebooks.secret`) added, and with the platform's own
credentials (session cookie, Authorization, CSRF header) taken out: the notebook server,
which runs user code, never sees them. The path is forwarded unchanged, since Jupyter runs
with base_url `/notebook/<ns>/<name>/`; Jupyter keeps its own XSRF and Origin checks.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.websockets import WebSocket

from flowyard import kinds
from flowyard.accounts import Principal
from flowyard.api.deps import CSRF_HEADER, SESSION_COOKIE, credentials
from flowyard.errors import FlowyardError, Forbidden, Unauthorized
from flowyard.kinds import Manifest
from flowyard.notebooks.secret import HEADER, USER_HEADER, proxy_secret
from flowyard.platform import Platform
from flowyard.server import proxy

PREFIX = "/notebook"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_DROP_HEADERS = ("authorization", CSRF_HEADER, HEADER, USER_HEADER)
_DROP_COOKIES = (SESSION_COOKIE,)
_SAFE = {"GET", "HEAD", "OPTIONS"}
ACTIVITY = "notebook_activity"
"""Key in `Platform.extra`: {(namespace, name): time.time() of the last proxied request}."""


def base_url(namespace: str, name: str) -> str:
    """The path prefix of a notebook; Jupyter's `ServerApp.base_url`."""
    return f"{PREFIX}/{namespace}/{name}/"


def last_activity(p: Platform, namespace: str, name: str) -> float | None:
    """When the gateway last passed a request to this notebook (epoch seconds), if it did."""
    return p.extra.get(ACTIVITY, {}).get((namespace, name))


def _same_origin(origin: str, host: str) -> bool:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    default = ":443" if parts.scheme == "https" else ":80"
    a = parts.netloc.lower().removesuffix(default)
    b = host.lower().removesuffix(default)
    return a == b


def _caller(conn: HTTPConnection, websocket: bool) -> Principal | None:
    """The caller by bearer token or session cookie; None when anonymous."""
    who = credentials(conn)
    if who is None or not who.session:
        return who
    # A cookie is sent by the browser whatever page opened the connection: refuse other sites.
    # (Jupyter's XSRF check covers cookie-authenticated writes over HTTP; WebSockets have none.)
    origin = conn.headers.get("origin")
    method = "GET" if websocket else conn.scope.get("method", "GET")
    checked = websocket or (method not in _SAFE and origin)
    if checked and not (origin and _same_origin(origin, conn.headers.get("host", ""))):
        raise Forbidden("cross-origin request refused: open the notebook from this site")
    return who


def _authorise(p: Platform, who: Principal, namespace: str) -> None:
    try:
        p.namespaces.require(who, namespace, "edit")
    except Forbidden:
        held = p.namespaces.roles_of(who.user).get(namespace)
        if held == "view" and not who.token_namespace:
            raise Forbidden(f"you have the 'view' role in namespace '{namespace}': viewers cannot execute code "
                            "in notebooks; ask a namespace admin for the 'edit' role") from None
        raise


def _target(p: Platform, namespace: str, name: str) -> tuple[str, Manifest]:
    """The notebook's upstream address ('127.0.0.1:PORT') and the object; 503 unless it is running."""
    obj = p.store.get(kinds.lookup("Notebook"), namespace, name)
    status = obj.get("status") or {}
    endpoint, phase = status.get("endpoint"), status.get("phase") or "Pending"
    if phase != "Running" or not endpoint:
        if phase in ("Pending", "Starting", "Waiting"):
            raise proxy.Unavailable(f"notebook '{name}' is starting (phase {phase}): try again in a few seconds",
                                    retry_after=2)
        raise proxy.Unavailable(f"notebook '{name}' is not running (phase {phase}): start it first")
    return str(endpoint), obj


def _prepare(conn: HTTPConnection, who: Principal) -> tuple[str, str, dict[str, str], str]:
    """(upstream, raw path, headers to add, label) after authorising `who` for the notebook."""
    p: Platform = conn.app.state.platform
    namespace, name = conn.path_params["namespace"], conn.path_params["name"]
    _authorise(p, who, namespace)
    upstream, obj = _target(p, namespace, name)
    p.extra.setdefault(ACTIVITY, {})[(namespace, name)] = time.time()
    add = {USER_HEADER: who.user, HEADER: proxy_secret(p.session_key, obj["metadata"]["uid"])}
    raw_path = conn.scope.get("raw_path") or conn.url.path.encode()
    return upstream, raw_path.decode("latin-1"), add, f"notebook '{name}'"


def _wants_html(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


async def http(request: Request) -> Response:
    if "path" not in request.path_params and request.method in ("GET", "HEAD"):
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(request.url.path + "/" + query, status_code=307)
    try:
        who = _caller(request, websocket=False)
    except Unauthorized:
        if _wants_html(request):
            return _login_redirect(request)
        raise
    if who is None:
        if _wants_html(request):
            return _login_redirect(request)
        raise Unauthorized("log in first, or send 'Authorization: Bearer <token>'")
    upstream, path, add, label = _prepare(request, who)
    return await proxy.forward_http(request, upstream, path, add_headers=add, drop_headers=_DROP_HEADERS,
                                    drop_cookies=_DROP_COOKIES, label=label)


async def websocket(ws: WebSocket) -> None:
    try:
        who = _caller(ws, websocket=True)
        if who is None:
            raise Unauthorized("log in first: the WebSocket carried no session cookie or bearer token")
        upstream, path, add, label = _prepare(ws, who)
    except FlowyardError as e:
        await proxy.deny_websocket(ws, e)
        return
    await proxy.forward_websocket(ws, upstream, path, add_headers=add, drop_headers=_DROP_HEADERS,
                                  drop_cookies=_DROP_COOKIES, label=label)


def install(app: FastAPI) -> None:
    """Add the notebook gateway's routes to `app`."""
    for path in (PREFIX + "/{namespace}/{name}", PREFIX + "/{namespace}/{name}/{path:path}"):
        app.add_api_route(path, http, methods=METHODS, include_in_schema=False)
        app.add_api_websocket_route(path, websocket)
