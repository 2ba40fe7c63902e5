"""Notebook servers: create -> Ready seconds, and the memory of an idle server.

Prints, for the `default` environment:
- the first create -> Ready (cold-ish: first JupyterLab start on this home), then the median of
  3 more (warm: bytecode and page cache hot), each measured by the client polling the API;
- how much of that is JupyterLab itself (the `Ready` event's "s after start"), and a peer:
  a bare `python -m jupyterlab` started by hand until its first `/api/status` 200;
- the RSS of an idle notebook server (psutil over runner + launcher + JupyterLab and, for a warm
  start, the zygote's helper and forked server; the environment's shared zygote is printed apart).

Run: `.venv/bin/python benchmarks/notebooks.py`
"""

from __future__ import annotations

import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _server import Server  # noqa: E402


def manifest(name: str) -> dict:
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"name": name, "image": "default",
                                                          "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}}]}}}}


def create_to_ready(c: httpx.Client, name: str) -> tuple[float, float]:
    """(seconds from POST to phase Running, seconds JupyterLab took after its process started)."""
    t0 = time.perf_counter()
    r = c.post("/api/v1/namespaces/admin/notebooks", json=manifest(name))
    r.raise_for_status()
    while True:
        st = c.get(f"/api/v1/namespaces/admin/notebooks/{name}").json().get("status") or {}
        if st.get("phase") == "Running":
            took = time.perf_counter() - t0
            break
        if st.get("phase") == "Failed":
            raise RuntimeError(st.get("message"))
        time.sleep(0.02)
    events = c.get(f"/api/v1/namespaces/admin/notebooks/{name}/events").json()["items"]
    ready = next(e["message"] for e in events if e["reason"] == "Ready")
    inner = float(re.search(r"\(([\d.]+) s after start\)", ready).group(1))
    return took, inner


def tree_rss(base: str, endpoint: str) -> tuple[int, int, int]:
    """(RSS bytes of the server's processes incl. its runner, number of processes, zygote RSS).

    A warm server is a child of the zygote's per-request helper, not of its runner: it is found
    by its listening port; the zygote (shared by every notebook of the environment) apart."""
    port = int(endpoint.rsplit(":", 1)[1])
    procs: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        if f"--ServerApp.base_url={base}" in (proc.info["cmdline"] or []):
            procs[proc.pid] = proc
            for p in proc.children(recursive=True):
                procs[p.pid] = p
            parent = proc.parent()
            if parent is not None and "_runner" in " ".join(parent.cmdline()):
                procs[parent.pid] = parent
    zygote = 0
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid and conn.pid not in procs:
            server = psutil.Process(conn.pid)
            for p in [server, *server.children(recursive=True)]:
                procs[p.pid] = p
            helper = server.parent()
            if helper is not None:
                procs[helper.pid] = helper
                if helper.parent() is not None:
                    zygote = helper.parent().memory_info().rss
    if not procs:
        raise RuntimeError(f"no process serves {base}")
    return sum(p.memory_info().rss for p in procs.values()), len(procs), zygote


def bare_jupyter() -> float:
    """Seconds for a hand-started JupyterLab (no platform) to answer /api/status."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(tempfile.mkdtemp(prefix="fy-bench-nb-"))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", "--IdentityProvider.token=t", f"--ServerApp.root_dir={root}",
                             "--ServerApp.base_url=/nb/"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={"HOME": str(root), "PATH": "/usr/bin:/bin"})
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/nb/api/status", headers={"Authorization": "token t"},
                             timeout=1, trust_env=False).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    server = Server()
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token()}"},
                          timeout=60) as c:
            cold, cold_inner = create_to_ready(c, "bench0")
            warm = [create_to_ready(c, f"bench{i}") for i in (1, 2, 3)]
            time.sleep(3)  # let the idle server settle
            endpoint = c.get("/api/v1/namespaces/admin/notebooks/bench1").json()["status"]["endpoint"]
            rss, count, zygote = tree_rss("/notebook/admin/bench1/", endpoint)
            for i in range(4):
                c.delete(f"/api/v1/namespaces/admin/notebooks/bench{i}")
        bare = statistics.median(bare_jupyter() for _ in range(3))
    finally:
        server.stop()
    outer = statistics.median(t for t, _ in warm)
    inner = statistics.median(t for _, t in warm)
    print(f"notebook create -> Ready, first (cold-ish):  {cold:6.2f} s  (JupyterLab itself {cold_inner:.2f} s)")
    print(f"notebook create -> Ready, warm median of 3:  {outer:6.2f} s  (JupyterLab itself {inner:.2f} s)")
    print(f"peer: bare `python -m jupyterlab` -> 200:    {bare:6.2f} s  (median of 3; ratio warm/bare {outer / bare:.2f})")
    print(f"idle notebook server RSS:                    {rss / 2**20:6.1f} MiB over {count} processes (runner + JupyterLab)")
    if zygote:
        print(f"shared JupyterLab zygote RSS (per environment): {zygote / 2**20:6.1f} MiB (RSS counts pages shared with it)")


if __name__ == "__main__":
    main()
