"""TF-Serving / KServe V1 REST bodies (`POST /v1/models/{name}:predict`).

Row form `{"instances": [...]}` answers `{"predictions": [...]}`: with one input, each instance
is that input's row; with several, each instance is an object of name to row. Columnar form
`{"inputs": value-or-object}` answers `{"outputs": value-or-object}`. Binary strings travel as
`{"b64": "..."}`. `signature_name` is accepted and ignored (a replica has one signature).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowyard.serving.runtime.errors import InvalidInput
from flowyard.serving.runtime.models import Arrays, Model
from flowyard.serving.runtime.tensors import v1_array
from flowyard.serving.runtime.v2 import loads


def decode(body: bytes, model: Model) -> tuple[bool, Arrays]:
    """(row form?, inputs) of a predict request."""
    req = loads(body)
    if not isinstance(req, dict) or ("instances" in req) == ("inputs" in req):
        raise InvalidInput('the request must be a JSON object with either "instances" (row form) '
                           'or "inputs" (columnar form)')
    default = model.inputs[0].name if model.inputs else "input-0"
    if "instances" in req:
        instances = req["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('"instances" must be a non-empty list, one element per example')
        if all(isinstance(i, dict) and "b64" not in i for i in instances):
            names = set(instances[0])
            if any(set(i) != names for i in instances):
                raise InvalidInput("every instance must name the same inputs")
            return True, {n: v1_array(n, [i[n] for i in instances]) for n in instances[0]}
        return True, {default: v1_array(default, instances)}
    columns = req["inputs"]
    if isinstance(columns, dict) and "b64" not in columns:
        if not columns:
            raise InvalidInput('"inputs" must name at least one input')
        return False, {n: v1_array(n, v) for n, v in columns.items()}
    return False, {default: v1_array(default, columns)}


def _value(arr: np.ndarray) -> Any:
    if arr.dtype.kind in "OSU":
        return [_value(a) for a in arr] if arr.ndim else (
            arr.item().decode(errors="replace") if isinstance(arr.item(), bytes) else str(arr.item()))
    return np.ascontiguousarray(arr) if arr.ndim else arr.item()


def encode(rows: bool, outputs: Arrays) -> dict[str, Any]:
    if len(outputs) == 1:
        value = _value(next(iter(outputs.values())))
        return {"predictions": value} if rows else {"outputs": value}
    if not rows:
        return {"outputs": {k: _value(v) for k, v in outputs.items()}}
    n = min((v.shape[0] for v in outputs.values() if v.ndim), default=0)
    return {"predictions": [{k: _value(v[i]) for k, v in outputs.items()} for i in range(n)]}
