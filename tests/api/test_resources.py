"""The generic Kubernetes-style resource API: CRUD, selectors, paging, concurrency, events, errors."""

from __future__ import annotations

import time

import httpx
import pytest


def job(name: str, code: str = "print('hi')", **labels: str) -> dict:
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "command": ["python", "-c", code]}]}}},
    }


def wait_phase(c: httpx.Client, path: str, phases: set[str], timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        obj = c.get(path).json()
        if obj.get("status", {}).get("phase") in phases:
            return obj
        time.sleep(0.1)
    raise AssertionError(f"{path} never reached {phases}: {obj}")


def test_crud_and_manifest_shape(shared_server) -> None:
    with shared_server.client() as c:
        r = c.post("/api/v1/namespaces/admin/jobs", json=job("crud", app="web"))
        assert r.status_code == 201, r.text
        obj = r.json()
        meta = obj["metadata"]
        assert obj["apiVersion"] == "batch/v1" and obj["kind"] == "Job"
        assert {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "labels",
                "annotations"} <= set(meta)
        assert meta["namespace"] == "admin" and meta["generation"] == 1 and meta["labels"] == {"app": "web"}
        assert c.post("/api/v1/namespaces/admin/jobs", json=job("crud")).json()["code"] == "AlreadyExists"

        got = c.get("/api/v1/namespaces/admin/jobs/crud").json()
        assert got["metadata"]["uid"] == meta["uid"]

        patched = c.patch("/api/v1/namespaces/admin/jobs/crud", json={"metadata": {"labels": {"tier": "x"}}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["metadata"]["labels"] == {"app": "web", "tier": "x"}
        assert patched.json()["metadata"]["generation"] == 1  # labels are not spec

        assert c.delete("/api/v1/namespaces/admin/jobs/crud").status_code == 200
        assert c.get("/api/v1/namespaces/admin/jobs/crud").status_code == 404


def test_stale_resource_version_conflicts(shared_server) -> None:
    with shared_server.client() as c:
        c.post("/api/v1/namespaces/admin/secrets", json={"metadata": {"name": "s-rv"}, "stringData": {"a": "1"}})
        first = c.get("/api/v1/namespaces/admin/secrets/s-rv").json()
        rv = first["metadata"]["resourceVersion"]
        body = {"metadata": {"name": "s-rv", "resourceVersion": rv}, "stringData": {"a": "2"}}
        assert c.put("/api/v1/namespaces/admin/secrets/s-rv", json=body).status_code == 200
        stale = c.put("/api/v1/namespaces/admin/secrets/s-rv", json=body)
        assert stale.status_code == 409 and "resourceVersion" in stale.json()["message"]


def test_label_selectors_and_paging(shared_server) -> None:
    with shared_server.client() as c:
        for i in range(7):
            c.post("/api/v1/namespaces/admin/secrets", json={
                "metadata": {"name": f"sel-{i}", "labels": {"group": "a" if i < 4 else "b", **({"gpu": "1"} if i % 2 else {})}},
                "stringData": {"k": "v"}})

        def names(params: dict) -> list[str]:
            r = c.get("/api/v1/namespaces/admin/secrets", params=params)
            assert r.status_code == 200, r.text
            return [i["metadata"]["name"] for i in r.json()["items"] if i["metadata"]["name"].startswith("sel-")]

        assert names({"labelSelector": "group=a"}) == ["sel-0", "sel-1", "sel-2", "sel-3"]
        assert names({"labelSelector": "group!=a"}) == ["sel-4", "sel-5", "sel-6"]
        assert names({"labelSelector": "group in (b),gpu"}) == ["sel-5"]
        assert names({"labelSelector": "group notin (a),!gpu"}) == ["sel-4", "sel-6"]
        assert c.get("/api/v1/namespaces/admin/secrets", params={"labelSelector": "a b c"}).status_code == 422

        seen, token = [], None
        while True:
            params = {"limit": 3, "labelSelector": "group"}
            if token:
                params["continue"] = token
            page = c.get("/api/v1/namespaces/admin/secrets", params=params).json()
            assert len(page["items"]) <= 3
            seen += [i["metadata"]["name"] for i in page["items"]]
            token = page["metadata"]["continue"]
            if not token:
                break
        assert seen == [f"sel-{i}" for i in range(7)]


def test_job_runs_to_completion_with_events_and_logs(shared_server) -> None:
    with shared_server.client() as c:
        c.post("/api/v1/namespaces/admin/jobs", json=job("hello", "print('hello from a job')"))
        done = wait_phase(c, "/api/v1/namespaces/admin/jobs/hello", {"Succeeded", "Failed"})
        assert done["status"]["phase"] == "Succeeded", done
        cond = {x["type"]: x for x in done["status"]["conditions"]}
        assert cond["Complete"]["status"] == "True" and cond["Complete"]["lastTransitionTime"]
        assert "hello from a job" in c.get("/api/v1/namespaces/admin/jobs/hello/log").text
        reasons = [e["reason"] for e in c.get("/api/v1/namespaces/admin/jobs/hello/events").json()["items"]]
        assert "Completed" in reasons

        c.post("/api/v1/namespaces/admin/jobs", json=job("boom", "import sys; print('bad'); sys.exit(3)"))
        failed = wait_phase(c, "/api/v1/namespaces/admin/jobs/boom", {"Succeeded", "Failed"})
        assert failed["status"]["phase"] == "Failed" and failed["status"]["exitCode"] == 3
        assert "exit code 3" in failed["status"]["message"]


def test_secrets_are_masked_and_injected(shared_server) -> None:
    with shared_server.client() as c:
        r = c.post("/api/v1/namespaces/admin/secrets", json={
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
            "stringData": {"AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}})
        assert r.status_code == 201
        assert "s3cr3t-value" not in r.text and r.json()["data"] == {"AWS_SECRET_ACCESS_KEY": "<redacted>"}
        assert "s3cr3t-value" not in c.get("/api/v1/namespaces/admin/secrets").text
        spec = job("uses-secret", "import os; print(len(os.environ['KEY']))")
        spec["spec"]["template"]["spec"]["containers"][0]["env"] = [
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "AWS_SECRET_ACCESS_KEY"}}}]
        c.post("/api/v1/namespaces/admin/jobs", json=spec)
        wait_phase(c, "/api/v1/namespaces/admin/jobs/uses-secret", {"Succeeded"})
        assert c.get("/api/v1/namespaces/admin/jobs/uses-secret/log").text.strip() == "12"
    db = shared_server.home / "flowyard.db"
    if db.exists():
        assert b"s3cr3t-value" not in db.read_bytes()


@pytest.mark.parametrize("body,needle", [
    ({"metadata": {"name": "Bad_Name"}, "spec": {}}, "metadata.name"),
    ({"metadata": {"name": "x"}, "kind": "Notebook", "spec": {}}, "kind"),
    ({"metadata": {"name": "x"}, "apiVersion": "v9", "spec": {}}, "apiVersion"),
    ({"metadata": {"name": "x"}, "spec": []}, "spec"),
    ({"metadata": {"name": "x"}, "spec": {"template": {}}}, "containers"),
    ({"metadata": {"name": "x", "namespace": "other"}, "spec": {}}, "namespace"),
    ({"metadata": {"name": "x", "labels": {"a": 1}}, "spec": {}}, "labels"),
])
def test_bad_input_is_a_clear_4xx(shared_server, body: dict, needle: str) -> None:
    with shared_server.client() as c:
        r = c.post("/api/v1/namespaces/admin/jobs", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "Invalid" and needle in r.json()["message"]


def test_malformed_requests(shared_server) -> None:
    with shared_server.client() as c:
        r = c.post("/api/v1/namespaces/admin/jobs", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422 and "JSON" in r.json()["message"]
        r = c.get("/api/v1/namespaces/admin/widgets")
        assert r.status_code == 404 and "unknown resource type" in r.json()["message"]
        assert c.get("/api/v1/namespaces/nope/jobs").status_code == 404
        assert c.get("/api/v1/namespaces/admin/profiles").status_code == 404
        assert c.get("/api/v1/nothing/here/at/all/x").status_code == 404


def test_unknown_environment_fails_job_clearly(shared_server) -> None:
    with shared_server.client() as c:
        spec = job("no-env")
        spec["spec"]["template"]["spec"]["containers"][0]["image"] = "tensorflow:latest"
        c.post("/api/v1/namespaces/admin/jobs", json=spec)
        failed = wait_phase(c, "/api/v1/namespaces/admin/jobs/no-env", {"Failed"})
        assert "environment 'tensorflow:latest' not found" in failed["status"]["message"]


def test_health_metrics_openapi(shared_server) -> None:
    with httpx.Client(base_url=shared_server.url) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").status_code == 200
        assert "flowyard_http_requests_total" in c.get("/metrics").text
        spec = c.get("/openapi.json").json()
        assert "/api/v1/namespaces/{namespace}/{plural}" in spec["paths"]


def test_unchanged_replace_is_a_no_op(shared_server) -> None:
    with shared_server.client() as c:
        body = {"metadata": {"name": "same"}, "stringData": {"k": "v"}}
        first = c.post("/api/v1/namespaces/admin/secrets", json=body).json()["metadata"]
        again = c.put("/api/v1/namespaces/admin/secrets/same", json=body).json()["metadata"]
        assert (again["resourceVersion"], again["generation"]) == (first["resourceVersion"], first["generation"])
        changed = c.put("/api/v1/namespaces/admin/secrets/same", json={**body, "stringData": {"k": "w"}})
        assert changed.json()["metadata"]["generation"] == first["generation"] + 1


def test_replacing_an_environment_keeps_its_creator(shared_server) -> None:
    shared_server.add_user("envmaker")
    with shared_server.client("envmaker", "envmaker-password-1") as c:
        body = {"metadata": {"name": "mine"}, "spec": {"requirements": []}}
        assert c.post("/api/v1/environments", json=body).status_code == 201
        replaced = c.put("/api/v1/environments/mine", json=body).json()
        assert replaced["metadata"]["annotations"]["flowyard.io/creator"] == "envmaker"
        assert c.delete("/api/v1/environments/mine").status_code == 200


def test_follow_waits_for_a_job_to_start(shared_server) -> None:
    with shared_server.client() as c:
        quota = {"metadata": {"name": "tiny"}, "spec": {"owner": {"name": "admin"},
                 "resourceQuotaSpec": {"hard": {"cpu": "1"}}}}
        assert c.post("/api/v1/profiles", json=quota).status_code == 201
        j = job("blocker", "import time; time.sleep(2)")
        j["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}}
        c.post("/api/v1/namespaces/tiny/jobs", json=j)
        wait_phase(c, "/api/v1/namespaces/tiny/jobs/blocker", {"Running"})
        j = job("waiter", "print('finally')")
        j["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}}
        c.post("/api/v1/namespaces/tiny/jobs", json=j)
        pending = wait_phase(c, "/api/v1/namespaces/tiny/jobs/waiter", {"Pending"})
        assert "quota" in pending["status"]["message"].lower(), pending["status"]
        assert c.get("/api/v1/namespaces/tiny/jobs/waiter/log").status_code in (200, 404)
        r = c.get("/api/v1/namespaces/tiny/jobs/waiter/log", params={"follow": "true"})
        assert "finally" in r.text


def test_creator_is_recorded_and_cannot_be_forged(shared_server) -> None:
    shared_server.add_user("maker")
    with shared_server.client("maker", "maker-password-1") as c:
        body = job("made", "pass")
        body["metadata"]["annotations"] = {"flowyard.io/creator": "someone-else"}
        made = c.post("/api/v1/namespaces/maker/jobs", json=body).json()
        assert made["metadata"]["annotations"]["flowyard.io/creator"] == "maker"
        patched = c.patch("/api/v1/namespaces/maker/jobs/made",
                          json={"metadata": {"annotations": {"flowyard.io/creator": "x", "note": "n"}}}).json()
        assert patched["metadata"]["annotations"] == {"flowyard.io/creator": "maker", "note": "n"}


def test_deleting_a_running_job_stops_its_process(shared_server) -> None:
    import json as _json
    import os

    with shared_server.client() as c:
        c.post("/api/v1/namespaces/admin/jobs", json=job("doomed", "import time; time.sleep(120)"))
        running = wait_phase(c, "/api/v1/namespaces/admin/jobs/doomed", {"Running"})
        wid = running["status"]["workload"]
        pid = _json.loads((shared_server.home / "workloads" / wid / "state.json").read_text())["status"]["pid"]
        assert c.delete("/api/v1/namespaces/admin/jobs/doomed").status_code == 200
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the deleted job's process is still running")
