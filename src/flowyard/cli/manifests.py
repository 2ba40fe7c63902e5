"""Reading manifests for `apply -f` / `delete -f`: files, folders or stdin; YAML or JSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from flowyard.errors import Invalid, NotFound

SUFFIXES = (".yaml", ".yml", ".json")


def _parse(text: str, source: str) -> list[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise Invalid(f"{source}: invalid YAML{where}: {problem}") from None
    out: list[dict[str, Any]] = []
    for i, doc in enumerate(docs, 1):
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out += doc["items"]
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
            raise Invalid(f"{source}: document {i} is not a resource manifest (it needs kind, metadata.name, spec)")
        out.append(doc)
    return out


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        if not found:
            raise Invalid(f"{path}: no {', '.join(SUFFIXES)} files in this folder")
        return found
    if not path.exists():
        raise NotFound(f"{path}: no such file or folder")
    return [path]


def load(sources: list[str]) -> list[dict[str, Any]]:
    """Every manifest in `sources` ('-' is stdin), in order; raises Invalid saying what is wrong."""
    manifests: list[dict[str, Any]] = []
    for source in sources:
        if source == "-":
            manifests += _parse(sys.stdin.read(), "<stdin>")
            continue
        for path in _files(Path(source).expanduser()):
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise Invalid(f"{path}: cannot read: {e}") from None
            manifests += _parse(text, str(path))
    if not manifests:
        raise Invalid(f"no manifests found in {', '.join(sources)}")
    return manifests


def label(manifest: dict[str, Any]) -> str:
    """`kind/name` as the CLI prints it."""
    name = (manifest.get("metadata") or {}).get("name") or "?"
    return f"{str(manifest.get('kind', '?')).lower()}/{name}"
