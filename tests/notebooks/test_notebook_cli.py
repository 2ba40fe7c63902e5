"""`flowyard notebook ...` as a real subprocess against a real server."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx


def test_notebook_commands(shared_server, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYARD_")}
    env.update(HOME=str(tmp_path), FLOWYARD_URL=shared_server.url, FLOWYARD_TOKEN=shared_server.token())

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "flowyard", "notebook", *args], env=env, capture_output=True,
                              text=True, timeout=120)
        assert (done.returncode == 0) == ok, f"{args}: {done.stdout} {done.stderr}"
        return done

    out = run("create", "cli1", "--env", "default", "--cpu", "1", "--memory", "2Gi", "--volume", "clidata:/data/set")
    assert "notebook/cli1 running: " in out.stdout and "/notebook/admin/cli1/" in out.stdout
    with shared_server.client() as c:
        obj = c.get("/api/v1/namespaces/admin/notebooks/cli1").json()
        container = obj["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
        assert obj["metadata"]["annotations"]["notebooks.kubeflow.org/creator"] == "admin"
        assert obj["status"]["creator"] == "admin"
    listed = run("list").stdout
    assert "cli1" in listed and "Running" in listed
    assert run("open", "cli1").stdout.strip() == f"{shared_server.url}/notebook/admin/cli1/"
    assert "stopping" in run("stop", "cli1").stdout
    with shared_server.client() as c:
        from test_notebooks import wait_phase

        wait_phase(c, "/api/v1/namespaces/admin/notebooks/cli1", {"Stopped"}, 30)
    err = run("create", "cli2", "--env", "nope", ok=False).stderr
    assert "environment 'nope' not found" in err and "Traceback" not in err
    assert run("delete", "cli1").stdout.strip() == "notebook/cli1 deleted"
    assert run("delete", "cli1", ok=False).returncode == 1
    assert httpx.get(f"{shared_server.url}/healthz").status_code == 200
