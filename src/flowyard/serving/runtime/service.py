"""The model version a replica serves, as every protocol front end sees it.

Front ends decode a request into numpy arrays, call `infer`, and encode what comes back;
readiness, name and version checks, the timeout, batching, metrics and payload logging live
here once for all of them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from flowyard.serving.runtime.batching import Batcher
from flowyard.serving.runtime.errors import DeadlineExceeded, ModelNotFound, NotReady
from flowyard.serving.runtime.metrics import Metrics
from flowyard.serving.runtime.models import Arrays, Model
from flowyard.serving.runtime.payloads import PayloadLog

SERVER_NAME = "flowyard"


@dataclass(frozen=True)
class Options:
    """What the replica's command line says."""

    name: str
    format: str
    model_dir: str
    version: str = "1"
    max_batch_size: int = 1
    max_latency_ms: float = 0.0
    timeout_s: float | None = None
    payload_log: str | None = None
    payload_sample: float = 1.0


class Runtime:
    """One model version: loaded once, then answering requests from every front end."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.name, self.version = options.name, options.version
        self.model: Model | None = None
        self.metrics = Metrics(self.name, self.version)
        self.payloads = (PayloadLog(options.payload_log, options.payload_sample, self.name, self.version)
                         if options.payload_log and options.payload_sample > 0 else None)
        self._batcher: Batcher | None = None

    def loaded(self, model: Model) -> None:
        self._batcher = Batcher(model, self.options.max_batch_size, self.options.max_latency_ms / 1000,
                                self.metrics.model_call)
        self.model = model
        self.metrics.ready.set(1)

    def close(self) -> None:
        if self._batcher:
            self._batcher.close()
        if self.payloads:
            self.payloads.close()

    def check(self, name: str, version: str | None = None) -> Model:
        """The model for a request naming `name` (and perhaps `version`)."""
        if name != self.name:
            raise ModelNotFound(f"model {name!r} is not served here (this endpoint serves {self.name!r})")
        if version and version != self.version:
            raise ModelNotFound(f"model {name!r} has no version {version!r} here (serving version {self.version!r})")
        if self.model is None:
            raise NotReady(f"model {name!r} is still loading")
        return self.model

    def model_metadata(self) -> dict[str, Any]:
        assert self.model is not None
        return {"name": self.name, "versions": [self.version], **self.model.metadata()}

    async def infer(self, protocol: str, request_id: str | None, model: Model, inputs: Arrays,
                    outputs: tuple[str, ...] | None) -> Arrays:
        """Predict for one decoded request (inputs are checked against the model's signature)."""
        log = self.payloads is not None and self.payloads.sampled()
        self.metrics.inflight.inc()
        try:
            prepared = model.prepare(inputs)
            assert self._batcher is not None
            if self.options.timeout_s:
                try:
                    async with asyncio.timeout(self.options.timeout_s):
                        result = await self._batcher.predict(prepared, outputs)
                except TimeoutError:
                    raise DeadlineExceeded(
                        f"the prediction did not finish within the timeout of {self.options.timeout_s:g} s") from None
            else:
                result = await self._batcher.predict(prepared, outputs)
        except Exception as e:
            if log:
                self.payloads.write(protocol, request_id, inputs, None, str(e))  # type: ignore[union-attr]
            raise
        finally:
            self.metrics.inflight.dec()
        if log:
            self.payloads.write(protocol, request_id, inputs, result)  # type: ignore[union-attr]
        return result
