"""A replica: one model server (`python -m flowyard.serving.runtime`) run as a service workload.

The executor gives the REST port (`{port}`); the gRPC port is picked here and kept in a
workload label, so after a server restart the re-adopted replicas are found again with both
addresses. Each replica gets its InferenceService's secret in its environment and refuses any
request without it, so its loopback ports are useless to anything but the gateway.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx

from flowyard.executor.base import WorkloadSpec, WorkloadStatus
from flowyard.kinds import Manifest
from flowyard.serving.endpoints import SECRET_ENV, SECRET_HEADER
from flowyard.serving.kind import Predictor

REVISION_LABEL = "serving.flowyard.io/revision"
GRPC_LABEL = "serving.flowyard.io/grpc-port"
UID_LABEL = "serving.flowyard.io/uid"
LOAD_FAILED = "model failed to load:"
LOAD_FAILED_EXIT = 3
GRACE_SECONDS = 10.0
_probe: httpx.AsyncClient | None = None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def command(name: str, fmt: str, model_dir: str, version: str, grpc_port: int, pred: Predictor,
            payload_log: str | None) -> list[str]:
    """The replica's command line; `{port}` is filled in by the executor."""
    args = ["python", "-m", "flowyard.serving.runtime", "--name", name, "--format", fmt, "--model-dir", model_dir,
            "--version", version, "--http-port", "{port}", "--grpc-port", str(grpc_port), "--host", "127.0.0.1",
            "--timeout-s", f"{pred.timeout:g}", "--secret-env", SECRET_ENV]
    if pred.max_batch_size:
        args += ["--max-batch-size", str(pred.max_batch_size), "--max-latency-ms", f"{pred.max_latency_ms or 0:g}"]
    if payload_log:
        args += ["--payload-log", payload_log, "--payload-sample", f"{pred.payload_sample:g}"]
    return args


def workload(obj: Manifest, workload_id: str, revision: str, argv: list[str], pred: Predictor, grpc_port: int,
             secret: str, labels: dict[str, str]) -> WorkloadSpec:
    return WorkloadSpec(
        id=workload_id, namespace=obj["metadata"]["namespace"], command=argv, kind="service",
        env={SECRET_ENV: secret, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
        requests=pred.requests, limits=pred.limits, grace_period=GRACE_SECONDS,
        labels={**labels, REVISION_LABEL: revision, GRPC_LABEL: str(grpc_port), UID_LABEL: obj["metadata"]["uid"]},
    )


def grpc_address(ws: WorkloadStatus) -> str:
    host = (ws.endpoint or "127.0.0.1:0").rpartition(":")[0]
    return f"{host}:{(ws.labels or {}).get(GRPC_LABEL, '0')}"


def _client() -> httpx.AsyncClient:
    global _probe
    if _probe is None or _probe.is_closed:
        _probe = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(2.0, connect=1.0))
    return _probe


async def ready(endpoint: str, secret: str) -> bool:
    """Whether the replica at `endpoint` has loaded its model (`GET /v2/health/ready` is 200)."""
    try:
        r = await _client().get(f"http://{endpoint}/v2/health/ready", headers={SECRET_HEADER: secret})
    except (httpx.HTTPError, OSError, RuntimeError):
        return False
    return r.status_code == 200


def failure_reason(ws: WorkloadStatus) -> tuple[str, str]:
    """(reason, message) of a replica that exited: the runtime's load error when it says one."""
    text = ws.message or ""
    for line in reversed(text.splitlines()):
        if LOAD_FAILED in line:
            return "ModelLoadFailed", line[line.index(LOAD_FAILED) + len(LOAD_FAILED):].strip() or line.strip()
    if ws.exit_code == LOAD_FAILED_EXIT:
        return "ModelLoadFailed", text.strip()[-600:] or "the model server could not load the model"
    lines = [line for line in text.splitlines() if line.strip()]
    head = lines[0] if lines else f"exited ({ws.reason or 'unknown'})"
    return ws.reason or "Error", "; ".join([head, *lines[-3:]][:4])[-800:]


def describe(replicas: list[Any]) -> str:
    return ", ".join(r.id for r in replicas) or "none"
