"""InferenceServices end to end: a KServe manifest deployed on a real server, queried through the
gateway with tritonclient (http JSON and binary, grpc), the TF-Serving instances form and curl;
auth refusals; a rolling update under load; a canary split; scale to zero; a model that fails to load."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_digits
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

NS = "alice"
API = f"/api/v1/namespaces/{NS}/inferenceservices"
X, Y = load_digits(return_X_y=True)
ROW = X[:1]


def manifest(name: str, uri: str, **predictor: object) -> dict:
    """An InferenceService as KServe's docs write it."""
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "annotations": predictor.pop("annotations", {})},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri,
                                             "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}},
                                   **predictor}}}


def wait_for(c: httpx.Client, name: str, check, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    obj: dict = {}
    while time.time() < deadline:
        obj = c.get(f"{API}/{name}").json()
        if check(obj.get("status") or {}):
            return obj
        time.sleep(0.1)
    raise AssertionError(f"{name}: condition not reached: {json.dumps(obj.get('status'), indent=1)}")


def phase(*phases: str):
    return lambda st: st.get("phase") in phases


def traffic(st: dict) -> dict[str, int]:
    """{revision: percent} of the revisions that get traffic."""
    return {t["revisionName"]: t["percent"] for t in (st.get("components") or {}).get("predictor", {}).get("traffic", [])
            if t["percent"]}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, model in (("digits", LogisticRegression(max_iter=200).fit(X, Y)),
                        ("sevens", DummyClassifier(strategy="constant", constant=7).fit(X, Y))):
        (root / name).mkdir()
        joblib.dump(model, root / name / "model.joblib")
        out[name] = root / name
    (root / "broken").mkdir()
    (root / "broken" / "model.joblib").write_bytes(b"this is not a pickle")
    out["broken"] = root / "broken"
    return out


@pytest.fixture(scope="module")
def world(shared_server):
    shared_server.add_user("alice")
    shared_server.add_user("dave")
    return shared_server


def alice(srv) -> httpx.Client:
    return srv.client("alice", "alice-password-1")


def test_deploy_query_and_refuse(world, models) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    with alice(world) as c:
        r = c.post(API, json=manifest("digits", f"file://{models['digits']}"))
        assert r.status_code == 201, r.text
        obj = wait_for(c, "digits", phase("Ready", "Failed"))
        st = obj["status"]
        assert st["phase"] == "Ready", st
        assert st["url"] == f"{world.url}/serving/{NS}/digits"
        assert [t["percent"] for t in st["components"]["predictor"]["traffic"]] == [100]
        assert {c_["type"]: c_["status"] for c_ in st["conditions"]}["Ready"] == "True"
        token = world.token("alice", "alice-password-1")
    expected = LogisticRegression(max_iter=200).fit(X, Y).predict(ROW).tolist()
    headers = {"Authorization": f"Bearer {token}"}
    base = st["url"].split("://", 1)[1]

    # tritonclient.http: binary (its default) and JSON
    client = httpclient.InferenceServerClient(url=base)
    assert client.is_server_ready(headers=headers) and client.is_model_ready("digits", headers=headers)
    for binary in (True, False):
        inp = httpclient.InferInput("predict", list(ROW.shape), "FP64")
        inp.set_data_from_numpy(ROW, binary_data=binary)
        out = httpclient.InferRequestedOutput("predict", binary_data=binary) if not binary else None
        result = client.infer("digits", [inp], outputs=[out] if out else None, headers=dict(headers))  # it adds to the dict
        name = result.get_response()["outputs"][0]["name"]
        assert result.as_numpy(name).ravel().tolist() == expected
    with pytest.raises(InferenceServerException):
        client.is_server_ready(headers={"Authorization": "Bearer fy_0_nope"}) or \
            client.infer("digits", [inp])  # no token at all
    # tritonclient.grpc through the front
    gc = grpcclient.InferenceServerClient(url=st["grpcAddress"])
    meta = [("authorization", f"Bearer {token}")]
    assert gc.is_server_live(headers=dict(meta)) and gc.is_model_ready("digits", headers=dict(meta))
    ginp = grpcclient.InferInput("predict", list(ROW.shape), "FP64")
    ginp.set_data_from_numpy(ROW)
    result = gc.infer("digits", [ginp], headers=dict(meta))
    name = result.get_response().outputs[0].name
    assert result.as_numpy(name).ravel().tolist() == expected
    # the TF-Serving row form (what the Kubeflow MNIST notebook sends) and curl-style JSON
    with httpx.Client(base_url=st["url"], headers=headers, timeout=30) as h:
        r = h.post("/v1/models/digits:predict", json={"instances": ROW.tolist()})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected
    body = json.dumps({"inputs": [{"name": "predict", "shape": [1, 64], "datatype": "FP64",
                                   "data": ROW.ravel().tolist()}]})
    out = subprocess.run(["curl", "-sS", "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
                          "-d", body, f"{st['url']}/v2/models/digits/infer"], capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout)["outputs"][0]["data"] == expected, out.stdout + out.stderr

    # refused: anonymous and another namespace's member, over REST and gRPC
    dave = world.token("dave", "dave-password-1")
    for who, code in (({}, 401), ({"Authorization": f"Bearer {dave}"}, 403), ({"Authorization": "Bearer fy_1_x"}, 401)):
        r = httpx.post(f"{st['url']}/v2/models/digits/infer", content=body, headers=who)
        assert r.status_code == code and "error" in r.json(), (who, r.text)
    assert httpx.get(f"{world.url}/serving/{NS}/nothing-here/v2/health/ready", headers=headers).status_code == 404
    assert httpx.get(f"{world.url}/serving/{NS}/nothing-here/v2", headers={"Authorization": f"Bearer {dave}"}
                     ).status_code == 403  # outsiders learn nothing
    for who, code in (({}, "StatusCode.UNAUTHENTICATED"), ({"authorization": f"Bearer {dave}"},
                                                           "StatusCode.PERMISSION_DENIED")):
        with pytest.raises(InferenceServerException) as err:
            gc.infer("digits", [ginp], headers=who)
        assert err.value.status() == code, err.value

    # a public endpoint: the endpoint asks, and the namespace (its owner) allows it
    with alice(world) as c:
        assert c.patch(f"{API}/digits", json={"metadata": {"annotations": {"serving.flowyard.io/public": "true"}}}
                       ).status_code == 200
        st = wait_for(c, "digits", lambda s: s.get("public") is False)["status"]  # asked, not allowed yet
        assert httpx.post(f"{st['url']}/v2/models/digits/infer", content=body).status_code == 401
        assert c.patch(f"/api/v1/profiles/{NS}", json={"metadata": {"annotations": {
            "serving.flowyard.io/allow-public-endpoints": "true"}}}).status_code == 200
        c.patch(f"{API}/digits", json={"metadata": {"labels": {"touch": "1"}}})
        wait_for(c, "digits", lambda s: s.get("public") is True)
    r = httpx.post(f"{st['url']}/v2/models/digits/infer", content=body)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == expected, r.text
    assert gc.is_model_ready("digits")  # anonymous gRPC too

    # per-revision metrics on the platform's /metrics
    text = httpx.get(f"{world.url}/metrics").text
    assert 'flowyard_serving_requests_total{code="200",name="digits",namespace="alice"' in text
    assert "flowyard_serving_request_seconds_bucket" in text and "flowyard_serving_replicas" in text


def _load(url: str, token: str, stop: threading.Event, seen: list, failures: list) -> None:
    body = {"inputs": [{"name": "predict", "shape": [1, 64], "datatype": "FP64", "data": ROW.ravel().tolist()}]}
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as h:
        while not stop.is_set():
            try:
                r = h.post(f"{url}/v2/models/rolling/infer", json=body)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                else:
                    seen.append((r.headers["x-flowyard-revision"], r.json()["outputs"][0]["data"][0]))
            except httpx.HTTPError as e:
                failures.append(repr(e))


def test_rolling_update_canary_and_rollback_without_failures(world, models) -> None:
    token = world.token("alice", "alice-password-1")
    with alice(world) as c:
        assert c.post(API, json=manifest("rolling", f"file://{models['digits']}")).status_code == 201
        st = wait_for(c, "rolling", phase("Ready", "Failed"))["status"]
        first = st["components"]["predictor"]["latestReadyRevision"]
        stop, seen, failures = threading.Event(), [], []
        global T0
        T0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(_load, st["url"], token, stop, seen, failures) for _ in range(4)]
            time.sleep(1.0)
            # replace the model: a new revision starts, takes the traffic when ready, the old one drains
            r = c.patch(f"{API}/rolling", json={"spec": {"predictor": {"model": {"storageUri": f"file://{models['sevens']}"}}}})
            assert r.status_code == 200, r.text
            st = wait_for(c, "rolling", lambda s: s.get("components", {}).get("predictor", {})
                          .get("latestRolledoutRevision") not in (None, first))["status"]
            second = st["components"]["predictor"]["latestRolledoutRevision"]
            deadline = time.time() + 30
            while not any(rev == second for rev, _ in seen[-20:]):
                assert time.time() < deadline
                time.sleep(0.1)
            time.sleep(1.0)
            stop.set()
            for job in jobs:
                job.result()
        assert failures == [], failures[:5]
        print(f"rolling update: {len(seen)} requests, 0 failed, {time.time() - T0:.1f}s")
        assert {rev for rev, _ in seen} == {first, second}
        assert all(out == 7 for rev, out in seen if rev == second)
        wait_for(c, "rolling", lambda s: [r["name"] for r in s["revisions"] if r.get("replicas")] == [second])

        # canary: 20 % to a new revision, the rest to the rolled-out one
        r = c.patch(f"{API}/rolling", json={"spec": {"predictor": {"canaryTrafficPercent": 20,
                                                                    "model": {"storageUri": f"file://{models['digits']}"}}}})
        assert r.status_code == 200, r.text
        st = wait_for(c, "rolling", lambda s: len(traffic(s)) == 2)["status"]
        third = st["components"]["predictor"]["latestReadyRevision"]
        assert traffic(st) == {third: 20, second: 80}
        counts = {second: 0, third: 0}
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as h:
            body = {"instances": ROW.tolist()}
            for _ in range(1000):
                r = h.post(f"{st['url']}/v1/models/rolling:predict", json=body)
                assert r.status_code == 200, r.text
                counts[r.headers["x-flowyard-revision"]] += 1
        assert abs(counts[third] / 1000 - 0.20) <= 0.05, counts
        print("canary split over 1000 requests:", counts, f"{time.time() - T0:.1f}s")

        # roll back (0 %), then promote (remove the setting): all traffic to one revision each time
        c.patch(f"{API}/rolling", json={"spec": {"predictor": {"canaryTrafficPercent": 0}}})
        assert traffic(wait_for(c, "rolling", lambda s: traffic(s) == {second: 100})["status"]) == {second: 100}
        c.patch(f"{API}/rolling", json={"spec": {"predictor": {"canaryTrafficPercent": None}}})
        st = wait_for(c, "rolling", lambda s: traffic(s) == {third: 100})["status"]
        assert st["components"]["predictor"]["previousRolledoutRevision"] == second
        reasons = [e["reason"] for e in c.get(f"{API}/rolling/events").json()["items"]]
        assert {"RevisionCreated", "RevisionReady", "TrafficShifted"} <= set(reasons)

        # autoscaling on in-flight requests: one request per replica wanted, 4 callers, at most 2
        c.patch(f"{API}/rolling", json={"spec": {"predictor": {"maxReplicas": 2, "scaleTarget": 1}}})
        stop, seen, failures = threading.Event(), [], []
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(_load, st["url"], token, stop, seen, failures) for _ in range(4)]
            try:
                st = wait_for(c, "rolling", lambda s: s["revisions"][-1].get("readyReplicas") == 2, timeout=60)["status"]
            finally:
                stop.set()
                for job in jobs:
                    job.result()
        assert failures == [], failures[:5]
        assert "ScaledUp" in [e["reason"] for e in c.get(f"{API}/rolling/events").json()["items"]]
        c.delete(f"{API}/rolling")


def test_scale_to_zero_and_back(world, models) -> None:
    token = world.token("alice", "alice-password-1")
    with alice(world) as c:
        m = manifest("sleepy", f"file://{models['digits']}", minReplicas=0, maxReplicas=2,
                     logger={"mode": "all", "url": "payloads/sleepy", "sampleFraction": 1.0},
                     annotations={"serving.flowyard.io/scale-to-zero-after": "1"})
        assert c.post(API, json=m).status_code == 201, c.get(API).text
        st = wait_for(c, "sleepy", phase("Idle", "Failed"))["status"]
        assert st["phase"] == "Idle" and st["modelStatus"]["copies"]["totalCopies"] == 0, st
        t0 = time.time()
        r = httpx.post(f"{st['url']}/v1/models/sleepy:predict", json={"instances": ROW.tolist()},
                       headers={"Authorization": f"Bearer {token}"}, timeout=120)
        took = time.time() - t0
        assert r.status_code == 200, r.text
        st = wait_for(c, "sleepy", lambda s: s.get("lastColdStartSeconds"))["status"]
        assert 0 < st["lastColdStartSeconds"] <= took + 0.5
        print(f"cold start: {st['lastColdStartSeconds']:.2f} s (request answered after {took:.2f} s)")
        assert "Activated" in [e["reason"] for e in c.get(f"{API}/sleepy/events").json()["items"]]
        deadline = time.time() + 15  # the request and its answer, logged into the namespace's artifacts
        while not (logged := c.get(f"/api/v1/namespaces/{NS}/artifacts", params={"prefix": "payloads/sleepy/"}
                                   ).json()["items"]):
            assert time.time() < deadline, "no payload log written"
            time.sleep(0.3)
        record = json.loads(c.get(f"/api/v1/namespaces/{NS}/artifacts/{logged[0]['path']}").text.splitlines()[0])
        assert record["request"]["inputs"][0]["shape"] == [1, 64], record
        wait_for(c, "sleepy", phase("Idle"))  # and back to zero
        c.delete(f"{API}/sleepy")


def test_failed_load_and_bad_manifests(world, models) -> None:
    with alice(world) as c:
        assert c.post(API, json=manifest("broken", f"file://{models['broken']}")).status_code == 201
        st = wait_for(c, "broken", phase("Failed"))["status"]
        ready = next(x for x in st["conditions"] if x["type"] == "Ready")
        assert ready["status"] == "False" and ready["reason"] == "ModelLoadFailed", ready
        assert ready["message"] and st["modelStatus"]["lastFailureInfo"]["message"] == ready["message"]
        events = c.get(f"{API}/broken/events").json()["items"]
        assert any(e["reason"] == "ModelLoadFailed" and e["type"] == "Warning" for e in events), events
        assert "model failed to load" in c.get(f"{API}/broken/log").text  # the failed replica's log is kept
        c.delete(f"{API}/broken")
        # more than the machine has: the executor refuses it, and status says why
        big = manifest("too-big", f"file://{models['digits']}")
        big["spec"]["predictor"]["model"]["resources"] = {"requests": {"cpu": "512"}}
        assert c.post(API, json=big).status_code == 201
        st = wait_for(c, "too-big", phase("Failed", "Pending"))["status"]
        assert "cpu" in st["message"], st["message"]
        c.delete(f"{API}/too-big")
        for spec, words in (
            ({"predictor": {"model": {"modelFormat": {"name": "tensorflow"}, "storageUri": "file:///m"}}}, "modelFormat.name"),
            ({"predictor": {"model": {"modelFormat": {"name": "sklearn"}}}}, "storageUri is required"),
            ({"predictor": {"minReplicas": 3, "maxReplicas": 1,
                            "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m"}}}, "maxReplicas"),
            ({"predictor": {"canaryTrafficPercent": 120,
                            "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m"}}}, "between 0 and 100"),
            ({"predictor": {"scaleMetric": "cpu",
                            "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m"}}}, "concurrency"),
            ({"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m",
                                      "resources": {"limits": {"cpu": "lots"}}}}}, "resources.limits"),
            ({"predictor": {"logger": {"url": "../elsewhere"},
                            "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m"}}}, "logger.url"),
        ):
            r = c.post(API, json={"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                                  "metadata": {"name": "bad"}, "spec": spec})
            assert r.status_code == 422 and words in r.json()["message"], (spec, r.text)


def test_cli_apply_and_get(world, models, tmp_path) -> None:
    env = {**os.environ, "FLOWYARD_URL": world.url, "FLOWYARD_TOKEN": world.token("alice", "alice-password-1"),
           "FLOWYARD_NAMESPACE": NS}
    path = tmp_path / "isvc.yaml"
    path.write_text(f"""\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: from-cli
spec:
  predictor:
    minReplicas: 0
    model:
      modelFormat:
        name: sklearn
      storageUri: file://{models['digits']}
""")
    cli = [sys.executable, "-m", "flowyard"]
    out = subprocess.run([*cli, "apply", "-f", str(path)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([*cli, "get", "inferenceservices", "-n", NS], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "from-cli" in out.stdout, out.stdout + out.stderr
    out = subprocess.run([*cli, "serve", "served", "--model-uri", f"file://{models['digits']}", "--format", "sklearn"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"REST: {world.url}/serving/{NS}/served" in out.stdout and "gRPC: 127.0.0.1:" in out.stdout, out.stdout
    with alice(world) as c:
        c.delete(f"{API}/from-cli")
        c.delete(f"{API}/served")


def test_registry_alias_is_followed(world, models) -> None:
    token = world.token("alice", "alice-password-1")
    reg = f"/api/v1/namespaces/{NS}"
    with alice(world) as c:
        r = c.post(f"{reg}/registeredmodels", json={"apiVersion": "registry.flowyard.io/v1", "kind": "RegisteredModel",
                                                   "metadata": {"name": "digits-reg"}, "spec": {}})
        assert r.status_code == 201, r.text
        for n, folder in ((1, "digits"), (2, "sevens")):
            r = c.post(f"{reg}/modelversions", json={
                "apiVersion": "registry.flowyard.io/v1", "kind": "ModelVersion", "metadata": {"name": f"digits-reg-v{n}"},
                "spec": {"model": "digits-reg", "version": n, "uri": f"file://{models[folder]}", "format": "sklearn"}})
            assert r.status_code == 201, r.text
        assert c.patch(f"{reg}/registeredmodels/digits-reg", json={"spec": {"aliases": {"production": 1}}}).status_code == 200
        m = manifest("follower", "models:/digits-reg/production", annotations={"serving.flowyard.io/follow-alias": "true"})
        del m["spec"]["predictor"]["model"]["modelFormat"]  # the registry knows it
        assert c.post(API, json=m).status_code == 201
        st = wait_for(c, "follower", phase("Ready", "Failed"))["status"]
        assert st["phase"] == "Ready" and st["revisions"][-1]["storageUri"] == f"file://{models['digits']}", st
        assert c.patch(f"{reg}/registeredmodels/digits-reg", json={"spec": {"aliases": {"production": 2}}}).status_code == 200
        st = wait_for(c, "follower", lambda s: s["revisions"][-1]["storageUri"] == f"file://{models['sevens']}"
                      and s["revisions"][-1]["state"] == "Ready" and traffic(s) == {s["revisions"][-1]["name"]: 100},
                      timeout=60)["status"]
        r = httpx.post(f"{st['url']}/v1/models/follower:predict", json={"instances": ROW.tolist()},
                       headers={"Authorization": f"Bearer {token}"})
        assert r.json()["predictions"] == [7], r.text
        assert "AliasMoved" in [e["reason"] for e in c.get(f"{API}/follower/events").json()["items"]]
        c.delete(f"{API}/follower")
