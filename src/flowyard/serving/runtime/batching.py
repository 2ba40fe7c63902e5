"""Adaptive micro-batching: concurrent requests for one model become one `predict` call.

Requests queue while the model is busy; the next call takes every compatible queued request
(same input names, dtypes and trailing dimensions, same requested outputs) up to
`max_batch_size` rows, so batches grow with load and a lone request never waits. With
`max_latency` > 0 a call that is not full waits up to that long after its oldest request for
more to arrive. Outputs are cut back per request by row counts; if a joined call fails or its
outputs lost the batch dimension, its requests are run one by one so that each gets its own
answer or error.

Where predictions run: inline on the event loop while they are fast (the cheapest path for
small models: no thread hop, no GIL hand-over), on one model thread once their moving average
passes `SLOW`, so that a slow model does not stall health checks, metrics and timeouts.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from flowyard.serving.runtime.models import Arrays, Model, rows, split

SLOW = 0.002  # seconds of model time above which predictions leave the event loop


@dataclass
class _Item:
    inputs: Arrays
    outputs: tuple[str, ...] | None
    rows: int
    key: tuple[object, ...]
    future: asyncio.Future[Arrays]
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """Runs one model's predictions, joining concurrent requests when `max_batch_size` > 1."""

    def __init__(self, model: Model, max_batch_size: int = 1, max_latency: float = 0.0,
                 on_call: Callable[[int, float], None] = lambda rows, seconds: None) -> None:
        self._model = model
        self._max = max(1, max_batch_size)
        self._latency = max(0.0, max_latency)
        self._on_call = on_call  # (rows, seconds) of every model call
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._ewma = 0.0
        self._pending: deque[_Item] = deque()
        self._queued = 0
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None

    async def predict(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        n = rows(inputs) if self._max > 1 else None
        if n is None or n >= self._max:
            return await self._call(inputs, outputs)
        loop = asyncio.get_running_loop()
        key = (outputs, *((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))
        item = _Item(inputs, outputs, n, key, loop.create_future())
        self._pending.append(item)
        self._queued += n
        if self._task is None:
            self._task = loop.create_task(self._drain())
        elif self._wakeup is not None and self._queued >= self._max:
            _wake(self._wakeup)
        return await item.future

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await asyncio.sleep(0)  # let requests read in the same loop turn join this batch
                if self._latency and self._queued < self._max:
                    delay = self._pending[0].arrived + self._latency - time.monotonic()
                    if delay > 0:
                        self._wakeup = loop.create_future()
                        timer = loop.call_later(delay, _wake, self._wakeup)
                        await self._wakeup
                        timer.cancel()
                        self._wakeup = None
                batch = self._take()
                if batch:
                    await self._run(batch)
        finally:
            self._task = None

    def _take(self) -> list[_Item]:
        """The oldest live request and the compatible ones behind it, up to the row limit."""
        batch: list[_Item] = []
        keep: deque[_Item] = deque()
        total = 0
        while self._pending:
            item = self._pending.popleft()
            if item.future.done():  # timed out or cancelled while queued
                self._queued -= item.rows
            elif not batch or (item.key == batch[0].key and total + item.rows <= self._max):
                batch.append(item)
                total += item.rows
                self._queued -= item.rows
            else:
                keep.append(item)
        self._pending = keep
        return batch

    async def _run(self, batch: list[_Item]) -> None:
        parts = None
        if len(batch) > 1:
            try:
                joined = {k: np.concatenate([it.inputs[k] for it in batch]) for k in batch[0].inputs}
                parts = split(await self._call(joined, batch[0].outputs), [it.rows for it in batch])
            except Exception:
                parts = None
        if parts is not None:
            for item, part in zip(batch, parts):
                if not item.future.done():
                    item.future.set_result(part)
            return
        for item in batch:
            if item.future.done():
                continue
            try:
                result = await self._call(item.inputs, item.outputs)
            except Exception as e:
                if not item.future.done():
                    item.future.set_exception(e)
            else:
                if not item.future.done():
                    item.future.set_result(result)

    async def _call(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        if self._model.offload or self._ewma > SLOW:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._timed, inputs, outputs)
        return self._timed(inputs, outputs)

    def _timed(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        t = time.perf_counter()
        try:
            return self._model.predict(inputs, outputs)
        finally:
            took = time.perf_counter() - t
            self._ewma += 0.2 * (took - self._ewma)
            self._on_call(rows(inputs) or 1, took)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
