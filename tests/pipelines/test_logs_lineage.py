"""Task logs, run logs and lineage of pipeline runs, driven by the real `kfp.Client` on a live server."""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import os
import subprocess
import sys
import threading
from urllib.parse import quote

import pytest

import kfp
from kfp import dsl  # noqa: E402
from kfp.dsl import Dataset, Input, Model, Output  # noqa: E402

NS = "/api/v1/namespaces/admin"


@dsl.component
def make_data(rows: int, data: Output[Dataset]):
    print("MAKE-DATA-SAYS rows", rows)
    with open(data.path, "w") as f:
        f.write("x\n" * rows)
    data.metadata["rows"] = rows


@dsl.component
def train(data: Input[Dataset], model: Output[Model]):
    import time

    time.sleep(0.3)
    with open(data.path) as f:
        n = len(f.readlines())
    print("TRAIN-SAYS saw", n, "rows")
    with open(model.path, "w") as f:
        f.write(f"model of {n}")
    model.metadata["accuracy"] = 0.9


@dsl.pipeline(name="lineage-train")
def train_pipeline(rows: int = 3):
    data = make_data(rows=rows)
    train(data=data.outputs["data"])


@dsl.pipeline(name="lineage-retrain")
def retrain_pipeline(uri: str):
    imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset)
    train(data=imported.output)


@pytest.fixture(scope="module")
def kfp_client(shared_server):
    return kfp.Client(host=shared_server.url, existing_token=shared_server.token(), namespace="admin")


@pytest.fixture(scope="module")
def first(kfp_client, shared_server):
    """A finished train pipeline run: (run id, its Run manifest); the run log was followed from the start."""
    result = kfp_client.create_run_from_pipeline_func(train_pipeline, arguments={"rows": 4},
                                                      experiment_name="lineage")
    followed: dict[str, str] = {}

    def follow(key: str, path: str) -> None:
        with shared_server.client() as c:
            followed[key] = c.get(path, params={"follow": "true"}, timeout=120).text

    # started at once: `train` is still waiting for `make-data`, the run may not have a task yet
    threads = [threading.Thread(target=follow, args=("train", f"{NS}/runs/{result.run_id}/tasks/train/log")),
               threading.Thread(target=follow, args=("run", _run_log_path(shared_server, result.run_id)))]
    for t in threads:
        t.start()
    run = kfp_client.wait_for_run_completion(result.run_id, timeout=120, sleep_duration=0.5)
    assert run.state == "SUCCEEDED", run
    for t in threads:
        t.join(60)
    with shared_server.client() as c:
        obj = _manifest(c, result.run_id)
    return result.run_id, obj, followed


def _manifest(c, run_id: str) -> dict:
    return next(i for i in c.get(f"{NS}/runs").json()["items"] if i["metadata"]["uid"] == run_id)


def _run_log_path(server, run_id: str) -> str:
    with server.client() as c:
        return f"{NS}/runs/{_manifest(c, run_id)['metadata']['name']}/log"


def _artifact_uri(obj: dict, task: str, output: str) -> str:
    return obj["status"]["tasks"][task]["outputs"]["artifacts"][output][0]["uri"]


def test_task_logs(first, shared_server) -> None:
    run_id, obj, followed = first
    name = obj["metadata"]["name"]
    with shared_server.client() as c:
        for run in (name, run_id):  # the resource name or the KFP run id
            r = c.get(f"{NS}/runs/{run}/tasks/make-data/log")
            assert r.status_code == 200 and "MAKE-DATA-SAYS rows 4" in r.text
            assert "TRAIN-SAYS" not in r.text
        r = c.get(f"{NS}/runs/{name}/tasks/train/log", params={"tail": 1})
        assert r.status_code == 200 and "TRAIN-SAYS saw 4 rows" in c.get(f"{NS}/runs/{name}/tasks/train/log").text
        assert len(r.text.strip().splitlines()) <= 1
        missing = c.get(f"{NS}/runs/{name}/tasks/nope/log")
        assert missing.status_code == 404 and "make-data" in missing.json()["message"]
        assert c.get(f"{NS}/runs/no-such-run/tasks/train/log").status_code == 404
    # followed before the task started: waited for it, then ended with it
    assert "TRAIN-SAYS saw 4 rows" in followed["train"]


def test_run_log_has_every_task(first, shared_server) -> None:
    _, obj, followed = first
    with shared_server.client() as c:
        text = c.get(f"{NS}/runs/{obj['metadata']['name']}/log").text
    for got in (text, followed["run"]):
        lines = got.splitlines()
        assert any(line.startswith("[make-data] ") and "MAKE-DATA-SAYS rows 4" in line for line in lines), got
        assert any(line.startswith("[train] ") and "TRAIN-SAYS saw 4 rows" in line for line in lines), got


def test_cli_logs_run(first, shared_server, tmp_path) -> None:
    run_id, obj, _ = first
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYARD_")}
    env.update(HOME=str(tmp_path), FLOWYARD_URL=shared_server.url, FLOWYARD_TOKEN=shared_server.token())

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "flowyard", "logs", *args], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "TRAIN-SAYS saw 4 rows" in cli("run", run_id, "train", "-n", "admin")
    both = cli("run", obj["metadata"]["name"], "-f")
    assert "[make-data] MAKE-DATA-SAYS" in both and "[train] TRAIN-SAYS" in both


def test_lineage_upstream_of_the_model(first, shared_server) -> None:
    run_id, obj, _ = first
    model = _artifact_uri(obj, "train", "model")
    dataset = _artifact_uri(obj, "make-data", "data")
    with shared_server.client() as c:
        got = c.get(f"{NS}/lineage", params={"artifact": f"file://{model}", "direction": "upstream"}).json()
    nodes = {n["id"]: n for n in got["nodes"]}
    execs = {(n["run"], n["task"]) for n in got["nodes"] if n["kind"] == "execution"}
    name = obj["metadata"]["name"]
    assert execs == {(name, "train"), (name, "make-data")}
    assert nodes[f"artifact:{model}"]["type"] == "system.Model"
    assert nodes[f"artifact:{model}"]["metadata"]["accuracy"] == 0.9
    assert nodes[f"artifact:{dataset}"]["type"] == "system.Dataset"
    assert {"run": name, "task": "make-data"} in nodes[f"artifact:{dataset}"]["producers"]
    assert nodes[f"run:{run_id}"]["kind"] == "run" and nodes[f"run:{run_id}"]["pipeline"] == "lineage-train"
    edges = {(e["source"], e["target"], e["kind"]) for e in got["edges"]}
    train_id, make_id = f"execution:{run_id}/train", f"execution:{run_id}/make-data"
    assert {(train_id, f"artifact:{model}", "output"), (f"artifact:{dataset}", train_id, "input"),
            (make_id, f"artifact:{dataset}", "output"), (f"run:{run_id}", train_id, "task")} <= edges
    # depth 1: the training task and its inputs, not who made them
    with shared_server.client() as c:
        near = c.get(f"{NS}/lineage", params={"artifact": model, "direction": "upstream", "depth": 1}).json()
    assert {n["task"] for n in near["nodes"] if n["kind"] == "execution"} == {"train"}
    assert f"artifact:{dataset}" in {n["id"] for n in near["nodes"]}


def test_lineage_downstream_of_a_dataset_across_runs(first, kfp_client, shared_server) -> None:
    run_id, obj, _ = first
    dataset = _artifact_uri(obj, "make-data", "data")
    again = kfp_client.create_run_from_pipeline_func(retrain_pipeline, arguments={"uri": f"file://{dataset}"},
                                                     experiment_name="lineage")
    assert kfp_client.wait_for_run_completion(again.run_id, timeout=120, sleep_duration=0.5).state == "SUCCEEDED"
    with shared_server.client() as c:
        got = c.get(f"{NS}/lineage", params={"artifact": dataset, "direction": "downstream"}).json()
        second = _manifest(c, again.run_id)
        by_run = c.get(f"{NS}/lineage", params={"run": again.run_id}).json()
        assert c.get(f"{NS}/lineage").status_code == 422
        assert c.get(f"{NS}/lineage", params={"artifact": "/no/such/thing"}).status_code == 404
    runs = {n["uid"] for n in got["nodes"] if n["kind"] == "run"}
    assert runs == {run_id, again.run_id}
    trainers = {(n["runUid"], n["task"]) for n in got["nodes"] if n["kind"] == "execution"}
    assert trainers == {(run_id, "train"), (again.run_id, "train")}
    models = {n["uri"] for n in got["nodes"] if n["kind"] == "artifact" and n["type"] == "system.Model"}
    assert models == {_artifact_uri(obj, "train", "model"), _artifact_uri(second, "train", "model")}
    # the run view: importer + train, the imported dataset and the new model
    assert {n["task"] for n in by_run["nodes"] if n["kind"] == "execution"} == {"importer", "train"}
    assert f"artifact:{dataset}" in {n["id"] for n in by_run["nodes"]}


def test_outsider_gets_403(first, shared_server) -> None:
    run_id, obj, _ = first
    shared_server.add_user("lineage-outsider")
    with shared_server.client("lineage-outsider", "lineage-outsider-password-1") as c:
        for path in (f"{NS}/runs/{run_id}/tasks/train/log", f"{NS}/runs/{obj['metadata']['name']}/log",
                     f"{NS}/lineage?run={quote(obj['metadata']['name'])}",
                     f"{NS}/lineage?artifact={quote(_artifact_uri(obj, 'train', 'model'))}"):
            r = c.get(path)
            assert r.status_code == 403, (path, r.status_code, r.text)
            assert "TRAIN-SAYS" not in r.text and "nodes" not in r.text
