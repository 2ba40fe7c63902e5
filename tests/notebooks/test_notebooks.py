"""Notebook servers: real JupyterLab through the executor, stop/start, volumes, quotas, culling, limits."""

from __future__ import annotations

import json
import os
import stat
import time
from typing import Any

import httpx
import psutil
from fy_jupyter import Jupyter, secret_for

NS = "admin"


def notebook(name: str, image: str = "default", api: str = "kubeflow.org/v1", memory: str | None = None,
             mounts: list[tuple[str, str]] = (), annotations: dict[str, str] | None = None) -> dict:
    """A notebook manifest as Kubeflow's Jupyter web app writes it."""
    resources: dict[str, Any] = {"requests": {"cpu": "0.5", "memory": "256Mi"}}
    if memory:
        resources = {"requests": {"cpu": "0.5", "memory": memory}, "limits": {"memory": memory}}
    volumes = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": claim}} for i, (claim, _) in enumerate(mounts)]
    volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
    volume_mounts = [{"name": f"v{i}", "mountPath": path} for i, (_, path) in enumerate(mounts)]
    volume_mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return {
        "apiVersion": api, "kind": "Notebook",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations or {}},
        "spec": {"template": {"spec": {
            "containers": [{"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                            "resources": resources, "env": [{"name": "GREETING", "value": "hello"}],
                            "volumeMounts": volume_mounts}],
            "volumes": volumes}}},
    }


def path(name: str, ns: str = NS) -> str:
    return f"/api/v1/namespaces/{ns}/notebooks/{name}"


def wait_phase(c: httpx.Client, url: str, phases: set[str], timeout: float = 40) -> dict:
    deadline = time.time() + timeout
    obj: dict = {}
    while time.time() < deadline:
        obj = c.get(url).json()
        if (obj.get("status") or {}).get("phase") in phases:
            return obj
        time.sleep(0.1)
    raise AssertionError(f"{url} never reached {phases}: {obj}")


def reasons(c: httpx.Client, url: str) -> list[str]:
    return [e["reason"] for e in c.get(f"{url}/events").json()["items"]]


def serving(base: str) -> list[psutil.Process]:
    """Local processes serving notebook base URL `base`."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if f"--ServerApp.base_url={base}" in cmd:
            found.append(proc)
    return found


def status_code(endpoint: str, base: str, headers: dict[str, str]) -> int:
    return httpx.get(f"http://{endpoint}{base}api/status", headers=headers, trust_env=False, timeout=10).status_code


def test_lifecycle_create_reach_stop_start_delete(shared_server) -> None:
    srv = shared_server
    with srv.client() as c:
        r = c.post(f"/api/v1/namespaces/{NS}/notebooks", json=notebook("nb1", api="kubeflow.org/v1beta1",
                                                                         mounts=[("shared-data", "/data/shared")]))
        assert r.status_code == 201, r.text
        uid = r.json()["metadata"]["uid"]
        t0 = time.time()
        obj = wait_phase(c, path("nb1"), {"Running", "Failed"})
        assert obj["status"]["phase"] == "Running", obj["status"]
        print(f"create -> Ready {time.time() - t0:.1f} s")
        st = obj["status"]
        base = "/notebook/admin/nb1/"
        assert st["url"] == base and st["endpoint"] and st["workload"] and st["limitsMode"] in ("cgroup", "rlimit")
        assert {c_["type"]: c_["status"] for c_ in st["conditions"]}["Ready"] == "True"
        assert st["lastActivity"]
        secret = secret_for(srv.home, uid)

        # reachable only with the secret: a local process without it gets 403
        assert status_code(st["endpoint"], base, {"Authorization": f"token {secret}"}) == 200
        assert status_code(st["endpoint"], base, {}) == 403
        assert status_code(st["endpoint"], base, {"Authorization": "token wrong"}) == 403
        assert status_code(st["endpoint"], base, {"X-Flowyard-Proxy-Secret": "wrong", "X-Flowyard-User": "x"}) == 403

        jp = Jupyter(st["endpoint"], base, secret)
        assert jp.http.get("api/me").json()["identity"]["name"] == "admin"
        no_xsrf = httpx.put(f"http://{st['endpoint']}{base}api/contents/x.txt", headers=jp.headers, trust_env=False,
                            json={"type": "file", "format": "text", "content": "x"})
        assert no_xsrf.status_code == 403  # header auth is not token auth: XSRF stays on
        assert jp.put_text("hello.txt", "persisted").status_code in (200, 201)
        jp.close()

        # the workspace on disk: HOME, kfp context with the token (0600), data volume linked in
        ws = srv.home / "volumes" / NS / "nb1-workspace"
        assert (ws / "hello.txt").read_text() == "persisted"
        ctx = ws / ".config" / "kfp" / "context.json"
        assert stat.S_IMODE(ctx.stat().st_mode) == 0o600

        context = json.loads(ctx.read_text())
        assert context["namespace"] == NS and context["client_authentication_header_name"] == "Authorization"
        token = context["client_authentication_header_value"].removeprefix("Bearer ")
        assert httpx.get(f"{srv.url}/api/v1/namespaces/{NS}/notebooks",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert (ws / "shared").is_symlink() and (ws / "shared").resolve() == (srv.home / "volumes" / NS / "shared-data")
        pvcs = {p["metadata"]["name"]: p for p in c.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims").json()["items"]}
        assert {"nb1-workspace", "shared-data"} <= set(pvcs)
        assert pvcs["shared-data"]["spec"]["resources"]["requests"]["storage"] == "5Gi"

        # stop through Kubeflow's annotation: the process goes away
        procs = serving(base)
        assert procs
        r = c.patch(path("nb1"), json={"metadata": {"annotations": {"kubeflow-resource-stopped": "2026-01-01T00:00:00Z"}}})
        assert r.status_code == 200, r.text
        stopped = wait_phase(c, path("nb1"), {"Stopped"}, 30)
        assert not stopped["status"].get("endpoint")
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)
        assert httpx.get(f"{srv.url}/api/v1/namespaces/{NS}/notebooks",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 401  # stop revokes it

        # start again: the file is still there
        r = c.patch(path("nb1"), json={"metadata": {"annotations": {"kubeflow-resource-stopped": None}}})
        assert r.status_code == 200, r.text
        obj = wait_phase(c, path("nb1"), {"Running", "Failed"})
        assert obj["status"]["phase"] == "Running", obj["status"]
        jp = Jupyter(obj["status"]["endpoint"], base, secret)
        assert jp.get_text("hello.txt") == "persisted"
        jp.close()
        assert {"Starting", "Ready", "Stopped"} <= set(reasons(c, path("nb1")))
        token = json.loads(ctx.read_text())["client_authentication_header_value"].removeprefix("Bearer ")
        procs = serving(base)

        # delete: workload stopped, token revoked, volumes kept
        assert c.delete(path("nb1")).status_code == 200
        deadline = time.time() + 30
        while time.time() < deadline and any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs):
            time.sleep(0.2)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)
        deadline = time.time() + 10
        while time.time() < deadline and httpx.get(f"{srv.url}/api/v1/namespaces/{NS}/notebooks",
                                                   headers={"Authorization": f"Bearer {token}"}).status_code != 401:
            time.sleep(0.2)
        assert httpx.get(f"{srv.url}/api/v1/namespaces/{NS}/notebooks",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert (ws / "hello.txt").read_text() == "persisted"
        assert c.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims/nb1-workspace").status_code == 200


def test_invalid_manifests_are_refused_with_a_message(shared_server) -> None:
    with shared_server.client() as c:
        bad = notebook("bad")
        bad["spec"]["template"]["spec"]["containers"][0]["command"] = ["bash"]
        r = c.post(f"/api/v1/namespaces/{NS}/notebooks", json=bad)
        assert r.status_code == 422 and "command and args are not supported" in r.json()["message"]
        bad = notebook("bad", mounts=[("x", "/data")])
        bad["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] = "nope"
        r = c.post(f"/api/v1/namespaces/{NS}/notebooks", json=bad)
        assert r.status_code == 422 and "volumeMounts[0].name" in r.json()["message"]
        bad = notebook("bad")
        bad["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "lots"}}
        assert c.post(f"/api/v1/namespaces/{NS}/notebooks", json=bad).status_code == 422
        r = c.post(f"/api/v1/namespaces/{NS}/notebooks", json=notebook("bad", api="kubeflow.org/v2"))
        assert r.status_code == 422 and "kubeflow.org/v1" in r.json()["message"]


def test_unknown_environment_is_refused(shared_server) -> None:
    with shared_server.client() as c:
        r = c.post(f"/api/v1/namespaces/{NS}/notebooks", json=notebook("noenv", image="no-such-env"))
        assert r.status_code == 422, r.text
        assert "environment 'no-such-env' not found" in r.json()["message"]


def test_notebook_quota_keeps_it_pending(shared_server) -> None:
    srv = shared_server
    srv.add_user("nbq")
    with srv.client() as c:
        r = c.patch("/api/v1/profiles/nbq", json={"spec": {"resourceQuotaSpec": {"hard": {"notebooks": "0"}}}})
        assert r.status_code == 200, r.text
        assert c.post(path("", "nbq").rstrip("/"), json=notebook("q1")).status_code == 201
        obj = wait_phase(c, path("q1", "nbq"), {"Pending", "Failed", "Running"}, 20)
        time.sleep(0.5)
        obj = c.get(path("q1", "nbq")).json()
        assert obj["status"]["phase"] == "Pending" and "may run 0 notebook" in obj["status"]["message"], obj["status"]


def test_volumes_sizes_usage_and_storage_quota(shared_server) -> None:
    srv = shared_server
    srv.add_user("vol")
    pvcs = "/api/v1/namespaces/vol/persistentvolumeclaims"

    def pvc(name: str, size: str | None) -> dict:
        spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}} if size else {}}
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}

    with srv.client() as c:
        r = c.patch("/api/v1/profiles/vol", json={"spec": {"resourceQuotaSpec": {"hard": {"storage": "1Gi"}}}})
        assert r.status_code == 200, r.text
        r = c.post(pvcs, json=pvc("nosize", None))
        assert r.status_code == 422 and "requests.storage is required" in r.json()["message"]
        assert c.post(pvcs, json=pvc("small", "4Ki")).status_code == 201
        small = wait_phase(c, f"{pvcs}/small", {"Bound", "Pending"}, 15)
        assert small["status"]["phase"] == "Bound" and small["status"]["capacity"] == {"storage": "4Ki"}
        folder = srv.home / "volumes" / "vol" / "small"
        (folder / "big.bin").write_bytes(os.urandom(64 * 1024))
        c.patch(f"{pvcs}/small", json={"metadata": {"labels": {"touched": "1"}}})  # reconcile now
        deadline = time.time() + 15
        while time.time() < deadline and c.get(f"{pvcs}/small").json()["status"].get("used", 0) < 64 * 1024:
            time.sleep(0.2)
        st = c.get(f"{pvcs}/small").json()["status"]
        assert st["used"] >= 64 * 1024
        assert {x["type"]: x["status"] for x in st["conditions"]}["OverQuota"] == "True"

        r = c.post(pvcs, json=pvc("big", "1Gi"))  # 4Ki + 1Gi > 1Gi
        assert r.status_code == 403 and "storage quota is 1Gi" in r.json()["message"], r.text
        assert not (srv.home / "volumes" / "vol" / "big").exists()

        # a notebook naming a missing claim gets it made at the default size, which waits for room
        assert c.post("/api/v1/namespaces/vol/notebooks", json=notebook("needsbig", mounts=[("big", "/home/jovyan")])).status_code == 201
        nb = wait_phase(c, path("needsbig", "vol"), {"Pending", "Failed", "Running"}, 15)
        time.sleep(0.3)
        nb = c.get(path("needsbig", "vol")).json()
        assert nb["status"]["phase"] == "Pending" and "storage quota" in nb["status"]["message"], nb["status"]
        c.delete(path("needsbig", "vol"))

        # deleting a claim deletes its folder
        assert c.delete(f"{pvcs}/small").status_code == 200
        deadline = time.time() + 10
        while time.time() < deadline and folder.exists():
            time.sleep(0.1)
        assert not folder.exists()


def test_idle_notebook_is_culled(shared_server) -> None:
    srv = shared_server
    srv.add_user("cull")
    with srv.client() as c:
        r = c.patch("/api/v1/profiles/cull", json={"metadata": {"annotations": {"flowyard.io/notebook-idle-timeout": "2s"}}})
        assert r.status_code == 200, r.text
        assert c.post("/api/v1/namespaces/cull/notebooks", json=notebook("idle")).status_code == 201
        obj = wait_phase(c, path("idle", "cull"), {"Stopped", "Failed"}, 60)
        assert obj["status"]["phase"] == "Stopped", obj["status"]
        assert "kubeflow-resource-stopped" in obj["metadata"]["annotations"]
        assert obj["status"]["message"].startswith("stopped after") and "idle" in obj["status"]["message"]
        assert {"Ready", "Culled"} <= set(reasons(c, path("idle", "cull")))
        assert not serving("/notebook/cull/idle/")


def test_memory_limit_and_platform_inside_a_kernel(shared_server) -> None:
    srv = shared_server
    with srv.client() as c:
        r = c.post(f"/api/v1/namespaces/{NS}/notebooks", json=notebook("small", memory="1Gi"))
        assert r.status_code == 201, r.text
        uid = r.json()["metadata"]["uid"]
        obj = wait_phase(c, path("small"), {"Running", "Failed"}, 60)
        assert obj["status"]["phase"] == "Running", obj["status"]
        jp = Jupyter(obj["status"]["endpoint"], obj["status"]["url"], secret_for(srv.home, uid))
        kernel = jp.start_kernel()

        env = jp.execute(kernel, "import os, json\nprint(json.dumps({k: os.environ.get(k) for k in "
                                 "['FLOWYARD_URL', 'FLOWYARD_NAMESPACE', 'FLOWYARD_TOKEN', 'KF_PIPELINES_ENDPOINT', "
                                 "'HOME', 'GREETING', 'FLOWYARD_PROXY_SECRET']}))")
        assert env["status"] == "ok", env

        seen = json.loads(env["stdout"])
        assert seen["FLOWYARD_URL"] == srv.url and seen["KF_PIPELINES_ENDPOINT"] == srv.url
        assert seen["FLOWYARD_NAMESPACE"] == NS and seen["FLOWYARD_TOKEN"].startswith("fy_")
        assert seen["HOME"] == str(srv.home / "volumes" / NS / "small-workspace") and seen["GREETING"] == "hello"
        assert seen["FLOWYARD_PROXY_SECRET"] is None  # kernels do not inherit the gateway's secret
        api = jp.execute(kernel, "import flowyard\nc = flowyard.Client()\n"
                                 "print(c.whoami()['username'])")
        assert api["status"] == "ok" and "admin" in api["stdout"], api

        hog = jp.execute(kernel, "x = b'x' * (3 * 1024 ** 3)")
        assert hog["status"] == "error" and hog["ename"] == "MemoryError", hog
        after = jp.execute(kernel, "print('still here')")
        assert after["stdout"].strip() == "still here"
        jp.close()
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        assert c.get(path("small")).json()["status"]["phase"] == "Running"
        c.delete(path("small"))


def test_identity_provider_needs_no_flowyard() -> None:
    """jupyter_auth.py runs in the notebook's environment: stdlib, jupyter_server and traitlets only."""
    import ast
    from pathlib import Path

    import flowyard.notebooks.jupyter_auth as module

    tree = ast.parse(Path(module.__file__).read_text())
    roots = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
             for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert roots <= {"__future__", "hmac", "os", "re", "typing", "jupyter_server", "traitlets"}, roots


def test_gpu_request_reaches_admission(shared_server) -> None:
    with shared_server.client() as c:
        body = notebook("gpu1")
        body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": 1}
        assert c.post(f"/api/v1/namespaces/{NS}/notebooks", json=body).status_code == 201
        obj = wait_phase(c, path("gpu1"), {"Running", "Failed"}, 60)
        if obj["status"]["phase"] == "Failed":  # no GPU on this machine: the executor says so
            assert "gpu" in obj["status"]["message"].lower(), obj["status"]
        else:
            assert len(obj["status"]["gpus"]) == 1
        c.delete(path("gpu1"))


def test_a_volume_in_use_cannot_be_deleted(shared_server) -> None:
    with shared_server.client() as c:
        assert c.post(f"/api/v1/namespaces/{NS}/notebooks", json=notebook("keeper")).status_code == 201
        assert wait_phase(c, path("keeper"), {"Running", "Failed"})["status"]["phase"] == "Running"
        r = c.delete(f"/api/v1/namespaces/{NS}/persistentvolumeclaims/keeper-workspace")
        assert r.status_code == 409 and "in use by notebook 'keeper'" in r.json()["message"], r.text
        c.patch(path("keeper"), json={"metadata": {"annotations": {"kubeflow-resource-stopped": "now"}}})
        wait_phase(c, path("keeper"), {"Stopped"})
        assert c.delete(f"/api/v1/namespaces/{NS}/persistentvolumeclaims/keeper-workspace").status_code == 200
        c.delete(path("keeper"))
