"""Namespaces visible to the caller and their members."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from flowyard.accounts import Principal
from flowyard.api.deps import platform, principal
from flowyard.namespaces import PROFILE
from flowyard.platform import Platform

router = APIRouter(prefix="/api/v1/namespaces", tags=["namespaces"])


class Role(BaseModel):
    role: str = Field(description="admin, edit or view", pattern="^(admin|edit|view)$")


def _owner(p: Platform, ns: str) -> str:
    return p.store.get(PROFILE, "", ns)["spec"]["owner"]["name"]


@router.get("", summary="The namespaces the caller may see, with the caller's role")
def list_namespaces(who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict:
    return {"items": p.namespaces.visible(who)}


@router.get("/{namespace}/members", summary="Members of a namespace and their roles")
def list_members(namespace: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict:
    p.namespaces.require(who, namespace, "view")
    owner = _owner(p, namespace)
    return {"owner": owner, "items": [{**m, "owner": m["user"] == owner} for m in p.namespaces.members(namespace)]}


@router.put("/{namespace}/members/{user}", summary="Add a member or change their role (namespace admins)")
def set_member(namespace: str, user: str, body: Role, who: Principal = Depends(principal),
               p: Platform = Depends(platform)) -> dict:
    p.namespaces.require(who, namespace, "admin")
    return p.namespaces.set_member(namespace, user, body.role, owner=_owner(p, namespace))


@router.delete("/{namespace}/members/{user}", summary="Remove a member (namespace admins)")
def remove_member(namespace: str, user: str, who: Principal = Depends(principal),
                  p: Platform = Depends(platform)) -> dict:
    p.namespaces.require(who, namespace, "admin")
    p.namespaces.remove_member(namespace, user, owner=_owner(p, namespace))
    return {"user": user, "removed": True}
