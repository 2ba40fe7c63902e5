"""REST routes of the registry beyond the generic CRUD of its kinds.

- `POST /api/v1/namespaces/{ns}/registeredmodels/{model}/versions`: register the next version
  (`{run, artifact}` or `{uri}`, plus format, signature, metrics, description, tags).
- `PUT|DELETE .../registeredmodels/{model}/aliases/{alias}` (`{version}`): move or remove an alias.
- `GET .../registeredmodels/{model}/resolve?ref=production`: what `models:/model/production` is now.
- `GET /api/v1/namespaces/{ns}/lineagegraph?node=<id>`: the lineage graph around any node
  (artifact, execution, run, model version, inference service); see `pipelines/lineage.py`.
- `GET /api/v1/namespaces/{ns}/inferenceservices/{name}/monitoring`: request rate, error rate
  and latency over time (see `monitoring.py`).

Reads need `view`, writes `edit`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query

from flowyard.accounts import Principal
from flowyard.api.deps import platform, principal
from flowyard.api.json import JSON
from flowyard.errors import Invalid
from flowyard.platform import Platform
from flowyard.registry import models, monitoring
from flowyard.registry.kinds import REGISTERED_MODEL

router = APIRouter(prefix="/api/v1/namespaces/{namespace}", tags=["registry"])


@router.post("/registeredmodels/{model}/versions", status_code=201, summary="Register a new model version")
def register_version(namespace: str, model: str,
                     body: dict[str, Any] = Body(..., description="{run, artifact} or {uri}; format, signature, metrics, description, tags"),
                     who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "edit")
    return JSON(models.register_version(p, namespace, model, body, who.user), status_code=201)


@router.put("/registeredmodels/{model}/aliases/{alias}", summary="Point an alias at a version (atomically)")
def set_alias(namespace: str, model: str, alias: str, body: dict[str, Any] = Body(..., description="{version: 3}"),
              who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "edit")
    version = body.get("version") if isinstance(body, dict) else None
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Invalid("give the version number the alias should point at: {\"version\": 3}")
    return JSON(REGISTERED_MODEL.present(models.set_alias(p, namespace, model, alias, version)))


@router.delete("/registeredmodels/{model}/aliases/{alias}", summary="Remove an alias")
def delete_alias(namespace: str, model: str, alias: str, who: Principal = Depends(principal),
                 p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "edit")
    return JSON(models.set_alias(p, namespace, model, alias, None))


@router.get("/registeredmodels/{model}/resolve", summary="The version a reference names now")
def resolve(namespace: str, model: str, ref: str = Query("latest", description="A version, an alias or 'latest'"),
            who: Principal = Depends(principal), p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "view")
    version = models.resolve_version(p, namespace, f"models:/{model}/{ref}")
    return JSON({"name": version["metadata"]["name"], "version": version["spec"]["version"],
                 "uri": version["spec"]["uri"], "format": version["spec"].get("format") or None})


@router.get("/lineagegraph", summary="The lineage graph around any node, both ways")
def lineage_graph(namespace: str,
                  node: str = Query(..., description="artifact:<uri>, run:<uid>, execution:<run uid>/<task>, "
                                    "modelversion:<name>, model:<name> or inferenceservice:<name>"),
                  direction: str = Query("both", pattern="^(upstream|downstream|both)$"),
                  depth: int = Query(10, ge=1, le=100), who: Principal = Depends(principal),
                  p: Platform = Depends(platform)) -> JSON:
    from flowyard.pipelines import lineage

    p.namespaces.require(who, namespace, "view")
    return JSON(lineage.around(p, namespace, node, direction, depth))


@router.get("/inferenceservices/{name}/monitoring", summary="Requests, errors and latency of an endpoint over time")
def service_monitoring(namespace: str, name: str, who: Principal = Depends(principal),
                       p: Platform = Depends(platform)) -> JSON:
    p.namespaces.require(who, namespace, "view")
    return JSON(monitoring.series(namespace, name))
