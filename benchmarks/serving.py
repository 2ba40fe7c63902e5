"""Model serving: the same scikit-learn model behind MLServer and behind a Flowyard replica.

Single-row Open Inference Protocol (V2) inference, REST with `wrk` and gRPC with `h2load`
(nghttp2's HTTP/2 load generator; a gRPC call is an HTTP/2 POST), one load-generator thread at
8 and 32 concurrent connections, closed loop. Both are C programs, so the client costs little CPU
on a 2-core machine, and both servers get exactly the same request bytes.

Peers, all in this invocation: MLServer 1.7.1 + mlserver-sklearn (own venv under /tmp, made
here: its pins clash with ours) with `parallel_workers=1` (its default) and `0` (in-process, its
fastest here), and the replica `python -m flowyard.serving.runtime` without batching (its
default) and with adaptive batching (`--max-batch-size 32`, no added wait).
Goal (issue 5): the replica at >= 2x MLServer's best configuration with p99 no worse.
The model: LogisticRegression on scikit-learn's digits (64 FP64 features), as in the reference.

Usage: python benchmarks/serving.py [--seconds 5] [--rounds 3] [--skip-mlserver]
Needs `wrk` and `h2load` (Debian `wrk`, `nghttp2-client`; installed here with apt-get if missing
and running as root).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import sklearn
from _server import free_port
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

MLSERVER_VENV = Path(tempfile.gettempdir()) / "flowyard-bench-mlserver"
MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0", "httptools",
                 f"scikit-learn=={sklearn.__version__}"]  # uvloop>0.21 crashes its workers; same sklearn for joblib
CONCURRENCY = (8, 32)
TOOLS = {"wrk": "wrk", "h2load": "nghttp2-client"}


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False, capture_output=True)
        if any(not shutil.which(t) for t in TOOLS):
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False, capture_output=True)
    still = [t for t in TOOLS if not shutil.which(t)]
    if still:
        sys.exit(f"needs {', '.join(still)}: apt-get install {' '.join(TOOLS[t] for t in still)}")


def mlserver_python() -> Path:
    py = MLSERVER_VENV / "bin" / "python"
    marker = MLSERVER_VENV / "pins.txt"
    if not (py.exists() and marker.exists() and marker.read_text() == "\n".join(MLSERVER_PINS)):
        print(f"building MLServer's venv in {MLSERVER_VENV} …", flush=True)
        uv = [sys.executable, "-m", "uv"]
        subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(MLSERVER_VENV)], check=True)
        subprocess.run([*uv, "pip", "install", "-q", "--python", str(py), *MLSERVER_PINS], check=True)
        marker.write_text("\n".join(MLSERVER_PINS))
    return py


class Endpoint:
    """A server process answering `digits` on an HTTP and a gRPC port."""

    def __init__(self, label: str, args: list[str], http: int, grpc: int, cwd: Path | None = None) -> None:
        self.label, self.http, self.grpc = label, http, grpc
        env = {**os.environ}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.log = Path(tempfile.mkstemp(prefix="fy-bench-serving-", suffix=".log")[1])
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=self.log.open("wb"),
                                     start_new_session=True)
        deadline = time.monotonic() + 120
        with httpx.Client() as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{label} exited: {self.log.read_text()[-2000:]}")
                try:
                    if c.get(f"http://127.0.0.1:{http}/v2/models/digits/ready").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"{label} not ready: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # MLServer with workers often ignores SIGTERM after load
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


def _ms(out: str, label: str) -> float:
    """A wrk latency figure in ms (wrk writes us, ms, s, m or h); NaN if wrk wrote none."""
    found = re.search(rf"{label}\s+([\d.]+)(us|ms|s|m|h)\b", out)
    if not found:
        return float("nan")
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[found.group(2)]


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    subprocess.run([*cmd[:3], "-d1s", *cmd[4:]], capture_output=True, check=True)  # warm-up
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50": _ms(out, "50%"), "p99": _ms(out, "99%"),
            "errors": (int(errors.group(1)) if errors else 0) + (sum(map(int, sock.groups())) if sock else 0)}


def h2load(url: str, body: Path, seconds: int, connections: int) -> dict[str, float]:
    log = Path(tempfile.mkstemp(prefix="fy-bench-h2load-")[1])
    cmd = ["h2load", "-t1", f"-c{connections}", "-m1", f"-D{seconds}", "--warm-up-time=1", "-d", str(body),
           "-H", "content-type: application/grpc", "-H", "te: trailers", f"--log-file={log}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    log.unlink()
    ok = np.array([int(r[2]) for r in rows if r[1] == "200"], dtype=float) / 1000.0
    done = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", out)
    return {"rps": float(done.group(3)) if done else len(ok) / seconds,
            "p50": float(np.percentile(ok, 50)) if len(ok) else float("nan"),
            "p99": float(np.percentile(ok, 99)) if len(ok) else float("nan"),
            "errors": len(rows) - len(ok)}


def grpc_body(x: np.ndarray) -> bytes:
    """A ModelInferRequest for `digits` as tritonclient.grpc sends it (raw FP64), gRPC-framed."""
    from flowyard.serving.runtime.oip_pb import messages

    req = messages["ModelInferRequest"](model_name="digits")
    req.inputs.add(name="predict", datatype="FP64", shape=list(x.shape))
    req.raw_input_contents.append(x.astype("<f8").tobytes())
    msg = req.SerializeToString()
    return b"\0" + struct.pack(">I", len(msg)) + msg


def check_grpc(port: int, framed: bytes) -> None:
    """One real gRPC call with the benchmark's bytes: h2load cannot see gRPC errors (HTTP 200 + trailers)."""
    import grpc

    from flowyard.serving.runtime.oip_pb import messages

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer", request_serializer=lambda b: b,
                              response_deserializer=messages["ModelInferResponse"].FromString)
        resp = call(framed[5:], timeout=30)
        assert resp.outputs and resp.raw_output_contents, resp


def start(label: str, spec: tuple[Any, ...], work: Path) -> Endpoint:
    http, grpc = free_port(), free_port()
    if spec[0] == "mlserver":
        _, py, workers = spec
        d = work / f"mlserver-{workers}"
        d.mkdir()
        shutil.copy(work / "model.joblib", d / "model.joblib")
        (d / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": http, "grpc_port": grpc, "metrics_port": free_port(),
            "parallel_workers": workers, "debug": False}))
        (d / "model-settings.json").write_text(json.dumps({
            "name": "digits", "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"}}))
        return Endpoint(label, [str(Path(py).parent / "mlserver"), "start", str(d)], http, grpc, cwd=d)
    cmd = [sys.executable, "-m", "flowyard.serving.runtime", "--name", "digits", "--format", "sklearn",
           "--model-dir", str(work), "--http-port", str(http), "--grpc-port", str(grpc), *spec[1]]
    return Endpoint(label, cmd, http, grpc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-mlserver", action="store_true")
    args = ap.parse_args()
    ensure_tools()

    work = Path(tempfile.mkdtemp(prefix="fy-bench-serving-"))
    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=5000).fit(X, y), work / "model.joblib")
    row = X[:1]
    body = json.dumps({"inputs": [{"name": "predict", "shape": [1, 64], "datatype": "FP64",
                                   "data": row.ravel().tolist()}]})
    script = work / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = [[{body}]]\n")
    grpc_file = work / "infer.grpc"
    grpc_file.write_bytes(grpc_body(row))

    configs: list[tuple[str, tuple[Any, ...]]] = []
    if not args.skip_mlserver:
        py = mlserver_python()
        for workers in (1, 0):
            configs.append((f"MLServer parallel_workers={workers}", ("mlserver", py, workers)))
    configs.append(("Flowyard replica", ("flowyard", [])))
    configs.append(("Flowyard replica, batching 32", ("flowyard", ["--max-batch-size", "32"])))

    # All servers run at once and the cells go round-robin, so background load drifting over the
    # minutes of a run falls on every server alike; each figure is the median over the rounds.
    endpoints: list[tuple[str, Endpoint]] = []
    results: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    try:
        for label, spec in configs:
            endpoints.append((label, start(label, spec, work)))
        for label, ep in endpoints:
            resp = httpx.post(f"http://127.0.0.1:{ep.http}/v2/models/digits/infer", content=body,
                              headers={"Content-Type": "application/json"})
            assert resp.status_code == 200, resp.text
            check_grpc(ep.grpc, grpc_file.read_bytes())
        for rnd in range(args.rounds):
            for proto in ("REST", "gRPC"):
                for c in CONCURRENCY:
                    print(f"  round {rnd + 1}/{args.rounds}: {proto} c={c}", flush=True)
                    for label, ep in endpoints:
                        if proto == "REST":
                            r = wrk(f"http://127.0.0.1:{ep.http}/v2/models/digits/infer", script, args.seconds, c)
                        else:
                            r = h2load(f"http://127.0.0.1:{ep.grpc}/inference.GRPCInferenceService/ModelInfer",
                                       grpc_file, args.seconds, c)
                        results.setdefault((label, proto, c), []).append(r)
    finally:
        for _, ep in endpoints:
            ep.stop()

    med = {k: {m: float(np.median([r[m] for r in rs])) for m in ("rps", "p50", "p99")} | {
        "errors": sum(r["errors"] for r in rs)} for k, rs in results.items()}
    load = os.getloadavg()
    print(f"\nsingle-row V2 inference, {args.seconds} s per cell, median of {args.rounds} rounds, 1 client thread; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'server':<34}{'proto':<6}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for proto in ("REST", "gRPC"):
        for c in CONCURRENCY:
            for label, _ in configs:
                r = med[(label, proto, c)]
                print(f"{label:<34}{proto:<6}{c:>5}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
                      f"{r['errors']:>8.0f}")
    if not args.skip_mlserver:
        print("\nagainst MLServer's best configuration in the same cell (req/s ratio; p99 ratio < 1 is better):")
        for proto in ("REST", "gRPC"):
            for c in CONCURRENCY:
                best = max((med[(lbl, proto, c)] for lbl, s in configs if s[0] == "mlserver"),
                           key=lambda r: r["rps"])
                for label, spec in configs:
                    if spec[0] == "flowyard":
                        r = med[(label, proto, c)]
                        print(f"  {label:<32}{proto:<6}c={c:<4} throughput x{r['rps'] / best['rps']:.2f}, "
                              f"p99 x{r['p99'] / best['p99']:.2f}")
    # --- Through the gateway: added by benchmarks/serving_gateway.py (control plane: router, auth) ---
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
