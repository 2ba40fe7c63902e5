"""The generic streaming reverse proxy (`flowyard.server.proxy`) against a throwaway upstream.

Both the upstream and the proxy are real uvicorn servers on free loopback ports (in threads),
driven by httpx and the `websockets` client.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import threading
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest
import websockets
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from flowyard.api import errors
from flowyard.server import proxy
from fyserver import free_port, serve_app

SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
BIG = 20 * 2**20
CHUNK = 2**20


serve = serve_app


def pattern(size: int) -> Iterator[bytes]:
    """`size` deterministic bytes in 1 MiB chunks."""
    block = hashlib.sha256(b"flowyard").digest() * (CHUNK // 32)
    sent = 0
    i = 0
    while sent < size:
        piece = bytes([i % 251]) + block[1:]
        piece = piece[: size - sent]
        sent += len(piece)
        i += 1
        yield piece


# -- the throwaway upstream ------------------------------------------------------------------


class Upstream:
    """State shared between the test and the upstream app."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closes: list[tuple[int, str]] = []
        self.ws_headers: dict[str, str] = {}

    def app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            body = await request.body()
            return JSONResponse({
                "method": request.method,
                "path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "headers": [[k.decode(), v.decode()] for k, v in request.headers.raw],
                "body": body.decode(errors="replace"),
            })

        async def big(request: Request) -> Response:
            size = int(request.query_params.get("size", BIG))
            return StreamingResponse(iter(pattern(size)), headers={"content-length": str(size)},
                                     media_type="application/octet-stream")

        async def held(request: Request) -> Response:
            async def body():  # type: ignore[no-untyped-def]
                yield b"first;"
                released = await anyio.to_thread.run_sync(self.release.wait, 10)
                yield b"second" if released else b"never-released"

            return StreamingResponse(body(), media_type="text/plain")

        async def upload(request: Request) -> Response:
            digest, size, chunks = hashlib.sha256(), 0, 0
            async for chunk in request.stream():
                if chunk:
                    digest.update(chunk)
                    size += len(chunk)
                    chunks += 1
            return JSONResponse({"sha256": digest.hexdigest(), "size": size, "chunks": chunks,
                                 "transfer-encoding": request.headers.get("transfer-encoding"),
                                 "content-length": request.headers.get("content-length")})

        async def cookies(request: Request) -> Response:
            response = Response("two cookies")
            response.set_cookie("a", "1", path="/")
            response.set_cookie("b", "2", path="/x")
            response.set_cookie("flowyard_session", "evil", path="/")
            return response

        async def gzipped(request: Request) -> Response:
            data = gzip.compress(b"hello " * 1000)
            return Response(data, headers={"content-encoding": "gzip", "content-type": "text/plain"})

        async def redirect(request: Request) -> Response:
            return Response(status_code=302, headers={"location": "/elsewhere"})

        async def ws_echo(websocket: WebSocket) -> None:
            self.ws_headers = dict(websocket.headers)
            offered = websocket.scope.get("subprotocols") or []
            await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    self.closes.append((message.get("code"), message.get("reason") or ""))
                    return
                if message.get("text") is not None:
                    text = message["text"]
                    if text.startswith("close:"):
                        await websocket.close(int(text[6:]), "closed by upstream")
                        return
                    if text == "headers":
                        await websocket.send_text(json.dumps({**dict(websocket.headers),
                                                              "_query": websocket.url.query}))
                        continue
                    await websocket.send_text(text)
                else:
                    await websocket.send_bytes(message["bytes"])

        async def ws_refuse(websocket: WebSocket) -> None:
            await websocket.close(1008)  # before accept: an HTTP 403 answer to the handshake

        return Starlette(routes=[
            Route("/echo/{path:path}", echo, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
            Route("/big", big), Route("/held", held), Route("/upload", upload, methods=["POST", "PUT"]),
            Route("/cookies", cookies), Route("/gzip", gzipped), Route("/redirect", redirect),
            WebSocketRoute("/ws/echo", ws_echo), WebSocketRoute("/ws/refuse", ws_refuse),
        ])


def proxy_app(upstream: str, dead: str) -> FastAPI:
    """Mounts the proxy: /p/… → upstream, /down/… → a port where nothing listens."""
    app = FastAPI()
    errors.install(app)

    def target(conn: Request | WebSocket) -> tuple[str, str]:
        raw = conn.scope["raw_path"].decode("latin-1")
        prefix, rest = raw[1:].split("/", 1)
        return (dead if prefix == "down" else upstream), "/" + rest

    async def http(request: Request) -> Response:
        where, path = target(request)
        return await proxy.forward_http(request, where, path, add_headers={"X-Added": "yes"},
                                        drop_headers=["X-Secret"], drop_cookies=["flowyard_session"])

    async def ws(websocket: WebSocket) -> None:
        where, path = target(websocket)
        await proxy.forward_websocket(websocket, where, path, add_headers={"X-Added": "yes"},
                                      drop_cookies=["flowyard_session"])

    for prefix in ("/p", "/down"):
        app.add_api_route(prefix + "/{path:path}", http, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
        app.add_api_websocket_route(prefix + "/{path:path}", ws)
    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    state = Upstream()
    with serve(state.app()) as address:
        state.address = address  # type: ignore[attr-defined]
        yield state


@pytest.fixture(scope="module")
def base(upstream: Upstream) -> Iterator[str]:
    with serve(proxy_app(upstream.address, f"127.0.0.1:{free_port()}")) as address:  # type: ignore[attr-defined]
        yield address


@pytest.fixture
def http(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{base}", timeout=30, trust_env=False) as c:
        yield c


# -- HTTP ---------------------------------------------------------------------------------------


def test_echo_method_path_query_headers_body(http: httpx.Client, base: str) -> None:
    r = http.request("PATCH", "/p/echo/a%20b/c%2Fd", params={"x": "1 2", "y": "ü"}, content=b"payload",
                     headers={"X-Custom": "kept", "X-Secret": "dropped", "X-Added": "spoofed",
                              "Connection": "keep-alive, X-Hop", "X-Hop": "hop",
                              "Cookie": "a=1; flowyard_session=s; b=2"})
    assert r.status_code == 200, r.text
    seen = r.json()
    headers: dict[str, list[str]] = {}
    for k, v in seen["headers"]:
        headers.setdefault(k, []).append(v)
    assert seen["method"] == "PATCH"
    assert seen["path"] == "/echo/a%20b/c%2Fd"
    assert seen["query"] == "x=1+2&y=%C3%BC"
    assert seen["body"] == "payload"
    assert headers["host"] == [base]  # the browser's Host, not the upstream's
    assert headers["x-custom"] == ["kept"]
    assert headers["x-added"] == ["yes"]
    assert headers["content-length"] == ["7"]
    assert headers["cookie"] == ["a=1; b=2"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    for gone in ("x-secret", "x-hop", "transfer-encoding"):
        assert gone not in headers
    assert "accept-encoding" in headers  # httpx's default, sent by the test client itself


def test_no_client_defaults_are_added(base: str) -> None:
    """The proxy adds no Accept-Encoding of its own (the upstream must not compress for a client that did not ask)."""
    raw = f"GET /p/echo/x HTTP/1.1\r\nHost: {base}\r\nConnection: close\r\n\r\n".encode()
    host, port = base.split(":")
    import socket

    with socket.create_connection((host, int(port))) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    body = json.loads(data.split(b"\r\n\r\n", 1)[1].decode())
    names = {k for k, _ in body["headers"]}
    assert "accept-encoding" not in names and "user-agent" not in names
    assert body["method"] == "GET"


def test_head_and_methods(http: httpx.Client) -> None:
    for method in ("GET", "POST", "PUT", "DELETE"):
        r = http.request(method, "/p/echo/m")
        assert r.status_code == 200 and r.json()["method"] == method
    r = http.head("/p/echo/m")
    assert r.status_code == 200 and r.content == b""


def test_large_download_streams_and_matches(http: httpx.Client) -> None:
    expected = hashlib.sha256(b"".join(pattern(BIG))).hexdigest()
    digest, size, chunks = hashlib.sha256(), 0, 0
    start = time.perf_counter()
    with http.stream("GET", "/p/big") as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(BIG)
        for chunk in r.iter_raw():
            digest.update(chunk)
            size += len(chunk)
            chunks += 1
    elapsed = time.perf_counter() - start
    assert size == BIG and digest.hexdigest() == expected
    assert chunks > 1
    print(f"20 MiB through the proxy in {elapsed:.2f}s ({BIG / elapsed / 2**20:.0f} MiB/s)")


def test_response_is_streamed_not_buffered(http: httpx.Client, upstream: Upstream) -> None:
    """The upstream holds its second chunk until the client has read the first one through the proxy."""
    upstream.release.clear()
    with http.stream("GET", "/p/held") as r:
        it = r.iter_raw()
        first = next(it)
        assert first == b"first;"
        upstream.release.set()
        rest = b"".join(it)
    assert rest == b"second"


def test_chunked_upload(http: httpx.Client) -> None:
    parts = list(pattern(5 * CHUNK + 123))
    expected = hashlib.sha256(b"".join(parts)).hexdigest()
    r = http.post("/p/upload", content=iter(parts))  # a generator: sent chunked
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["sha256"] == expected and seen["size"] == 5 * CHUNK + 123
    assert seen["transfer-encoding"] == "chunked" and seen["content-length"] is None
    r = http.put("/p/upload", content=b"x" * 3_000_000)  # with a length: passed on, not chunked
    seen = r.json()
    assert seen["size"] == 3_000_000 and seen["content-length"] == "3000000" and seen["transfer-encoding"] is None


def test_set_cookie_kept_twice_and_platform_cookie_dropped(http: httpx.Client) -> None:
    r = http.get("/p/cookies")
    cookies = r.headers.get_list("set-cookie")
    assert len(cookies) == 2, cookies
    assert cookies[0].startswith("a=1") and cookies[1].startswith("b=2") and "Path=/x" in cookies[1]
    assert r.headers.get_list("date") and len(r.headers.get_list("date")) == 1


def test_content_encoding_passed_raw(http: httpx.Client) -> None:
    r = http.get("/p/gzip")
    assert r.headers["content-encoding"] == "gzip"
    assert r.text == "hello " * 1000


def test_redirects_not_followed(http: httpx.Client) -> None:
    r = http.get("/p/redirect")
    assert r.status_code == 302 and r.headers["location"] == "/elsewhere"


def test_upstream_down_is_502(http: httpx.Client) -> None:
    start = time.perf_counter()
    r = http.get("/down/anything")
    assert r.status_code == 502
    body = r.json()
    assert body["code"] == "BadGateway"
    assert "is not answering (is it running?)" in body["message"]
    assert time.perf_counter() - start < 5


# -- WebSockets -----------------------------------------------------------------------------------


def ws_run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_websocket_echo_with_subprotocol(base: str, upstream: Upstream) -> None:
    async def go() -> None:
        async with websockets.connect(f"ws://{base}/p/ws/echo?session_id=abc", subprotocols=[SUBPROTOCOL],
                                      origin=f"http://{base}", additional_headers={"Cookie": "c=3; flowyard_session=s"},
                                      proxy=None) as ws:
            assert ws.subprotocol == SUBPROTOCOL
            await ws.send("hello")
            assert await ws.recv() == "hello"
            blob = bytes(range(256)) * 4000
            await ws.send(blob)
            assert await ws.recv() == blob
            await ws.send("headers")
            seen = json.loads(await ws.recv())
            assert seen["host"] == base
            assert seen["origin"] == f"http://{base}"
            assert seen["cookie"] == "c=3"
            assert seen["x-added"] == "yes"
            assert seen["sec-websocket-protocol"] == SUBPROTOCOL
            assert seen["_query"] == "session_id=abc"
            for i in range(50):
                await ws.send(f"m{i}")
            assert [await ws.recv() for _ in range(50)] == [f"m{i}" for i in range(50)]

    ws_run(go())
    # websockets rejects two Host headers itself, but check there was exactly one Host upstream
    assert upstream.ws_headers["host"] == base


def test_websocket_without_subprotocol(base: str) -> None:
    async def go() -> None:
        async with websockets.connect(f"ws://{base}/p/ws/echo", proxy=None) as ws:
            assert ws.subprotocol is None
            await ws.send("x")
            assert await ws.recv() == "x"

    ws_run(go())


def test_websocket_close_codes_both_ways(base: str, upstream: Upstream) -> None:
    async def upstream_closes() -> None:
        async with websockets.connect(f"ws://{base}/p/ws/echo", proxy=None) as ws:
            await ws.send("close:4001")
            with pytest.raises(websockets.ConnectionClosed) as caught:
                await ws.recv()
            assert caught.value.rcvd is not None
            assert caught.value.rcvd.code == 4001 and caught.value.rcvd.reason == "closed by upstream"

    async def browser_closes() -> None:
        ws = await websockets.connect(f"ws://{base}/p/ws/echo", proxy=None)
        await ws.send("x")
        await ws.recv()
        await ws.close(4003, "done here")

    ws_run(upstream_closes())
    upstream.closes.clear()
    ws_run(browser_closes())
    deadline = time.monotonic() + 5
    while not upstream.closes and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.closes == [(4003, "done here")]


def test_websocket_upstream_refusal_and_down(base: str) -> None:
    async def go(path: str) -> tuple[int, str]:
        async with websockets.connect(f"ws://{base}{path}", subprotocols=[SUBPROTOCOL], proxy=None) as ws:
            with pytest.raises(websockets.ConnectionClosed) as caught:
                await ws.recv()
            assert caught.value.rcvd is not None
            return caught.value.rcvd.code, caught.value.rcvd.reason

    code, reason = ws_run(go("/p/ws/refuse"))
    assert code == 1008 and "refused the WebSocket: HTTP 403" in reason
    code, reason = ws_run(go("/down/ws"))
    assert code == 1011 and "is not answering" in reason


def test_header_helpers() -> None:
    raw = [(b"Host", b"h"), (b"Connection", b"close, X-Drop"), (b"X-Drop", b"1"), (b"TE", b"trailers"),
           (b"Cookie", b"flowyard_session=1"), (b"Authorization", b"Bearer x"), (b"Keep", b"1")]
    out = proxy.request_headers(raw, add={"X-User": "u"}, drop=["authorization"], drop_cookies=["flowyard_session"])
    assert out == [("host", "h"), ("keep", "1"), ("X-User", "u")]
    back = proxy.response_headers([(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"Transfer-Encoding", b"chunked"),
                                   (b"Content-Length", b"5")])
    assert back == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"content-length", b"5")]
