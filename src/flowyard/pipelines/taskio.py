"""One pipeline task's files: the KFP executor input, placeholders, the launch command, outputs.

Everything here is pure (no platform): `engine.py` decides *when* a task runs, this module
decides *what* it runs and how its outputs are read back. Formats follow the KFP v2 IR as
`kfp` 2.x compiles it (see kfp's `dsl/executor.py` for the consumer side).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["TaskError", "cast_parameter", "apply_defaults", "executor_input", "resolve_args",
           "python_component", "read_outputs", "parse_output_value"]


class TaskError(Exception):
    """A task cannot be prepared or its outputs cannot be read; the message says why."""


# -- parameter values -----------------------------------------------------------------------


def cast_parameter(value: Any, ptype: str | None, name: str = "") -> Any:
    """Cast a value to its IR type. Protobuf Values make every number a double, so ints come
    back as floats (`5.0`) and must be cast to int; strings given for numbers are parsed."""
    if value is None or not ptype:
        return value
    try:
        if ptype == "NUMBER_INTEGER":
            if isinstance(value, str):
                value = float(value.strip())
            if isinstance(value, float) and not value.is_integer():
                raise TaskError(f"parameter '{name}' must be a whole number, got {value!r}")
            return int(value)
        if ptype == "NUMBER_DOUBLE":
            return float(value)
        if ptype == "BOOLEAN":
            if isinstance(value, str):
                if value.strip().lower() not in ("true", "false"):
                    raise TaskError(f"parameter '{name}' must be true or false, got {value!r}")
                return value.strip().lower() == "true"
            return bool(value)
        if ptype == "STRING":
            return json.dumps(value) if isinstance(value, (dict, list)) else value
        if ptype in ("LIST", "STRUCT"):
            if isinstance(value, str):
                value = json.loads(value)
            want = list if ptype == "LIST" else dict
            if not isinstance(value, want):
                raise TaskError(f"parameter '{name}' must be a {'list' if want is list else 'JSON object'}, got {value!r}")
            return value
    except (TypeError, ValueError) as e:
        raise TaskError(f"parameter '{name}' is not a valid {ptype}: {value!r} ({e})") from None
    return value


def apply_defaults(params: dict[str, Any], definitions: dict[str, Any], where: str) -> dict[str, Any]:
    """Fill defaults, cast every value, and fail on a missing required parameter."""
    out = dict(params)
    for name, d in (definitions.get("parameters") or {}).items():
        if out.get(name) is None:
            if "defaultValue" in d:
                out[name] = d["defaultValue"]
            elif d.get("parameterType") == "TASK_FINAL_STATUS":
                continue
            elif d.get("isOptional"):
                out.pop(name, None)
                continue
            else:
                raise TaskError(f"{where}: required parameter '{name}' has no value")
        out[name] = cast_parameter(out[name], d.get("parameterType"), name)
    return out


def parse_output_value(text: str, ptype: str | None) -> Any:
    """An output parameter written as raw text to its output_file."""
    if ptype == "STRING" or not ptype:
        return text
    if ptype in ("LIST", "STRUCT"):
        return json.loads(text)
    if ptype == "BOOLEAN":
        return cast_parameter(text, "BOOLEAN")
    return cast_parameter(text.strip(), ptype)


# -- executor input ---------------------------------------------------------------------------


def _atype(definition: dict[str, Any]) -> dict[str, Any]:
    t = definition.get("artifactType") or {}
    return {"schemaTitle": t.get("schemaTitle", "system.Artifact"), "schemaVersion": t.get("schemaVersion", "0.0.1")}


def executor_input(component: dict[str, Any], inputs: dict[str, Any], task_dir: Path, io_dir: Path) -> tuple[dict, dict]:
    """(the executor input JSON, the planned outputs) of a leaf task.

    `task_dir` is where output artifacts go (`<task_dir>/<name>`), `io_dir` holds
    executor_output.json and the per-parameter output files of this attempt.
    """
    outs = component.get("outputDefinitions") or {}
    in_arts = {}
    for name, arts in (inputs.get("artifacts") or {}).items():
        in_arts[name] = {"artifacts": [{"name": a.get("name", name), "type": a.get("type") or {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"},
                                        "uri": a["uri"], "metadata": a.get("metadata") or {}} for a in arts]}
    out_params = {n: {"outputFile": str(io_dir / "parameters" / n)} for n in (outs.get("parameters") or {})}
    out_arts = {n: {"artifacts": [{"name": n, "type": _atype(d), "uri": str(task_dir / n), "metadata": {}}]}
                for n, d in (outs.get("artifacts") or {}).items()}
    ei = {"inputs": {"parameterValues": inputs.get("parameters") or {}, "artifacts": in_arts},
          "outputs": {"parameters": out_params, "artifacts": out_arts, "outputFile": str(io_dir / "executor_output.json")}}
    if not in_arts:
        del ei["inputs"]["artifacts"]
    return ei, {"parameters": out_params, "artifacts": out_arts}


# -- placeholders -------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{\$(?:\.[^{}]*)?\}\}")
_REF = re.compile(r"^\{\{\$\.(inputs|outputs)\.(parameters|artifacts)\[['\"](.+?)['\"]\](?:\.(\w+)(?:\[['\"](.+?)['\"]\])?)?\}\}$")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


_JSON_ESCAPE = re.compile(r"^(\{\{\$.*?)\.json_escape\[(\d)\]\}\}$")


def _one(ph: str, ei: dict[str, Any], ctx: dict[str, str]) -> str | None:
    """The value of one placeholder; None when it names an absent optional input.

    `<placeholder>.json_escape[N]` (Google Cloud Pipeline Components write it, e.g.
    `{{$.json_escape[1]}}`) is the value's text escaped N times for use inside a JSON string.
    """
    m = _JSON_ESCAPE.match(ph)
    if m:
        value = _one(m.group(1) + "}}", ei, ctx)
        for _ in range(int(m.group(2))):
            value = None if value is None else json.dumps(value)[1:-1]
        return value
    if ph == "{{$}}":
        return json.dumps(ei)
    if ph == "{{$.outputs.output_file}}":
        return ei["outputs"]["outputFile"]
    m = _REF.match(ph)
    if m:
        side, what, name, attr, key = m.groups()
        if side == "inputs" and what == "parameters":
            values = ei["inputs"].get("parameterValues") or {}
            return _text(values[name]) if name in values else None
        if side == "outputs" and what == "parameters":
            if name not in ei["outputs"]["parameters"]:
                raise TaskError(f"placeholder {ph} names an unknown output parameter")
            return ei["outputs"]["parameters"][name]["outputFile"]
        arts = (ei[side].get("artifacts") or {}).get(name)
        if not arts:
            if side == "inputs":
                return None
            raise TaskError(f"placeholder {ph} names an unknown output artifact")
        art = arts["artifacts"][0]
        if attr in ("path", "uri"):
            return art["uri"]  # local paths: the uri is the path (see ArtifactStore / engine)
        if attr == "metadata":
            return _text(art.get("metadata", {}).get(key)) if key else json.dumps(art.get("metadata") or {})
        raise TaskError(f"unsupported placeholder {ph}")
    name = ph[4:-2]
    if name in ctx:
        return ctx[name]
    raise TaskError(f"unsupported placeholder {ph}")


def _resolve_str(s: str, ei: dict[str, Any], ctx: dict[str, str]) -> str | None:
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        v = _one(m.group(0), ei, ctx)
        if v is None:
            missing = True
            return ""
        return v

    out = _PLACEHOLDER.sub(sub, s)
    return None if missing else out


def _present(name: str, ei: dict[str, Any]) -> bool:
    return name in (ei["inputs"].get("parameterValues") or {}) or name in (ei["inputs"].get("artifacts") or {})


def _structured(node: Any, ei: dict[str, Any], ctx: dict[str, str]) -> list[str]:
    """Expand one argument (a string or an IfPresent/Concat structure) into zero or more args."""
    if isinstance(node, str):
        stripped = node.strip()
        if stripped.startswith("{") and ('"IfPresent"' in stripped or '"Concat"' in stripped):
            try:
                node = json.loads(stripped)
            except ValueError:
                node = node
        if isinstance(node, str):
            v = _resolve_str(node, ei, ctx)
            return [] if v is None else [v]
    if isinstance(node, (int, float)):
        return [str(node)]
    if isinstance(node, list):
        return [a for item in node for a in _structured(item, ei, ctx)]
    if isinstance(node, dict) and "IfPresent" in node:
        spec = node["IfPresent"]
        branch = spec.get("Then") if _present(spec.get("InputName", ""), ei) else spec.get("Else")
        if branch is None:
            return []
        return _structured(branch if isinstance(branch, list) else [branch], ei, ctx)
    if isinstance(node, dict) and "Concat" in node:
        return ["".join("".join(_structured(p, ei, ctx)) for p in node["Concat"])]
    raise TaskError(f"unsupported argument structure {json.dumps(node)[:100]}")


def resolve_args(args: list[Any], ei: dict[str, Any], ctx: dict[str, str]) -> list[str]:
    """Resolve placeholders (and IfPresent / Concat) in a command or args list."""
    return [a for node in args for a in _structured(node, ei, ctx)]


# -- Python function components -----------------------------------------------------------------


def python_component(command: list[str]) -> tuple[str, list[str]] | None:
    """For kfp's lightweight Python component launcher, (function source, extra packages).

    The compiled command is `sh -c <pip install kfp …; exec "$0" "$@"> sh -ec <write $0 to
    ephemeral_component.py; python3 -m kfp.dsl.executor_main …> <source>`. None otherwise.
    The packages are `packages_to_install` plus `--index-url URL` / `--extra-index-url URL`
    lines for `pip_index_urls` (as a requirements file has them).
    """
    for i, part in enumerate(command):
        if "kfp.dsl.executor_main" in part and "--component_module_path" in part and i + 1 < len(command):
            packages: list[str] = []
            for c in command[:i]:
                for m in re.finditer(r"pip install (.*?)(?:&&|\n|$)", c):
                    packages += [t for t in _pip_args(m.group(1)) if t not in packages]
            return command[i + 1], packages
    return None


def _pip_args(text: str) -> list[str]:
    """Requirements and index options of one `pip install …` (kfp and its pins left out)."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        return []
    out, k = [], 0
    while k < len(tokens):
        t = tokens[k]
        if t in ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--trusted-host") and k + 1 < len(tokens):
            if t != "--trusted-host":
                out.append(f"{'--index-url' if t == '-i' else t} {tokens[k + 1]}")
            k += 2
            continue
        if not t.startswith("-") and not re.match(r"^(kfp|typing-extensions)\s*([=<>!~;]|$)", t):
            out.append(t)
        k += 1
    return out


def missing_packages(packages: list[str], path: list[str] | None = None) -> list[str]:
    """Those of `packages` (requirement strings) not satisfied by the distributions found on
    `path` (default: this interpreter's). Paths and URLs always count as missing."""
    from importlib.metadata import distributions

    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for spec in packages:
        if spec.startswith("-"):
            continue  # index options
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            missing.append(spec)
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        found = next(iter(distributions(name=req.name, path=path if path is not None else sys.path)), None)
        if found is None or req.url:
            missing.append(spec)
            continue
        have = found.version
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            missing.append(f"{spec} (found {have})")
    return missing


# -- outputs ------------------------------------------------------------------------------------


def read_outputs(component: dict[str, Any], planned: dict[str, Any], io_dir: Path) -> dict[str, Any]:
    """The task's outputs: executor_output.json first, then the per-parameter output files."""
    outs = component.get("outputDefinitions") or {}
    eo: dict[str, Any] = {}
    eo_path = io_dir / "executor_output.json"
    if eo_path.is_file():
        try:
            eo = json.loads(eo_path.read_text() or "{}")
        except ValueError as e:
            raise TaskError(f"executor_output.json is not valid JSON: {e}") from None
    params: dict[str, Any] = {}
    for name, d in (outs.get("parameters") or {}).items():
        ptype = d.get("parameterType")
        if name in (eo.get("parameterValues") or {}):
            params[name] = cast_parameter(eo["parameterValues"][name], ptype, name)
            continue
        f = Path(planned["parameters"][name]["outputFile"])
        if f.is_file():
            try:
                params[name] = parse_output_value(f.read_text(), ptype)
            except (ValueError, TaskError) as e:
                raise TaskError(f"output parameter '{name}' is not a valid {ptype}: {e}") from None
        elif not d.get("isOptional"):
            raise TaskError(f"the task wrote no value for output parameter '{name}'")
    arts: dict[str, list[dict[str, Any]]] = {}
    written = eo.get("artifacts") or {}
    for name, planned_art in planned["artifacts"].items():
        items = []
        for j, a in enumerate(planned_art["artifacts"]):
            got = (written.get(name) or {}).get("artifacts") or []
            meta = dict(a.get("metadata") or {})
            uri = a["uri"]
            if j < len(got):
                meta.update(got[j].get("metadata") or {})
                uri = got[j].get("uri") or uri
            items.append({"name": a["name"], "type": a["type"], "uri": uri, "metadata": meta})
        arts[name] = items
    return {"parameters": params, "artifacts": arts}


def ensure_dirs(*paths: Path) -> None:
    for path in paths:
        os.makedirs(path, exist_ok=True)
