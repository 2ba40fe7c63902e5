"""`InferenceService` (`serving.kserve.io/v1beta1`): the KServe manifest of a model endpoint.

What Flowyard reads from `spec.predictor` (everything else is refused, not silently ignored):
- `model`: `modelFormat.name` (sklearn, xgboost, lightgbm, onnx, pytorch, custom), `storageUri`
  (`file://`, any fsspec URL, or `models:/<name>/<version-or-alias>` from the model registry),
  `resources` (requests/limits: admission and limits of each replica). The older KServe form
  `predictor.<format>: {storageUri, resources}` is accepted too.
- `minReplicas` (0 = scale to zero when idle), `maxReplicas`, `scaleMetric` (`concurrency`),
  `scaleTarget` (in-flight requests per replica), `canaryTrafficPercent`, `timeout` (seconds),
  `batcher` (KServe) or `batching` (Flowyard): `maxBatchSize`, `maxLatency` (milliseconds),
  `logger`: payload logging (`mode: all`, `url`: a folder in the namespace's artifacts,
  `sampleFraction`).
Annotations: `serving.flowyard.io/public: "true"` opens the endpoint to anonymous callers when the
namespace's Profile allows it (`serving.flowyard.io/allow-public-endpoints: "true"`, which only
namespace owners can set); `serving.flowyard.io/follow-alias: "true"` re-resolves a registry
alias on every resync and rolls to the version it points at.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from flowyard.artifacts.store import check_path
from flowyard.errors import Invalid
from flowyard.executor.base import Resources
from flowyard.kinds import Kind, Manifest, register
from flowyard.workloads import resources as parse_resources

FORMATS = ("sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "custom")
PUBLIC = "serving.flowyard.io/public"
ALLOW_PUBLIC = "serving.flowyard.io/allow-public-endpoints"
FOLLOW_ALIAS = "serving.flowyard.io/follow-alias"
SCALE_TO_ZERO_AFTER = "serving.flowyard.io/scale-to-zero-after"
"""Seconds without a request before a `minReplicas: 0` revision is scaled to zero (default 60)."""
SCALE_DOWN_DELAY = "serving.flowyard.io/scale-down-delay"
"""Seconds the load must stay low before replicas are removed (default 30)."""
DEFAULT_TIMEOUT = 60.0
DEFAULT_SCALE_TARGET = 8
MAX_REPLICAS = 16
_P = "spec.predictor"
_PREDICTOR_KEYS = {"model", "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "canaryTrafficPercent",
                   "timeout", "batcher", "batching", "logger", "containerConcurrency", *FORMATS}
_MODEL_KEYS = {"modelFormat", "storageUri", "resources", "runtime", "protocolVersion", "name"}


@dataclass(frozen=True)
class Predictor:
    """A validated `spec.predictor`, in the units Flowyard uses."""

    format: str
    storage_uri: str
    requests: Resources
    limits: Resources
    min_replicas: int
    max_replicas: int
    scale_target: int
    canary: int | None
    timeout: float
    max_batch_size: int | None
    max_latency_ms: float | None
    payload_log: str | None
    payload_sample: float

    def revision_key(self, storage_uri: str, model_format: str) -> str:
        """What makes a new revision: everything but scaling and the traffic split."""
        fields = asdict(self)
        for scaling in ("min_replicas", "max_replicas", "scale_target", "canary"):
            fields.pop(scaling)
        fields.update(storage_uri=storage_uri, format=model_format)
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _int(value: object, where: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise Invalid(f"{where} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise Invalid(f"{where} must be {bounds}, got {int(value)}")
    return int(value)


def _number(value: object, where: str, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(f"{where} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise Invalid(f"{where} must be {bounds}, got {value:g}")
    return float(value)


def _object(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{where} must be an object")
    return value


def _storage_uri(uri: object, where: str) -> str:
    if not isinstance(uri, str) or not uri.strip():
        raise Invalid(f"{where} is required: where the model is, e.g. file:///srv/models/iris, s3://bucket/iris "
                      "or models:/iris/1 (a model-registry version or alias)")
    uri = uri.strip()
    if uri.startswith("models:"):
        parts = uri[len("models:"):].lstrip("/").split("/")
        if len(parts) != 2 or not all(parts):
            raise Invalid(f"{where} '{uri}': a registry reference is models:/<model name>/<version or alias>")
        return uri
    if "://" not in uri:
        raise Invalid(f"{where} '{uri}' needs a scheme: file:///absolute/path, s3://…, gs://… or models:/name/version")
    if uri.startswith("file://") and not uri[len("file://"):].startswith("/"):
        raise Invalid(f"{where} '{uri}': a file URI needs an absolute path, e.g. file:///srv/models/iris")
    return uri


def _model(predictor: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """(format, model block, where) from `predictor.model` or the older `predictor.<format>`."""
    legacy = [f for f in FORMATS if f in predictor]
    if "model" in predictor and legacy:
        raise Invalid(f"{_P}: give either model or {legacy[0]}, not both")
    if len(legacy) > 1:
        raise Invalid(f"{_P}: give one model format, not {' and '.join(legacy)}")
    if legacy:
        where = f"{_P}.{legacy[0]}"
        return legacy[0], _object(predictor[legacy[0]], where), where
    where = f"{_P}.model"
    model = _object(predictor.get("model"), where)
    if not model:
        raise Invalid(f"{where} is required: modelFormat.name ({', '.join(FORMATS)}) and storageUri")
    fmt = _object(model.get("modelFormat"), f"{where}.modelFormat").get("name")
    if fmt is None and str(model.get("storageUri", "")).startswith("models:"):
        return "", model, where  # the registry says the format
    if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        raise Invalid(f"{where}.modelFormat.name must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt.lower(), model, where


def _batching(predictor: dict[str, Any]) -> tuple[int | None, float | None]:
    if "batcher" in predictor and "batching" in predictor:
        raise Invalid(f"{_P}: give either batcher (KServe) or batching, not both")
    key = "batcher" if "batcher" in predictor else "batching"
    block = _object(predictor.get(key), f"{_P}.{key}")
    unknown = set(block) - {"maxBatchSize", "maxLatency", "timeout"}
    if unknown:
        raise Invalid(f"{_P}.{key}: unknown field {sorted(unknown)[0]}; use maxBatchSize and maxLatency (ms)")
    if not block:
        return None, None
    size = _int(block.get("maxBatchSize", 32), f"{_P}.{key}.maxBatchSize", 1, 4096)
    latency = _number(block.get("maxLatency", 5), f"{_P}.{key}.maxLatency (milliseconds)", 0.0, 60_000.0)
    return size, latency


def _logger(predictor: dict[str, Any]) -> tuple[str | None, float]:
    where = f"{_P}.logger"
    block = _object(predictor.get("logger"), where)
    if not block:
        return None, 0.0
    unknown = set(block) - {"mode", "url", "sampleFraction"}
    if unknown:
        raise Invalid(f"{where}: unknown field {sorted(unknown)[0]}; use mode, url and sampleFraction")
    if block.get("mode", "all") != "all":
        raise Invalid(f"{where}.mode: Flowyard logs requests and responses together; use mode: all")
    folder = block.get("url", "serving-payloads")
    if not isinstance(folder, str) or "://" in folder:
        raise Invalid(f"{where}.url must be a folder in the namespace's artifacts, e.g. payloads/iris "
                      "(payload logs stay inside the namespace)")
    try:
        check_path(folder.strip("/"))
    except Invalid as e:
        raise Invalid(f"{where}.url: {e.message}") from None
    sample = _number(block.get("sampleFraction", 1.0), f"{where}.sampleFraction", 0.0, 1.0)
    return folder.strip("/"), sample


def predictor_of(spec: dict[str, Any]) -> Predictor:
    """Validate `spec` (an InferenceService spec) and return its predictor; raises Invalid."""
    if not isinstance(spec, dict) or not isinstance(spec.get("predictor"), dict):
        raise Invalid(f"{_P} is required, e.g. predictor: {{model: {{modelFormat: {{name: sklearn}}, "
                      "storageUri: file:///srv/models/iris}}")
    for other in ("transformer", "explainer"):
        if spec.get(other):
            raise Invalid(f"spec.{other} is not supported: serve the model with spec.predictor only")
    predictor = spec["predictor"]
    unknown = set(predictor) - _PREDICTOR_KEYS
    if unknown:
        name = sorted(unknown)[0]
        hint = " (custom containers are not supported: use modelFormat custom)" if name == "containers" else ""
        raise Invalid(f"{_P}.{name} is not supported{hint}")
    fmt, model, where = _model(predictor)
    unknown = set(model) - _MODEL_KEYS
    if unknown:
        raise Invalid(f"{where}.{sorted(unknown)[0]} is not supported")
    uri = _storage_uri(model.get("storageUri"), f"{where}.storageUri")
    requests, limits = parse_resources(model.get("resources"), f"{where}.resources")
    low = _int(predictor.get("minReplicas", 1), f"{_P}.minReplicas", 0, MAX_REPLICAS)
    high = _int(predictor.get("maxReplicas", max(low, 1)), f"{_P}.maxReplicas", 1, MAX_REPLICAS)
    if high < low:
        raise Invalid(f"{_P}.maxReplicas ({high}) must be at least minReplicas ({low})")
    metric = predictor.get("scaleMetric", "concurrency")
    if metric != "concurrency":
        raise Invalid(f"{_P}.scaleMetric: Flowyard scales on concurrency (in-flight requests), got {metric!r}")
    target = _int(predictor.get("scaleTarget", predictor.get("containerConcurrency") or DEFAULT_SCALE_TARGET),
                  f"{_P}.scaleTarget", 1, 10_000)
    canary = predictor.get("canaryTrafficPercent")
    if canary is not None:
        canary = _int(canary, f"{_P}.canaryTrafficPercent", 0, 100)
    timeout = _number(predictor.get("timeout", DEFAULT_TIMEOUT), f"{_P}.timeout (seconds)", 0.1, 3600.0)
    size, latency = _batching(predictor)
    log_folder, sample = _logger(predictor)
    return Predictor(fmt, uri, requests, limits, low, high, target, canary, timeout, size, latency, log_folder,
                     sample)


def annotation_seconds(obj: Manifest, key: str, default: float) -> float:
    """A number of seconds from an annotation, `default` when absent or unreadable."""
    try:
        value = float(str(obj["metadata"].get("annotations", {}).get(key, default)).rstrip("s"))
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


def _spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = manifest.get("spec")
    predictor_of(spec or {})
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    for key in (SCALE_TO_ZERO_AFTER, SCALE_DOWN_DELAY):
        if key in annotations:
            try:
                ok = float(str(annotations[key]).rstrip("s")) >= 0
            except ValueError:
                ok = False
            if not ok:
                raise Invalid(f"metadata.annotations.{key} must be a number of seconds, e.g. \"30\"")
    return spec  # type: ignore[return-value]


INFERENCE_SERVICE = register(Kind("InferenceService", ("serving.kserve.io/v1beta1",), spec_from=_spec))
