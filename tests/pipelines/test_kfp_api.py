"""The KFP v2beta1 REST facade, driven by the real, unmodified `kfp.Client` against a live server."""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import json
import time
from pathlib import Path

import httpx
import pytest

import kfp
from kfp import compiler, dsl  # noqa: E402
from kfp_server_api.exceptions import ApiException  # noqa: E402


@dsl.component
def add(a: float, b: float) -> float:
    return a + b


@dsl.pipeline(name="calc-pipeline", description="classic calc pipeline")
def calc(a: float = 7.0, b: float = 8.0) -> float:
    first = add(a=a, b=4.0)
    second = add(a=a, b=b)
    return add(a=first.output, b=second.output).output


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pkg") / "calc.yaml"
    compiler.Compiler().compile(calc, str(path))
    return path


@pytest.fixture(scope="module")
def client(shared_server):
    return kfp.Client(host=shared_server.url, existing_token=shared_server.token(), namespace="admin")


def _wait(cond, timeout: float = 20.0, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_healthz_lets_a_client_without_namespace_connect(shared_server) -> None:
    c = kfp.Client(host=shared_server.url, existing_token=shared_server.token())
    assert c.get_kfp_healthz().multi_user is False
    # the empty namespace the client sends means the caller's own
    exp = c.create_experiment("no-ns-exp")
    assert exp.namespace == "admin"


def test_experiments(client) -> None:
    exp = client.create_experiment("exp-a", description="first")
    assert exp.experiment_id and exp.display_name == "exp-a"
    again = client.create_experiment("exp-a")  # kfp looks it up by name first
    assert again.experiment_id == exp.experiment_id
    assert client.get_experiment(experiment_id=exp.experiment_id).description == "first"
    assert client.get_experiment(experiment_name="exp-a").experiment_id == exp.experiment_id
    for i in range(3):
        client.create_experiment(f"exp-page-{i}")
    first = client.list_experiments(page_size=2, sort_by="display_name desc", namespace="admin")
    assert len(first.experiments) == 2 and first.next_page_token and first.total_size >= 4
    names = [e.display_name for e in first.experiments]
    assert names == sorted(names, reverse=True)
    second = client.list_experiments(page_size=2, page_token=first.next_page_token, sort_by="display_name desc",
                                     namespace="admin")
    assert not {e.experiment_id for e in second.experiments} & {e.experiment_id for e in first.experiments}
    flt = json.dumps({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": "exp-page-1"}]})
    assert [e.display_name for e in client.list_experiments(filter=flt, namespace="admin").experiments] == ["exp-page-1"]
    client.archive_experiment(exp.experiment_id)
    assert client.get_experiment(experiment_id=exp.experiment_id).storage_state == "ARCHIVED"
    client.unarchive_experiment(exp.experiment_id)
    assert client.get_experiment(experiment_id=exp.experiment_id).storage_state == "AVAILABLE"
    client.delete_experiment(exp.experiment_id)
    with pytest.raises(ApiException) as e:
        client.get_experiment(experiment_id=exp.experiment_id)
    assert e.value.status == 404 and "not found" in e.value.body


def test_pipelines_and_versions(client, package) -> None:
    pipeline = client.upload_pipeline(str(package), pipeline_name="calc-up", description="d")
    assert pipeline.pipeline_id and pipeline.display_name == "calc-up"
    assert client.get_pipeline_id("calc-up") == pipeline.pipeline_id
    assert client.get_pipeline(pipeline.pipeline_id).description == "d"
    with pytest.raises(ApiException) as e:
        client.upload_pipeline(str(package), pipeline_name="calc-up")
    assert e.value.status == 409
    v2 = client.upload_pipeline_version(str(package), pipeline_version_name="v2", pipeline_id=pipeline.pipeline_id)
    assert v2.pipeline_id == pipeline.pipeline_id and v2.pipeline_version_id
    versions = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    assert {v.display_name for v in versions} == {"calc-up", "v2"}
    got = client.get_pipeline_version(pipeline.pipeline_id, v2.pipeline_version_id)
    assert got.pipeline_spec["pipelineInfo"]["name"] == "calc-pipeline"
    assert any(p.pipeline_id == pipeline.pipeline_id for p in client.list_pipelines().pipelines)
    client.delete_pipeline_version(pipeline.pipeline_id, v2.pipeline_version_id)
    assert len(client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions) == 1


def test_upload_rejects_garbage(shared_server) -> None:
    with shared_server.client() as c:
        r = c.post("/apis/v2beta1/pipelines/upload?name=bad", files={"uploadfile": ("x.yaml", b"a: [1,")})
        assert r.status_code == 422 and r.json()["code"] == "Invalid"
        r = c.post("/apis/v2beta1/pipelines/upload?name=bad", files={"uploadfile": ("x.yaml", b"a: 1")})
        assert r.status_code == 422 and "pipelineInfo.name" in r.json()["message"]


def test_runs(client, package, shared_server) -> None:
    exp = client.create_experiment("runs-exp")
    pipeline = client.upload_pipeline(str(package), pipeline_name="calc-runs")
    version = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions[0]
    r1 = client.run_pipeline(exp.experiment_id, "from-version", params={"a": 1, "b": 2},
                             pipeline_id=pipeline.pipeline_id, version_id=version.pipeline_version_id)
    run = client.get_run(r1.run_id)
    assert run.experiment_id == exp.experiment_id and run.display_name == "from-version"
    assert run.runtime_config.parameters == {"a": 1.0, "b": 2.0}
    assert run.pipeline_spec["pipelineInfo"]["name"] == "calc-pipeline"
    assert run.state in ("PENDING", "RUNNING", "SUCCEEDED")
    r2 = client.create_run_from_pipeline_func(calc, arguments={"a": 3}, experiment_name="runs-exp",
                                              run_name="from-func")
    r3 = client.create_run_from_pipeline_package(str(package), arguments={}, run_name="from-pkg",
                                                 experiment_name="runs-exp")
    assert client.get_run(r3.run_id).runtime_config.parameters == {"a": 7.0, "b": 8.0}  # defaults filled in
    runs = client.list_runs(experiment_id=exp.experiment_id, sort_by="created_at desc").runs
    assert {x.run_id for x in runs} == {r1.run_id, r2.run_id, r3.run_id}
    page1 = client.list_runs(namespace="admin", page_size=2, sort_by="display_name")
    assert len(page1.runs) == 2 and page1.next_page_token
    flt = json.dumps({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": "from-func"}]})
    assert [x.run_id for x in client.list_runs(namespace="admin", filter=flt).runs] == [r2.run_id]
    # bad input: unknown parameter, wrong type
    with pytest.raises(ApiException) as e:
        client.run_pipeline(exp.experiment_id, "bad", params={"zz": 1}, pipeline_id=pipeline.pipeline_id,
                            version_id=version.pipeline_version_id)
    assert e.value.status == 422 and "zz" in e.value.body
    with pytest.raises(ApiException) as e:
        client.run_pipeline(exp.experiment_id, "bad", params={"a": "x"}, pipeline_id=pipeline.pipeline_id,
                            version_id=version.pipeline_version_id)
    assert e.value.status == 422 and "NUMBER_DOUBLE" in e.value.body
    # archive / terminate / delete
    client.archive_run(r1.run_id)
    assert client.get_run(r1.run_id).storage_state == "ARCHIVED"
    client.unarchive_run(r1.run_id)
    assert client.get_run(r1.run_id).storage_state == "AVAILABLE"
    client.terminate_run(r2.run_id)
    # the generic API and CLI see the same objects by name
    with shared_server.client() as c:
        items = c.get("/api/v1/namespaces/admin/runs").json()["items"]
        assert r1.run_id in {i["metadata"]["uid"] for i in items}
        mine = next(i for i in items if i["metadata"]["uid"] == r2.run_id)
        # terminate marks a run that is still active; one that already finished stays as it was
        assert mine["spec"].get("terminate") is True or mine["status"].get("state") in ("SUCCEEDED", "FAILED")
    client.delete_run(r1.run_id)
    with pytest.raises(ApiException) as e:
        client.get_run(r1.run_id)
    assert e.value.status == 404
    final = _wait(lambda: client.get_run(r2.run_id).state in ("CANCELED", "SUCCEEDED", "FAILED")
                  and client.get_run(r2.run_id).state, 60, "terminated run to stop")
    assert final in ("CANCELED", "SUCCEEDED")


def test_calc_pipeline_end_to_end(client, shared_server) -> None:
    result = client.create_run_from_pipeline_func(calc, arguments={"a": 7, "b": 8}, experiment_name="e2e")
    run = client.wait_for_run_completion(result.run_id, timeout=180, sleep_duration=1)
    assert run.state == "SUCCEEDED", run
    assert run.run_details and run.run_details.task_details
    outputs = client.get_run(result.run_id)
    with shared_server.client() as c:
        obj = next(i for i in c.get("/api/v1/namespaces/admin/runs").json()["items"]
                   if i["metadata"]["uid"] == result.run_id)
    assert obj["status"]["state"] == "SUCCEEDED" and outputs.finished_at
    assert "26.0" in json.dumps(obj["status"].get("outputs")), obj["status"].get("outputs")


def test_recurring_runs(client, package, shared_server) -> None:
    exp = client.create_experiment("rr-exp")
    rr = client.create_recurring_run(exp.experiment_id, "every-second", pipeline_package_path=str(package),
                                     params={"a": 1}, interval_second=1, max_concurrency=10)
    assert rr.recurring_run_id and rr.status == "ENABLED" and str(rr.trigger.periodic_schedule.interval_second) == "1"
    got = client.get_recurring_run(rr.recurring_run_id)
    assert got.display_name == "every-second" and got.mode == "ENABLE"
    listed = client.list_recurring_runs(experiment_id=exp.experiment_id)
    assert [x.recurring_run_id for x in listed.recurring_runs] == [rr.recurring_run_id]

    def made() -> list:
        return [r for r in (client.list_runs(experiment_id=exp.experiment_id).runs or [])
                if r.recurring_run_id == rr.recurring_run_id]

    _wait(lambda: len(made()) >= 2, 15, "the recurring run to create two runs")
    client.disable_recurring_run(rr.recurring_run_id)
    assert client.get_recurring_run(rr.recurring_run_id).status == "DISABLED"
    time.sleep(1.5)
    count = len(made())
    time.sleep(2.5)
    assert len(made()) == count, "a disabled recurring run must not create runs"
    client.enable_recurring_run(rr.recurring_run_id)
    _wait(lambda: len(made()) > count, 15, "runs after enabling again")
    client.delete_recurring_run(rr.recurring_run_id)
    with pytest.raises(ApiException):
        client.get_recurring_run(rr.recurring_run_id)
    cron = client.create_recurring_run(exp.experiment_id, "cron", pipeline_package_path=str(package),
                                       cron_expression="0 0 3 * * *", enabled=False)
    assert client.get_recurring_run(cron.recurring_run_id).trigger.cron_schedule.cron == "0 0 3 * * *"
    with shared_server.client() as c:
        bad = c.post("/apis/v2beta1/recurringruns", json={
            "display_name": "bad", "experiment_id": exp.experiment_id, "pipeline_spec": got.pipeline_spec,
            "trigger": {"cron_schedule": {"cron": "61 * * * *"}}})
        assert bad.status_code == 422 and "out of range" in bad.json()["message"]


@dsl.component
def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@dsl.pipeline(name="napper")
def napper(seconds: float = 4.0):
    nap(seconds=seconds)


def test_max_concurrency_limits_active_runs(client, tmp_path: Path) -> None:
    package = tmp_path / "napper.yaml"
    compiler.Compiler().compile(napper, str(package))
    exp = client.create_experiment("rr-limit")
    rr = client.create_recurring_run(exp.experiment_id, "limited", pipeline_package_path=str(package),
                                     interval_second=1, max_concurrency=1)
    _wait(lambda: len(client.list_runs(experiment_id=exp.experiment_id).runs or []) >= 1, 15, "one run")
    time.sleep(2.5)  # two more slots passed while the first run (4 s) was still active
    runs = client.list_runs(experiment_id=exp.experiment_id).runs
    client.delete_recurring_run(rr.recurring_run_id)
    assert len(runs) == 1, [(r.display_name, r.state) for r in runs]


def test_namespaces_are_enforced(shared_server, package) -> None:
    shared_server.add_user("kfp-eve")
    eve = kfp.Client(host=shared_server.url, existing_token=shared_server.token("kfp-eve", "kfp-eve-password-1"),
                     namespace="kfp-eve")
    admin = kfp.Client(host=shared_server.url, existing_token=shared_server.token(), namespace="admin")
    secret = admin.create_experiment("admins-only")
    with pytest.raises(ApiException) as e:
        eve.get_experiment(experiment_id=secret.experiment_id)
    assert e.value.status == 404
    with pytest.raises(ApiException) as e:
        eve.list_experiments(namespace="admin")
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        eve.create_run_from_pipeline_package(str(package), run_name="x", experiment_id=secret.experiment_id)
    assert e.value.status == 404
    mine = eve.create_experiment("eves")
    assert mine.namespace == "kfp-eve"
    assert {x.display_name for x in eve.list_experiments(namespace="kfp-eve").experiments} == {"eves"}
    r = httpx.get(f"{shared_server.url}/apis/v2beta1/runs?namespace=")
    assert r.status_code == 401 and r.json()["code"] == "Unauthorized"
