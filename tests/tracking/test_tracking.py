"""Tracking on a live server: metrics from a pipeline task and from a notebook-like process
appear on their runs; the compare view filters and sorts by metrics and params."""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import subprocess
import sys
import textwrap

import httpx
import kfp
import pytest
from kfp import dsl
from kfp.dsl import Metrics, Output

NS = "/api/v1/namespaces/admin"
T = f"{NS}/tracking"


@dsl.component
def train(lr: float, metrics: Output[Metrics]) -> float:
    import flowyard

    flowyard.log_param("optimizer", "adam")
    for step in range(5):
        flowyard.log_metric("loss", 1.0 / (step + 1) + lr)
    flowyard.flush()
    metrics.log_metric("accuracy", 0.75)
    return lr


@dsl.pipeline(name="tracked-train")
def tracked_pipeline(lr: float = 0.1):
    train(lr=lr)


@pytest.fixture(scope="module")
def kfp_client(shared_server):
    return kfp.Client(host=shared_server.url, existing_token=shared_server.token(), namespace="admin")


def test_metrics_from_a_pipeline_task(kfp_client, shared_server) -> None:
    result = kfp_client.create_run_from_pipeline_func(tracked_pipeline, arguments={"lr": 0.1},
                                                      experiment_name="tracked")
    run = kfp_client.wait_for_run_completion(result.run_id, timeout=120, sleep_duration=0.3)
    assert run.state == "SUCCEEDED", run
    with shared_server.client() as c:
        got = c.get(f"{T}/runs/{result.run_id}").json()
        assert got["source"] == "Run" and got["state"] == "SUCCEEDED"
        assert got["params"] == {"lr": "0.1", "optimizer": "adam"}
        assert got["metrics"]["loss"]["step"] == 4 and got["metrics"]["loss"]["value"] == pytest.approx(0.3)
        assert got["metrics"]["accuracy"]["value"] == 0.75  # from the KFP Metrics artifact
        history = c.get(f"{T}/runs/{result.run_id}/metrics", params={"key": "loss"}).json()["metrics"]["loss"]
        assert [h["step"] for h in history] == [0, 1, 2, 3, 4]
        page = c.get(f"{T}/experiments/tracked/runs").json()
        assert [r["uid"] for r in page["runs"]] == [result.run_id] and page["metricKeys"] == ["accuracy", "loss"]
        # the task's token ended with the run
        assert not [t for t in c.get("/api/v1/tokens").json()["items"] if t["name"].startswith("run:")]


def test_metrics_from_a_notebook_process(shared_server, tmp_path) -> None:
    with shared_server.client() as c:
        token = c.post("/api/v1/tokens", json={"name": "nb", "namespace": "admin"}).json()["token"]
    env = {"FLOWYARD_URL": shared_server.url, "FLOWYARD_TOKEN": token, "FLOWYARD_NAMESPACE": "admin",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    script = textwrap.dedent("""
        import flowyard
        with flowyard.start_run(experiment="notebook-exp", name="nb-run", params={"lr": 0.01}) as run:
            flowyard.set_tag("by", "notebook")
            for i in range(300):
                flowyard.log_metric("loss", 1 / (i + 1))
            flowyard.log_metrics({"accuracy": 0.97})
            print(run.id)
    """)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    uid = out.stdout.strip()
    with shared_server.client() as c:
        got = c.get(f"{T}/runs/{uid}").json()
        assert (got["source"], got["state"], got["name"]) == ("Notebook", "SUCCEEDED", "nb-run")
        assert got["tags"] == {"by": "notebook"} and got["params"] == {"lr": "0.01"}
        assert got["metrics"]["loss"]["step"] == 299 and got["metrics"]["accuracy"]["value"] == 0.97
        # the notebook's experiment is a KFP experiment, and the engine never ran anything for it
        exps = c.get("/apis/v2beta1/experiments", params={"namespace": "admin"}).json()["experiments"]
        assert "notebook-exp" in [e["display_name"] for e in exps]
        assert uid not in [r["metadata"]["uid"] for r in c.get(f"{NS}/runs").json()["items"]]
    # no start_run: the first log starts a run in $FLOWYARD_EXPERIMENT, ended at exit
    out = subprocess.run([sys.executable, "-c", "import flowyard; flowyard.log_metric('x', 1.5)"],
                         env={**env, "FLOWYARD_EXPERIMENT": "auto-exp"}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with shared_server.client() as c:
        runs = c.get(f"{T}/experiments/auto-exp/runs").json()["runs"]
        assert [(r["state"], r["metrics"]) for r in runs] == [("SUCCEEDED", {"x": 1.5})]


def _run(c: httpx.Client, name: str, lr: float, opt: str, acc: float | None) -> str:
    uid = c.post(f"{T}/runs", json={"experiment": "grid", "name": name,
                                    "params": {"lr": lr, "optimizer": opt}}).json()["uid"]
    if acc is not None:
        metrics = [{"key": "accuracy", "value": acc - 0.1, "step": 0}, {"key": "accuracy", "value": acc, "step": 1}]
        assert c.post(f"{T}/runs/{uid}/log", json={"metrics": metrics}).status_code == 200
    return uid


def test_filter_and_sort_by_metrics_and_params(shared_server) -> None:
    with shared_server.client() as c:
        for i, (lr, opt, acc) in enumerate([(0.1, "adam", 0.95), (0.01, "sgd", 0.91), (0.001, "adam", 0.8),
                                            (0.05, "rmsprop", 0.99), (0.2, "sgd", None)]):
            _run(c, f"g{i}", lr, opt, acc)

        def names(flt: str = "", order: str | None = None, **extra) -> list[str]:
            params = {"filter": flt, **extra}
            if order:
                params["order_by"] = order
            r = c.get(f"{T}/experiments/grid/runs", params=params)
            assert r.status_code == 200, r.text
            return [x["name"] for x in r.json()["runs"]]

        assert names("metrics.accuracy > 0.9", "metrics.accuracy DESC") == ["g3", "g0", "g1"]
        assert names("metrics.accuracy > 0.9 AND params.lr < 0.1", "metrics.accuracy") == ["g1", "g3"]
        assert names("params.optimizer IN ('sgd', 'rmsprop') OR metrics.accuracy < 0.85", "name") == \
            ["g1", "g2", "g3", "g4"]
        assert names("(params.optimizer = 'adam' OR params.lr >= 0.2) AND NOT metrics.accuracy < 0.9",
                     "params.lr") == ["g0"]
        assert names("metrics.accuracy IS NULL") == ["g4"]
        assert names("", "metrics.accuracy ASC")[-1] == "g4"  # runs without the metric sort last
        page = c.get(f"{T}/experiments/grid/runs", params={"order_by": "params.lr", "page_size": 2}).json()
        assert [r["name"] for r in page["runs"]] == ["g2", "g1"] and page["total"] == 5
        assert page["metricKeys"] == ["accuracy"] and page["paramKeys"] == ["lr", "optimizer"]
        assert page["runs"][0]["metrics"] == {"accuracy": 0.8}
        nxt = c.get(f"{T}/experiments/grid/runs", params={"order_by": "params.lr", "page_size": 2,
                                                           "page_token": page["nextPageToken"]}).json()
        assert [r["name"] for r in nxt["runs"]] == ["g3", "g0"]
        for bad in ("metrics.accuracy >", "foo.bar = 1", "metrics.a = 1 metrics.b = 2", "(metrics.a = 1",
                    "params.x ~ 3"):
            r = c.get(f"{T}/experiments/grid/runs", params={"filter": bad})
            assert r.status_code == 422 and "filter" in r.json()["message"], (bad, r.text)
        compared = c.get(f"{T}/compare", params={"runs": "g0,g1"}).json()
        assert compared["differentParams"] == ["lr", "optimizer"]
        assert [h["value"] for h in compared["runs"][0]["history"]["accuracy"]] == pytest.approx([0.85, 0.95])


def test_bad_input_is_a_4xx(shared_server) -> None:
    with shared_server.client() as c:
        uid = c.post(f"{T}/runs", json={"name": "bad"}).json()["uid"]
        for body in ({"metrics": "x"}, {"metrics": [{"key": "a", "value": "high"}]}, {"metrics": [{"value": 1}]},
                     {"params": [1]}, {"metrics": [{"key": "a", "value": 1, "step": 1.5}]}):
            r = c.post(f"{T}/runs/{uid}/log", json=body)
            assert r.status_code == 422, (body, r.text)
        assert c.post(f"{T}/runs/nope/log", json={"metrics": []}).status_code == 404
        assert c.post(f"{T}/runs/{uid}/end", json={"state": "DONE"}).status_code == 422


def test_metrics_from_tuning_trials(shared_server) -> None:
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tuning"))
    from katib import experiment, trials_of, wait_done

    code = ("import flowyard; x=float('${trialParameters.x}'); "
            "[flowyard.log_metric('curve', x * s) for s in range(3)]; flowyard.log_param('x', x); "
            "print(f'loss={(x-1)**2}')")
    with shared_server.client() as c:
        r = c.post("/api/v1/namespaces/admin/tuningexperiments", json=experiment("tracked-tune", code, max_trials=2))
        assert r.status_code == 201, r.text
        assert wait_done(c, "tracked-tune")["status"]["phase"] == "Succeeded"
        names = {t["metadata"]["name"] for t in trials_of(c, "tracked-tune")}
        runs = c.get(f"{T}/experiments/tracked-tune/runs", params={"order_by": "params.x"}).json()["runs"]
        assert {r["name"] for r in runs} == names
        assert {(r["source"], r["state"]) for r in runs} == {("Trial", "SUCCEEDED")}
        assert all(r["metrics"]["curve"] == pytest.approx(2 * float(r["params"]["x"])) for r in runs)
        # a trial's token only lets it log to itself
        other = httpx.post(f"{shared_server.url}{T}/runs/{runs[0]['name']}/log", json={"metrics": []},
                           headers={"X-Flowyard-Trial-Token": "0" * 64})
        assert other.status_code == 401
