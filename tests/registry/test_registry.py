"""The model registry on a live server: register a version from a run's Model artifact, move
aliases atomically, resolve `models:/`, keep namespaces apart, CLI, and lineage from a model
version and from an endpoint back to the training dataset."""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import os
import subprocess
import sys

import kfp
import pytest
from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

NS = "/api/v1/namespaces/admin"
M = f"{NS}/registeredmodels"


@dsl.component
def make_data(data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("1,2\n3,4\n")


@dsl.component
def fit(data: Input[Dataset], model: Output[Model]):
    import flowyard

    flowyard.log_metric("accuracy", 0.93)
    flowyard.flush()
    with open(model.path, "w") as f:
        f.write("weights")
    model.metadata["framework"] = "sklearn"


@dsl.pipeline(name="registry-train")
def train_pipeline():
    fit(data=make_data().outputs["data"])


@pytest.fixture(scope="module")
def trained(shared_server):
    client = kfp.Client(host=shared_server.url, existing_token=shared_server.token(), namespace="admin")
    result = client.create_run_from_pipeline_func(train_pipeline, experiment_name="registry")
    run = client.wait_for_run_completion(result.run_id, timeout=120, sleep_duration=0.3)
    assert run.state == "SUCCEEDED", run
    return result.run_id


def test_register_from_a_run_and_move_aliases(trained, shared_server) -> None:
    with shared_server.client() as c:
        r = c.post(f"{M}/iris/versions", json={"run": trained, "description": "first",
                                                "signature": {"inputs": [{"name": "x", "datatype": "fp32", "shape": [-1, 2]}]}})
        assert r.status_code == 201, r.text
        v1 = r.json()
        assert v1["metadata"]["name"] == "iris-v1" and v1["spec"]["version"] == 1
        assert v1["spec"]["uri"].startswith("file:///") and v1["spec"]["uri"].endswith("/fit/model")
        assert v1["spec"]["format"] == "sklearn" and v1["spec"]["metrics"] == {"accuracy": 0.93}
        assert v1["spec"]["run"]["uid"] == trained and v1["spec"]["run"]["task"] == "fit"
        assert v1["spec"]["signature"]["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]
        v2 = c.post(f"{M}/iris/versions", json={"uri": "/srv/models/iris-2", "format": "onnx"}).json()
        assert v2["spec"]["version"] == 2 and v2["spec"]["uri"] == "file:///srv/models/iris-2"

        assert c.put(f"{M}/iris/aliases/production", json={"version": 1}).status_code == 200
        assert c.put(f"{M}/iris/aliases/staging", json={"version": 2}).status_code == 200
        got = c.get(f"{M}/iris/resolve", params={"ref": "production"}).json()
        assert (got["version"], got["format"]) == (1, "sklearn")
        moved = c.put(f"{M}/iris/aliases/production", json={"version": 2}).json()
        assert moved["spec"]["aliases"] == {"production": 2, "staging": 2}
        assert c.get(f"{M}/iris/resolve", params={"ref": "production"}).json()["uri"] == "file:///srv/models/iris-2"
        assert c.get(f"{M}/iris/resolve", params={"ref": "latest"}).json()["version"] == 2

        # bad input: clear 4xx
        assert c.put(f"{M}/iris/aliases/production", json={"version": 9}).status_code == 404
        assert c.put(f"{M}/iris/aliases/latest", json={"version": 1}).status_code == 422
        assert c.put(f"{M}/iris/aliases/production", json={"version": "two"}).status_code == 422
        assert c.get(f"{M}/iris/resolve", params={"ref": "nope"}).status_code == 404
        assert c.post(f"{M}/iris/versions", json={"run": trained, "artifact": "missing"}).status_code == 404
        assert c.post(f"{M}/iris/versions", json={}).status_code == 422
        assert c.patch(f"{NS}/modelversions/iris-v1", json={"spec": {"uri": "file:///elsewhere"}}).status_code == 422
        model = c.get(f"{M}/iris").json()
        model["spec"]["aliases"]["canary"] = 7
        assert c.put(f"{M}/iris", json=model).status_code == 422  # no version 7
        assert c.patch(f"{M}/iris", json={"spec": {"aliases": {"Bad Alias": 1}}}).status_code == 422
        assert c.delete(f"{NS}/modelversions/iris-v2").status_code == 409  # aliased
        assert c.delete(f"{M}/iris").status_code == 409  # has versions


def test_resolve_model_uri_in_process(trained, shared_server, tmp_path) -> None:
    from flowyard.config import Settings
    from flowyard.errors import Invalid, NotFound
    from flowyard.platform import Platform
    from flowyard.registry import resolve_model_uri

    with shared_server.client() as c:
        c.post(f"{M}/inproc/versions", json={"uri": "file:///m/1", "format": "sklearn"})
        c.put(f"{M}/inproc/aliases/production", json={"version": 1})
    # the server's own database, opened by this process as serving's controller would use it
    p = Platform.open(Settings(home=tmp_path, db=shared_server.db) if shared_server.db
                      else Settings(home=shared_server.home))
    assert resolve_model_uri(p, "admin", "models:/inproc/production") == ("file:///m/1", "sklearn")
    assert resolve_model_uri(p, "admin", "models:/inproc/1") == ("file:///m/1", "sklearn")
    for bad, error in (("models:/inproc", Invalid), ("models:/nope/1", NotFound), ("models:/inproc/7", NotFound),
                       ("models:/inproc/staging", NotFound)):
        with pytest.raises(error):
            resolve_model_uri(p, "admin", bad)


def test_other_namespace_cannot_see_or_use_the_model(trained, shared_server) -> None:
    with shared_server.client() as c:
        c.post(f"{M}/secret-model/versions", json={"uri": "file:///m/s"})
    shared_server.add_user("eve")
    with shared_server.client("eve", "eve-password-1") as eve:
        assert eve.get(f"{M}/secret-model").status_code == 403
        assert eve.get(f"{M}/secret-model/resolve").status_code == 403
        assert eve.post(f"{M}/secret-model/versions", json={"uri": "file:///x"}).status_code == 403
        assert eve.put(f"{M}/secret-model/aliases/production", json={"version": 1}).status_code == 403
        assert eve.get("/api/v1/namespaces/eve/registeredmodels/secret-model").status_code == 404
        own = eve.post("/api/v1/namespaces/eve/inferenceservices", json={
            "metadata": {"name": "steal"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                             "storageUri": "models:/secret-model/1"}}}})
        if own.status_code == 201:  # accepted as a spec, but it never resolves in eve's namespace
            assert eve.get("/api/v1/namespaces/eve/registeredmodels/secret-model/resolve?ref=1").status_code == 404


def test_lineage_from_endpoint_back_to_the_dataset(trained, shared_server) -> None:
    with shared_server.client() as c:
        c.post(f"{M}/lineage-model/versions", json={"run": trained})
        c.put(f"{M}/lineage-model/aliases/production", json={"version": 1})
        isvc = c.post(f"{NS}/inferenceservices", json={
            "metadata": {"name": "lineage-endpoint"},
            "spec": {"predictor": {"minReplicas": 0, "model": {"modelFormat": {"name": "sklearn"},
                                                               "storageUri": "models:/lineage-model/production"}}}})
        assert isvc.status_code == 201, isvc.text
        g = c.get(f"{NS}/lineagegraph", params={"node": "inferenceservice:lineage-endpoint",
                                                 "direction": "upstream"}).json()
        kinds = {(n["kind"], n.get("name")) for n in g["nodes"]}
        assert ("modelversion", "lineage-model-v1") in kinds and ("execution", "fit") in kinds
        assert ("execution", "make-data") in kinds
        assert any(n["kind"] == "artifact" and n["type"] == "system.Dataset" for n in g["nodes"])
        assert {"source": "modelversion:lineage-model-v1", "target": "inferenceservice:lineage-endpoint",
                "kind": "serves"} in g["edges"]
        down = c.get(f"{NS}/lineagegraph", params={"node": "model:lineage-model", "direction": "downstream"}).json()
        assert "inferenceservice:lineage-endpoint" in {n["id"] for n in down["nodes"]}
        assert c.get(f"{NS}/lineagegraph", params={"node": "modelversion:nope"}).status_code == 404
        assert c.get(f"{NS}/lineagegraph", params={"node": "nonsense"}).status_code == 422


def test_cli_register_list_alias(trained, shared_server, tmp_path) -> None:
    env = {**os.environ, "FLOWYARD_URL": shared_server.url, "FLOWYARD_TOKEN": shared_server.token(),
           "FLOWYARD_NAMESPACE": "admin", "FLOWYARD_CONFIG": str(tmp_path / "none.json")}

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "flowyard", *args], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "cli-model version 1 registered" in cli("model", "register", "cli-model", "--run", trained,
                                                   "--alias", "staging")
    cli("model", "register", "cli-model", "--uri", "file:///m/2", "--format", "onnx")
    assert "cli-model@production -> version 2" in cli("model", "alias", "cli-model", "production", "2")
    listing = cli("model", "list", "cli-model")
    assert "production" in listing and "staging" in listing and "onnx" in listing
    assert "cli-model" in cli("model", "list")
    bad = subprocess.run([sys.executable, "-m", "flowyard", "model", "alias", "cli-model", "production", "5"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "no version 5" in bad.stderr
