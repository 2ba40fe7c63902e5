"""Tensors on the wire: Open Inference Protocol datatypes, JSON data and the binary extension.

One request tensor becomes one numpy array, zero-copy where the bytes allow it (binary
extension, gRPC raw contents). JSON data is checked against its declared datatype, so a string
in an FP32 tensor or 1.5 in an INT32 tensor is refused instead of being silently converted.
Binary layout (Triton's binary tensor extension, also gRPC `raw_*_contents`): little-endian,
row-major, no padding; BOOL one byte; each BYTES element a 4-byte little-endian length and bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from flowyard.serving.runtime.errors import InvalidInput

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
_NAMES = {dt.str: name for name, dt in DTYPES.items() if name != "BYTES"} | {np.dtype(np.bool_).str: "BOOL"}
# JSON values a datatype accepts, by numpy's inferred kind: ints for floats, never floats for ints.
_ACCEPTS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype naming a numpy array's dtype (strings and objects are BYTES)."""
    if array.dtype.kind in "OSU":
        return "BYTES"
    name = _NAMES.get(array.dtype.newbyteorder("<").str if array.dtype.byteorder == ">" else array.dtype.str)
    if name is None:
        raise InvalidInput(f"the model produced an array of dtype {array.dtype}, which has no V2 datatype")
    return name


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise InvalidInput(f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    return tuple(shape)


def dtype_for(name: str, datatype: Any) -> np.dtype[Any]:
    dt = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dt is None:
        raise InvalidInput(f"input {name!r}: unknown datatype {datatype!r}; use one of {', '.join(DTYPES)}")
    return dt


def from_json(name: str, datatype: Any, shape: Any, data: Any) -> np.ndarray:
    """A V2 JSON tensor (`data` flat or nested, row-major) as an array of `shape`."""
    dims = check_shape(name, shape)
    dt = dtype_for(name, datatype)
    if not isinstance(data, list):
        data = [data]
    try:
        if datatype == "BYTES":
            raw = np.array(data, dtype=object)
        else:
            raw = np.asarray(data)
    except ValueError as e:  # ragged nesting
        raise InvalidInput(f"input {name!r}: data is not a regular nested list ({e})") from None
    if raw.size != math.prod(dims):
        raise InvalidInput(f"input {name!r}: {raw.size} data elements do not fill shape {list(dims)} "
                           f"({math.prod(dims)} elements)")
    if datatype == "BYTES":
        flat = raw.reshape(-1)
        for i, v in enumerate(flat):
            if isinstance(v, str):
                flat[i] = v.encode()
            elif not isinstance(v, bytes):
                raise InvalidInput(f"input {name!r}: BYTES data must be strings, got {type(v).__name__}")
        return flat.reshape(dims)
    if raw.size and raw.dtype.kind not in _ACCEPTS[dt.kind]:
        got = {"U": "strings", "O": "mixed values", "f": "non-integer numbers", "b": "booleans"}.get(
            raw.dtype.kind, str(raw.dtype))
        raise InvalidInput(f"input {name!r}: datatype {datatype} cannot hold {got}")
    if dt.kind in "iu" and raw.size and raw.dtype != dt:
        info = np.iinfo(dt)
        if raw.min() < info.min or raw.max() > info.max:
            raise InvalidInput(f"input {name!r}: values out of range for {datatype}")
    return raw.astype(dt, copy=False).reshape(dims)


def from_bytes(name: str, datatype: Any, shape: Any, buf: bytes | memoryview) -> np.ndarray:
    """A tensor from its binary form (no copy for numeric datatypes)."""
    dims = check_shape(name, shape)
    dt = dtype_for(name, datatype)
    count = math.prod(dims)
    if datatype == "BYTES":
        items = _split_bytes(name, buf)
        if len(items) != count:
            raise InvalidInput(f"input {name!r}: {len(items)} BYTES elements do not fill shape {list(dims)}")
        out = np.empty(count, dtype=object)
        out[:] = items
        return out.reshape(dims)
    if len(buf) != count * dt.itemsize:
        raise InvalidInput(f"input {name!r}: {len(buf)} bytes of {datatype} data do not fill shape {list(dims)} "
                           f"({count * dt.itemsize} bytes)")
    return np.frombuffer(buf, dtype=dt).reshape(dims)


def _split_bytes(name: str, buf: bytes | memoryview) -> list[bytes]:
    view, items, pos = memoryview(buf), [], 0
    while pos < len(view):
        if pos + 4 > len(view):
            raise InvalidInput(f"input {name!r}: truncated BYTES element length")
        (n,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if pos + n > len(view):
            raise InvalidInput(f"input {name!r}: BYTES element runs past the end of the data")
        items.append(bytes(view[pos:pos + n]))
        pos += n
    return items


def to_bytes(array: np.ndarray) -> bytes:
    """The binary form of an array (little-endian, row-major)."""
    if array.dtype.kind in "OSU":
        parts: list[bytes] = []
        for v in array.reshape(-1):
            b = v if isinstance(v, bytes) else str(v).encode()
            parts += (struct.pack("<I", len(b)), b)
        return b"".join(parts)
    dt = array.dtype
    if dt.byteorder == ">":
        array = array.astype(dt.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()


def json_data(array: np.ndarray) -> Any:
    """A flat row-major sequence for JSON: numeric arrays stay numpy (orjson writes them), BYTES become str."""
    if array.dtype.kind in "OSU":
        return [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).reshape(-1)


def json_default(value: Any) -> Any:
    """orjson fallback: numpy scalars and arrays orjson cannot write natively, bytes."""
    if isinstance(value, np.ndarray):
        return json_data(value).tolist() if value.dtype.kind not in "OSU" else json_data(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def v1_array(name: str, value: Sequence[Any] | Any) -> np.ndarray:
    """A TF-Serving JSON value (nested lists; `{"b64": …}` for binary strings) as an array."""
    try:
        arr = np.asarray(value)
    except ValueError as e:
        raise InvalidInput(f"input {name!r}: values are not a regular nested list ({e})") from None
    if arr.dtype.kind == "O":
        arr = np.array(_unb64(value), dtype=object)
    return arr


def _unb64(value: Any) -> Any:
    import base64

    if isinstance(value, list):
        return [_unb64(v) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise InvalidInput('a binary value must be written {"b64": "<base64>"}')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise InvalidInput("a b64 value is not valid base64") from None
    return value
