"""API throughput and latency: GET requests from 16 concurrent clients on loopback.

Uses `wrk` (Debian package `wrk`) as the load generator, so the client costs little CPU on
the 2-core machine. For scale, the same load runs against a bare FastAPI app on the same
uvicorn (the framework floor). Goal: GET p50 < 5 ms.
Usage: python benchmarks/api.py [--seconds 10] [--connections 16] [--db URL]
(`--db` should name an empty, throwaway database: the server creates its tables there.)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time

import httpx

from _server import Server, free_port

FLOOR_APP = """
from fastapi import FastAPI
app = FastAPI()
@app.get("/ping")
def ping():
    return {"status": "ok"}
"""


def wrk(url: str, token: str | None, seconds: int, connections: int) -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50": ms("50"), "p99": ms("99"), "errors": float(errors.group(1)) if errors else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    rows = []
    port = free_port()
    floor = subprocess.Popen([sys.executable, "-c", FLOOR_APP + f"\nimport uvicorn; uvicorn.run(app, port={port}, "
                              "log_level='warning', access_log=False)"])
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/ping")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        rows.append(("bare FastAPI GET /ping (floor)", wrk(f"http://127.0.0.1:{port}/ping", None, args.seconds,
                                                           args.connections)))
    finally:
        floor.terminate()
        floor.wait()

    s = Server(db=args.db)
    s.start()
    try:
        token = s.token()
        h = {"Authorization": f"Bearer {token}"}
        job = {"metadata": {"name": "bench", "labels": {"app": "bench"}},
               "spec": {"template": {"spec": {"containers": [{"command": ["python", "-c", "pass"]}]}}}}
        httpx.post(f"{s.url}/api/v1/namespaces/admin/jobs", json=job, headers=h).raise_for_status()
        for i in range(50):
            httpx.post(f"{s.url}/api/v1/namespaces/admin/secrets", headers=h,
                       json={"metadata": {"name": f"s{i}"}, "stringData": {"k": "v"}}).raise_for_status()
        for name, path in (("GET one object", "/api/v1/namespaces/admin/jobs/bench"),
                           ("GET list of 50 objects", "/api/v1/namespaces/admin/secrets"),
                           ("GET /healthz (no auth, no DB)", "/healthz")):
            rows.append((name, wrk(s.url + path, token, args.seconds, args.connections)))
    finally:
        s.stop()

    print(f"{args.connections} concurrent connections, {args.seconds} s each, db: {args.db or 'sqlite'}")
    print(f"{'request':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name, r in rows:
        print(f"{name:<34}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['errors']:>8.0f}")


if __name__ == "__main__":
    main()
