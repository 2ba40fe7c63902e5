"""Level-triggered reconcile loops.

A controller is a kind plus `reconcile(platform, obj) -> status`. The manager calls it
whenever an object of that kind changes, when one of its workloads changes phase, and on
a periodic resync, so a missed notification or a server restart costs at most one resync
period. Failures are recorded as events and retried with backoff. Objects never run through
two reconciles at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flowyard.errors import NotFound
from flowyard.kinds import Kind, Manifest
from flowyard.platform import Platform

log = logging.getLogger("flowyard.controllers")

OWNER_KIND = "flowyard.io/owner-kind"
OWNER_NAMESPACE = "flowyard.io/owner-namespace"
OWNER_NAME = "flowyard.io/owner-name"

Reconcile = Callable[[Platform, Manifest], Awaitable[dict[str, Any] | None]]
Finalize = Callable[[Platform, str, str], Awaitable[None]]


@dataclass(frozen=True)
class Controller:
    """What to do for one kind: reconcile live objects, finalize deleted ones."""

    kind: Kind
    reconcile: Reconcile
    finalize: Finalize | None = None
    workers: int = 4


def owner_labels(obj: Manifest) -> dict[str, str]:
    """Labels that tie a workload to the object it runs for."""
    return {OWNER_KIND: obj["kind"], OWNER_NAMESPACE: obj["metadata"].get("namespace", ""),
            OWNER_NAME: obj["metadata"]["name"]}


class Manager:
    """Runs the controllers' queues, workers and resync inside the server's event loop."""

    def __init__(self, platform: Platform, controllers: list[Controller], resync: float = 10.0) -> None:
        self.platform = platform
        self.controllers = {c.kind.name: c for c in controllers}
        self.resync = resync
        self._queues: dict[str, asyncio.Queue[tuple[str, str]]] = {}
        self._queued: set[tuple[str, str, str]] = set()
        self._active: set[tuple[str, str, str]] = set()
        self._dirty: set[tuple[str, str, str]] = set()
        self._failures: dict[tuple[str, str, str], int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.platform.store.watch(self._on_change)
        if self.platform.executor is not None:
            self.platform.executor.on_change(self._on_workload)
        for name, ctrl in self.controllers.items():
            self._queues[name] = asyncio.Queue()
            self._tasks += [asyncio.create_task(self._work(ctrl)) for _ in range(ctrl.workers)]
        self._tasks.append(asyncio.create_task(self._resync_forever()))
        await self.resync_all()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def enqueue(self, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        if kind not in self._queues:
            return
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queues[kind].put_nowait((namespace, name))

    def _on_change(self, kind: str, namespace: str, name: str, _op: str) -> None:
        if kind in self.controllers and self._loop is not None:
            self._loop.call_soon_threadsafe(self.enqueue, kind, namespace, name)

    def _on_workload(self, status: Any) -> None:
        labels = status.labels or {}
        if OWNER_KIND in labels and self._loop is not None:
            self._loop.call_soon_threadsafe(
                self.enqueue, labels[OWNER_KIND], labels.get(OWNER_NAMESPACE, ""), labels.get(OWNER_NAME, "")
            )

    async def _work(self, ctrl: Controller) -> None:
        queue = self._queues[ctrl.kind.name]
        while True:
            ns, name = await queue.get()
            key = (ctrl.kind.name, ns, name)
            self._queued.discard(key)
            self._active.add(key)
            try:
                await self._reconcile_one(ctrl, ns, name)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bug or a passing failure: record it and retry later
                self._retry_later(ctrl, key, e)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.enqueue(*key)

    async def _reconcile_one(self, ctrl: Controller, ns: str, name: str) -> None:
        store = self.platform.store
        try:
            obj = store.get(ctrl.kind, ns, name)
        except NotFound:
            if ctrl.finalize is not None:
                await ctrl.finalize(self.platform, ns, name)
            return
        status = await ctrl.reconcile(self.platform, obj)
        if status is not None and status != obj["status"]:
            store.set_status(ctrl.kind, ns, name, status)

    def _retry_later(self, ctrl: Controller, key: tuple[str, str, str], error: Exception) -> None:
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        log.warning("reconcile of %s %s/%s failed (%s): %s", *key, count, error, exc_info=count == 1)
        try:
            obj = self.platform.store.get(ctrl.kind, key[1], key[2])
            self.platform.store.record_event(obj, "ReconcileError", f"{type(error).__name__}: {error}", "Warning")
        except Exception:
            pass
        if self._loop is not None:
            self._loop.call_later(min(2.0 ** count, 60.0), self.enqueue, *key)

    async def resync_all(self) -> None:
        """Queue every object of every kind, and stop workloads whose owner is gone."""
        store = self.platform.store
        for name, ctrl in self.controllers.items():
            token = None
            while True:
                items, token = store.list(ctrl.kind, None, continue_=token)
                for obj in items:
                    self.enqueue(name, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                if not token:
                    break
        await self._collect_orphans()

    async def _collect_orphans(self) -> None:
        executor = self.platform.executor
        if executor is None:
            return
        for w in executor.list():
            labels = w.labels or {}
            kind = self.controllers.get(labels.get(OWNER_KIND, ""))
            if kind is None:
                continue
            try:
                self.platform.store.get(kind.kind, labels.get(OWNER_NAMESPACE, ""), labels.get(OWNER_NAME, ""))
            except NotFound:
                if kind.finalize is not None:
                    await kind.finalize(self.platform, labels.get(OWNER_NAMESPACE, ""), labels.get(OWNER_NAME, ""))

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            try:
                await self.resync_all()
            except Exception:
                log.exception("resync failed")
