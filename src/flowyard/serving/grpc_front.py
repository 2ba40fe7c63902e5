"""The gRPC front: one listener per InferenceService (`status.grpcAddress`), in the platform process.

Why one port per endpoint rather than one shared port routed by model name: `ServerLive`,
`ServerReady` and `ServerMetadata` carry no model name, and model names are only unique within
a namespace, so a shared port could not tell which endpoint a call is for. With a port each, the
front never parses a message: a generic handler takes every unary method of
`inference.GRPCInferenceService` as raw bytes, checks the caller's bearer token (metadata
`authorization: Bearer …`, a namespace member, unless the endpoint is public), and forwards the
bytes to a ready replica with the endpoint's secret. The port is kept in status and asked for
again after a restart, so the address stays the same while it is free.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import grpc.aio

from flowyard.errors import FlowyardError, Forbidden, Unauthorized
from flowyard.platform import Platform
from flowyard.serving import metrics
from flowyard.serving.endpoints import SECRET_HEADER, Endpoint, authorise, choose_replica

_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
_STREAMING = {"ModelStreamInfer"}
_CODES = {Unauthorized: grpc.StatusCode.UNAUTHENTICATED, Forbidden: grpc.StatusCode.PERMISSION_DENIED}


def _host(p: Platform) -> str:
    return p.settings.url.split("://", 1)[1].rsplit(":", 1)[0]


class _Forwarder(grpc.GenericRpcHandler):
    """Every unary method, as bytes, to a ready replica of one endpoint."""

    def __init__(self, p: Platform, ep: Endpoint) -> None:
        self.p = p
        self.ep = ep
        self.channels: dict[str, grpc.aio.Channel] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method
        if method.rsplit("/", 1)[-1] in _STREAMING:
            return None  # UNIMPLEMENTED

        async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self._forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(call)

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self.channels.get(address)
        if channel is None:
            channel = self.channels[address] = grpc.aio.insecure_channel(address, options=_OPTIONS)
        return channel

    async def _forward(self, method: str, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        ep = self.ep
        started = time.perf_counter()
        metadata = {k: v for k, v in (context.invocation_metadata() or ())}
        try:
            authorise(self.p, ep, metadata.get("authorization"))
        except FlowyardError as e:
            await context.abort(_CODES.get(type(e), grpc.StatusCode.PERMISSION_DENIED), e.message)
        for attempt in range(2):
            try:
                revision, replica = await choose_replica(self.p, ep)
            except FlowyardError as e:
                await context.abort(grpc.StatusCode.UNAVAILABLE, e.message)
            recorder = ep.extra.get(("grpc", revision.name))
            if recorder is None:
                recorder = ep.extra[("grpc", revision.name)] = metrics.Recorder(ep.namespace, ep.name, revision.name,
                                                                                "grpc")
            revision.begin(replica)
            try:
                stub = self._channel(replica.grpc).unary_unary(method)
                answer = await stub(request, metadata=((SECRET_HEADER.lower(), ep.secret),), timeout=ep.timeout)
            except grpc.aio.AioRpcError as e:
                code = e.code()
                if code == grpc.StatusCode.UNAVAILABLE and attempt == 0:
                    replica.ready = False
                    revision.refresh()
                    if self.p.controllers is not None:
                        self.p.controllers.enqueue("InferenceService", ep.namespace, ep.name)
                    continue
                recorder.observe(code.name, time.perf_counter() - started, code not in _CLIENT_ERRORS)
                await context.abort(code, e.details() or code.name)
            finally:
                revision.end(replica)
            recorder.observe("OK", time.perf_counter() - started, False)
            return answer
        await context.abort(grpc.StatusCode.UNAVAILABLE, "no replica answered")
        raise AssertionError("unreachable")


_CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED,
                  grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION,
                  grpc.StatusCode.OUT_OF_RANGE}


def _credentials(p: Platform) -> grpc.ServerCredentials | None:
    if p.settings.scheme != "https":
        return None
    from flowyard.server.tls import ensure_certificate

    cert, key = (p.settings.cert, p.settings.key) if p.settings.cert else \
        ensure_certificate(p.settings.home, p.settings.host)
    return grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])  # type: ignore[union-attr]


def _bind(server: grpc.aio.Server, host: str, port: int, creds: grpc.ServerCredentials | None) -> int:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        return server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    except RuntimeError:
        return 0


async def ensure(p: Platform, ep: Endpoint, previous: str | None) -> str:
    """The endpoint's gRPC address, starting its listener (on the previous port when free)."""
    server = ep.extra.get("grpc_server")
    if server is None:
        server = grpc.aio.server(options=_OPTIONS)
        forwarder = _Forwarder(p, ep)
        server.add_generic_rpc_handlers((forwarder,))
        creds = _credentials(p)
        want = int(previous.rsplit(":", 1)[1]) if previous and previous.rsplit(":", 1)[-1].isdigit() else 0
        port = _bind(server, p.settings.host, want, creds) if want else 0
        if not port:
            port = _bind(server, p.settings.host, 0, creds)
        await server.start()
        ep.extra.update(grpc_server=server, grpc_forwarder=forwarder)
        ep.grpc_port = port
    return f"{_host(p)}:{ep.grpc_port}"


def forget(ep: Endpoint, address: str) -> None:
    """Close the channel to a replica that was stopped."""
    forwarder: Any = ep.extra.get("grpc_forwarder")
    channel = forwarder.channels.pop(address, None) if forwarder is not None else None
    if channel is not None:
        asyncio.ensure_future(channel.close())


async def close(p: Platform, ep: Endpoint) -> None:
    server: Any = ep.extra.pop("grpc_server", None)
    forwarder: Any = ep.extra.pop("grpc_forwarder", None)
    if server is not None:
        await server.stop(grace=1.0)
    if forwarder is not None:
        for channel in forwarder.channels.values():
            await channel.close()


async def close_all(p: Platform) -> None:
    """Stop every listener (at server shutdown)."""
    from flowyard.serving.endpoints import table

    for ep in list(table(p).values()):
        await close(p, ep)
