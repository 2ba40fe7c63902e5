"""Request count, error rate and latency of each InferenceService over time, from the
platform's own Prometheus metrics (`flowyard_serving_*`, recorded by the serving gateway).

Counters only say "so far"; a daemon thread samples them every `INTERVAL` seconds into a
small ring per service (an hour), and `series()` turns neighbouring samples into rates. This
keeps the model page useful without a Prometheus server; teams that run one scrape
`/metrics` instead (`docs/prometheus.yml`, `docs/grafana-dashboard.json`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from flowyard.server.metrics import REGISTRY

INTERVAL = 10.0
KEEP = 360
_samples: dict[tuple[str, str], deque[tuple[float, float, float, float, float, dict[float, float]]]] = {}
_lock = threading.Lock()
_started = False


def _totals() -> dict[tuple[str, str], list[Any]]:
    """{(namespace, name): [requests, errors, latency sum, latency count, {le: count}]} now."""
    out: dict[tuple[str, str], list[Any]] = {}
    for family in REGISTRY.collect():
        if not family.name.startswith("flowyard_serving_"):
            continue
        for s in family.samples:
            ns, name = s.labels.get("namespace"), s.labels.get("name")
            if ns is None or name is None:
                continue
            row = out.setdefault((ns, name), [0.0, 0.0, 0.0, 0.0, {}])
            if s.name == "flowyard_serving_requests_total":
                row[0] += s.value
            elif s.name == "flowyard_serving_errors_total":
                row[1] += s.value
            elif s.name == "flowyard_serving_request_seconds_sum":
                row[2] += s.value
            elif s.name == "flowyard_serving_request_seconds_count":
                row[3] += s.value
            elif s.name == "flowyard_serving_request_seconds_bucket":
                le = float(s.labels["le"])
                row[4][le] = row[4].get(le, 0.0) + s.value
    return out


def sample() -> None:
    """Record the current totals of every service (the thread calls this; tests may too)."""
    now = time.time()
    with _lock:
        for key, (req, err, lsum, lcount, buckets) in _totals().items():
            _samples.setdefault(key, deque(maxlen=KEEP)).append((now, req, err, lsum, lcount, buckets))


def _loop() -> None:
    while True:
        try:
            sample()
        except Exception:  # noqa: BLE001 - monitoring must never take the server down
            pass
        time.sleep(INTERVAL)


def start() -> None:
    """Start the sampler once per process."""
    global _started
    with _lock:
        if _started:
            return
        _started = True
    threading.Thread(target=_loop, name="flowyard-serving-monitor", daemon=True).start()


def _quantile(q: float, buckets: dict[float, float]) -> float | None:
    total = buckets.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le if le != float("inf") else None
    return None


def series(namespace: str, name: str) -> dict[str, Any]:
    """Points `{time, requests, requestsPerSecond, errorRate, meanLatency, p95Latency}` per interval,
    plus the totals so far (including requests since the last sample)."""
    sample()
    with _lock:
        points = list(_samples.get((namespace, name), ()))
    out = []
    for (t0, r0, e0, s0, c0, b0), (t1, r1, e1, s1, c1, b1) in zip(points, points[1:]):
        dr, dc, dt = r1 - r0, c1 - c0, max(t1 - t0, 1e-9)
        if dt < 1.0 and out:
            continue  # two samples close together (a request-time sample): skip the sliver
        delta = {le: b1.get(le, 0.0) - b0.get(le, 0.0) for le in b1}
        out.append({"time": t1, "requests": dr, "requestsPerSecond": dr / dt,
                    "errorRate": (e1 - e0) / dr if dr else 0.0, "meanLatency": (s1 - s0) / dc if dc else None,
                    "p95Latency": _quantile(0.95, delta)})
    last = points[-1] if points else (0, 0.0, 0.0, 0.0, 0.0, {})
    return {"namespace": namespace, "name": name, "interval": INTERVAL, "points": out,
            "total": {"requests": last[1], "errors": last[2],
                      "meanLatency": last[3] / last[4] if last[4] else None, "p95Latency": _quantile(0.95, last[5])}}
