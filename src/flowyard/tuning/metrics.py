"""Metrics collection: Katib's `StdOut` and `File` collectors, and pushed metrics.

A trial's metrics are the `name=value` pairs in its output (Katib's default format, or the
experiment's own regexes), the lines of a metrics file (TEXT or JSON lines) that a small
wrapper prints, marked, after the command ends, or the values it posted to the push API.
Only the experiment's metric names count. The runner parses; no sidecar can miss the end.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any

import orjson

DEFAULT_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
"""Katib's default StdOut filter: `loss=0.3`, `accuracy = .98`, `score=1.2E10`."""
FILE_MARK = "##flowyard-metrics-file## "
_WRAPPER = r"""
import subprocess, sys
path, cmd = sys.argv[1], sys.argv[2:]
try:
    code = subprocess.call(cmd)
except OSError as e:
    print(f"cannot run {cmd[0]}: {e}", file=sys.stderr, flush=True)
    code = 127
try:
    with open(path, errors="replace") as f:
        for line in f:
            print("##flowyard-metrics-file## " + line.rstrip("\n"))
except OSError as e:
    print(f"metrics file {path}: {e.strerror}", file=sys.stderr)
sys.exit(code)
"""
Point = tuple[str, float]
_lock = threading.Lock()


def names_of(spec: dict[str, Any]) -> list[str]:
    """Every metric an experiment collects: objectives first, then the additional ones."""
    obj = spec["objective"]
    return [obj["objectiveMetricName"], *(o["name"] for o in obj.get("additionalObjectives") or []),
            *obj.get("additionalMetricNames", [])]


def wrap_command(command: list[str], collector: dict[str, Any]) -> list[str]:
    """The command a trial runs: as is, or under the File collector's wrapper."""
    if collector["collector"]["kind"] != "File":
        return command
    path = collector["source"]["fileSystemPath"]["path"]
    return ["python", "-c", _WRAPPER, path, *command]


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse(text: str, names: list[str], collector: dict[str, Any]) -> list[Point]:
    """The metric points in a trial's output, in order."""
    kind = collector["collector"]["kind"]
    source = collector.get("source") or {}
    wanted = set(names)
    out: list[Point] = []
    if kind == "File":
        lines = [line[len(FILE_MARK):] for line in text.splitlines() if line.startswith(FILE_MARK)]
        if (source.get("fileSystemPath") or {}).get("format") == "JSON":
            for line in lines:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    out += [(k, v) for k in record if k in wanted
                            if (v := _float(str(record[k]))) is not None]
            return out
    else:
        lines = text.splitlines()
    formats = [re.compile(f) for f in ((source.get("filter") or {}).get("metricsFormat") or [DEFAULT_FORMAT])]
    for line in lines:
        for pattern in formats:
            for m in pattern.finditer(line):
                name, value = m.group(1).strip(), _float(m.group(2))
                if name in wanted and value is not None:
                    out.append((name, value))
    return out


def observation(points: list[Point], names: list[str]) -> dict[str, Any]:
    """Katib's `observation`: per metric its latest, min and max (as strings, as Katib writes them)."""
    metrics = []
    for name in names:
        values = [v for n, v in points if n == name]
        if values:
            metrics.append({"name": name, "latest": repr(values[-1]), "min": repr(min(values)),
                            "max": repr(max(values))})
    return {"metrics": metrics}


def value_of(obs: dict[str, Any], name: str, strategy: str) -> float | None:
    """The value that stands for metric `name` by its strategy (min, max or latest)."""
    for m in (obs or {}).get("metrics") or []:
        if m["name"] == name:
            return float(m[strategy])
    return None


def objective_values(spec: dict[str, Any], obs: dict[str, Any]) -> list[float] | None:
    """The objective value(s) of an observation; None when one is missing."""
    strategies = {s["name"]: s["value"] for s in spec["objective"]["metricStrategies"]}
    obj = spec["objective"]
    out = []
    for name in [obj["objectiveMetricName"], *(o["name"] for o in obj.get("additionalObjectives") or [])]:
        value = value_of(obs, name, strategies.get(name, "latest"))
        if value is None:
            return None
        out.append(value)
    return out


def pushed_path(trial_uid: str) -> str:
    return f".tuning/{trial_uid}.jsonl"


def push(p: Any, namespace: str, trial_uid: str, metrics: dict[str, float]) -> None:
    """Append pushed metrics (one JSON line per call) to the trial's file in the artifact store."""
    path = pushed_path(trial_uid)
    line = orjson.dumps(metrics) + b"\n"
    with _lock:
        old = b""
        if p.artifacts.exists(namespace, path):
            with p.artifacts.open_read(namespace, path) as f:
                old = f.read()
        p.artifacts.write(namespace, path, old + line)


def pushed(p: Any, namespace: str, trial_uid: str, names: list[str]) -> list[Point]:
    """The metric points a trial pushed, in order."""
    path = pushed_path(trial_uid)
    if p.artifacts is None or not p.artifacts.exists(namespace, path):
        return []
    with p.artifacts.open_read(namespace, path) as f:
        data = f.read()
    out: list[Point] = []
    wanted = set(names)
    for line in data.splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        out += [(k, float(v)) for k, v in record.items() if k in wanted and isinstance(v, (int, float))]
    return out
