"""Prometheus metrics of one replica (its own `/metrics`), labelled by model name and version.

Named `flowyard_replica_*` so that they never mix with the gateway's `flowyard_serving_*`
series (per InferenceService and revision, on the platform's `/metrics`).

- `flowyard_replica_requests_total{model,version,protocol}`: inference requests answered;
- `flowyard_replica_request_errors_total{model,version,protocol,code}`: those answered with an
  error, by HTTP status (gRPC errors are counted by the HTTP status they map from);
- `flowyard_replica_request_duration_seconds{model,version,protocol}`: latency histogram, from
  the request body read to the response written;
- `flowyard_replica_batch_size{model,version}`: rows per model call (above 1 with batching);
- `flowyard_replica_model_seconds{model,version}`: time inside the model per call;
- `flowyard_replica_inflight_requests{model,version}`: requests being answered now;
- `flowyard_replica_model_ready{model,version}`: 1 once the model is loaded.
`protocol` is `v1` (TF-Serving REST), `v2` (Open Inference REST) or `grpc`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PROTOCOLS = ("v1", "v2", "grpc")
_LATENCY = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """The replica's metrics, with the label children bound once for the request path."""

    def __init__(self, model: str, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        p = "flowyard_replica_"
        labels = ("model", "version")
        requests = Counter(p + "requests", "Inference requests answered.", (*labels, "protocol"),
                           registry=self.registry)
        self._errors = Counter(p + "request_errors", "Inference requests answered with an error.",
                               (*labels, "protocol", "code"), registry=self.registry)
        latency = Histogram(p + "request_duration_seconds", "Inference request latency.", (*labels, "protocol"),
                            buckets=_LATENCY, registry=self.registry)
        batch = Histogram(p + "batch_size", "Rows per model call.", labels, buckets=_BATCH, registry=self.registry)
        model_time = Histogram(p + "model_seconds", "Time inside the model per call.", labels,
                               buckets=_LATENCY, registry=self.registry)
        self.inflight = Gauge(p + "inflight_requests", "Inference requests being answered.", labels,
                              registry=self.registry).labels(model, version)
        self.ready = Gauge(p + "model_ready", "1 once the model is loaded.", labels,
                           registry=self.registry).labels(model, version)
        self._labels = (model, version)
        self._requests = {pr: requests.labels(model, version, pr) for pr in PROTOCOLS}
        self._latency = {pr: latency.labels(model, version, pr) for pr in PROTOCOLS}
        self._batch = batch.labels(model, version)
        self._model_time = model_time.labels(model, version)

    def request(self, protocol: str, status: int, seconds: float) -> None:
        self._requests[protocol].inc()
        self._latency[protocol].observe(seconds)
        if status >= 400:
            self._errors.labels(*self._labels, protocol, str(status)).inc()

    def model_call(self, rows: int, seconds: float) -> None:
        self._batch.observe(rows)
        self._model_time.observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
