"""Warm notebook starts: the environment's JupyterLab zygote (a system workload) forks the server.

The first notebook of an environment starts the zygote and may start cold; later ones are forked
from it, yet stay normal executor workloads: limits, logs, stop, re-adoption and a cold fallback.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from fy_jupyter import Jupyter, secret_for
from test_notebooks import NS, notebook, path, serving, wait_phase

from fyserver import make_server

ZYGOTE = "flowyard-system.nb-warm.default"


def _listener(endpoint: str) -> psutil.Process:
    port = int(endpoint.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    raise AssertionError(f"nothing listens on {endpoint}")


def _forked(endpoint: str) -> bool:
    """Whether the server on `endpoint` was forked by a zygote (not exec'd by its runner)."""
    return "serve" in _listener(endpoint).cmdline() and any("warm.py" in a for a in _listener(endpoint).cmdline())


def _wait_zygote(home: Path, timeout: float = 30) -> Path:
    sock = home / "notebooks" / "warm" / "default.sock"
    deadline = time.time() + timeout
    while time.time() < deadline and not sock.exists():
        time.sleep(0.1)
    assert sock.exists(), "the zygote never listened"
    return sock


def _gone(procs: list[psutil.Process], timeout: float = 30) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def keep_server(tmp_path: Path, request: pytest.FixtureRequest):
    yield from make_server(tmp_path, request, "--keep-workloads")


def test_warm_start_is_a_normal_workload(keep_server) -> None:
    srv = keep_server
    with srv.client() as c:
        assert c.post(f"/api/v1/namespaces/{NS}/notebooks", json=notebook("first")).status_code == 201
        assert wait_phase(c, path("first"), {"Running", "Failed"}, 60)["status"]["phase"] == "Running"
        _wait_zygote(srv.home)
        zygote = json.loads((srv.home / "workloads" / ZYGOTE / "spec.json").read_text())
        assert zygote["labels"]["flowyard.io/system"] == "true" and zygote["namespace"] == "flowyard-system"

        r = c.post(f"/api/v1/namespaces/{NS}/notebooks", json=notebook("warm", memory="1Gi"))
        assert r.status_code == 201, r.text
        uid = r.json()["metadata"]["uid"]
        t0 = time.time()
        obj = wait_phase(c, path("warm"), {"Running", "Failed"}, 60)
        took = time.time() - t0
        assert obj["status"]["phase"] == "Running", obj["status"]
        st = obj["status"]
        assert _forked(st["endpoint"]), "the second notebook did not start warm"
        assert took < 5, took

        jp = Jupyter(st["endpoint"], st["url"], secret_for(srv.home, uid))
        kernel = jp.start_kernel()
        env = jp.execute(kernel, "import os, json\nprint(json.dumps({k: os.environ.get(k) for k in "
                                 "['HOME', 'GREETING', 'FLOWYARD_PROXY_SECRET', 'FLOWYARD_NAMESPACE']}))")
        seen = json.loads(env["stdout"])
        assert seen == {"HOME": str(srv.home / "volumes" / NS / "warm-workspace"), "GREETING": "hello",
                        "FLOWYARD_PROXY_SECRET": None, "FLOWYARD_NAMESPACE": NS}
        hog = jp.execute(kernel, "x = b'x' * (3 * 1024 ** 3)")
        assert hog["status"] == "error" and hog["ename"] == "MemoryError", hog
        jp.close()
        log = (srv.home / "workloads" / st["workload"] / "log").read_text(errors="replace")
        assert "Jupyter Server" in log or "jupyter" in log.lower()  # the server's own output is the workload's log

        # re-adoption: the platform restarts, the warm server keeps running and is found again
        server_proc = _listener(st["endpoint"])
        srv.stop()
        srv.extra_args.remove("--keep-workloads")  # this time, the final stop stops every workload
        srv.start()
        with srv.client() as c2:
            again = wait_phase(c2, path("warm"), {"Running", "Failed"}, 60)
            assert again["status"]["phase"] == "Running" and again["status"]["endpoint"] == st["endpoint"]
            assert server_proc.is_running()

            # stop: the forked server and its kernels go away, the zygote stays
            zygote_pid = _listener(st["endpoint"]).parent().parent().pid
            procs = [server_proc, *server_proc.children(recursive=True), *serving(st["url"])]
            c2.patch(path("warm"), json={"metadata": {"annotations": {"kubeflow-resource-stopped": "2026-01-01T00:00:00Z"}}})
            wait_phase(c2, path("warm"), {"Stopped"}, 30)
            assert _gone(procs)
            assert psutil.pid_exists(zygote_pid)

            # the zygote dies: the next start falls back to a cold start, and the zygote comes back
            os.kill(zygote_pid, signal.SIGKILL)
            deadline = time.time() + 10
            while time.time() < deadline and psutil.pid_exists(zygote_pid) and \
                    psutil.Process(zygote_pid).status() != psutil.STATUS_ZOMBIE:
                time.sleep(0.1)
            c2.patch(path("warm"), json={"metadata": {"annotations": {"kubeflow-resource-stopped": None}}})
            cold = wait_phase(c2, path("warm"), {"Running", "Failed"}, 60)
            assert cold["status"]["phase"] == "Running", cold["status"]
            for name in ("first", "warm"):
                c2.delete(path(name))
