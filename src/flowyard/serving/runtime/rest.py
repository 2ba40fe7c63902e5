"""The replica's HTTP front end: routes and bodies of every REST protocol (served by `http.py`).

Routes (paths as TF Serving, KServe and the Open Inference Protocol define them):
- `GET /v2/health/live`, `/v2/health/ready`, `GET /v2`, `GET /v2/models/{m}[/versions/{v}]`,
  `…/ready`, `POST …/infer` (V2, JSON or binary tensors);
- `GET /`, `GET /v1/models`, `GET /v1/models/{m}[/versions/{v}]`, `…/metadata`,
  `POST …:predict` (TF-Serving / KServe V1);
- `GET /metrics` (Prometheus text).
Every error answer is `{"error": "<what is wrong>"}` with a 4xx/5xx status. With a secret, every
request but `/v2/health/live` must carry `X-Flowyard-Serving-Secret`, else 403.
"""

from __future__ import annotations

import hmac
import time
import traceback
import zlib
from typing import Any

import flowyard
from flowyard.errors import FlowyardError
from flowyard.serving.runtime import v1, v2
from flowyard.serving.runtime.errors import InvalidInput
from flowyard.serving.runtime.http import Request, Response
from flowyard.serving.runtime.service import SERVER_NAME, Runtime

_JSON = [(b"content-type", b"application/json")]
_LIVE = b'{"live":true}'
SECRET_HEADER = b"x-flowyard-serving-secret"


class _NoRoute(FlowyardError):
    status = 404


class _BadMethod(FlowyardError):
    status = 405


class RestApp:
    """The REST handler of one `Runtime`: `await app(request)` gives the response."""

    def __init__(self, runtime: Runtime, secret: str | None = None) -> None:
        self.rt = runtime
        self.secret = secret.encode() if secret else None

    async def __call__(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/v2/health/live":
            return 200, _JSON, _LIVE
        if self.secret is not None and not hmac.compare_digest(request.headers.get(SECRET_HEADER, b""),
                                                               self.secret):
            return 403, _JSON, b'{"error":"missing or wrong X-Flowyard-Serving-Secret header"}'
        try:
            if path.startswith("/v2/models/"):
                return await self._v2_model(request, path[11:], method)
            if path.startswith("/v1/models/"):
                return await self._v1_model(request, path[11:], method)
            _expect(method, "GET", path)
            return self._plain(path)
        except FlowyardError as e:
            return e.status, _JSON, v2.dumps({"error": e.message})
        except Exception as e:  # a model or server bug: still an OIP error body, and the traceback in the log
            traceback.print_exc()
            return 500, _JSON, v2.dumps({"error": f"{type(e).__name__}: {e}"})

    def _plain(self, path: str) -> Response:
        rt = self.rt
        if path == "/v2/health/ready":
            if rt.model is None:
                return 503, _JSON, b'{"ready":false,"error":"the model is still loading"}'
            return 200, _JSON, b'{"ready":true}'
        if path == "/v2":
            return 200, _JSON, v2.dumps({"name": SERVER_NAME, "version": flowyard.__version__,
                                         "extensions": ["binary_tensor_data"]})
        if path == "/metrics":
            return 200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")], rt.metrics.text()
        if path == "/":
            return 200, _JSON, b'{"status":"alive"}'
        if path == "/v1/models":
            return 200, _JSON, v2.dumps({"models": [rt.name]})
        raise _NoRoute(f"no route GET {path}")

    async def _v2_model(self, request: Request, rest: str, method: str) -> Response:
        parts = rest.split("/")
        name, version, action = parts[0], None, ""
        if len(parts) >= 3 and parts[1] == "versions":
            version, parts = parts[2], [name, *parts[3:]]
        if len(parts) > 2:
            raise _NoRoute(f"no route {method} /v2/models/{rest}")
        action = parts[1] if len(parts) == 2 else ""
        rt = self.rt
        if action == "infer":
            _expect(method, "POST", request.path)
            t0 = time.perf_counter()
            status = 500
            try:
                model = rt.check(name, version)
                infer = v2.Request(_body(request), _header_length(request.headers))
                outputs = await rt.infer("v2", infer.id, model, infer.inputs, infer.outputs)
                payload, header_length = v2.response(rt.name, rt.version, infer, outputs)
                status = 200
            except FlowyardError as e:
                status = e.status
                raise
            finally:
                rt.metrics.request("v2", status, time.perf_counter() - t0)
            if header_length is None:
                return 200, _JSON, payload
            return 200, [(b"content-type", b"application/octet-stream"),
                         (b"inference-header-content-length", b"%d" % header_length)], payload
        _expect(method, "GET", request.path)
        if action == "ready":
            rt.check(name, version)
            return 200, _JSON, v2.dumps({"name": name, "ready": True})
        if action == "":
            rt.check(name, version)
            return 200, _JSON, v2.dumps(rt.model_metadata())
        raise _NoRoute(f"no route GET /v2/models/{rest}")

    async def _v1_model(self, request: Request, rest: str, method: str) -> Response:
        verb = ""
        head, sep, tail = rest.rpartition(":")
        if sep and "/" not in tail:
            rest, verb = head, tail
        parts = rest.split("/")
        name, version = parts[0], None
        if len(parts) >= 3 and parts[1] == "versions":
            version, parts = parts[2], [name, *parts[3:]]
        if len(parts) > 2 or (len(parts) == 2 and (parts[1] != "metadata" or verb)):
            raise _NoRoute(f"no route {method} {request.path}")
        rt = self.rt
        if verb:
            if verb != "predict":
                raise _NoRoute(f"this server answers :predict, not :{verb}")
            _expect(method, "POST", request.path)
            t0 = time.perf_counter()
            status = 500
            try:
                model = rt.check(name, version)
                rows, inputs = v1.decode(_body(request), model)
                outputs = await rt.infer("v1", None, model, inputs, None)
                payload = v2.dumps(v1.encode(rows, outputs))
                status = 200
            except FlowyardError as e:
                status = e.status
                raise
            finally:
                rt.metrics.request("v1", status, time.perf_counter() - t0)
            return 200, _JSON, payload
        _expect(method, "GET", request.path)
        model = rt.check(name, version)
        if len(parts) == 2:
            return 200, _JSON, v2.dumps(_tf_metadata(rt.name, rt.version, model.metadata()))
        return 200, _JSON, v2.dumps({
                "name": name, "ready": True,
                "model_version_status": [{"version": rt.version, "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]})


def _tf_metadata(name: str, version: str, meta: dict[str, Any]) -> dict[str, Any]:
    """TF Serving's GetModelMetadata answer (`signature_def` twice, as TF Serving writes it)."""
    def tensors(specs: list[dict[str, Any]]) -> dict[str, Any]:
        return {s["name"]: {"dtype": "DT_" + {"FP16": "HALF", "FP32": "FLOAT", "FP64": "DOUBLE",
                                              "BYTES": "STRING"}.get(s["datatype"], s["datatype"]),
                            "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in s["shape"]],
                                             "unknown_rank": False},
                            "name": s["name"]} for s in specs}

    signature = {"inputs": tensors(meta["inputs"]), "outputs": tensors(meta["outputs"]),
                 "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": name, "signature_name": "", "version": version},
            "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}}}


def _expect(method: str, allowed: str, path: str) -> None:
    if method != allowed:
        raise _BadMethod(f"{path} answers {allowed}, not {method}")


def _header_length(headers: dict[bytes, bytes]) -> int | None:
    value = headers.get(b"inference-header-content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput("Inference-Header-Content-Length must be an integer") from None


def _body(request: Request) -> bytes:
    encoding = request.headers.get(b"content-encoding")
    if encoding in (b"gzip", b"deflate"):
        try:
            return zlib.decompress(request.body, 47 if encoding == b"gzip" else 15)
        except zlib.error as e:
            raise InvalidInput(f"the {encoding.decode()} request body cannot be decompressed: {e}") from None
    return request.body
