"""`PersistentVolumeClaim` (`v1`): a named folder that notebooks mount, the local analogue of a PVC.

A claim `data` in namespace `team` is the folder `<home>/volumes/team/data`. Users create,
list and delete claims explicitly; a notebook that names a claim that does not exist gets it
created with 5Gi (like Kubeflow's `newPvc` workspace). Deleting the claim deletes the folder.

The size (`spec.resources.requests.storage`) is not enforced by the file system: it counts
against the namespace quota `storage` (the sum of the sizes of bound claims) and the status
reports `used` bytes (a bounded walk, at each reconcile and resync) with a condition
`OverQuota` when the folder holds more than its size. A claim that does not fit the quota
stays `Pending` with reason `QuotaExceeded` and no folder, and binds when room is made.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
from pathlib import Path
from typing import Any

from flowyard import quantity
from flowyard.controllers.loop import Controller
from flowyard.errors import Conflict, Invalid, NotFound, QuotaExceeded
from flowyard.kinds import Kind, Manifest, register
from flowyard.namespaces import PROFILE, quota_of
from flowyard.platform import Platform
from flowyard.status import set_condition

DEFAULT_SIZE = "5Gi"
CREATED_BY = "notebooks.flowyard.io/created-for"
_WALK_LIMIT = 200_000
"""Entries a usage walk visits at most; beyond it `used` is a lower bound (`usedIsPartial`)."""


def _size_of(spec: dict[str, Any], where: str = "spec.resources.requests.storage") -> int:
    value = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if value in (None, ""):
        raise Invalid(f"{where} is required: the size of the volume, e.g. 5Gi")
    try:
        size = quantity.parse_memory(value)
    except ValueError as e:
        raise Invalid(f"{where}: {e}") from e
    if size <= 0:
        raise Invalid(f"{where} must be more than 0")
    return size


def _pvc_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = dict(manifest.get("spec") or {})
    if not isinstance(spec.get("resources", {}), dict):
        raise Invalid("spec.resources must be an object with requests.storage")
    _size_of(spec)
    modes = spec.get("accessModes", ["ReadWriteOnce"])
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        raise Invalid("spec.accessModes must be a list such as [ReadWriteOnce] (all modes behave the same here)")
    spec["accessModes"] = modes
    return spec


def _admit(p: Any, namespace: str, manifest: Manifest) -> None:
    """Refuse a claim that does not fit the namespace's `storage` quota."""
    why = admission(p, {**manifest, "metadata": {**(manifest.get("metadata") or {}), "namespace": namespace},
                        "status": {}})
    if why is not None:
        raise QuotaExceeded(why)


def _guard_delete(p: Any, namespace: str, name: str) -> None:
    """Refuse to delete a volume that a notebook not stopped still uses (its files would go)."""
    from flowyard.notebooks.kind import NOTEBOOK, mounts_of
    from flowyard.notebooks.launch import workspace_claim  # launch imports this module

    token = None
    while True:
        items, token = p.store.list(NOTEBOOK, namespace, continue_=token)
        for nb in items:
            claims = {workspace_claim(nb), *(m.claim for m in mounts_of(nb["spec"]))}
            if name in claims and (nb.get("status") or {}).get("phase") not in (None, "Stopped", "Failed"):
                raise Conflict(f"volume '{name}' is in use by notebook '{nb['metadata']['name']}' "
                               f"({nb['status']['phase']}): stop or delete the notebook first")
        if not token:
            return


PVC = register(Kind("PersistentVolumeClaim", ("v1",), spec_from=_pvc_spec, admit=_admit,
                    guard_delete=_guard_delete))


def volume_path(p: Platform, namespace: str, claim: str) -> Path:
    """The folder that holds claim `claim` of `namespace`."""
    return p.settings.home / "volumes" / namespace / claim


def size_of(obj: Manifest) -> int:
    """The requested size of a claim in bytes."""
    return _size_of(obj["spec"])


def _storage_quota(p: Platform, namespace: str) -> float | None:
    try:
        return quota_of(p.store.get(PROFILE, "", namespace)["spec"]).get("storage")
    except NotFound:
        return None


def _bound(obj: Manifest) -> bool:
    return (obj.get("status") or {}).get("phase") == "Bound"


def admission(p: Platform, obj: Manifest) -> str | None:
    """Why claim `obj` may not bind under the namespace's `storage` quota (None when it may)."""
    ns, name = obj["metadata"]["namespace"], obj["metadata"].get("name", "")
    hard = _storage_quota(p, ns)
    if hard is None or _bound(obj):
        return None
    used, token = 0, None
    while True:
        items, token = p.store.list(PVC, ns, continue_=token)
        used += sum(size_of(o) for o in items if o["metadata"]["name"] != name and _bound(o))
        if not token:
            break
    want = size_of(obj)
    if used + want > hard:
        return (f"namespace '{ns}' storage quota is {quantity.format_memory(int(hard))}: "
                f"{quantity.format_memory(used)} is claimed, this claim asks for "
                f"{quantity.format_memory(want)}; delete a volume or ask an admin to raise the quota")
    return None


def usage(path: Path, limit: int = _WALK_LIMIT) -> tuple[int, bool]:
    """(bytes used under `path`, whether the walk stopped early). Symlinks are not followed."""
    total, seen, stack = 0, 0, [str(path)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                seen += 1
                if seen > limit:
                    return total, True
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                except OSError:
                    continue
    return total, False


def bind(p: Platform, obj: Manifest) -> Path:
    """Make sure claim `obj` has its folder; raise QuotaExceeded when the quota does not allow it."""
    path = volume_path(p, obj["metadata"]["namespace"], obj["metadata"]["name"])
    if not path.is_dir():
        why = admission(p, obj)
        if why is not None:
            raise QuotaExceeded(why)
        path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_claim(p: Platform, namespace: str, claim: str, for_notebook: str) -> Path:
    """The folder of claim `claim`, creating a default-size claim first when it does not exist."""
    try:
        obj = p.store.get(PVC, namespace, claim)
    except NotFound:
        obj = p.store.create(PVC, namespace, {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "annotations": {CREATED_BY: for_notebook}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": DEFAULT_SIZE}}},
        })
        p.store.record_event(obj, "Created", f"created for notebook '{for_notebook}' with the default size {DEFAULT_SIZE}")
    try:
        return bind(p, obj)
    except QuotaExceeded as e:
        raise QuotaExceeded(f"volume '{claim}': {e.message}") from None


async def reconcile(p: Platform, obj: Manifest) -> dict[str, Any]:
    st = copy.deepcopy(obj["status"]) or {}
    size = size_of(obj)
    try:
        path = bind(p, obj)
    except QuotaExceeded as e:
        st.update(phase="Pending", message=e.message)
        set_condition(st, "Bound", False, "QuotaExceeded", e.message)
        return st
    if st.get("phase") != "Bound":
        p.store.record_event(obj, "Bound", f"volume ready ({quantity.format_memory(size)})")
    used, partial = await asyncio.to_thread(usage, path)
    st.update(phase="Bound", capacity={"storage": quantity.format_memory(size)}, used=used,
              accessModes=obj["spec"].get("accessModes", ["ReadWriteOnce"]), usedIsPartial=partial)
    set_condition(st, "Bound", True, "Bound", "")
    if used > size:
        message = f"{quantity.format_memory(used)} used of {quantity.format_memory(size)}: delete files or grow the claim"
        if (st.get("message") or "") != message and not any(
                c["type"] == "OverQuota" and c["status"] == "True" for c in st.get("conditions", [])):
            p.store.record_event(obj, "OverQuota", message, "Warning")
        st["message"] = message
        set_condition(st, "OverQuota", True, "OverQuota", message)
    else:
        st["message"] = ""
        set_condition(st, "OverQuota", False, "WithinSize", "")
    return st


async def finalize(p: Platform, namespace: str, name: str) -> None:
    """Delete the folder of a deleted claim (unless a claim of that name exists again)."""
    try:
        p.store.get(PVC, namespace, name)
        return
    except NotFound:
        pass
    path = volume_path(p, namespace, name)
    if path.exists():
        await asyncio.to_thread(shutil.rmtree, path, True)
    if p.controllers is not None:  # room was made: claims waiting for quota may bind now
        for other in p.store.list(PVC, namespace)[0]:
            if (other.get("status") or {}).get("phase") == "Pending":
                p.controllers.enqueue(PVC.name, namespace, other["metadata"]["name"])


CONTROLLER = Controller(PVC, reconcile, finalize)
