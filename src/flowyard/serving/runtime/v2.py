"""Open Inference Protocol (KServe V2) REST bodies: inference requests in, responses out.

Both the JSON form and Triton's binary tensor extension: with an
`Inference-Header-Content-Length: n` header the first n bytes are the JSON header and the
binary tensors follow in input order (`parameters.binary_data_size` on each). Outputs are
written binary when the output's `parameters.binary_data` (or the request's
`parameters.binary_data_output`) says so, as tritonclient.http asks by default.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from flowyard.serving.runtime.errors import InvalidInput
from flowyard.serving.runtime.models import Arrays
from flowyard.serving.runtime.tensors import (
    datatype_of,
    from_bytes,
    from_json,
    json_data,
    json_default,
    to_bytes,
)

_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes | memoryview, what: str = "request body") -> Any:
    """JSON, also with the NaN/Infinity tokens TF Serving accepts; a clear 400 otherwise."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        try:
            return json.loads(bytes(body))
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(f"{what} is not valid JSON: {e}") from None


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=json_default, option=_DUMPS_OPTIONS)


class Request:
    """A decoded V2 inference request."""

    __slots__ = ("binary", "id", "inputs", "outputs")

    def __init__(self, body: bytes, header_length: int | None) -> None:
        if header_length is not None:
            if not 0 < header_length <= len(body):
                raise InvalidInput(f"Inference-Header-Content-Length {header_length} does not fit the "
                                   f"{len(body)}-byte body")
            req = loads(memoryview(body)[:header_length], "the inference header")
        else:
            req = loads(body)
        if not isinstance(req, dict):
            raise InvalidInput("the request must be a JSON object with an \"inputs\" list")
        rid = req.get("id")
        self.id = rid if isinstance(rid, str) else None
        inputs = req.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise InvalidInput("the request needs a non-empty \"inputs\" list of tensors "
                               "({\"name\", \"shape\", \"datatype\", \"data\"})")
        raw = memoryview(body)[header_length:] if header_length is not None else None
        pos = 0
        self.inputs: Arrays = {}
        for i, t in enumerate(inputs):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise InvalidInput(f"inputs[{i}] must be an object with a string \"name\"")
            name = t["name"]
            if name in self.inputs:
                raise InvalidInput(f"input {name!r} is given twice")
            params = t.get("parameters") or {}
            size = params.get("binary_data_size") if isinstance(params, dict) else None
            if size is not None:
                if raw is None or not isinstance(size, int) or size < 0 or pos + size > len(raw):
                    raise InvalidInput(f"input {name!r}: binary_data_size {size!r} does not fit the binary data "
                                       "after the inference header")
                self.inputs[name] = from_bytes(name, t.get("datatype"), t.get("shape"), raw[pos:pos + size])
                pos += size
            elif "data" in t:
                self.inputs[name] = from_json(name, t.get("datatype"), t.get("shape"), t["data"])
            else:
                raise InvalidInput(f"input {name!r} has neither \"data\" nor parameters.binary_data_size")
        if raw is not None and pos != len(raw):
            raise InvalidInput(f"{len(raw) - pos} bytes of binary data after the inference header are not "
                               "claimed by any input's binary_data_size")
        params = req.get("parameters") or {}
        default_binary = bool(params.get("binary_data_output")) if isinstance(params, dict) else False
        self.binary: dict[str, bool] = {}
        outputs = req.get("outputs")
        if outputs is None:
            self.outputs: tuple[str, ...] | None = None
            self.binary[""] = default_binary
            return
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                     for o in outputs):
            raise InvalidInput("\"outputs\" must be a list of objects with a string \"name\"")
        self.outputs = tuple(o["name"] for o in outputs) or None
        self.binary[""] = default_binary
        for o in outputs:
            p = o.get("parameters") or {}
            self.binary[o["name"]] = bool(p.get("binary_data", default_binary)) if isinstance(p, dict) \
                else default_binary


def response(model: str, version: str, request: Request, outputs: Arrays) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    tensors, chunks = [], []
    for name, arr in outputs.items():
        t: dict[str, Any] = {"name": name, "datatype": datatype_of(arr), "shape": arr.shape}
        if request.binary.get(name, request.binary[""]):
            data = to_bytes(arr)
            t["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            t["data"] = json_data(arr)
        tensors.append(t)
    body: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": tensors}
    if request.id is not None:
        body["id"] = request.id
    header = dumps(body)
    if not chunks:
        return header, None
    return b"".join((header, *chunks)), len(header)
