"""Kubernetes-style REST for every registered kind.

`/api/v1/namespaces/{ns}/{plural}[/{name}]` for namespaced kinds and `/api/v1/{plural}[/{name}]`
for cluster-scoped ones (and for listing a namespaced kind across the caller's namespaces).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import StreamingResponse

from flowyard.accounts import Principal
from flowyard.api.deps import platform, principal
from flowyard.api.json import JSON
from flowyard.errors import Forbidden, Invalid, NotFound
from flowyard.kinds import CREATOR, Kind, Manifest, all_kinds, lookup
from flowyard.namespaces import PROFILE
from flowyard.platform import Platform
from flowyard.store.resources import merge_patch

router = APIRouter(prefix="/api/v1", tags=["resources"])
# Reads are coroutines that query the store directly: one indexed query is cheaper than the
# thread-pool hop a plain `def` endpoint costs. Writes stay in the thread pool.

LogSource = Callable[[Platform, Manifest, bool, int | None], Awaitable[AsyncIterator[bytes]]]
LOG_SOURCES: dict[str, LogSource] = {}
"""Per-kind log readers; the default reads the executor workload named in `status.workload`."""

_Body = Body(..., description="A resource manifest (apiVersion, kind, metadata, spec)")
_Patch = Body(..., description="A JSON merge patch (RFC 7386) of metadata and spec")


def _kind(plural: str, namespaced: bool | None) -> Kind:
    kind = lookup(plural)
    if namespaced is True and not kind.namespaced:
        raise NotFound(f"{kind.plural} are cluster-scoped: use /api/v1/{kind.plural}")
    if namespaced is False and kind.namespaced:
        raise NotFound(f"{kind.plural} are namespaced: use /api/v1/namespaces/<namespace>/{kind.plural}")
    return kind


def _authorize(p: Platform, who: Principal, kind: Kind, ns: str, name: str | None, write: bool) -> None:
    """Raise unless `who` may read (or write) object `name` of `kind` in `ns`."""
    if kind.namespaced:
        p.namespaces.require(who, ns, "edit" if write else kind.min_read_role)
    elif kind is PROFILE:
        if name is not None:
            p.namespaces.require(who, name, "admin" if write else "view")
    elif write and name is not None and not who.admin:
        obj = p.store.get(kind, "", name)
        if obj["metadata"]["annotations"].get(CREATOR) != who.user:
            raise Forbidden(f"only its creator or an administrator may change {kind.name.lower()} '{name}'")
    elif who.token_namespace and write:
        raise Forbidden(f"a token limited to namespace '{who.token_namespace}' cannot create {kind.plural}")


def _show(kind: Kind, obj: Manifest) -> Manifest:
    return kind.present(obj)


def _list(p: Platform, who: Principal, kind: Kind, ns: str | None, selector: str | None, limit: int | None,
          cont: str | None) -> dict[str, Any]:
    namespaces = None
    if kind.namespaced and ns is None:
        visible = p.namespaces.visible(who)
        namespaces = [n["name"] for n in visible if kind.min_read_role == "view" or n["role"] != "view"]
        if who.admin and not who.token_namespace:
            namespaces = None
    elif kind.namespaced:
        _authorize(p, who, kind, ns, None, False)
    if kind is PROFILE and not who.admin:
        names = {n["name"] for n in p.namespaces.visible(who)}
        items, token = p.store.list(kind, None, label_selector=selector, limit=limit, continue_=cont)
        items = [i for i in items if i["metadata"]["name"] in names]
    else:
        items, token = p.store.list(kind, ns, label_selector=selector, limit=limit, continue_=cont,
                                    namespaces=namespaces)
    return {"apiVersion": "v1", "kind": f"{kind.name}List", "metadata": {"continue": token},
            "items": [_show(kind, i) for i in items]}


def _create(p: Platform, who: Principal, kind: Kind, ns: str, body: dict[str, Any]) -> Manifest:
    _authorize(p, who, kind, ns, None, True)
    if kind is PROFILE:
        owner = ((body.get("spec") or {}).get("owner") or {}).get("name")
        if not who.admin and owner != who.user:
            raise Forbidden("you can only create a namespace you own: set spec.owner.name to your user name")
        if owner:
            p.accounts.get_user(owner)
    _admit(p, kind, ns, body, None)
    obj = p.store.create(kind, ns, _with_creator(body, who.user))
    if kind is PROFILE:
        name = obj["metadata"]["name"]
        p.namespaces.set_member(name, obj["spec"]["owner"]["name"], "admin")
    return _show(kind, obj)


def _admit(p: Platform, kind: Kind, ns: str, body: dict[str, Any], name: str | None) -> None:
    """Run the kind's platform-wide checks (environment exists, quota) before a write."""
    if kind.admit is None:
        return
    old = p.store.get(kind, ns, name) if name else None
    spec = kind.spec_from(body, old)
    if old is None or spec != old["spec"]:
        kind.admit(p, ns, {**body, "spec": spec})


def _admit_patch(p: Platform, kind: Kind, ns: str, name: str, patch: dict[str, Any]) -> None:
    """`_admit` for a merge patch: the kind's checks see the object as the patch would leave it."""
    if kind.admit is None or not isinstance(patch, dict):
        return
    current = p.store.get(kind, ns, name)
    _admit(p, kind, ns, merge_patch({k: current[k] for k in ("apiVersion", "metadata", "spec")}, patch), name)


def _with_creator(body: dict[str, Any], creator: str | None) -> dict[str, Any]:
    """`body` with the creator annotation set (it records who made an object; users cannot forge it)."""
    meta = body.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        return body  # the store rejects it with a clear message
    meta = dict(meta or {})
    annotations = meta.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        return body
    annotations = {k: v for k, v in (annotations or {}).items() if k != CREATOR}
    if creator:
        annotations[CREATOR] = creator
    return {**body, "metadata": {**meta, "annotations": annotations}}


def _no_creator(patch: dict[str, Any]) -> dict[str, Any]:
    """A merge patch without any change to the creator annotation."""
    annotations = (patch.get("metadata") or {}).get("annotations") if isinstance(patch.get("metadata"), dict) else None
    if isinstance(annotations, dict) and CREATOR in annotations:
        rest = {k: v for k, v in annotations.items() if k != CREATOR}
        return {**patch, "metadata": {**patch["metadata"], "annotations": rest}}
    return patch


def _keep_creator(p: Platform, kind: Kind, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Carry the stored creator annotation over into a replacement."""
    creator = p.store.get(kind, ns, name)["metadata"]["annotations"].get(CREATOR)
    return _with_creator(body, creator)


def _after_write(p: Platform, kind: Kind, obj: Manifest) -> Manifest:
    if kind is PROFILE:
        p.accounts.get_user(obj["spec"]["owner"]["name"])
        p.namespaces.set_member(obj["metadata"]["name"], obj["spec"]["owner"]["name"], "admin")
    return _show(kind, obj)


def _delete(p: Platform, who: Principal, kind: Kind, ns: str, name: str) -> Manifest:
    _authorize(p, who, kind, ns, name, True)
    if kind.name == "Environment" and name == "default":
        raise Invalid("the 'default' environment is the platform's own interpreter and cannot be deleted")
    if kind.guard_delete is not None:
        kind.guard_delete(p, ns, name)
    obj = p.store.delete(kind, ns, name)
    if kind is PROFILE:
        p.namespaces.drop(name)
        p.store.delete_namespace(name)
    return _show(kind, obj)


async def _workload_log(p: Platform, obj: Manifest, follow: bool, tail: int | None) -> AsyncIterator[bytes]:
    """The log of the workload in `status.workload`; with `follow`, first wait for it to exist."""
    kind, ns, name = lookup(obj["kind"]), obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
    if not (obj.get("status") or {}).get("workload") and not follow:
        raise NotFound(f"{kind.name.lower()} '{name}' has not started yet, so it has no logs: "
                       "follow them with ?follow=true")

    async def stream() -> AsyncIterator[bytes]:
        current = obj
        while not (wid := (current.get("status") or {}).get("workload")):
            if (current.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            await asyncio.sleep(0.2)
            try:
                current = p.store.get(kind, ns, name)
            except NotFound:
                return
        assert p.executor is not None
        async for chunk in p.executor.logs(wid, follow=follow, tail=tail):
            yield chunk

    return stream()


async def _log(p: Platform, who: Principal, kind: Kind, ns: str, name: str, follow: bool,
               tail: int | None) -> StreamingResponse:
    _authorize(p, who, kind, ns, name, False)
    obj = p.store.get(kind, ns, name)
    source = LOG_SOURCES.get(kind.name, _workload_log)
    stream = await source(p, obj, follow, tail)
    return StreamingResponse(stream, media_type="text/plain; charset=utf-8")


def _events(p: Platform, who: Principal, kind: Kind, ns: str, name: str) -> dict[str, Any]:
    _authorize(p, who, kind, ns, name, False)
    p.store.get(kind, ns, name)
    return {"items": p.store.list_events(ns if kind.namespaced else "", kind.name, name)}


Limit = Query(None, ge=1, le=1000, description="Page size")
Continue = Query(None, alias="continue", description="Token from the previous page")
Selector = Query(None, description="Label selector, e.g. app=web,tier!=db,env in (a,b)")
Tail = Query(None, ge=0, le=100000, description="Only the last N lines")


@router.get("/kinds", summary="The resource kinds this server knows")
async def kinds(_: Principal = Depends(principal)) -> dict[str, Any]:
    return {"items": [{"kind": k.name, "plural": k.plural, "apiVersions": list(k.api_versions),
                       "namespaced": k.namespaced, "manifestKind": k.manifest_kind} for k in all_kinds()]}


@router.get("/namespaces/{namespace}/events", summary="Events in a namespace")
async def namespace_events(namespace: str, kind: str | None = None, name: str | None = None,
                     who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    p.namespaces.require(who, namespace, "view")
    return {"items": p.store.list_events(namespace, lookup(kind).name if kind else None, name)}


@router.get("/namespaces/{namespace}/{plural}", summary="List objects of a kind in a namespace")
async def list_namespaced(namespace: str, plural: str, labelSelector: str | None = Selector, limit: int | None = Limit,
                    cont: str | None = Continue, who: Principal = Depends(principal),
                    p: Platform = Depends(platform)) -> JSON:
    return JSON(_list(p, who, _kind(plural, True), namespace, labelSelector, limit, cont))


@router.post("/namespaces/{namespace}/{plural}", status_code=201, summary="Create an object in a namespace")
def create_namespaced(namespace: str, plural: str, body: dict[str, Any] = _Body,
                      who: Principal = Depends(principal), p: Platform = Depends(platform)) -> Manifest:
    return _create(p, who, _kind(plural, True), namespace, body)


@router.get("/namespaces/{namespace}/{plural}/{name}", summary="Read an object")
async def get_namespaced(namespace: str, plural: str, name: str, who: Principal = Depends(principal),
                   p: Platform = Depends(platform)) -> JSON:
    kind = _kind(plural, True)
    _authorize(p, who, kind, namespace, name, False)
    return JSON(_show(kind, p.store.get(kind, namespace, name)))


@router.put("/namespaces/{namespace}/{plural}/{name}", summary="Replace an object's metadata and spec")
def replace_namespaced(namespace: str, plural: str, name: str, body: dict[str, Any] = _Body,
                       who: Principal = Depends(principal), p: Platform = Depends(platform)) -> Manifest:
    kind = _kind(plural, True)
    _authorize(p, who, kind, namespace, name, True)
    _admit(p, kind, namespace, body, name)
    return _after_write(p, kind, p.store.replace(kind, namespace, name, _keep_creator(p, kind, namespace, name, body)))


@router.patch("/namespaces/{namespace}/{plural}/{name}", summary="Merge-patch an object's metadata and spec")
def patch_namespaced(namespace: str, plural: str, name: str, body: dict[str, Any] = _Patch,
                     who: Principal = Depends(principal), p: Platform = Depends(platform)) -> Manifest:
    kind = _kind(plural, True)
    _authorize(p, who, kind, namespace, name, True)
    _admit_patch(p, kind, namespace, name, body)
    return _after_write(p, kind, p.store.patch(kind, namespace, name, _no_creator(body)))


@router.delete("/namespaces/{namespace}/{plural}/{name}", summary="Delete an object")
def delete_namespaced(namespace: str, plural: str, name: str, who: Principal = Depends(principal),
                      p: Platform = Depends(platform)) -> Manifest:
    return _delete(p, who, _kind(plural, True), namespace, name)


@router.get("/namespaces/{namespace}/{plural}/{name}/events", summary="Events of an object")
async def events_namespaced(namespace: str, plural: str, name: str, who: Principal = Depends(principal),
                      p: Platform = Depends(platform)) -> dict[str, Any]:
    return _events(p, who, _kind(plural, True), namespace, name)


@router.get("/namespaces/{namespace}/{plural}/{name}/log", summary="Logs of an object (follow with ?follow=true)",
            response_class=StreamingResponse)
async def log_namespaced(namespace: str, plural: str, name: str, follow: bool = False, tail: int | None = Tail,
                         who: Principal = Depends(principal), p: Platform = Depends(platform)) -> StreamingResponse:
    return await _log(p, who, _kind(plural, True), namespace, name, follow, tail)


@router.get("/{plural}", summary="List cluster-scoped objects, or a namespaced kind across your namespaces")
async def list_cluster(plural: str, labelSelector: str | None = Selector, limit: int | None = Limit,
                 cont: str | None = Continue, who: Principal = Depends(principal),
                 p: Platform = Depends(platform)) -> JSON:
    return JSON(_list(p, who, _kind(plural, None), None, labelSelector, limit, cont))


@router.post("/{plural}", status_code=201, summary="Create a cluster-scoped object")
def create_cluster(plural: str, body: dict[str, Any] = _Body, who: Principal = Depends(principal),
                   p: Platform = Depends(platform)) -> Manifest:
    return _create(p, who, _kind(plural, False), "", body)


@router.get("/{plural}/{name}", summary="Read a cluster-scoped object")
async def get_cluster(plural: str, name: str, who: Principal = Depends(principal),
                p: Platform = Depends(platform)) -> JSON:
    kind = _kind(plural, False)
    _authorize(p, who, kind, "", name, False)
    return JSON(_show(kind, p.store.get(kind, "", name)))


@router.put("/{plural}/{name}", summary="Replace a cluster-scoped object's metadata and spec")
def replace_cluster(plural: str, name: str, body: dict[str, Any] = _Body, who: Principal = Depends(principal),
                    p: Platform = Depends(platform)) -> Manifest:
    kind = _kind(plural, False)
    _authorize(p, who, kind, "", name, True)
    _admit(p, kind, "", body, name)
    return _after_write(p, kind, p.store.replace(kind, "", name, _keep_creator(p, kind, "", name, body)))


@router.patch("/{plural}/{name}", summary="Merge-patch a cluster-scoped object")
def patch_cluster(plural: str, name: str, body: dict[str, Any] = _Patch, who: Principal = Depends(principal),
                  p: Platform = Depends(platform)) -> Manifest:
    kind = _kind(plural, False)
    _authorize(p, who, kind, "", name, True)
    _admit_patch(p, kind, "", name, body)
    return _after_write(p, kind, p.store.patch(kind, "", name, _no_creator(body)))


@router.delete("/{plural}/{name}", summary="Delete a cluster-scoped object")
def delete_cluster(plural: str, name: str, who: Principal = Depends(principal),
                   p: Platform = Depends(platform)) -> Manifest:
    return _delete(p, who, _kind(plural, False), "", name)


@router.get("/{plural}/{name}/events", summary="Events of a cluster-scoped object")
async def events_cluster(plural: str, name: str, who: Principal = Depends(principal),
                   p: Platform = Depends(platform)) -> dict[str, Any]:
    return _events(p, who, _kind(plural, False), "", name)


@router.get("/{plural}/{name}/log", summary="Logs of a cluster-scoped object", response_class=StreamingResponse)
async def log_cluster(plural: str, name: str, follow: bool = False, tail: int | None = Tail,
                      who: Principal = Depends(principal), p: Platform = Depends(platform)) -> StreamingResponse:
    return await _log(p, who, _kind(plural, False), "", name, follow, tail)
