"""`GET /api/v1/namespaces/{namespace}/servingstats`: live request totals of a namespace's endpoints.

Cumulative counts, errors and summed latency per revision since the server started, read from
the gateway's in-memory recorders; the dashboard polls it and turns differences into a request
rate and a mean latency. (Prometheus gets the same, and histograms, on `/metrics`.)
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends

from flowyard.accounts import Principal
from flowyard.api.deps import platform, principal
from flowyard.platform import Platform
from flowyard.serving.endpoints import table
from flowyard.serving.metrics import Recorder

router = APIRouter(prefix="/api/v1/namespaces", tags=["serving"])


@router.get("/{namespace}/servingstats", summary="Live request totals of the namespace's inference services")
async def serving_stats(namespace: str, who: Principal = Depends(principal),
                        p: Platform = Depends(platform)) -> dict[str, Any]:
    p.namespaces.require(who, namespace, "view")
    items = []
    for (ns, name), ep in sorted(table(p).items()):
        if ns != namespace:
            continue
        revisions = []
        for rev_name, rev in ep.revisions.items():
            totals = [r for key, r in ep.extra.items() if isinstance(r, Recorder) and key[1] == rev_name]
            revisions.append({"name": rev_name, "percent": rev.percent, "inflight": rev.inflight,
                              "readyReplicas": len(rev.routable()),
                              "requests": sum(r.count for r in totals), "errors": sum(r.errors for r in totals),
                              "seconds": round(sum(r.seconds for r in totals), 6)})
        items.append({"name": name, "revisions": revisions})
    return {"time": time.time(), "items": items}
