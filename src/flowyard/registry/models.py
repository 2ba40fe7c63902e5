"""Registering versions, moving aliases and resolving `models:/<name>/<version-or-alias>`.

A version registered from a run records the run's artifact (by default its first
`system.Model` output) as a `file://` URI, the artifact's metadata and the run's latest
tracked metrics, and which run and task produced it, so lineage can walk from the version
back to the run's inputs. `resolve_model_uri` is what serving calls for a `storageUri` in the
registry; it reads the alias at call time, so a resync after a move follows the alias.
"""

from __future__ import annotations

import re
import time
from typing import Any

from flowyard.errors import AlreadyExists, Conflict, Invalid, NotFound
from flowyard.kinds import CREATOR, Manifest
from flowyard.platform import Platform
from flowyard.registry.kinds import MODEL_VERSION, REGISTERED_MODEL, version_name, versions_of

_URI = re.compile(r"^models:/+([^/]+)/([^/]+)/?$")
_FORMAT_KEYS = ("format", "framework", "modelFormat")


def resolve_model_uri(p: Platform, namespace: str, uri: str) -> tuple[str, str | None]:
    """(storage URI, model format or None) of `models:/<name>/<version|alias|latest>`."""
    version = resolve_version(p, namespace, uri)["spec"]
    return version["uri"], version.get("format") or None


def resolve_version(p: Platform, namespace: str, uri: str) -> Manifest:
    """The ModelVersion a `models:/` reference names now."""
    m = _URI.match(uri.strip())
    if not m:
        raise Invalid(f"'{uri}' is not a registry reference: use models:/<name>/<version>, "
                      "models:/<name>/<alias> or models:/<name>/latest")
    name, ref = m.groups()
    model = p.store.get(REGISTERED_MODEL, namespace, name)
    if ref.isdigit():
        number = int(ref)
    elif ref == "latest":
        versions = versions_of(p, namespace, name)
        if not versions:
            raise NotFound(f"registered model '{name}' has no versions yet")
        return versions[-1]
    else:
        if ref not in model["spec"]["aliases"]:
            known = ", ".join(sorted(model["spec"]["aliases"])) or "none"
            raise NotFound(f"registered model '{name}' has no alias '{ref}' (aliases: {known})")
        number = model["spec"]["aliases"][ref]
    try:
        return p.store.get(MODEL_VERSION, namespace, version_name(name, number))
    except NotFound:
        raise NotFound(f"registered model '{name}' has no version {number}") from None


def _run_artifact(p: Platform, namespace: str, run: str, artifact: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the artifact, {uid, name, task, artifact}) of a run's output: `task/output`, `output`, or its first Model."""
    from flowyard.tracking.store import find_run

    obj = _find_kfp_run(p, namespace, run)
    tasks = (obj.get("status") or {}).get("tasks") or {}
    found = []
    for path, entry in tasks.items():
        for out, arts in ((entry or {}).get("outputs") or {}).get("artifacts", {}).items():
            for art in arts if isinstance(arts, list) else [arts]:
                if isinstance(art, dict) and art.get("uri"):
                    found.append((path, out, art))
    if artifact:
        task, _, out = artifact.rpartition("/")
        picked = [f for f in found if f[1] == out and (not task or f[0] == task)]
    else:
        picked = [f for f in found if (f[2].get("type") or {}).get("schemaTitle") == "system.Model"]
    if not picked:
        what = f"an output artifact '{artifact}'" if artifact else "a Model artifact (system.Model)"
        names = ", ".join(sorted({f"{f[0]}/{f[1]}" for f in found})) or "none"
        raise NotFound(f"run '{run}' has no {what}; its artifacts: {names}")
    path, out, art = picked[0]
    try:
        find_run(p, namespace, obj["metadata"]["uid"])  # make sure tracking knows the run
    except NotFound:
        pass
    return art, {"uid": obj["metadata"]["uid"], "name": obj["metadata"]["name"], "task": path, "artifact": out}


def _find_kfp_run(p: Platform, namespace: str, run: str) -> Manifest:
    from flowyard.pipelines.kinds import RUN

    try:
        return p.store.get(RUN, namespace, run)
    except NotFound:
        items, token = p.store.list(RUN, namespace)
        while True:
            for item in items:
                if item["metadata"]["uid"] == run:
                    return item
            if not token:
                raise NotFound(f"run '{run}' not found in namespace '{namespace}'") from None
            items, token = p.store.list(RUN, namespace, continue_=token)


def _as_uri(uri: str) -> str:
    return f"file://{uri}" if uri.startswith("/") else uri


def register_version(p: Platform, namespace: str, model: str, body: dict[str, Any], creator: str) -> Manifest:
    """A new version of `model` (made if missing) from `body`: {run, artifact} or {uri}, plus
    format, signature, metrics, description, tags. Numbers are 1, 2, ... in creation order."""
    from flowyard.tracking.store import get_run

    if not isinstance(body, dict):
        raise Invalid("the body must be an object: {run, artifact} or {uri}, with format, signature, ...")
    spec: dict[str, Any] = {k: body[k] for k in ("format", "signature", "description", "tags") if body.get(k)}
    metrics: dict[str, float] = {}
    if body.get("run"):
        art, source = _run_artifact(p, namespace, str(body["run"]), body.get("artifact"))
        spec["uri"] = _as_uri(art["uri"])
        spec["run"] = source
        meta = art.get("metadata") or {}
        metrics.update({k: v for k, v in meta.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        try:
            tracked = get_run(p, namespace, source["uid"])["metrics"]
            metrics.update({k: v["value"] for k, v in tracked.items() if v["value"] is not None})
        except NotFound:
            pass
        if "format" not in spec:
            fmt = next((meta[k] for k in _FORMAT_KEYS if isinstance(meta.get(k), str)), None)
            if fmt:
                spec["format"] = fmt
    elif body.get("uri"):
        spec["uri"] = _as_uri(str(body["uri"]))
    else:
        raise Invalid("give the run that produced the model ({run, artifact}) or its location ({uri})")
    if isinstance(body.get("metrics"), dict):
        metrics.update(body["metrics"])
    spec["metrics"] = metrics
    annotations = {CREATOR: creator} if creator else {}
    try:
        p.store.get(REGISTERED_MODEL, namespace, model)
    except NotFound:
        try:
            p.store.create(REGISTERED_MODEL, namespace, {"metadata": {"name": model, "annotations": annotations},
                                                         "spec": {}})
        except AlreadyExists:
            pass
    for _ in range(20):
        versions = versions_of(p, namespace, model)
        number = versions[-1]["spec"]["version"] + 1 if versions else 1
        manifest = {"metadata": {"name": version_name(model, number), "annotations": annotations},
                    "spec": {**spec, "model": model, "version": number}}
        try:
            return p.store.create(MODEL_VERSION, namespace, manifest)
        except AlreadyExists:
            time.sleep(0.01)  # another registration took the number: take the next
    raise Conflict(f"could not allocate a version number for '{model}': too many concurrent registrations")


def set_alias(p: Platform, namespace: str, model: str, alias: str, version: int | None) -> Manifest:
    """Point `alias` at `version` (None removes it): one write of the model, retried on a race."""
    for _ in range(20):
        current = p.store.get(REGISTERED_MODEL, namespace, model)
        aliases = dict(current["spec"]["aliases"])
        if version is None:
            if alias not in aliases:
                raise NotFound(f"registered model '{model}' has no alias '{alias}'")
            aliases.pop(alias)
        else:
            aliases[alias] = version
        manifest = {**current, "spec": {**current["spec"], "aliases": aliases}}
        if version is not None and not _exists(p, namespace, model, version):
            raise NotFound(f"registered model '{model}' has no version {version}")
        try:
            return p.store.replace(REGISTERED_MODEL, namespace, model, manifest)
        except Conflict:
            continue  # changed since read: read again
    raise Conflict(f"the aliases of '{model}' keep changing: retry")


def _exists(p: Platform, namespace: str, model: str, version: int) -> bool:
    try:
        p.store.get(MODEL_VERSION, namespace, version_name(model, version))
        return True
    except NotFound:
        return False
