"""A streaming reverse proxy for HTTP and WebSockets, used by the gateway in front of
notebook servers (and model servers later).

Rules it keeps (see docs on jupyter_server behind a proxy):
- the browser's `Host` goes upstream unchanged, so the upstream's Origin and XSRF checks
  see the public address; for WebSockets the public host is put in the URI and the real
  address is given as `host=`/`port=` (a `Host` in extra headers would be sent twice);
- hop-by-hop headers (and those named in `Connection`) are dropped both ways; bodies are
  streamed both ways, raw (the response keeps its `Content-Encoding` and `Content-Length`);
- one shared `httpx.AsyncClient` per event loop: no read timeout (long polls, streams), a
  5 s connect timeout, no redirects followed, no cookie jar, no proxy from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy

import anyio
import httpx
import websockets
from websockets.uri import parse_uri
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from flowyard.errors import FlowyardError

log = logging.getLogger("flowyard.proxy")

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
# Request headers we never forward as they are (rebuilt by us or by the client library).
_REQUEST_OWN = frozenset({"expect", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
# Headers the websockets client writes itself during the handshake.
_WS_OWN = frozenset({"host", "origin", "user-agent", "content-length", "sec-websocket-key",
                     "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
                     "sec-websocket-accept"})
CONNECT_TIMEOUT = 5.0
WS_MAX_MESSAGE = 256 * 2**20


class BadGateway(FlowyardError):
    """The upstream server of a proxied request is not answering."""

    status = 502
    code = "BadGateway"


class Unavailable(FlowyardError):
    """The upstream of a proxied path exists but is not running (yet)."""

    status = 503
    code = "Unavailable"


# -- the shared client -------------------------------------------------------------------------

_client: httpx.AsyncClient | None = None
_client_loop: asyncio.AbstractEventLoop | None = None


def client() -> httpx.AsyncClient:
    """The shared upstream client of the running event loop (made on first use)."""
    global _client, _client_loop
    loop = asyncio.get_running_loop()
    if _client is None or _client_loop is not loop or _client.is_closed:
        # A client's pooled connections belong to one loop; a new loop (tests) gets a new client.
        _client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=CONNECT_TIMEOUT, read=None, write=None, pool=CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=30),
            follow_redirects=False,
            trust_env=False,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),  # stores nothing
        )
        _client_loop = loop
    return _client


async def close() -> None:
    """Close the shared client (at server shutdown)."""
    global _client, _client_loop
    current, _client = _client, None
    with contextlib.suppress(RuntimeError):
        if current is not None and _client_loop is asyncio.get_running_loop():
            await current.aclose()
    _client_loop = None


# -- headers -----------------------------------------------------------------------------------


def _connection_listed(raw: Iterable[tuple[str, str]]) -> set[str]:
    return {token.strip().lower() for k, v in raw if k == "connection" for token in v.split(",") if token.strip()}


def _without_cookies(value: str, names: set[str]) -> str:
    """A `Cookie` header value without the cookies called `names`."""
    kept = []
    for part in value.split(";"):
        name = part.split("=", 1)[0].strip()
        if name and name not in names:
            kept.append(part.strip())
    return "; ".join(kept)


def _set_cookie_name(value: str) -> str:
    return value.split("=", 1)[0].strip()


def request_headers(raw: Iterable[tuple[bytes, bytes]], *, add: Mapping[str, str], drop: Iterable[str],
                    drop_cookies: Iterable[str], skip: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """The headers to send upstream: hop-by-hop, `drop`, `skip` and replaced (`add`) ones removed,
    the named cookies taken out of `Cookie`, then `add` appended."""
    items = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
    gone = HOP_BY_HOP | _REQUEST_OWN | skip | _connection_listed(items) | {d.lower() for d in drop}
    gone |= {a.lower() for a in add}
    cookie_names = set(drop_cookies)
    out: list[tuple[str, str]] = []
    for k, v in items:
        if k in gone:
            continue
        if k == "cookie" and cookie_names:
            v = _without_cookies(v, cookie_names)
            if not v:
                continue
        out.append((k, v))
    out.extend(add.items())
    return out


def _forwarded(conn: Request | WebSocket) -> dict[str, str]:
    out = {"x-forwarded-proto": "https" if conn.url.scheme in ("https", "wss") else "http"}
    if conn.client:
        out["x-forwarded-for"] = conn.client.host
    if conn.headers.get("host"):
        out["x-forwarded-host"] = conn.headers["host"]
    return out


def response_headers(raw: Iterable[tuple[bytes, bytes]], drop_cookies: Iterable[str] = ()) -> list[tuple[bytes, bytes]]:
    """Upstream response headers to pass back: no hop-by-hop ones, no `Date` (ours is sent),
    and no `Set-Cookie` for a cookie called one of `drop_cookies` (the upstream must not
    overwrite the platform's own cookies). Repeated headers such as Set-Cookie stay repeated."""
    items = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
    gone = HOP_BY_HOP | {"date"} | _connection_listed(items)
    names = set(drop_cookies)
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in items
            if k not in gone and not (k == "set-cookie" and _set_cookie_name(v) in names)]


# -- HTTP --------------------------------------------------------------------------------------


class _UpstreamResponse(StreamingResponse):
    """Streams an upstream response's raw bytes and always closes it, even when the browser goes away."""

    def __init__(self, upstream: httpx.Response, headers: list[tuple[bytes, bytes]]) -> None:
        self._upstream = upstream
        super().__init__(upstream.aiter_raw(), status_code=upstream.status_code)
        self.raw_headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._upstream.aclose()


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def forward_http(request: Request, upstream: str, path: str, *, add_headers: Mapping[str, str] = {},
                       drop_headers: Iterable[str] = (), drop_cookies: Iterable[str] = (),
                       label: str | None = None) -> Response:
    """Send `request` to `http://{upstream}{path}` (plus its query string) and stream the answer back.

    `path` is sent as given (pass the raw, still percent-encoded path). `add_headers` replace
    any incoming headers of the same names; `drop_headers` and the cookies `drop_cookies` are
    not forwarded (and Set-Cookie for those cookies is not passed back). `label` names the
    upstream in errors. Raises `BadGateway` when the upstream cannot be reached.
    """
    drop_cookies = tuple(drop_cookies)
    headers = request_headers(request.headers.raw, add={**_forwarded(request), **add_headers}, drop=drop_headers,
                              drop_cookies=drop_cookies)
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = f"http://{upstream}{path}" + (f"?{query}" if query else "")
    length = request.headers.get("content-length")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    content: AsyncIterator[bytes] | bytes | None
    if chunked or (length not in (None, "0")):
        content = _body(request)
    else:
        content = b"" if length == "0" else None
    what = label or f"the upstream {upstream}"
    try:
        outgoing = httpx.Request(request.method, url, headers=headers, content=content)
        response = await client().send(outgoing, stream=True)
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening any more
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
        raise BadGateway(f"{what} is not answering (is it running?)") from e
    except httpx.HTTPError as e:
        raise BadGateway(f"{what} closed the connection without an answer ({type(e).__name__})") from e
    return _UpstreamResponse(response, response_headers(response.headers.raw, drop_cookies))


# -- WebSockets --------------------------------------------------------------------------------

_UNSENDABLE = {1004, 1005, 1006, 1015}


def _close_code(code: int | None, default: int) -> int:
    if code is None or code in _UNSENDABLE or not (1000 <= code <= 4999):
        return default
    return code


def _reason(text: str) -> str:
    data = text.encode()[:123]  # a close frame carries at most 123 bytes of reason
    return data.decode(errors="ignore")


def _ws_target(websocket: WebSocket, upstream: str, path: str) -> tuple[str, str, int]:
    """(URI with the browser's Host, upstream host, upstream port)."""
    host, _, port = upstream.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    public = websocket.headers.get("host") or upstream
    query = websocket.scope.get("query_string", b"").decode("latin-1")
    uri = f"ws://{public}{path}" + (f"?{query}" if query else "")
    try:
        parse_uri(uri)
    except Exception:
        uri = f"ws://{upstream}{path}" + (f"?{query}" if query else "")
    return uri, host, int(port)


async def deny_websocket(websocket: WebSocket, error: FlowyardError) -> None:
    """Refuse a WebSocket before accepting it; the handshake is answered 403 whatever the error.

    (An HTTP denial response with the error's status would tell programs more, but uvicorn
    logs an ERROR for each one, and a stopped notebook's open tab retries in a loop; browsers
    cannot read a refused handshake's status anyway.)
    """
    log.info("websocket %s refused: %s", websocket.url.path, error.message)
    await websocket.close(1008, _reason(error.message))


async def _refuse_after_accept(websocket: WebSocket, code: int, reason: str) -> None:
    offered = websocket.scope.get("subprotocols") or []
    # Browsers drop a socket accepted without one of their subprotocols before reading the close
    # reason, so the refusal is sent on the first one offered.
    await websocket.accept(subprotocol=offered[0] if offered else None)
    await websocket.close(code, _reason(reason))


async def forward_websocket(websocket: WebSocket, upstream: str, path: str, *, add_headers: Mapping[str, str] = {},
                            drop_headers: Iterable[str] = (), drop_cookies: Iterable[str] = (),
                            label: str | None = None) -> None:
    """Connect to `ws://{upstream}{path}?{query}` on behalf of `websocket` and relay frames both
    ways until one side closes, passing the close code on.

    The upstream sees the browser's Host, Origin, cookies (less `drop_cookies`) and other
    headers (less hop-by-hop and `drop_headers`, plus `add_headers`) and is offered the
    browser's subprotocols; the browser is accepted with the one the upstream chose. An
    upstream that refuses the handshake (HTTP 401/403/404) closes the browser's socket with
    1008, one that cannot be reached with 1011, each with a reason.
    """
    what = label or f"the upstream {upstream}"
    uri, host, port = _ws_target(websocket, upstream, path)
    headers = request_headers(websocket.headers.raw, add={**_forwarded(websocket), **add_headers},
                              drop=drop_headers, drop_cookies=drop_cookies, skip=_WS_OWN)
    subprotocols = websocket.scope.get("subprotocols") or None
    try:
        remote = await websockets.connect(
            uri, host=host, port=port, origin=websocket.headers.get("origin"),  # type: ignore[arg-type]
            subprotocols=subprotocols, additional_headers=headers,
            user_agent_header=websocket.headers.get("user-agent"), compression=None, proxy=None,
            open_timeout=CONNECT_TIMEOUT + 5, max_size=WS_MAX_MESSAGE, max_queue=64,
        )
    except websockets.InvalidStatus as e:
        status = e.response.status_code
        code = 1008 if status in (401, 403, 404) else 1011
        await _refuse_after_accept(websocket, code, f"{what} refused the WebSocket: HTTP {status}")
        return
    except (OSError, TimeoutError, websockets.InvalidHandshake) as e:
        log.info("websocket to %s failed: %s", upstream, e)
        await _refuse_after_accept(websocket, 1011, f"{what} is not answering (is it running?)")
        return

    try:
        await websocket.accept(subprotocol=remote.subprotocol)
    except Exception:
        await remote.close(1001)
        raise

    async def browser_to_upstream() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                await remote.close(_close_code(message.get("code"), 1001), _reason(message.get("reason") or ""))
                return
            if message.get("text") is not None:
                await remote.send(message["text"])
            elif message.get("bytes") is not None:
                await remote.send(message["bytes"])

    async def upstream_to_browser() -> None:
        try:
            while True:
                data = await remote.recv()
                if isinstance(data, str):
                    await websocket.send_text(data)
                else:
                    await websocket.send_bytes(data)
        except websockets.ConnectionClosed as e:
            if e.rcvd is not None:
                code, reason = _close_code(e.rcvd.code, 1000), e.rcvd.reason
            else:
                code, reason = 1011, f"{what} went away"
            if websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await websocket.close(code, _reason(reason))

    tasks = [asyncio.ensure_future(browser_to_upstream()), asyncio.ensure_future(upstream_to_browser())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done and not tasks[1].done() and isinstance(tasks[0].exception(), websockets.ConnectionClosed):
            # The upstream closed while we were sending: let the other side pass its close code on.
            await asyncio.wait([tasks[1]], timeout=2)
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, (WebSocketDisconnect, websockets.ConnectionClosed,
                                                            OSError, RuntimeError)):
                log.warning("websocket relay to %s failed: %r", upstream, error)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with anyio.CancelScope(shield=True):
            await remote.close(1001)
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(1001)


__all__ = ["BadGateway", "Unavailable", "close", "client", "deny_websocket", "forward_http", "forward_websocket",
           "request_headers", "response_headers", "HOP_BY_HOP"]
