"""Tracking throughput and the compare view, beside MLflow's tracking server (SQLite backend).

Flowyard (a live `flowyard up` on a fresh home, SQLite):
  - 2,000 `flowyard.log_metric` calls from one process: time in the calls, and until flushed;
  - a 20,000-point batch (20,000 calls, then `flush()`);
  - the runs list of an experiment of 10,000 runs (2 params, 3 metrics each) with metric
    columns: plain, sorted by a metric, and filtered + sorted (`metrics.acc > 0.5 AND params.lr < 0.05`).
MLflow (its own venv under /tmp, made by this script with uv; `mlflow server` on SQLite):
  - 2,000 `log_metric` calls (synchronous), the same with `synchronous=False` until flushed,
    and `log_batch` of 20,000 points; `search_runs` over the same 10,000 runs (seeded through
    its SQLAlchemy store) with `max_results=50`, ordered by a metric.

    .venv/bin/python benchmarks/tracking.py [--runs 10000] [--mlflow-workers 1] [--no-mlflow]

Goals: 2,000 calls flushed in < 1 s; the 10,000-run list with metric columns in < 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _server import Server, free_port  # noqa: E402

MLFLOW_VENV = Path("/tmp/fy-bench-mlflow")


def _seed_flowyard(home: Path, runs: int) -> None:
    """10,000 runs straight into the tracking tables (what 10,000 notebook runs leave behind)."""
    from sqlalchemy import insert

    from flowyard.config import Settings
    from flowyard.platform import Platform
    from flowyard.tracking.tables import latest_metrics, metric_points, run_params, tracking_keys, tracking_runs

    p = Platform.open(Settings(home=home))
    rng = random.Random(0)
    rows, params, latest, points = [], [], [], []
    for i in range(runs):
        uid = str(uuid.uuid4())
        rows.append({"uid": uid, "namespace": "admin", "experiment": "bench10k", "name": f"r{i}", "source": "Notebook",
                     "state": "SUCCEEDED", "created_at": f"2026-11-28T00:{i // 600 % 60:02d}:{i % 60:02d}Z",
                     "finished_at": None})
        lr = rng.choice([0.001, 0.01, 0.05, 0.1])
        params += [{"run_uid": uid, "key": "lr", "value": str(lr), "num": lr},
                   {"run_uid": uid, "key": "optimizer", "value": rng.choice(["adam", "sgd"]), "num": None}]
        for key in ("acc", "loss", "f1"):
            v = rng.random()
            latest.append({"run_uid": uid, "key": key, "value": v, "step": 9, "timestamp": 1})
            points.append({"run_uid": uid, "key": key, "value": v, "step": 9, "timestamp": 1})
    keys = [{"namespace": "admin", "experiment": "bench10k", "kind": kind, "key": key}
            for kind, key in (("param", "lr"), ("param", "optimizer"), ("metric", "acc"), ("metric", "loss"),
                              ("metric", "f1"))]
    with p.store.engine.begin() as conn:
        for table, data in ((tracking_keys, keys), (tracking_runs, rows), (run_params, params), (latest_metrics, latest),
                            (metric_points, points)):
            conn.execute(insert(table), data)


def _timed(fn, n: int = 7) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def bench_flowyard(runs: int) -> dict[str, float]:
    server = Server()
    _seed_flowyard(server.home, runs)
    server.start()
    try:
        token = server.token()
        os.environ.update(FLOWYARD_URL=server.url, FLOWYARD_TOKEN=token, FLOWYARD_NAMESPACE="admin",
                          FLOWYARD_CONFIG=str(server.home / "none.json"))
        import flowyard

        out: dict[str, float] = {}
        run = flowyard.start_run(experiment="bench", name="calls")
        t0 = time.perf_counter()
        for i in range(2000):
            flowyard.log_metric("loss", 1.0 / (i + 1), step=i)
        out["2000 log_metric: in the calls"] = time.perf_counter() - t0
        flowyard.flush()
        out["2000 log_metric: until flushed"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(20_000):
            run.log_metric("batch", float(i), step=i)
        run.flush()
        out["20,000-point batch: until flushed"] = time.perf_counter() - t0
        flowyard.end_run()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
            got = c.get(f"/api/v1/namespaces/admin/tracking/runs/{run.id}").json()
            assert got["metrics"]["loss"]["step"] == 1999 and got["metrics"]["batch"]["step"] == 19_999, got
            path = "/api/v1/namespaces/admin/tracking/experiments/bench10k/runs"
            for label, params in (("plain", {}), ("sorted by metrics.acc", {"order_by": "metrics.acc DESC"}),
                                  ("filtered + sorted", {"filter": "metrics.acc > 0.5 AND params.lr < 0.05",
                                                         "order_by": "metrics.acc DESC"})):
                def get() -> None:
                    r = c.get(path, params={**params, "page_size": 50})
                    assert r.status_code == 200 and len(r.json()["runs"]) == 50, r.text
                    assert r.json()["total"] > (1000 if params.get("filter") else runs - 1)
                get()
                out[f"{runs:,}-run list, page of 50 with metric columns: {label}"] = _timed(get)[0]
        return out
    finally:
        server.stop()


_MLFLOW_CLIENT = textwrap.dedent("""
    import json, random, sys, time
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    url, db, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out = {}
    client = MlflowClient(url)
    exp = client.create_experiment("bench")
    run = client.create_run(exp).info.run_id
    t0 = time.perf_counter()
    for i in range(2000):
        client.log_metric(run, "loss", 1.0 / (i + 1), step=i)
    out["2000 log_metric: until flushed"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(2000):
        client.log_metric(run, "aloss", 1.0 / (i + 1), step=i, synchronous=False)
    out["2000 log_metric: in the calls"] = time.perf_counter() - t0
    mlflow.flush_async_logging()
    out["2000 log_metric synchronous=False: until flushed"] = time.perf_counter() - t0
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    client.log_batch(run, metrics=[Metric("batch", float(i), now, i) for i in range(20000)])
    out["20,000-point batch: until flushed"] = time.perf_counter() - t0
    if runs:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        store = SqlAlchemyStore(db, "/tmp/fy-bench-mlflow-artifacts")
        big = store.create_experiment("bench10k")
        rng = random.Random(0)
        for i in range(runs):
            rid = store.create_run(big, "bench", now, [], f"r{i}").info.run_id
            store.log_batch(rid, metrics=[Metric(k, rng.random(), now, 9) for k in ("acc", "loss", "f1")],
                            params=[Param("lr", str(rng.choice([0.001, 0.01, 0.05, 0.1]))),
                                    Param("optimizer", rng.choice(["adam", "sgd"]))], tags=[])
        for label, kw in (("plain", {}), ("sorted by metrics.acc", {"order_by": ["metrics.acc DESC"]}),
                          ("filtered + sorted", {"filter_string": "metrics.acc > 0.5 AND params.lr = '0.01'",
                                                 "order_by": ["metrics.acc DESC"]})):
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                got = client.search_runs([big], max_results=50, **kw)
                times.append(time.perf_counter() - t0)
                assert len(got) == 50
            out[f"{runs:,}-run list, page of 50 with metric columns: {label}"] = sorted(times)[3]
    print(json.dumps(out))
""")


def bench_mlflow(runs: int, workers: int) -> dict[str, float]:
    py = MLFLOW_VENV / "bin" / "python"
    if not py.exists():
        print("making the MLflow venv (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "uv", "venv", "-q", "-p", sys.executable, str(MLFLOW_VENV)], check=True)
        subprocess.run([sys.executable, "-m", "uv", "pip", "install", "-q", "--python", str(py), "mlflow>=3.17,<4"],
                       check=True)
    work = Path(tempfile.mkdtemp(prefix="fy-bench-mlflow-"))
    db = f"sqlite:///{work / 'mlflow.db'}"
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen([str(MLFLOW_VENV / "bin" / "mlflow"), "server", "--backend-store-uri", db,
                               "--default-artifact-root", str(work / "artifacts"), "--host", "127.0.0.1",
                               "--port", str(port), "--workers", str(workers)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("mlflow server did not start")
            time.sleep(0.2)
        done = subprocess.run([str(py), "-c", _MLFLOW_CLIENT, f"http://127.0.0.1:{port}", db, str(runs)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000, help="Runs in the listed experiment.")
    ap.add_argument("--mlflow-workers", type=int, default=1,
                    help="uvicorn workers of mlflow server (its default is 4: ~60 ms per call on 2 cores).")
    ap.add_argument("--mlflow-runs", type=int, default=None, help="Runs to seed into MLflow (default --runs; 0: skip).")
    ap.add_argument("--no-mlflow", action="store_true")
    args = ap.parse_args()
    ours = bench_flowyard(args.runs)
    theirs = {} if args.no_mlflow else bench_mlflow(args.runs if args.mlflow_runs is None else args.mlflow_runs,
                                                    args.mlflow_workers)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
    width = max(len(k) for k in {**ours, **theirs})
    print(f"{'measure'.ljust(width)}   {'Flowyard':>10}   {'MLflow':>10}   ratio")
    for key in dict.fromkeys([*ours, *theirs]):
        a, b = ours.get(key), theirs.get(key)
        cell = lambda v: f"{v * 1000:8.1f} ms" if v is not None else "         —"  # noqa: E731
        ratio = f"{b / a:6.1f}x" if a and b else ""
        print(f"{key.ljust(width)}   {cell(a)}   {cell(b)}   {ratio}")


if __name__ == "__main__":
    main()
