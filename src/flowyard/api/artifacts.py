"""Artifacts of a namespace over HTTP: list, download, upload and delete, streamed both ways.

Every call first authorises the caller's role in the namespace (`view` to read, `edit` to
write), so a non-member gets 403 before anything about the path is looked at.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from flowyard.accounts import Principal
from flowyard.api.deps import platform, principal
from flowyard.artifacts.store import CHUNK, ArtifactStore, check_path
from flowyard.errors import FlowyardError
from flowyard.platform import Platform

router = APIRouter(prefix="/api/v1/namespaces/{namespace}/artifacts", tags=["artifacts"])


def _store(p: Platform) -> ArtifactStore:
    if p.artifacts is None:
        raise FlowyardError("the artifact store is not started")
    return p.artifacts


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    """Read `f` in chunks and close it (Starlette runs this iterator in the thread pool)."""
    try:
        while chunk := f.read(CHUNK):
            yield chunk
    finally:
        f.close()


def _length(f: IO[bytes]) -> int:
    """Size of an open file, measured on the handle itself so it matches what is sent."""
    size = f.seek(0, 2)
    f.seek(0)
    return int(size)


@router.get("", summary="List artifacts whose path starts with a prefix")
def list_artifacts(namespace: str,
                   prefix: str = Query("", description="Plain string prefix of the paths, e.g. 'runs/42/'"),
                   who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    p.namespaces.require(who, namespace, "view")
    return {"items": _store(p).list(namespace, prefix)}


@router.get("/{path:path}", summary="Download an artifact", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download(namespace: str, path: str, who: Principal = Depends(principal),
             p: Platform = Depends(platform)) -> StreamingResponse:
    p.namespaces.require(who, namespace, "view")
    f = _store(p).open_read(namespace, path)
    try:
        size = _length(f)
    except BaseException:
        f.close()
        raise
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    name = quote(path.rsplit("/", 1)[-1], safe="")
    headers = {
        "Content-Length": str(size),
        # User content on the platform's origin: never let a browser render or sniff it.
        "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    }
    return StreamingResponse(_chunks(f), media_type=media, headers=headers)


@router.put("/{path:path}", status_code=201, summary="Upload (or replace) an artifact from the raw request body")
async def upload(namespace: str, path: str, request: Request, who: Principal = Depends(principal),
                 p: Platform = Depends(platform)) -> dict[str, Any]:
    p.namespaces.require(who, namespace, "edit")
    check_path(path)
    pending = await run_in_threadpool(_store(p).begin, namespace, path)
    try:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) >= CHUNK:
                await run_in_threadpool(pending.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(pending.write, bytes(buffer))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(pending.abort)
        raise
    return await run_in_threadpool(pending.commit)


@router.delete("/{path:path}", summary="Delete an artifact")
def delete(namespace: str, path: str, who: Principal = Depends(principal),
           p: Platform = Depends(platform)) -> dict[str, str]:
    p.namespaces.require(who, namespace, "edit")
    _store(p).delete(namespace, path)
    return {"path": path, "status": "deleted"}
