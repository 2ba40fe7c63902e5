"""Task logs and lineage of pipeline runs.

- `GET /api/v1/namespaces/{ns}/runs/{run}/tasks/{task}/log?follow=&tail=`: the log of one task
  (its key in `status.tasks`, URL-encoded) — the executor workload of its latest attempt; with
  `follow` it waits for a pending task to start, follows retries and ends when the task ends.
- `GET /api/v1/namespaces/{ns}/runs/{run}/log` (the generic object log route, through
  `LOG_SOURCES["Run"]`): every task's log, each line prefixed with `[task] `; with `follow`
  the tasks' lines interleave as they come, until the run ends. `tail` applies per task.
- `GET /api/v1/namespaces/{ns}/lineage?artifact=<uri>&direction=&depth=` or `?run=<name>`: see
  `lineage.py`.

`{run}` is the Run's resource name or its uid (the KFP run id). Everything needs `view`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from flowyard.accounts import Principal
from flowyard.api import resources
from flowyard.api.deps import platform, principal
from flowyard.api.json import JSON
from flowyard.executor.errors import WorkloadNotFound
from flowyard.errors import NotFound
from flowyard.kinds import Manifest
from flowyard.pipelines import lineage as lineage_mod
from flowyard.pipelines.kinds import RUN
from flowyard.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["pipelines"])

POLL = 0.1
_RUN_FINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"})
_TASK_FINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"})


def find_run(p: Platform, who: Principal, namespace: str, run: str) -> Manifest:
    """The Run called `run` (name, else uid) in `namespace`, if `who` may view it."""
    resources._authorize(p, who, RUN, namespace, run, False)
    try:
        return p.store.get(RUN, namespace, run)
    except NotFound:
        from flowyard.pipelines.api_common import find

        try:
            obj = find(p, RUN, run)
        except NotFound:
            raise NotFound(f"run '{run}' not found in namespace '{namespace}'") from None
        if obj["metadata"]["namespace"] != namespace:
            raise NotFound(f"run '{run}' not found in namespace '{namespace}'")
        return obj


def _current(p: Platform, ns: str, name: str) -> Manifest | None:
    try:
        return p.store.get(RUN, ns, name)
    except NotFound:
        return None


async def task_chunks(p: Platform, ns: str, run: str, task: str, follow: bool,
                      tail: int | None) -> AsyncIterator[bytes]:
    """The log of task `task` of run `run`; with `follow`, across retries until it is final."""
    assert p.executor is not None
    done: set[str] = set()
    while True:
        obj = _current(p, ns, run)
        if obj is None:
            return
        st = obj.get("status") or {}
        entry = (st.get("tasks") or {}).get(task)
        wid = (entry or {}).get("workload")
        if wid and wid not in done:
            try:
                chunks = p.executor.logs(wid, follow=follow, tail=tail)
            except WorkloadNotFound:
                chunks = None
            if chunks is not None:
                async for chunk in chunks:
                    yield chunk
            done.add(wid)
            tail = None  # a retry's log comes whole
            if not follow:
                return
            continue
        if not follow:
            return
        if (entry and entry.get("state") in _TASK_FINAL) or st.get("state") in _RUN_FINAL:
            return
        await asyncio.sleep(POLL)


def _prefixed(prefix: bytes, buf: bytearray, chunk: bytes | None) -> bytes:
    """Complete lines of `buf + chunk`, each prefixed; `chunk=None` flushes the rest."""
    if chunk is not None:
        buf += chunk
        cut = buf.rfind(b"\n") + 1
    else:
        if buf and not buf.endswith(b"\n"):
            buf += b"\n"
        cut = len(buf)
    if not cut:
        return b""
    lines, rest = bytes(buf[:cut]), bytes(buf[cut:])
    buf[:] = rest
    return b"".join(prefix + line + b"\n" for line in lines[:-1].split(b"\n"))


async def run_log(p: Platform, obj: Manifest, follow: bool, tail: int | None) -> AsyncIterator[bytes]:
    """`LOG_SOURCES["Run"]`: every task's log, lines prefixed with `[task] `."""
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]

    async def once() -> AsyncIterator[bytes]:
        tasks = (obj.get("status") or {}).get("tasks") or {}
        order = sorted((e.get("startedAt") or "", path) for path, e in tasks.items() if e.get("workload"))
        for _, path in order:
            buf = bytearray()
            async for chunk in task_chunks(p, ns, name, path, False, tail):
                if out := _prefixed(f"[{path}] ".encode(), buf, chunk):
                    yield out
            if out := _prefixed(f"[{path}] ".encode(), buf, None):
                yield out

    async def following() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[tuple[str, bytes | None]] = asyncio.Queue()
        pumps: dict[str, asyncio.Task[None]] = {}
        buffers: dict[str, bytearray] = {}

        async def pump(path: str) -> None:
            try:
                async for chunk in task_chunks(p, ns, name, path, True, tail):
                    await queue.put((path, chunk))
            finally:
                await queue.put((path, None))

        try:
            while True:
                current = _current(p, ns, name)
                st = (current or {}).get("status") or {}
                for path, entry in (st.get("tasks") or {}).items():
                    if entry.get("workload") and path not in pumps:
                        buffers[path] = bytearray()
                        pumps[path] = asyncio.create_task(pump(path))
                with contextlib.suppress(asyncio.TimeoutError):
                    path, chunk = await asyncio.wait_for(queue.get(), POLL * 2)
                    while True:
                        if out := _prefixed(f"[{path}] ".encode(), buffers[path], chunk):
                            yield out
                        if queue.empty():
                            break
                        path, chunk = queue.get_nowait()
                over = current is None or st.get("state") in _RUN_FINAL
                if over and all(t.done() for t in pumps.values()) and queue.empty():
                    # a task may have got its workload just before the run ended
                    if current is not None and any(e.get("workload") and k not in pumps
                                                   for k, e in (st.get("tasks") or {}).items()):
                        continue
                    return
        finally:
            for t in pumps.values():
                t.cancel()

    return following() if follow else once()


resources.LOG_SOURCES["Run"] = run_log


@router.get("/namespaces/{namespace}/runs/{run}/tasks/{task:path}/log", response_class=StreamingResponse,
            summary="Log of one task of a pipeline run (follow with ?follow=true)")
async def task_log(namespace: str, run: str, task: str, follow: bool = False, tail: int | None = resources.Tail,
                   who: Principal = Depends(principal), p: Platform = Depends(platform)) -> StreamingResponse:
    obj = find_run(p, who, namespace, run)
    name = obj["metadata"]["name"]
    tasks = (obj.get("status") or {}).get("tasks") or {}
    if not follow:
        entry = tasks.get(task)
        if entry is None:
            known = ", ".join(sorted(k for k, e in tasks.items() if e.get("type") in ("container", None)))
            raise NotFound(f"run '{name}' has no task '{task}'" + (f" (tasks: {known})" if known else ""))
        if not entry.get("workload"):
            raise NotFound(f"task '{task}' of run '{name}' has not started yet, so it has no logs: "
                           "follow them with ?follow=true")
        assert p.executor is not None
        try:
            p.executor.status(entry["workload"])
        except WorkloadNotFound:
            raise NotFound(f"the log of task '{task}' is gone (its workload was removed)") from None
    return StreamingResponse(task_chunks(p, namespace, name, task, follow, tail),
                             media_type="text/plain; charset=utf-8")


@router.get("/namespaces/{namespace}/lineage", summary="Lineage of pipeline artifacts and runs")
def get_lineage(namespace: str,
                artifact: str | None = Query(None, description="An artifact URI (its path in the artifact store)"),
                run: str | None = Query(None, description="A run name or uid: its tasks and artifacts"),
                direction: str = Query("both", pattern="^(upstream|downstream|both)$"),
                depth: int = Query(10, ge=1, le=100, description="How many executions away at most"),
                who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "view")
    if run is not None:
        run = find_run(p, who, namespace, run)["metadata"]["name"]
    answer: dict[str, Any] = lineage_mod.lineage(p, namespace, artifact=artifact, run=run, direction=direction,
                                                 depth=depth)
    return JSON(answer)
