"""The REST gateway to model endpoints: `/serving/<namespace>/<name>/<path>` → a ready replica's `/<path>`.

So `tritonclient.http.InferenceServerClient(url="host:port/serving/ns/name")`, the KServe V1
`…/v1/models/<name>:predict` and curl all work through the platform's one origin. Each request
needs the bearer token of a member of the namespace (any role; lookups are cached for a few
seconds) unless the endpoint is public. The body is read whole (inference requests are bounded)
so that a request whose replica went away before answering can be sent again to another one;
the replica's answer goes back as it is, with `X-Flowyard-Revision` naming the revision that
served it. Errors are OIP-shaped (`{"error": …}`, which tritonclient reads) with Flowyard's
`code` and `message` alongside.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from flowyard import kinds
from flowyard.api.deps import CSRF_HEADER, SESSION_COOKIE
from flowyard.errors import FlowyardError, NotFound
from flowyard.platform import Platform
from flowyard.serving import metrics, upstream
from flowyard.serving.endpoints import (REVISION_HEADER, SECRET_HEADER, Endpoint, Replica, Revision, authorise,
                                       choose_replica, lookup)
from flowyard.server import proxy
from flowyard.server.proxy import BadGateway, Unavailable

PREFIX = "/serving"
_DROP = ("authorization", CSRF_HEADER, SECRET_HEADER, "cookie")
_REVISION = REVISION_HEADER.lower().encode()


class GatewayTimeout(FlowyardError):
    """The model did not answer in time."""

    status = 504
    code = "GatewayTimeout"


def _error(e: FlowyardError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else {}
    retry = e.details.get("retry_after")
    if retry:
        headers["Retry-After"] = str(retry)
    body = {"error": e.message, "code": e.code, "message": e.message, "status": e.status}
    return Response(orjson.dumps(body), status_code=e.status, media_type="application/json", headers=headers)


def _endpoint(p: Platform, namespace: str, name: str, authorization: str | None) -> Endpoint:
    ep = lookup(p, namespace, name)
    if ep is not None and ep.public:
        return ep
    probe = Endpoint(namespace, name, "", "")  # not public: check membership before saying anything
    authorise(p, probe, authorization)
    if ep is None:
        p.store.get(kinds.lookup("InferenceService"), namespace, name)  # NotFound when there is none
        raise Unavailable(f"inference service '{name}' is starting: try again in a few seconds", retry_after=2)
    return ep


_SKIP = frozenset({"host", "content-length"})
_NOT_BACK = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"date", b"server"})


async def _send(ep: Endpoint, replica: Replica, request: Request, path: str,
                body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = proxy.request_headers(request.headers.raw, add={SECRET_HEADER: ep.secret}, drop=_DROP,
                                    drop_cookies=(SESSION_COOKIE,), skip=_SKIP)
    query = request.scope.get("query_string", b"").decode("latin-1")
    target = path + (f"?{query}" if query else "")
    return await upstream.request(replica.http, request.method, target, headers, body, ep.timeout + 5)


async def http(request: Request, namespace: str, name: str) -> Response:
    p: Platform = request.app.state.platform
    started = time.perf_counter()
    try:
        ep = _endpoint(p, namespace, name, request.headers.get("authorization"))
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = raw.decode("latin-1")[len(f"{PREFIX}/{namespace}/{name}"):] or "/"
        body = await request.body()
        for attempt in range(3):
            revision, replica = await choose_replica(p, ep)
            revision.begin(replica)
            try:
                status, headers, content = await _send(ep, replica, request, path, body)
            except upstream.UpstreamError as e:
                # the replica went away before answering: take it out and try another
                replica.ready = False
                revision.refresh()
                if p.controllers is not None:
                    p.controllers.enqueue("InferenceService", namespace, name)
                if attempt == 2:
                    raise BadGateway(f"inference service '{name}': the model server is not answering ({e})") from e
                continue
            except TimeoutError as e:
                _record(ep, revision, "504", started)
                raise GatewayTimeout(f"inference service '{name}' did not answer within {ep.timeout:g} s "
                                     "(spec.predictor.timeout)") from e
            finally:
                revision.end(replica)
            _record(ep, revision, str(status), started)
            response = Response(content, status_code=status)
            response.raw_headers = [*(h for h in headers if h[0] not in _NOT_BACK),
                                    (b"content-length", str(len(content)).encode()), (_REVISION, revision.name.encode())]
            return response
        raise BadGateway(f"inference service '{name}': no replica answered")
    except NotFound:
        return _error(NotFound(f"inference service '{name}' not found in namespace '{namespace}'"))
    except FlowyardError as e:
        return _error(e)


def _record(ep: Endpoint, revision: Revision, code: str, started: float) -> None:
    recorder = ep.extra.get(("rest", revision.name))
    if recorder is None:
        recorder = ep.extra[("rest", revision.name)] = metrics.Recorder(ep.namespace, ep.name, revision.name, "rest")
    recorder.observe(code, time.perf_counter() - started, code.startswith("5"))


class Gateway:
    """ASGI middleware taking `/serving/<ns>/<name>/…` before the API's router: matching a request
    against every API route costs more than the rest of the hop (profiled)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX + "/"):
            parts = scope["path"][len(PREFIX) + 1:].split("/", 2)
            if len(parts) == 3 and parts[0] and parts[1]:
                response = await http(Request(scope, receive), parts[0], parts[1])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: Any) -> None:
    """Put the serving gateway in front of `app`'s routes."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per proxied request otherwise
    app.add_middleware(Gateway)
