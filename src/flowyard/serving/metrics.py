"""Prometheus metrics of model endpoints, per InferenceService and revision, on the platform's `/metrics`.

Recorded by the gateway (REST and gRPC) for every request it routes, so they count what callers
saw, auth refusals and activation waits included. Each replica also exposes its own `/metrics`
(batch sizes, model time), reachable through the gateway at `/serving/<ns>/<name>/metrics`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from flowyard.server.metrics import REGISTRY

_LABELS = ["namespace", "name", "revision"]
REQUESTS = Counter("flowyard_serving_requests_total", "Inference requests routed by the gateway",
                   [*_LABELS, "protocol", "code"], registry=REGISTRY)
ERRORS = Counter("flowyard_serving_errors_total", "Inference requests that failed (5xx or gRPC error)",
                 [*_LABELS, "protocol"], registry=REGISTRY)
LATENCY = Histogram("flowyard_serving_request_seconds", "Inference latency through the gateway",
                    [*_LABELS, "protocol"], registry=REGISTRY,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
REPLICAS = Gauge("flowyard_serving_replicas", "Replicas of a revision", [*_LABELS, "state"], registry=REGISTRY)
INFLIGHT = Gauge("flowyard_serving_inflight_requests", "Requests in flight", _LABELS, registry=REGISTRY)
TRAFFIC = Gauge("flowyard_serving_traffic_percent", "Share of traffic a revision gets", _LABELS, registry=REGISTRY)
COLD_START = Histogram("flowyard_serving_cold_start_seconds", "From a request finding no replica to one ready",
                       ["namespace", "name"], registry=REGISTRY, buckets=(0.5, 1, 2, 3, 5, 10, 20, 60, 120))


class Recorder:
    """The metric children of one revision and protocol, made once (label lookups cost on the hot path)."""

    def __init__(self, namespace: str, name: str, revision: str, protocol: str) -> None:
        labels = (namespace, name, revision)
        self._labels = labels
        self._protocol = protocol
        self._latency = LATENCY.labels(*labels, protocol)
        self._errors = ERRORS.labels(*labels, protocol)
        self._codes: dict[str, Counter] = {}
        self.count = 0
        self.errors = 0
        self.seconds = 0.0
        """Plain totals for the dashboard's live rate and latency (no registry scrape needed)."""

    def observe(self, code: str, seconds: float, failed: bool) -> None:
        self.count += 1
        self.seconds += seconds
        self.errors += failed
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = REQUESTS.labels(*self._labels, self._protocol, code)
        counter.inc()
        self._latency.observe(seconds)
        if failed:
            self._errors.inc()


def forget(namespace: str, name: str, revision: str) -> None:
    """Drop the gauges of a retired revision (counters stay: Prometheus expects them to)."""
    for gauge, extra in ((REPLICAS, ("ready",)), (REPLICAS, ("starting",)), (INFLIGHT, ()), (TRAFFIC, ())):
        try:
            gauge.remove(namespace, name, revision, *extra)
        except KeyError:
            pass
