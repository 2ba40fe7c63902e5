"""The registry kinds (`registry.flowyard.io/v1`): `RegisteredModel` and `ModelVersion`.

A `RegisteredModel` holds a description, tags and its aliases (`{production: 3}`): keeping
every alias of a model in that one object makes a move one row write, so an alias names
exactly one version at any time and moves atomically (a stale write gets 409). A
`ModelVersion` is named `<model>-v<n>` and points, for good, at an artifact: a storage URI,
its format, signature, metrics and the run that produced it; description and tags may change.
"""

from __future__ import annotations

import re
from typing import Any

from flowyard.errors import Conflict, Invalid, NotFound
from flowyard.kinds import Kind, Manifest, register

API_VERSION = "registry.flowyard.io/v1"
RESERVED = {"latest"}
_ALIAS = re.compile(r"^[a-z0-9]([-a-z0-9_]{0,61}[a-z0-9])?$")
_DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
              "FP64", "BYTES", "BF16"}


def version_name(model: str, version: int) -> str:
    return f"{model}-v{version}"


def _spec(manifest: Manifest) -> dict[str, Any]:
    spec = manifest.get("spec") or {}
    if not isinstance(spec, dict):
        raise Invalid("spec must be an object")
    return spec


def _text(spec: dict, key: str, limit: int = 10_000) -> str:
    value = spec.get(key) or ""
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(f"spec.{key} must be a string of at most {limit} characters")
    return value


def _tags(spec: dict) -> dict[str, str]:
    tags = spec.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and k for k in tags):
        raise Invalid("spec.tags must be a map of name to text")
    return {k: str(v) for k, v in tags.items()}


def _model_name(manifest: Manifest) -> str:
    name = (manifest.get("metadata") or {}).get("name") or ""
    if isinstance(name, str) and len(name) > 60:
        raise Invalid(f"model name '{name[:20]}...' is too long: use at most 60 characters")
    return name


def _model_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = _spec(manifest)
    _model_name(manifest)
    aliases = spec.get("aliases") or {}
    if not isinstance(aliases, dict):
        raise Invalid("spec.aliases must be a map of alias to version number, e.g. {production: 3}")
    out: dict[str, int] = {}
    for alias, version in aliases.items():
        if not isinstance(alias, str) or not _ALIAS.match(alias) or alias in RESERVED:
            raise Invalid(f"alias '{alias}' is invalid: use lower-case letters, digits, '-' or '_' (not 'latest')")
        if isinstance(version, str) and version.isdigit():
            version = int(version)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise Invalid(f"alias '{alias}' must name a version number (1, 2, ...), got {version!r}")
        out[alias] = version
    return {"description": _text(spec, "description"), "tags": _tags(spec), "aliases": out}


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in value):
        raise Invalid(f"{where}.shape must be a list of sizes (-1 for any), e.g. [-1, 4]")
    return value


def _tensors(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise Invalid(f"{where} must be a list of {{name, datatype, shape}}")
    out = []
    for i, t in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            raise Invalid(f"{w} needs a name")
        datatype = str(t.get("datatype") or "").upper()
        if datatype not in _DATATYPES:
            raise Invalid(f"{w}.datatype '{t.get('datatype')}' is invalid: use one of {', '.join(sorted(_DATATYPES))}")
        out.append({"name": t["name"], "datatype": datatype, "shape": _shape(t.get("shape", [-1]), w)})
    return out


def _version_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = _spec(manifest)
    model = spec.get("model")
    version = spec.get("version")
    if not isinstance(model, str) or not model:
        raise Invalid("spec.model (the RegisteredModel's name) is required")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Invalid("spec.version must be a version number (1, 2, ...)")
    name = (manifest.get("metadata") or {}).get("name")
    if name not in (None, version_name(model, version)):
        raise Invalid(f"a model version is named <model>-v<version>: call it '{version_name(model, version)}'")
    uri = spec.get("uri")
    if not isinstance(uri, str) or not uri.strip():
        raise Invalid("spec.uri (where the model is: file:///..., s3://...) is required")
    signature = spec.get("signature") or {}
    if not isinstance(signature, dict):
        raise Invalid("spec.signature must be {inputs: [...], outputs: [...]}")
    metrics = spec.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in metrics.values()):
        raise Invalid("spec.metrics must be a map of name to number")
    run = spec.get("run") or {}
    if not isinstance(run, dict):
        raise Invalid("spec.run must be {uid, name, task, artifact}")
    out = {"model": model, "version": version, "uri": uri.strip(), "format": _text(spec, "format", 64).lower(),
           "signature": {"inputs": _tensors(signature.get("inputs") or [], "spec.signature.inputs"),
                         "outputs": _tensors(signature.get("outputs") or [], "spec.signature.outputs")},
           "metrics": {str(k): float(v) for k, v in metrics.items()},
           "run": {k: str(v) for k, v in run.items() if k in ("uid", "name", "task", "artifact") and v},
           "description": _text(spec, "description"), "tags": _tags(spec)}
    if old is not None:
        for key in ("model", "version", "uri", "format", "signature", "run"):
            if out[key] != old["spec"].get(key):
                raise Invalid(f"spec.{key} of a model version cannot change: register a new version")
    return out


def _admit_model(p: Any, namespace: str, manifest: Manifest) -> None:
    name = manifest["metadata"]["name"] if isinstance(manifest.get("metadata"), dict) else ""
    for alias, version in manifest["spec"]["aliases"].items():
        try:
            p.store.get(MODEL_VERSION, namespace, version_name(name, version))
        except NotFound:
            raise Invalid(f"alias '{alias}': model '{name}' has no version {version}") from None


def _admit_version(p: Any, namespace: str, manifest: Manifest) -> None:
    model = manifest["spec"]["model"]
    try:
        p.store.get(REGISTERED_MODEL, namespace, model)
    except NotFound:
        raise Invalid(f"registered model '{model}' does not exist in namespace '{namespace}': create it first") from None


def _guard_version(p: Any, namespace: str, name: str) -> None:
    version = p.store.get(MODEL_VERSION, namespace, name)["spec"]
    try:
        model = p.store.get(REGISTERED_MODEL, namespace, version["model"])
    except NotFound:
        return
    held = sorted(a for a, v in model["spec"]["aliases"].items() if v == version["version"])
    if held:
        raise Conflict(f"version {version['version']} of '{version['model']}' is aliased as {', '.join(held)}: "
                       "move or remove the alias first")


def versions_of(p: Any, namespace: str, model: str) -> list[Manifest]:
    """Every version of `model`, oldest first."""
    out: list[Manifest] = []
    token = None
    while True:
        items, token = p.store.list(MODEL_VERSION, namespace, continue_=token)
        out += [i for i in items if i["spec"].get("model") == model]
        if not token:
            return sorted(out, key=lambda v: v["spec"]["version"])


def _guard_model(p: Any, namespace: str, name: str) -> None:
    if versions_of(p, namespace, name):
        raise Conflict(f"registered model '{name}' still has versions: delete them first")


REGISTERED_MODEL = register(Kind("RegisteredModel", (API_VERSION,), spec_from=_model_spec, admit=_admit_model,
                                 guard_delete=_guard_model))
MODEL_VERSION = register(Kind("ModelVersion", (API_VERSION,), spec_from=_version_spec, admit=_admit_version,
                              guard_delete=_guard_version))
