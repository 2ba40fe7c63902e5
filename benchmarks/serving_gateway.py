"""Model serving through the platform's gateway, with auth, beside MLServer's default configuration.

A Flowyard server deploys the scikit-learn digits model as an InferenceService (one replica,
`minReplicas: maxReplicas: 1`); `wrk` (one thread, closed loop) posts single-row V2 REST
inference to `/serving/<ns>/<name>/v2/models/<name>/infer` with a bearer token, at 8 and 32
connections. So every request pays what a user's pays: token and role check (cached), the
routing table, the hop to the replica and back. The peer, in the same invocation: MLServer
1.7.1 with `parallel_workers=1` (its default), answering the same bytes on its own port
(its venv and pins are shared with `benchmarks/serving.py`).
Goal (issue 5): through the gateway at least MLServer's default.

Usage: python benchmarks/serving_gateway.py [--seconds 10] [--skip-mlserver] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import joblib
from _server import Server, free_port
from serving import CONCURRENCY, Endpoint, ensure_tools, mlserver_python, wrk
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

NAME = "digits"
NS = "admin"


def lua(path: Path, body: str, headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def deploy(srv: Server, token: str, model_dir: Path) -> str:
    manifest = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": NAME},
                "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1,
                                       "model": {"modelFormat": {"name": "sklearn"}, "storageUri": f"file://{model_dir}"}}}}
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        c.post(f"/api/v1/namespaces/{NS}/inferenceservices", json=manifest).raise_for_status()
        t0 = time.perf_counter()
        while True:
            st = c.get(f"/api/v1/namespaces/{NS}/inferenceservices/{NAME}").json().get("status") or {}
            if st.get("phase") == "Ready":
                print(f"InferenceService ready {time.perf_counter() - t0:.1f} s after create", flush=True)
                return st["url"]
            if st.get("phase") == "Failed" or time.perf_counter() - t0 > 120:
                raise RuntimeError(f"not ready: {st}")
            time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--skip-mlserver", action="store_true")
    args = ap.parse_args()
    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="fy-bench-gateway-"))
    x, y = load_digits(return_X_y=True)
    (work / "model").mkdir()
    joblib.dump(LogisticRegression(max_iter=5000).fit(x, y), work / "model" / "model.joblib")
    body = json.dumps({"inputs": [{"name": "predict", "shape": [1, 64], "datatype": "FP64",
                                   "data": x[0].tolist()}]})
    srv = Server(home=work / "home")
    srv.start()
    peers: list[Endpoint] = []
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    try:
        token = srv.token()
        url = deploy(srv, token, work / "model")
        targets = [("Flowyard through the gateway (bearer token)", f"{url}/v2/models/{NAME}/infer",
                    lua(work / "gateway.lua", body, {"Authorization": f"Bearer {token}"}))]
        if not args.skip_mlserver:
            py = mlserver_python()
            d = work / "mlserver"
            d.mkdir()
            joblib.dump(LogisticRegression(max_iter=5000).fit(x, y), d / "model.joblib")
            (d / "model-settings.json").write_text(json.dumps({
                "name": NAME, "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"}}))
            http, grpc = free_port(), free_port()
            (d / "settings.json").write_text(json.dumps({
                "host": "127.0.0.1", "http_port": http, "grpc_port": grpc, "metrics_port": free_port(),
                "parallel_workers": 1, "debug": False}))
            peers.append(Endpoint("MLServer", [str(Path(py).parent / "mlserver"), "start", str(d)], http, grpc))
            targets.append(("MLServer 1.7.1, parallel_workers=1 (default), own port",
                            f"http://127.0.0.1:{http}/v2/models/{NAME}/infer", lua(work / "ml.lua", body, {})))
        for _ in range(args.rounds):
            for label, target, script in targets:
                for conc in CONCURRENCY:
                    r = wrk(target, script, args.seconds, conc)
                    results.setdefault((label, conc), []).append(r)
                    print(f"{label:55s} c={conc:<3d} {r['rps']:8.0f} req/s  p50 {r['p50']:6.2f} ms  "
                          f"p99 {r['p99']:6.2f} ms  errors {int(r['errors'])}", flush=True)
    finally:
        for peer in peers:
            peer.stop()
        srv.stop()
    print(f"\nload average: {os.getloadavg()[0]:.2f}; medians over {args.rounds} round(s):")
    print("| server | conc | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
    for (label, conc), runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99", "errors")}
        print(f"| {label} | {conc} | {med['rps']:.0f} | {med['p50']:.2f} | {med['p99']:.2f} | {med['errors']:.0f} |")


if __name__ == "__main__":
    main()
