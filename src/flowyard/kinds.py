"""The registry of resource kinds: names, plurals, scope and spec validation.

Each feature module declares its kind once (`register(Kind(...))`); the generic REST
layer, the CLI and the UI look kinds up here by kind name, singular or plural, or
kubectl-style as `<plural>.<group>`. Two API groups may use one kind name (KFP's and Katib's
`Experiment`): the later one registers a unique `name` and its manifests' `api_kind`, and
manifests are resolved by apiVersion group + kind (`for_manifest`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowyard.errors import NotFound

Manifest = dict[str, Any]
CREATOR = "flowyard.io/creator"
"""Annotation the API stamps on every object with the user who created it (never from input)."""


def _identity(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    return manifest.get("spec") or {}


def _as_is(manifest: Manifest) -> Manifest:
    return manifest


@dataclass(frozen=True)
class Kind:
    """One resource kind, e.g. `Notebook` in `kubeflow.org/v1`."""

    name: str
    api_versions: tuple[str, ...]
    """Accepted apiVersions; the first is what the server answers with."""
    namespaced: bool = True
    spec_from: Callable[[Manifest, Manifest | None], dict[str, Any]] = field(default=_identity)
    """Validates a submitted manifest (and the stored one on update) and returns the spec to store.
    Raises `flowyard.errors.Invalid` with a message that says what to fix."""
    present: Callable[[Manifest], Manifest] = field(default=_as_is)
    """Turns a stored manifest into what the API returns (e.g. masks secret values)."""
    min_read_role: str = "view"
    """The namespace role needed to read objects of this kind."""
    admit: Callable[[Any, str, Manifest], None] | None = None
    """Checks against the rest of the platform before the API stores a create or a spec change,
    called as `admit(platform, namespace, manifest)` with the validated spec; raises a
    `flowyard.errors` error (an unknown environment, a quota) to refuse it."""
    guard_delete: Callable[[Any, str, str], None] | None = None
    """Called as `guard_delete(platform, namespace, name)` before the API deletes an object;
    raises (e.g. `Conflict`) to refuse, as when a volume is still in use."""
    api_kind: str = ""
    """The `kind` its manifests carry when that differs from the unique `name` (Katib's
    `Experiment` is stored as `TuningExperiment`); empty means `name`."""

    @property
    def plural(self) -> str:
        return self.name.lower() + "s"

    @property
    def api_version(self) -> str:
        return self.api_versions[0]

    @property
    def manifest_kind(self) -> str:
        return self.api_kind or self.name


_KINDS: dict[str, Kind] = {}
_BY_GROUP: dict[tuple[str, str], Kind] = {}


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def register(kind: Kind) -> Kind:
    for word in (kind.name, kind.name.lower(), kind.plural):
        _KINDS[word] = kind
    for version in kind.api_versions:
        _BY_GROUP[(_group(version), kind.manifest_kind)] = kind
        if _group(version):  # kubectl spelling: notebooks.kubeflow.org, experiments.pipelines.kubeflow.org
            _KINDS[f"{kind.plural}.{_group(version)}"] = kind
            _KINDS[f"{kind.manifest_kind.lower()}s.{_group(version)}"] = kind
    return kind


def lookup(word: str) -> Kind:
    """The kind called `word` (kind name, lower-case singular or plural, or `<plural>.<group>`)."""
    kind = _KINDS.get(word) or _KINDS.get(word.lower())
    if kind is None:
        known = ", ".join(sorted({k.plural for k in _KINDS.values()}))
        raise NotFound(f"unknown resource type '{word}'; known types: {known}")
    return kind


def for_manifest(api_version: object, kind: object) -> Kind:
    """The kind a manifest means, by its apiVersion's group and its kind (else by kind name)."""
    if isinstance(api_version, str) and isinstance(kind, str):
        found = _BY_GROUP.get((_group(api_version), kind))
        if found is not None:
            return found
    return lookup(str(kind))


def all_kinds() -> list[Kind]:
    return sorted({k.name: k for k in _KINDS.values()}.values(), key=lambda k: k.name)
