"""The pipeline task cache of a namespace over HTTP (see `flowyard.pipelines.cache`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from flowyard.accounts import Principal
from flowyard.api.deps import platform, principal
from flowyard.pipelines import cache
from flowyard.platform import Platform

router = APIRouter(prefix="/api/v1/namespaces/{namespace}/pipelinecache", tags=["kfp"])


@router.delete("", summary="Clear the namespace's pipeline task cache (the cached artifacts stay)")
async def clear_cache(namespace: str, who: Principal = Depends(principal),
                      p: Platform = Depends(platform)) -> dict[str, Any]:
    p.namespaces.require(who, namespace, "edit")
    deleted = await run_in_threadpool(cache.clear, p, namespace)
    return {"deleted": deleted}
