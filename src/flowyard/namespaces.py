"""Namespaces are Kubeflow Profiles: an owner, contributors with roles, and a quota.

`Profile` is a cluster-scoped kind (`kubeflow.org/v1`); creating one creates the namespace
of the same name with its owner as `admin`. Every request is checked with `require()`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from flowyard import quantity
from flowyard.accounts import Principal
from flowyard.errors import Forbidden, Invalid, NotFound
from flowyard.kinds import Kind, Manifest, register
from flowyard.store.tables import members, resources, users

ROLES = {"view": 1, "edit": 2, "admin": 3}
QUOTA_KEYS = {
    "cpu": "cpu", "requests.cpu": "cpu", "limits.cpu": "cpu",
    "memory": "memory", "requests.memory": "memory", "limits.memory": "memory",
    "requests.nvidia.com/gpu": "gpu", "nvidia.com/gpu": "gpu", "limits.nvidia.com/gpu": "gpu",
    "notebooks": "notebooks", "storage": "storage", "requests.storage": "storage",
}


def _profile_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = dict(manifest.get("spec") or {})
    owner = spec.get("owner")
    if not isinstance(owner, dict) or not isinstance(owner.get("name"), str) or not owner["name"]:
        raise Invalid("spec.owner.name is required: the user who owns this namespace")
    owner.setdefault("kind", "User")
    hard = (spec.get("resourceQuotaSpec") or {}).get("hard") or {}
    if not isinstance(hard, dict):
        raise Invalid("spec.resourceQuotaSpec.hard must be a map of quantities")
    for key, value in hard.items():
        what = QUOTA_KEYS.get(key)
        if what is None:
            raise Invalid(f"unknown quota '{key}': use one of {', '.join(sorted(QUOTA_KEYS))}")
        try:
            if what == "cpu":
                quantity.parse_cpu(value)
            elif what in ("memory", "storage"):
                quantity.parse_memory(value)
            elif int(str(value)) < 0:
                raise ValueError(f"{key} must not be negative")
        except ValueError as e:
            raise Invalid(f"spec.resourceQuotaSpec.hard.{key}: {e}") from e
    return spec


PROFILE = register(Kind("Profile", ("kubeflow.org/v1", "kubeflow.org/v1beta1"), namespaced=False,
                        spec_from=_profile_spec))


def quota_of(profile_spec: dict[str, Any]) -> dict[str, float]:
    """The hard quota as numbers: cpu cores, memory/storage bytes, gpu/notebook counts."""
    out: dict[str, float] = {}
    for key, value in ((profile_spec.get("resourceQuotaSpec") or {}).get("hard") or {}).items():
        what = QUOTA_KEYS[key]
        if what == "cpu":
            out[what] = quantity.parse_cpu(value)
        elif what in ("memory", "storage"):
            out[what] = float(quantity.parse_memory(value))
        else:
            out[what] = float(int(str(value)))
    return out


class Namespaces:
    """Membership and authorisation, with a short-lived per-user cache."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def _forget(self) -> None:
        self._cache.clear()

    def roles_of(self, user: str) -> dict[str, str]:
        """{namespace: role} for `user`."""
        cached = self._cache.get(user)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        with self.engine.connect() as conn:
            rows = conn.execute(select(members.c.namespace, members.c.role).where(members.c.user == user)).all()
        roles = {r.namespace: r.role for r in rows}
        self._cache[user] = (time.monotonic() + 5.0, roles)
        return roles

    def exists(self, namespace: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(
                select(resources.c.uid).where(
                    resources.c.kind == "Profile", resources.c.namespace == "", resources.c.name == namespace
                )
            ).first() is not None

    def all_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(resources.c.name).where(resources.c.kind == "Profile").order_by(resources.c.name)
            ).scalars())

    def require(self, who: Principal, namespace: str, role: str = "view") -> str:
        """Raise unless `who` holds at least `role` in `namespace`; returns the role held."""
        if who.token_namespace and who.token_namespace != namespace:
            raise Forbidden(f"this token is limited to namespace '{who.token_namespace}'")
        held = self.roles_of(who.user).get(namespace)
        if who.admin:
            if held is None and not self.exists(namespace):
                raise NotFound(f"namespace '{namespace}' not found: create it with a Profile")
            return "admin"
        if held is None:
            raise Forbidden(f"you are not a member of namespace '{namespace}'")
        if ROLES[held] < ROLES[role]:
            raise Forbidden(f"this needs the '{role}' role in namespace '{namespace}'; you have '{held}'")
        return held

    def visible(self, who: Principal) -> list[dict[str, str]]:
        """The namespaces `who` may see, with the role held."""
        roles = self.roles_of(who.user)
        names = self.all_names() if who.admin else sorted(roles)
        if who.token_namespace:
            names = [n for n in names if n == who.token_namespace]
        return [{"name": n, "role": roles.get(n, "admin")} for n in names]

    # -- membership ------------------------------------------------------------------------

    def members(self, namespace: str) -> list[dict[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(members.c.user, members.c.role).where(members.c.namespace == namespace).order_by(members.c.user)
            ).all()
        return [{"user": r.user, "role": r.role} for r in rows]

    def set_member(self, namespace: str, user: str, role: str, owner: str | None = None) -> dict[str, str]:
        if role not in ROLES:
            raise Invalid(f"role '{role}' is unknown: use admin, edit or view")
        if owner is not None and user == owner and role != "admin":
            raise Invalid(f"'{user}' owns namespace '{namespace}' and stays admin; change the Profile owner first")
        with self.engine.begin() as conn:
            if conn.execute(select(users.c.name).where(users.c.name == user)).first() is None:
                raise NotFound(f"user '{user}' not found")
            done = conn.execute(
                update(members).where(members.c.namespace == namespace, members.c.user == user).values(role=role)
            ).rowcount
            if not done:
                conn.execute(insert(members).values(namespace=namespace, user=user, role=role))
        self._forget()
        return {"user": user, "role": role}

    def remove_member(self, namespace: str, user: str, owner: str | None = None) -> None:
        if user == owner:
            raise Invalid(f"'{user}' owns namespace '{namespace}'; change the Profile owner first")
        with self.engine.begin() as conn:
            if not conn.execute(
                delete(members).where(members.c.namespace == namespace, members.c.user == user)
            ).rowcount:
                raise NotFound(f"user '{user}' is not a member of namespace '{namespace}'")
        self._forget()

    def drop(self, namespace: str) -> None:
        """Forget every member of a deleted namespace."""
        with self.engine.begin() as conn:
            conn.execute(delete(members).where(members.c.namespace == namespace))
        self._forget()
