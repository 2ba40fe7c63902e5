"""The server's resource kinds, looked up by kind name, singular or plural, any case."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flowyard.errors import NotFound

SHORT_NAMES = {"env": "environment", "envs": "environments", "ns": "profile", "namespace": "profile",
               "namespaces": "profiles"}
"""kubectl-style short names (a namespace is a Profile), used when the server has no kind by that name."""


@dataclass(frozen=True)
class KindInfo:
    """What the client needs to build a kind's URLs."""

    kind: str
    plural: str
    api_versions: tuple[str, ...]
    namespaced: bool
    manifest_kind: str = ""
    """The `kind` its manifests carry, when not `kind` (Katib's Experiment is TuningExperiment)."""

    @property
    def api_version(self) -> str:
        return self.api_versions[0] if self.api_versions else "v1"

    def path(self, namespace: str | None, name: str | None = None) -> str:
        """The collection (or object) URL path; namespace None lists across namespaces."""
        if self.namespaced and namespace:
            base = f"/api/v1/namespaces/{namespace}/{self.plural}"
        else:
            base = f"/api/v1/{self.plural}"
        return f"{base}/{name}" if name else base


class KindCatalog:
    """`GET /api/v1/kinds`, fetched once and kept."""

    def __init__(self, fetch: Callable[[], Any]) -> None:
        self._fetch = fetch
        self._by_word: dict[str, KindInfo] | None = None

    def _load(self) -> dict[str, KindInfo]:
        if self._by_word is None:
            words: dict[str, KindInfo] = {}
            for item in (self._fetch() or {}).get("items", []):
                info = KindInfo(item["kind"], item["plural"], tuple(item.get("apiVersions") or ()),
                                bool(item.get("namespaced", True)), item.get("manifestKind") or item["kind"])
                for word in (info.kind, info.plural):
                    words[word.lower()] = info
                for version in info.api_versions:  # kubectl spelling: experiments.kubeflow.org
                    group = version.rpartition("/")[0]
                    if group:
                        words[f"{info.plural}.{group}"] = words[f"{info.manifest_kind.lower()}s.{group}"] = info
                    words[f"{version}|{info.manifest_kind}"] = info
            self._by_word = words
        return self._by_word

    def for_manifest(self, api_version: object, kind: str) -> KindInfo:
        """The kind a manifest means: by apiVersion and kind, else by kind name."""
        return self._load().get(f"{api_version}|{kind}") or self.resolve(kind)

    def all(self) -> list[KindInfo]:
        return sorted(set(self._load().values()), key=lambda k: k.kind)

    def resolve(self, word: str) -> KindInfo:
        """The kind called `word`; raises NotFound listing the known ones."""
        words = self._load()
        info = words.get(word.lower()) or words.get(SHORT_NAMES.get(word.lower(), ""))
        if info is None and "." in word:  # kubectl spelling: jobs.batch
            info = words.get(word.split(".", 1)[0].lower())
        if info is None:
            known = ", ".join(k.plural for k in self.all())
            raise NotFound(f"unknown resource type '{word}'; known types: {known}")
        return info
