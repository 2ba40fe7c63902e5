"""A small HTTP/1.1 client for the hop from the gateway to a replica, with keep-alive connections.

Why not httpx (which `server/proxy.py` uses): on this hop every request pays for it. Profiled
under wrk, httpx + httpcore + anyio cost most of the gateway's time (httpcore looks for
`sniffio` on every request, which is a failed import each time without it, and anyio's stream
layer adds up), capping the gateway at about a quarter of the replica's own throughput. The
upstream here is always our own replica, so the client can be small: requests with a
Content-Length body, responses with Content-Length or chunked bodies, idle connections pooled
per replica and dropped before the replica's own keep-alive timeout would close them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

IDLE_SECONDS = 3.0
"""Pooled connections older than this are closed (uvicorn closes idle ones after 5 s)."""
MAX_IDLE_PER_REPLICA = 64
_LIMIT = 2**20


class UpstreamError(Exception):
    """The replica could not be reached or closed the connection before answering."""


class _Conn:
    __slots__ = ("reader", "writer", "used")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.used = reader, writer, time.monotonic()

    def close(self) -> None:
        self.writer.close()


_pools: dict[tuple[int, str], list[_Conn]] = {}


def _pool(address: str) -> list[_Conn]:
    key = (id(asyncio.get_running_loop()), address)
    pool = _pools.get(key)
    if pool is None:
        pool = _pools[key] = []
    return pool


async def _connect(address: str, timeout: float) -> _Conn:
    host, _, port = address.rpartition(":")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port), limit=_LIMIT),
                                                timeout)
    except (OSError, TimeoutError) as e:
        raise UpstreamError(f"cannot connect to {address}: {e}") from e
    return _Conn(reader, writer)


async def _read_body(conn: _Conn, headers: list[tuple[bytes, bytes]], method: bytes, status: int) -> bytes:
    if method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
        return b""
    length = None
    chunked = False
    for k, v in headers:
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if length is not None:
        return await conn.reader.readexactly(length)
    if not chunked:
        return await conn.reader.read()  # until close
    parts = []
    while True:
        size = int((await conn.reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await conn.reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await conn.reader.readexactly(size))
        await conn.reader.readexactly(2)


async def _exchange(conn: _Conn, head: bytes, body: bytes, method: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    conn.writer.write(head + body if len(body) < 65536 else head)
    if len(body) >= 65536:
        conn.writer.write(body)
    await conn.writer.drain()
    raw = await conn.reader.readuntil(b"\r\n\r\n")
    lines = raw[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers.append((k.strip().lower(), v.strip()))
    content = await _read_body(conn, headers, method, status)
    keep = not any(k == b"connection" and b"close" in v.lower() for k, v in headers) and lines[0].startswith(b"HTTP/1.1")
    return status, headers, content, keep


async def request(address: str, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes,
                  timeout: float, connect_timeout: float = 5.0) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Send one request to `http://{address}{target}`; (status, lower-case headers, body).

    Raises `UpstreamError` when the replica cannot be reached or hangs up before answering (on a
    fresh connection: a pooled one that the replica had closed is retried once), `TimeoutError`
    after `timeout` seconds."""
    m = method.upper().encode()
    lines = [m + b" " + target.encode("latin-1") + b" HTTP/1.1", b"host: " + address.encode()]
    lines += [k.encode("latin-1") + b": " + v.encode("latin-1") for k, v in headers]
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        lines.append(b"content-length: " + str(len(body)).encode())
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    pool = _pool(address)
    now = time.monotonic()
    pooled = False
    while pool:
        conn = pool.pop()
        if now - conn.used < IDLE_SECONDS and not conn.reader.at_eof():
            pooled = True
            break
        conn.close()
    else:
        conn = await _connect(address, connect_timeout)
    for _ in range(2):
        try:
            status, out_headers, content, keep = await asyncio.wait_for(_exchange(conn, head, body, m), timeout)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError, IndexError) as e:
            conn.close()
            if pooled:  # the replica closed an idle connection as we reused it: once more, on a new one
                pooled = False
                conn = await _connect(address, connect_timeout)
                continue
            raise UpstreamError(f"{address} closed the connection without an answer ({type(e).__name__})") from e
        except BaseException:
            conn.close()
            raise
        if keep and len(pool) < MAX_IDLE_PER_REPLICA:
            conn.used = time.monotonic()
            pool.append(conn)
        else:
            conn.close()
        return status, out_headers, content
    raise AssertionError("unreachable")


def forget(address: str) -> None:
    """Close the idle connections to a replica that went away."""
    for key in [k for k in _pools if k[1] == address]:
        for conn in _pools.pop(key):
            conn.close()
