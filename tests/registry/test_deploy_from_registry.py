"""Deploy from the registry end to end: a pipeline trains and registers version 1, an
InferenceService serves `models:/digits-reg/production`, the alias moves to version 2 and the
endpoint serves the new version; the endpoint's monitoring counts the requests; another
namespace cannot deploy the model."""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import time

import httpx
import joblib
import kfp
import numpy as np
from kfp import dsl
from kfp.dsl import Model, Output
from sklearn.dummy import DummyClassifier

NS = "/api/v1/namespaces/admin"
ROW = [[0.0] * 4]


@dsl.component
def train_constant(label: int, model: Output[Model]):
    import os

    import joblib
    import numpy as np
    from sklearn.dummy import DummyClassifier

    os.makedirs(model.path, exist_ok=True)
    clf = DummyClassifier(strategy="constant", constant=label).fit(np.zeros((4, 4)), [0, 1, label, label])
    joblib.dump(clf, os.path.join(model.path, "model.joblib"))
    model.metadata["framework"] = "sklearn"


@dsl.pipeline(name="registry-deploy")
def deploy_pipeline(label: int = 7):
    train_constant(label=label)


def _predict(url: str, token: str) -> int | None:
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW[0]}]}
    try:
        r = httpx.post(f"{url}/v2/models/digits-endpoint/infer", json=body,
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    except httpx.HTTPError:
        return None
    return r.json()["outputs"][0]["data"][0] if r.status_code == 200 else None


def test_deploy_by_alias_and_follow_a_move(shared_server, tmp_path) -> None:
    client = kfp.Client(host=shared_server.url, existing_token=shared_server.token(), namespace="admin")
    result = client.create_run_from_pipeline_func(deploy_pipeline, arguments={"label": 7}, experiment_name="deploy")
    assert client.wait_for_run_completion(result.run_id, timeout=120, sleep_duration=0.3).state == "SUCCEEDED"
    v2_dir = tmp_path / "v2"
    v2_dir.mkdir()
    joblib.dump(DummyClassifier(strategy="constant", constant=3).fit(np.zeros((4, 4)), [0, 1, 3, 3]),
                v2_dir / "model.joblib")
    token = shared_server.token()
    with shared_server.client() as c:
        v1 = c.post(f"{NS}/registeredmodels/digits-reg/versions", json={"run": result.run_id}).json()
        assert v1["spec"]["version"] == 1 and v1["spec"]["format"] == "sklearn"
        c.post(f"{NS}/registeredmodels/digits-reg/versions", json={"uri": str(v2_dir), "format": "sklearn"})
        c.put(f"{NS}/registeredmodels/digits-reg/aliases/production", json={"version": 1})
        r = c.post(f"{NS}/inferenceservices", json={
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "digits-endpoint", "annotations": {"serving.flowyard.io/follow-alias": "true"}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                             "storageUri": "models:/digits-reg/production"}}}})
        assert r.status_code == 201, r.text
        deadline = time.time() + 120
        status: dict = {}
        while time.time() < deadline:
            status = c.get(f"{NS}/inferenceservices/digits-endpoint").json().get("status") or {}
            if status.get("phase") in ("Ready", "Failed"):
                break
            time.sleep(0.2)
        assert status.get("phase") == "Ready", status
        url = status["url"]
        assert _predict(url, token) == 7

        c.put(f"{NS}/registeredmodels/digits-reg/aliases/production", json={"version": 2})
        deadline = time.time() + 120
        while _predict(url, token) != 3:
            assert time.time() < deadline, c.get(f"{NS}/inferenceservices/digits-endpoint/events").text
            time.sleep(0.5)

        watched = c.get(f"{NS}/inferenceservices/digits-endpoint/monitoring").json()
        assert watched["total"]["requests"] >= 2
        lineage = c.get(f"{NS}/lineagegraph", params={"node": "inferenceservice:digits-endpoint",
                                                        "direction": "upstream"}).json()
        assert "modelversion:digits-reg-v2" in {n["id"] for n in lineage["nodes"]}

    shared_server.add_user("mallory")
    with shared_server.client("mallory", "mallory-password-1") as m:
        r = m.post("/api/v1/namespaces/mallory/inferenceservices", json={
            "metadata": {"name": "steal"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                             "storageUri": "models:/digits-reg/production"}}}})
        assert r.status_code == 201, r.text  # the spec is fine; the reference never resolves in mallory's namespace
        deadline = time.time() + 60
        while True:
            st = m.get("/api/v1/namespaces/mallory/inferenceservices/steal").json().get("status") or {}
            reasons = {c_.get("reason") for c_ in st.get("conditions") or []}
            if "StorageUnresolved" in reasons:
                break
            assert st.get("phase") != "Ready" and time.time() < deadline, st
            time.sleep(0.2)
        assert m.get(f"{NS}/registeredmodels/digits-reg").status_code == 403
