"""A small HTTP/1.1 server on httptools for the replica's REST port.

Why not uvicorn: for a model that predicts in a fraction of a millisecond the ASGI layer is a
large share of each request (message dicts, a header write and a body write, middleware); a
plain asyncio protocol that parses with httptools (uvicorn's own parser) and writes each
response with one `write` answers several times as many requests per core. It does what a
loopback model endpoint needs: keep-alive, HTTP/1.0, `Connection: close`, `Expect:
100-continue`, chunked request bodies, pipelined requests answered in order, a body size limit,
an idle timeout, and a graceful shutdown that finishes requests in flight.
"""

from __future__ import annotations

import asyncio
import socket
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import unquote

import httptools

MAX_BODY = 1 << 30
IDLE_SECONDS = 120.0
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class Request:
    """One HTTP request: method, decoded path, headers (lower-case names) and the whole body."""

    __slots__ = ("body", "headers", "method", "path")

    def __init__(self, method: str, path: str, headers: dict[bytes, bytes], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body


Response = tuple[int, list[tuple[bytes, bytes]], bytes]
Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    """Serves `handler` on a listening socket until `shutdown`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: set[_Connection] = set()
        self.closing = False
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=2048)
        self._sweep()

    def _sweep(self) -> None:
        """Close connections idle for IDLE_SECONDS (one timer for all, not one per request)."""
        loop = asyncio.get_running_loop()
        for c in list(self.connections):
            if not c.busy and loop.time() - c.last > IDLE_SECONDS:
                c.transport.close()
        self._sweeper = loop.call_later(IDLE_SECONDS / 4, self._sweep)

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stop accepting, let requests in flight finish (up to `grace` s), close every connection."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            if not c.busy:
                c.transport.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(c.busy for c in self.connections) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for c in list(self.connections):
            c.transport.close()


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.queue: deque[tuple[Request, bool]] = deque()
        self.busy = False
        self.paused = False
        self.last = 0.0  # loop time of the last request or response
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.size = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self.last = asyncio.get_running_loop().time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"protocol upgrades are not supported")
        except httptools.HttpParserError as e:
            self._fail(400, f"malformed HTTP request: {e}".encode())

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body, self.size = b"", {}, [], 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        if self.headers.get(b"expect", b"").lower() == b"100-continue" and not self.busy:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            raise httptools.HttpParserError(f"request body larger than {MAX_BODY} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        if "%" in path:
            path = unquote(path)
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        request = Request(self.parser.get_method().decode(), path, self.headers, body)
        self.queue.append((request, self.parser.should_keep_alive()))
        if not self.busy:
            self._next()
        elif len(self.queue) > 8 and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    # answering
    def _next(self) -> None:
        request, keep_alive = self.queue.popleft()
        self.busy = True
        asyncio.get_running_loop().create_task(self._answer(request, keep_alive))

    async def _answer(self, request: Request, keep_alive: bool) -> None:
        try:
            status, headers, body = await self.server.handler(request)
        except Exception:
            traceback.print_exc()
            status, headers, body = 500, [(b"content-type", b"application/json")], b'{"error":"internal error"}'
        if self.transport.is_closing():
            return
        keep_alive = keep_alive and not self.server.closing
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"")),
                *(b"%s: %s\r\n" % h for h in headers),
                b"content-length: %d\r\n" % len(body)]
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", body)
        self.transport.write(b"".join(head))
        if not keep_alive:
            self.transport.close()
            return
        self.busy = False
        if self.queue:
            self._next()
        else:
            self.last = asyncio.get_running_loop().time()
            if self.paused:
                self.paused = False
                self.transport.resume_reading()

    def _fail(self, status: int, message: bytes) -> None:
        body = b'{"error":"%s"}' % message.replace(b'"', b"'")
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body))
        self.transport.close()
