"""SIGKILL the server while batch workloads run; a restart finds every record intact and
every workload re-adopted or failed with a reason."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx

from test_resources import job, wait_phase

NS = "/api/v1/namespaces/admin/jobs"


def _runner_pid(home, job_obj: dict) -> int:
    state = json.loads((home / "workloads" / job_obj["status"]["workload"] / "state.json").read_text())
    return int(state["status"]["pid"])


def test_sigkill_restart_readopts_or_fails(server) -> None:
    with server.client() as c:
        c.post(NS, json=job("long", "import time; time.sleep(15); print('long done')"))
        c.post(NS, json=job("short", "import time; time.sleep(1.5); print('short done')"))
        c.post(NS, json=job("orphan", "import time; time.sleep(60)"))
        c.post("/api/v1/namespaces/admin/secrets", json={"metadata": {"name": "keep"}, "stringData": {"a": "b"}})
        running = {n: wait_phase(c, f"{NS}/{n}", {"Running"}) for n in ("long", "short", "orphan")}
        before = {i["metadata"]["name"]: i for i in c.get(NS).json()["items"]}

    server.stop(signal.SIGKILL)
    # While the server is down: the short job finishes on its own; the orphan's runner dies.
    os.kill(_runner_pid(server.home, running["orphan"]), signal.SIGKILL)
    time.sleep(2.5)
    server.start()

    with server.client() as c:
        after = {i["metadata"]["name"]: i for i in c.get(NS).json()["items"]}
        assert set(after) == set(before)
        for name, obj in before.items():
            assert after[name]["metadata"]["uid"] == obj["metadata"]["uid"]
            assert after[name]["spec"] == obj["spec"]
        assert c.get("/api/v1/namespaces/admin/secrets/keep").status_code == 200

        short = wait_phase(c, f"{NS}/short", {"Succeeded", "Failed"})
        assert short["status"]["phase"] == "Succeeded", short["status"]
        orphan = wait_phase(c, f"{NS}/orphan", {"Succeeded", "Failed"})
        assert orphan["status"]["phase"] == "Failed" and orphan["status"]["conditions"], orphan["status"]
        assert orphan["status"]["message"], "a failed workload must say why"
        long = c.get(f"{NS}/long").json()
        assert long["status"]["phase"] == "Running", long["status"]  # re-adopted, not restarted
        assert _runner_pid(server.home, long) == _runner_pid(server.home, running["long"])
        long = wait_phase(c, f"{NS}/long", {"Succeeded", "Failed"}, timeout=30)
        assert long["status"]["phase"] == "Succeeded"
        assert "long done" in c.get(f"{NS}/long/log").text


def test_second_up_on_same_home_refuses(server) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "flowyard", "up", "--home", str(server.home), "--port", "1"],
                       capture_output=True, text=True, env=server.env, timeout=60)
    assert r.returncode != 0
    assert "already running" in r.stderr and "Traceback" not in r.stderr


def test_sigterm_shuts_down_cleanly(server) -> None:
    assert server.stop(signal.SIGTERM) == 0
    assert "Traceback" not in server.read_log()
    try:
        httpx.get(f"{server.url}/healthz", timeout=1)
        raise AssertionError("server still answering")
    except httpx.HTTPError:
        pass
