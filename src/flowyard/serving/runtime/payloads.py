"""Payload logging: a sampled fraction of requests and their responses, as JSON lines.

Records are buffered in memory and written by a background thread once a second as a new
file `<model>-<version>-<pid>-<n>.jsonl` under the target (a local folder or any fsspec URL,
e.g. the namespace's artifact store), so object stores without append work too and the
request path never waits for storage. One record per request:
`{"time", "model", "version", "protocol", "id", "request": {"inputs": [V2 tensors]},
"response": {"outputs": [V2 tensors]}}` or `"error": message` instead of `response`.
"""

from __future__ import annotations

import os
import random
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import orjson

from flowyard.serving.runtime.models import Arrays
from flowyard.serving.runtime.tensors import datatype_of, json_data, json_default

FLUSH_SECONDS = 1.0


def tensors(arrays: Arrays) -> list[dict[str, Any]]:
    return [{"name": k, "datatype": datatype_of(v), "shape": list(v.shape), "data": json_data(v)}
            for k, v in arrays.items()]


class PayloadLog:
    """Samples and writes request/response records for one model version."""

    def __init__(self, target: str, fraction: float, model: str, version: str) -> None:
        import fsspec

        self.fraction = fraction
        self._fs, self._root = fsspec.core.url_to_fs(target)
        self._fs.makedirs(self._root, exist_ok=True)
        self._prefix = f"{model}-{version}-{os.getpid()}"
        self._model, self._version = model, version
        self._lines: list[bytes] = []
        self._lock = threading.Lock()
        self._count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="payload-log", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        return self.fraction >= 1.0 or random.random() < self.fraction

    def write(self, protocol: str, request_id: str | None, inputs: Arrays, outputs: Arrays | None,
              error: str | None = None) -> None:
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "model": self._model, "version": self._version, "protocol": protocol, "id": request_id,
            "request": {"inputs": tensors(inputs)}}
        if outputs is not None:
            record["response"] = {"outputs": tensors(outputs)}
        else:
            record["error"] = error
        line = orjson.dumps(record, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        with self._lock:
            self._lines.append(line)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._flush()

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if not lines:
            return
        self._count += 1
        path = f"{self._root.rstrip('/')}/{self._prefix}-{self._count:06d}.jsonl"
        try:
            with self._fs.open(path, "wb") as f:
                f.write(b"".join(lines))
        except Exception as e:  # storage trouble must not take inference down
            print(f"payload log: cannot write {path}: {e}", file=sys.stderr)
