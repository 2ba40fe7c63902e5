"""Namespaced resources in manifest form, stored with optimistic concurrency.

Every user object (Profile, Job, Notebook, ...) is one row: metadata columns plus JSON
`spec` and `status`. `resourceVersion` grows on every write and a write that names a
stale one fails with `Conflict`; `generation` grows only when the spec changes.
Writers are told about each change through `watch()` so controllers reconcile at once.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import Engine, and_, bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from flowyard.errors import AlreadyExists, Conflict, Invalid, NotFound
from flowyard.kinds import Kind, Manifest, for_manifest
from flowyard.store import selector
from flowyard.store.tables import events, labels, resources

Watcher = Callable[[str, str, str, str], None]
"""Called with (kind, namespace, name, operation) after a change is committed."""

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
MAX_PAGE = 1000
_GET = select(resources).where(
    resources.c.kind == bindparam("kind"), resources.c.namespace == bindparam("ns"), resources.c.name == bindparam("name")
)  # built once: constructing the statement per call costs more than running it


def now() -> str:
    """The current UTC time as Kubernetes writes it (RFC 3339, seconds, `Z`)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_name(name: object, what: str = "metadata.name", max_len: int = 253) -> str:
    if not isinstance(name, str) or not name:
        raise Invalid(f"{what} is required")
    if len(name) > max_len or not _NAME.match(name):
        raise Invalid(
            f"{what} '{name}' is invalid: use at most {max_len} lower-case letters, digits, "
            "'-' or '.', starting and ending with a letter or digit"
        )
    return name


def _string_map(value: object, what: str, *, label: bool = False) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise Invalid(f"{what} must be a map of strings to strings")
    if label:
        for k, v in value.items():
            if not k or len(k) > 317 or len(v) > 63 or not _LABEL_VALUE.match(v):
                raise Invalid(
                    f"{what} '{k}: {v}' is invalid: values are at most 63 letters, digits, "
                    "'-', '_' or '.', starting and ending with a letter or digit"
                )
    return value


def _meant(api_version: object, kind: object) -> Kind | None:
    """The kind a manifest with this apiVersion and kind belongs to, if any (for error hints)."""
    try:
        return for_manifest(api_version, kind)
    except NotFound:
        return None


def _encode_continue(ns: str, name: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ns, name])).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        ns, name = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return str(ns), str(name)
    except Exception as e:
        raise Invalid("invalid continue token: pass back the one the last page returned") from e


class ResourceStore:
    """CRUD on resources and their events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._watchers: list[Watcher] = []
        self._lock = threading.Lock()
        # Read cache of single objects. This process is the only writer of its database (the
        # home lock), so every write passes through here and drops its key; `_writes` makes a
        # read that raced with a write not cache what it read.
        self._cache: dict[tuple[str, str, str], bytes] = {}
        self._writes = 0

    def watch(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    def _notify(self, kind: str, ns: str, name: str, op: str) -> None:
        with self._lock:
            self._writes += 1
            self._cache.pop((kind, ns, name), None)
        for w in self._watchers:
            w(kind, ns, name, op)

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def _manifest(kind: Kind, row: Any) -> Manifest:
        meta: dict[str, Any] = {
            "name": row.name,
            "uid": row.uid,
            "resourceVersion": str(row.resource_version),
            "generation": row.generation,
            "creationTimestamp": row.created_at,
            "labels": row.labels,
            "annotations": row.annotations,
        }
        if kind.namespaced:
            meta["namespace"] = row.namespace
        return {
            "apiVersion": row.api_version,
            "kind": kind.name,
            "metadata": meta,
            "spec": row.spec,
            "status": row.status,
        }

    def get(self, kind: Kind, namespace: str, name: str) -> Manifest:
        ns = namespace if kind.namespaced else ""
        key = (kind.name, ns, name)
        cached = self._cache.get(key)
        if cached is not None:
            return orjson.loads(cached)  # a fresh copy: callers may change what they get
        writes = self._writes
        with self.engine.connect() as conn:
            row = conn.execute(_GET, {"kind": kind.name, "ns": ns, "name": name}).first()
        if row is None:
            where = f" in namespace '{namespace}'" if kind.namespaced else ""
            raise NotFound(f"{kind.name.lower()} '{name}' not found{where}")
        manifest = self._manifest(kind, row)
        with self._lock:
            if writes == self._writes and len(self._cache) < 10_000:
                self._cache[key] = orjson.dumps(manifest)
        return manifest

    def list(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        namespaces: list[str] | None = None,
    ) -> tuple[list[Manifest], str | None]:
        """One page of objects (ordered by namespace, name) and the token of the next page.

        `namespace=None` lists every namespace, or only `namespaces` when that is given."""
        query = select(resources).where(resources.c.kind == kind.name)
        if not kind.namespaced:
            query = query.where(resources.c.namespace == "")
        elif namespace is not None:
            query = query.where(resources.c.namespace == namespace)
        elif namespaces is not None:
            query = query.where(resources.c.namespace.in_(namespaces))
        if label_selector and (cond := selector.condition(label_selector)) is not None:
            query = query.where(cond)
        if continue_:
            query = query.where(
                tuple_(resources.c.namespace, resources.c.name) > _decode_continue(continue_)
            )
        if limit is not None and (limit < 1 or limit > MAX_PAGE):
            raise Invalid(f"limit must be between 1 and {MAX_PAGE}")
        page = limit or MAX_PAGE
        query = query.order_by(resources.c.namespace, resources.c.name).limit(page + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        token = None
        if len(rows) > page:
            rows = rows[:page]
            token = _encode_continue(rows[-1].namespace, rows[-1].name)
        return [self._manifest(kind, r) for r in rows], token

    def count(self, kind: Kind, namespace: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).where(
                    resources.c.kind == kind.name, resources.c.namespace == namespace
                )
            ).scalar_one()

    # -- writing ---------------------------------------------------------------------------

    def _common(self, kind: Kind, manifest: object, namespace: str) -> tuple[dict, dict]:
        if not isinstance(manifest, dict):
            raise Invalid("the body must be a JSON object (a resource manifest)")
        if manifest.get("kind") not in (None, kind.name, kind.manifest_kind):
            raise Invalid(f"kind '{manifest.get('kind')}' does not match the path: expected {kind.name}")
        api_version = manifest.get("apiVersion") or kind.api_version
        if api_version not in kind.api_versions:
            meant = _meant(api_version, manifest.get("kind"))
            elsewhere = f" (a {meant.manifest_kind} of {api_version} goes to {meant.plural})" \
                if meant is not None and meant is not kind else ""
            raise Invalid(
                f"apiVersion '{api_version}' is not served for {kind.name}: use "
                + " or ".join(kind.api_versions) + elsewhere
            )
        meta = manifest.get("metadata") or {}
        if not isinstance(meta, dict):
            raise Invalid("metadata must be an object")
        if kind.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise Invalid(
                f"metadata.namespace '{meta.get('namespace')}' does not match the namespace "
                f"of the request '{namespace}'"
            )
        if "spec" in manifest and not isinstance(manifest["spec"], dict):
            raise Invalid("spec must be an object")
        return meta, {
            "api_version": api_version,
            "labels": _string_map(meta.get("labels"), "metadata.labels", label=True),
            "annotations": _string_map(meta.get("annotations"), "metadata.annotations"),
        }

    @staticmethod
    def _write_labels(conn: Any, uid: str, values: dict[str, str]) -> None:
        conn.execute(delete(labels).where(labels.c.uid == uid))
        if values:
            conn.execute(insert(labels), [{"uid": uid, "key": k, "value": v} for k, v in values.items()])

    def create(self, kind: Kind, namespace: str, manifest: Manifest, status: dict | None = None) -> Manifest:
        ns = namespace if kind.namespaced else ""
        meta, cols = self._common(kind, manifest, namespace)
        name = meta.get("name")
        if not name and meta.get("generateName"):
            prefix = check_name(meta["generateName"].rstrip("-") or "x", "metadata.generateName", 240)
            name = f"{prefix}-{secrets.token_hex(3)}"
        check_name(name, max_len=253 if kind.namespaced else 63)
        spec = kind.spec_from(manifest, None)
        row = {
            "uid": str(uuid.uuid4()),
            "kind": kind.name,
            "namespace": ns,
            "name": name,
            "generation": 1,
            "resource_version": 1,
            "spec": spec,
            "status": status or {},
            "created_at": now(),
            **cols,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(resources).values(**row))
                self._write_labels(conn, row["uid"], cols["labels"])
        except IntegrityError as e:
            where = f" in namespace '{namespace}'" if kind.namespaced else ""
            raise AlreadyExists(f"{kind.name.lower()} '{name}' already exists{where}") from e
        self._notify(kind.name, ns, name, "create")
        return self.get(kind, ns, name)

    def _update(self, kind: Kind, ns: str, name: str, expected_rv: object, build: Callable[[Manifest], dict]) -> Manifest:
        current = self.get(kind, ns, name)
        rv = int(current["metadata"]["resourceVersion"])
        if expected_rv not in (None, "") and str(expected_rv) != str(rv):
            raise Conflict(
                f"{kind.name.lower()} '{name}' was changed since you read it (resourceVersion "
                f"{expected_rv}, now {rv}): read it again and reapply your change"
            )
        values = build(current)
        if all(current_value(current, k) == v for k, v in values.items() if k != "generation"):
            return current  # nothing changed: no write, no new resourceVersion
        values["resource_version"] = rv + 1
        with self.engine.begin() as conn:
            done = conn.execute(
                update(resources)
                .where(resources.c.uid == current["metadata"]["uid"], resources.c.resource_version == rv)
                .values(**values)
            ).rowcount
            if not done:
                raise Conflict(f"{kind.name.lower()} '{name}' was changed concurrently: retry")
            if "labels" in values:
                self._write_labels(conn, current["metadata"]["uid"], values["labels"])
        self._notify(kind.name, ns, name, "update")
        return self.get(kind, ns, name)

    def replace(self, kind: Kind, namespace: str, name: str, manifest: Manifest) -> Manifest:
        """Replace labels, annotations and spec (status is the controllers')."""
        ns = namespace if kind.namespaced else ""
        meta, cols = self._common(kind, manifest, namespace)
        if meta.get("name") not in (None, name):
            raise Invalid(f"metadata.name '{meta.get('name')}' does not match the path name '{name}'")

        def build(current: Manifest) -> dict:
            spec = kind.spec_from(manifest, current)
            changed = spec != current["spec"]
            return {**cols, "spec": spec, "generation": current["metadata"]["generation"] + changed}

        return self._update(kind, ns, name, meta.get("resourceVersion"), build)

    def patch(self, kind: Kind, namespace: str, name: str, patch: object) -> Manifest:
        """Apply a JSON merge patch (RFC 7386) to metadata labels/annotations and spec."""
        if not isinstance(patch, dict):
            raise Invalid("a merge patch must be a JSON object")
        current = self.get(kind, namespace, name)
        merged = merge_patch({k: current[k] for k in ("apiVersion", "metadata", "spec")}, patch)
        merged["metadata"]["resourceVersion"] = (patch.get("metadata") or {}).get("resourceVersion")
        return self.replace(kind, namespace, name, {**current, **merged})

    def set_status(self, kind: Kind, namespace: str, name: str, status: dict) -> Manifest | None:
        """Write status (controllers only); None when the object is gone."""
        ns = namespace if kind.namespaced else ""
        try:
            return self._update(kind, ns, name, None, lambda _: {"status": status})
        except NotFound:
            return None

    def delete(self, kind: Kind, namespace: str, name: str) -> Manifest:
        ns = namespace if kind.namespaced else ""
        current = self.get(kind, ns, name)
        with self.engine.begin() as conn:
            conn.execute(delete(labels).where(labels.c.uid == current["metadata"]["uid"]))
            conn.execute(delete(resources).where(resources.c.uid == current["metadata"]["uid"]))
            conn.execute(
                delete(events).where(
                    events.c.namespace == ns, events.c.kind == kind.name, events.c.name == name
                )
            )
        self._notify(kind.name, ns, name, "delete")
        return current

    def delete_namespace(self, namespace: str) -> None:
        """Delete every object and event of a namespace (its Profile is deleted separately)."""
        with self.engine.begin() as conn:
            uids = select(resources.c.uid).where(resources.c.namespace == namespace)
            conn.execute(delete(labels).where(labels.c.uid.in_(uids)))
            conn.execute(delete(resources).where(resources.c.namespace == namespace))
            conn.execute(delete(events).where(events.c.namespace == namespace))
        with self._lock:
            self._writes += 1
            self._cache.clear()

    # -- events ----------------------------------------------------------------------------

    def record_event(self, obj: Manifest, reason: str, message: str, type_: str = "Normal") -> None:
        """Record an event on `obj`; a repeat of the last event only bumps its count."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), obj["kind"], meta["name"])
        ts = now()
        with self.engine.begin() as conn:
            last = conn.execute(
                select(events)
                .where(events.c.namespace == key[0], events.c.kind == key[1], events.c.name == key[2])
                .order_by(events.c.id.desc())
                .limit(1)
            ).first()
            if last and (last.reason, last.message, last.type) == (reason, message, type_):
                conn.execute(
                    update(events).where(events.c.id == last.id).values(count=last.count + 1, last_timestamp=ts)
                )
                return
            conn.execute(
                insert(events).values(
                    namespace=key[0], kind=key[1], name=key[2], uid=meta["uid"], type=type_,
                    reason=reason, message=message, count=1, first_timestamp=ts, last_timestamp=ts,
                )
            )

    def list_events(self, namespace: str, kind: str | None = None, name: str | None = None, limit: int = 500) -> list[dict]:
        conds = [events.c.namespace == namespace]
        if kind:
            conds.append(events.c.kind == kind)
        if name:
            conds.append(events.c.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(events).where(and_(*conds)).order_by(events.c.id.desc()).limit(limit)
            ).all()
        return [
            {
                "type": r.type, "reason": r.reason, "message": r.message, "count": r.count,
                "firstTimestamp": r.first_timestamp, "lastTimestamp": r.last_timestamp,
                "involvedObject": {"kind": r.kind, "namespace": r.namespace, "name": r.name, "uid": r.uid},
            }
            for r in reversed(rows)
        ]


def current_value(obj: Manifest, column: str) -> Any:
    """The value of a `resources` column as seen in a manifest."""
    if column in ("labels", "annotations"):
        return obj["metadata"][column]
    return obj["apiVersion"] if column == "api_version" else obj.get(column)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
