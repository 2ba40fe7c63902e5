"""Users, API tokens and `whoami`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field

from flowyard.accounts import Principal
from flowyard.api.deps import admin, platform, principal
from flowyard.errors import Forbidden, Invalid
from flowyard.namespaces import PROFILE
from flowyard.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    name: str = Field("", max_length=128, description="A label for the token")
    namespace: str | None = Field(None, max_length=63, description="Limit the token to one namespace")


class TokenRequest(BaseModel):
    name: str = Field("", max_length=128)
    namespace: str | None = Field(None, max_length=63)


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=63, pattern="^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    password: str = Field(min_length=8, max_length=72)
    admin: bool = False
    namespace: bool = Field(True, description="Also create a namespace named after the user, owned by them")


class UserChange(BaseModel):
    password: str | None = Field(None, min_length=8, max_length=72)
    disabled: bool | None = None
    admin: bool | None = None


@router.post("/auth/token", summary="Exchange a user name and password for an API token")
def login_token(request: Request, body: Credentials, p: Platform = Depends(platform)) -> dict[str, Any]:
    who = p.accounts.verify_password(body.username, body.password, request.client.host if request.client else "")
    if body.namespace:
        p.namespaces.require(who, body.namespace, "view")
    return p.accounts.create_token(who.user, body.name or "login", body.namespace)


@router.get("/auth/whoami", summary="The caller, their namespaces and roles")
def whoami(who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    return {"username": who.user, "admin": who.admin, "tokenNamespace": who.token_namespace,
            "namespaces": p.namespaces.visible(who), "csrfToken": who.csrf}


@router.get("/tokens", summary="The caller's API tokens (all tokens for admins with ?all=true)")
def list_tokens(all: bool = False, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict:
    return {"items": p.accounts.list_tokens(None if (all and who.admin) else who.user)}


@router.post("/tokens", status_code=201, summary="Create an API token; the secret is shown only in this answer")
def create_token(body: TokenRequest = Body(default_factory=TokenRequest), who: Principal = Depends(principal),
                 p: Platform = Depends(platform)) -> dict[str, Any]:
    if who.token_namespace and body.namespace != who.token_namespace:
        raise Invalid(f"a token limited to '{who.token_namespace}' can only create tokens for that namespace")
    if body.namespace:
        p.namespaces.require(who, body.namespace, "view")
    return p.accounts.create_token(who.user, body.name, body.namespace)


@router.delete("/tokens/{token_id}", summary="Revoke an API token")
def revoke_token(token_id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict:
    p.accounts.revoke_token(token_id, None if who.admin else who.user)
    return {"id": token_id, "revoked": True}


@router.get("/users", summary="All users (administrators only)")
def list_users(_: Principal = Depends(admin), p: Platform = Depends(platform)) -> dict:
    return {"items": p.accounts.list_users()}


@router.post("/users", status_code=201, summary="Add a user (administrators only)")
def add_user(body: NewUser, _: Principal = Depends(admin), p: Platform = Depends(platform)) -> dict:
    user = p.accounts.add_user(body.username, body.password, body.admin)
    if body.namespace and not p.namespaces.exists(body.username):
        p.store.create(PROFILE, "", {"metadata": {"name": body.username},
                                     "spec": {"owner": {"kind": "User", "name": body.username}}})
        p.namespaces.set_member(body.username, body.username, "admin")
    return user


@router.get("/users/{name}", summary="One user (administrators, or the user themself)")
def get_user(name: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict:
    if not who.admin and who.user != name:
        raise Forbidden("you can only read your own user")
    return p.accounts.get_user(name)


@router.patch("/users/{name}", summary="Change a password, disable or promote a user")
def change_user(name: str, body: UserChange, who: Principal = Depends(principal),
                p: Platform = Depends(platform)) -> dict:
    if not who.admin and (who.user != name or body.disabled is not None or body.admin is not None):
        raise Forbidden("only administrators change other users, disable or promote anyone")
    if who.user == name and (body.disabled or body.admin is False):
        raise Invalid("you cannot disable or demote yourself")
    return p.accounts.update_user(name, password=body.password, disabled=body.disabled, admin=body.admin)
