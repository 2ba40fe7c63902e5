"""Katib-format experiments against a real server: search, metrics, failures, validation, CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml
from katib import EXPERIMENTS, TRIALS, experiment, trials_of, value, wait_done


def test_random_search_finds_the_best_of_its_trials_and_keeps_katib_shape(shared_server) -> None:
    with shared_server.client() as c:
        r = c.post(EXPERIMENTS, json=experiment("rand", max_trials=6, parallel=3))
        assert r.status_code == 201, r.text
        assert (r.json()["apiVersion"], r.json()["kind"]) == ("kubeflow.org/v1beta1", "Experiment")
        spec = r.json()["spec"]  # Katib's defaults are filled in
        assert spec["resumePolicy"] == "Never" and spec["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"
        assert spec["objective"]["metricStrategies"] == [{"name": "loss", "value": "min"}]
        done = wait_done(c, "rand")
        st = done["status"]
        assert st["phase"] == "Succeeded", st
        cond = {x["type"]: x for x in st["conditions"]}
        assert cond["Succeeded"]["reason"] == "ExperimentMaxTrialsReached" and cond["Created"]["status"] == "True"
        assert (st["trials"], st["trialsSucceeded"], st["trialsFailed"], st["trialsRunning"]) == (6, 6, 0, 0)
        trials = trials_of(c, "rand")
        assert len(trials) == 6 and all(t["kind"] == "Trial" for t in trials)
        best = min(trials, key=value)
        opt = st["currentOptimalTrial"]
        assert opt["bestTrialName"] == best["metadata"]["name"]
        assert opt["parameterAssignments"] == best["spec"]["parameterAssignments"]
        metric = opt["observation"]["metrics"][0]
        assert metric["name"] == "loss" and {"latest", "min", "max"} <= set(metric)
        x, y = (float(a["value"]) for a in opt["parameterAssignments"])
        assert abs(value(opt) - ((x - 1) ** 2 + (y + 2) ** 2)) < 1e-9  # the trial really ran with them
        log = c.get(f"{TRIALS}/{best['metadata']['name']}/log").text
        assert log.startswith("loss=")


def test_grid_search_visits_every_point_once_and_finds_the_minimum(shared_server) -> None:
    grid = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "-1", "max": "2"}},
            {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "-2.5", "max": "-1.5", "step": "0.5"}}]
    manifest = experiment("grid", algorithm="grid", max_trials=None, parallel=3, parameters=grid)
    del manifest["spec"]["maxTrialCount"]
    with shared_server.client() as c:
        assert c.post(EXPERIMENTS, json=manifest).status_code == 201
        st = wait_done(c, "grid")["status"]
        assert st["phase"] == "Succeeded" and st["conditions"][-1]["reason"] == "ExperimentSuggestionEndReached", st
        points = {tuple(a["value"] for a in t["spec"]["parameterAssignments"]) for t in trials_of(c, "grid")}
        assert st["trials"] == 12 and len(points) == 12
        assert [a["value"] for a in st["currentOptimalTrial"]["parameterAssignments"]] == ["1", "-2.0"]
        assert value(st["currentOptimalTrial"]) == 0.0


MEDIAN = ("import time\nq=int('${trialParameters.x}')\n"
          "for step in range(6):\n    print(f'loss={q + 10/(step+1)}', flush=True); time.sleep(0.15)")


def test_medianstop_stops_trials_worse_than_the_median(shared_server) -> None:
    grid = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "5"}},
            {"name": "y", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "0"}}]
    manifest = experiment("median", code=MEDIAN, algorithm="grid", max_trials=6, parallel=1, parameters=grid,
                          earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
                              {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "2"}]})
    with shared_server.client() as c:
        assert c.post(EXPERIMENTS, json=manifest).status_code == 201, manifest
        st = wait_done(c, "median")["status"]
        assert st["phase"] == "Succeeded", st
        trials = sorted(trials_of(c, "median"), key=lambda t: t["status"]["optuna"]["seq"])
        stopped = [t for t in trials if t["status"]["phase"] == "EarlyStopped"]
        assert stopped and st["trialsEarlyStopped"] == len(stopped)
        for t in stopped:  # each was worse than the median of the trials completed before it
            q = int(t["spec"]["parameterAssignments"][0]["value"])
            before = [int(u["spec"]["parameterAssignments"][0]["value"]) for u in trials
                      if u["status"]["phase"] == "Succeeded" and u["status"]["optuna"]["seq"] < t["status"]["optuna"]["seq"]]
            assert len(before) >= 2 and q > sorted(before)[(len(before) - 1) // 2], (q, before)
            assert len(t["status"]["intermediate"]) < 6 and "median" in t["status"]["message"]
        assert st["currentOptimalTrial"]["parameterAssignments"][0]["value"] in {
            t["spec"]["parameterAssignments"][0]["value"] for t in trials if t["status"]["phase"] == "Succeeded"}


def test_trials_without_the_metric_fail_at_once_and_stop_the_experiment(shared_server, tmp_path) -> None:
    code = "print('training...'); print('accuracy=0.5')"
    with shared_server.client() as c:
        assert c.post(EXPERIMENTS, json=experiment("nometric", code=code, max_trials=10, parallel=1,
                                                   maxFailedTrialCount=2)).status_code == 201
        st = wait_done(c, "nometric")["status"]
        assert st["phase"] == "Failed" and st["trialsFailed"] == 2 and st["trials"] == 2, st
        reason = {x["type"]: x for x in st["conditions"]}["Failed"]
        assert reason["reason"] == "ExperimentMaxFailedTrialsReached"
        assert "maxFailedTrialCount 2" in st["message"] and "metric loss not found in output" in st["message"]
        trial = trials_of(c, "nometric")[0]
        assert trial["status"]["phase"] == "Failed"
        assert trial["status"]["message"].startswith("metric loss not found in output; last lines of its log:")
        assert "training..." in trial["status"]["message"]
    env = {**os.environ, "FLOWYARD_URL": shared_server.url, "FLOWYARD_TOKEN": shared_server.token(),
           "HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "flowyard"]
    out = subprocess.run([*cli, "describe", "trial", trial["metadata"]["name"], "-n", "admin"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "metric loss not found in output" in out.stdout and "training..." in out.stdout
    out = subprocess.run([*cli, "logs", "trial", trial["metadata"]["name"], "-n", "admin"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout == "training...\naccuracy=0.5\n", out
    out = subprocess.run([*cli, "describe", "tuningexperiment", "nometric", "-n", "admin"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert "ExperimentMaxFailedTrialsReached" in out.stdout and "Experiment (kubeflow.org/v1beta1)" in out.stdout


def test_file_push_and_custom_regex_collectors(shared_server) -> None:
    file_code = ("import json; x=float('${trialParameters.x}')\n"
                 "open('metrics.log', 'w').write(json.dumps({'loss': x*x}) + '\\n'); print('loss=999')")
    push_code = ("from flowyard.tuning.sdk import report_metrics\n"
                 "report_metrics({'loss': float('${trialParameters.x}') ** 2})")
    regex_code = "x=float('${trialParameters.x}'); print(f'epoch 1 | loss: {x*x}')"
    cases = {
        "file": (file_code, {"collector": {"kind": "File"},
                             "source": {"fileSystemPath": {"path": "metrics.log", "kind": "File", "format": "JSON"}}}),
        "push": (push_code, {"collector": {"kind": "Push"}}),
        "regex": (regex_code, {"source": {"filter": {"metricsFormat": [r"(\w+):\s*([-+]?[0-9.eE+-]+)"]}}}),
    }
    with shared_server.client() as c:
        for name, (code, collector) in cases.items():
            r = c.post(EXPERIMENTS, json=experiment(name, code=code, max_trials=2, parallel=2,
                                                    metricsCollectorSpec=collector))
            assert r.status_code == 201, r.text
        for name in cases:
            st = wait_done(c, name)["status"]
            assert st["phase"] == "Succeeded" and st["trialsSucceeded"] == 2, (name, st)
            for t in trials_of(c, name):
                x = float(t["spec"]["parameterAssignments"][0]["value"])
                assert abs(value(t) - x * x) < 1e-9, (name, t["status"])
        trial = trials_of(c, "push")[0]["metadata"]["name"]
        r = c.post(f"{TRIALS}/{trial}/metrics", json={"metrics": {"loss": 1}})
        assert r.status_code == 409 and "Succeeded" in r.json()["message"]
        r = c.post(f"{TRIALS}/{trial}/metrics", headers={"X-Flowyard-Trial-Token": "0" * 64},
                   json={"metrics": {"loss": 1}})
        assert r.status_code == 401


def test_multi_objective_nsga2_reports_a_pareto_front(shared_server) -> None:
    code = "x=float('${trialParameters.x}'); y=float('${trialParameters.y}'); print(f'loss={x*x} cost={(x-2)**2+y}')"
    manifest = experiment("pareto", code=code, algorithm="nsga2", max_trials=6, parallel=3)
    manifest["spec"]["objective"]["additionalObjectives"] = [{"name": "cost", "type": "minimize"}]
    with shared_server.client() as c:
        assert c.post(EXPERIMENTS, json=manifest).status_code == 201
        st = wait_done(c, "pareto")["status"]
        assert st["phase"] == "Succeeded" and st["paretoOptimalTrials"], st
        trials = {t["metadata"]["name"]: (value(t), value(t, "cost")) for t in trials_of(c, "pareto")}
        for name in st["paretoOptimalTrials"]:
            a = trials[name]
            assert not any(b[0] <= a[0] and b[1] <= a[1] and b != a for b in trials.values())


def _invalid(c, manifest, *words) -> None:
    r = c.post(EXPERIMENTS, json=manifest)
    assert r.status_code == 422, r.text
    for word in words:
        assert word in r.json()["message"], r.json()


def test_invalid_specs_are_refused_with_what_to_fix(shared_server) -> None:
    with shared_server.client() as c:
        m = experiment("bad")
        m["spec"]["parameters"][0]["feasibleSpace"] = {"min": "5", "max": "1"}
        _invalid(c, m, "parameter 'x'", "min (5) is greater than feasibleSpace.max (1)")
        m = experiment("bad", code="print('${trialParameters.lr}')")
        _invalid(c, m, "unknown parameter ${trialParameters.lr}")
        m = experiment("bad")
        m["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "momentum"
        _invalid(c, m, "refers to unknown parameter 'momentum'")
        _invalid(c, experiment("bad", algorithm="skopt-magic"), "not supported", "random, grid, tpe", "nsga2")
        m = experiment("bad")
        m["spec"]["parameters"][1]["feasibleSpace"]["distribution"] = "normal"
        _invalid(c, m, "distribution normal is not supported")
        _invalid(c, experiment("bad", algorithm="grid"), "grid search needs feasibleSpace.step")
        _invalid(c, experiment("bad", metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"}}), "StdOut, File, Push")
        m = experiment("bad")
        m["spec"]["algorithm"]["algorithmSettings"] = [{"name": "sigma", "value": "2"}]
        _invalid(c, m, "algorithm random has no setting 'sigma'")
        r = c.post("/api/v1/namespaces/admin/experiments", json=experiment("wrong-door"))  # KFP's plural
        assert r.status_code == 422 and "goes to tuningexperiments" in r.json()["message"], r.text
        # a trial cannot be made by hand, and a running experiment's search space cannot change
        assert c.post(TRIALS, json={"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
                                    "metadata": {"name": "t"}, "spec": {}}).status_code == 422
        assert c.post(EXPERIMENTS, json=experiment("frozen", max_trials=1, parallel=1)).status_code == 201
        m = experiment("frozen", max_trials=1, parallel=1, parameters=[])
        r = c.put(f"{EXPERIMENTS}/frozen", json=m)
        assert r.status_code == 422, r.text
        m = experiment("frozen", algorithm="tpe", max_trials=1, parallel=1)
        assert "only maxTrialCount" in c.put(f"{EXPERIMENTS}/frozen", json=m).json()["message"]


def test_katib_and_kfp_experiments_live_side_by_side(shared_server, tmp_path) -> None:
    """The CLI applies a Katib manifest verbatim; `get experiments` stays KFP's."""
    env = {**os.environ, "FLOWYARD_URL": shared_server.url, "FLOWYARD_TOKEN": shared_server.token(),
           "HOME": str(tmp_path)}
    path = tmp_path / "katib.yaml"
    path.write_text(yaml.safe_dump(experiment("same-name", max_trials=1, parallel=1)))
    cli = [sys.executable, "-m", "flowyard"]
    out = subprocess.run([*cli, "apply", "-f", str(path)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "experiment/same-name created" in out.stdout, out
    with shared_server.client() as c:
        kfp = c.post("/api/v1/namespaces/admin/experiments", json={
            "apiVersion": "pipelines.kubeflow.org/v2beta1", "kind": "Experiment", "metadata": {"name": "same-name"},
            "spec": {"displayName": "same-name"}})
        assert kfp.status_code == 201, kfp.text
        kfp_items = c.get("/api/v1/namespaces/admin/experiments").json()["items"]
        assert kfp_items and all(i["apiVersion"] == "pipelines.kubeflow.org/v2beta1" for i in kfp_items)
        assert c.get("/api/v1/namespaces/admin/experiments.kubeflow.org/same-name").json()["kind"] == "Experiment"
    out = subprocess.run([*cli, "get", "tuningexperiments", "-n", "admin"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0 and "same-name" in out.stdout
    out = subprocess.run([*cli, "get", "experiments", "-n", "admin", "-o", "yaml"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0 and "kubeflow.org/v1beta1" not in out.stdout and "same-name" in out.stdout
    out = subprocess.run([*cli, "apply", "-f", str(path)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "experiment/same-name configured" in out.stdout, out
    out = subprocess.run([*cli, "delete", "-f", str(path)], env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0 and "experiment/same-name deleted" in out.stdout, out
    with shared_server.client() as c:
        assert c.get(f"{EXPERIMENTS}/same-name").status_code == 404
        assert c.get("/api/v1/namespaces/admin/experiments/same-name").status_code == 200  # KFP's is untouched


def test_a_long_running_experiment_resumes_when_its_budget_grows(shared_server) -> None:
    import time

    with shared_server.client() as c:
        for name, policy in (("resume", "LongRunning"), ("noresume", "Never")):
            assert c.post(EXPERIMENTS, json=experiment(name, max_trials=2, parallel=2,
                                                       resumePolicy=policy)).status_code == 201
        for name in ("resume", "noresume"):
            assert wait_done(c, name)["status"]["trials"] == 2
            r = c.put(f"{EXPERIMENTS}/{name}", json=experiment(name, max_trials=4, parallel=2,
                                                               resumePolicy="LongRunning" if name == "resume" else "Never"))
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while (st := c.get(f"{EXPERIMENTS}/resume").json()["status"])["trials"] < 4 or st["phase"] != "Succeeded":
            assert time.monotonic() < deadline, st
            time.sleep(0.2)
        assert st["trialsSucceeded"] == 4
        st = c.get(f"{EXPERIMENTS}/noresume").json()["status"]
        assert st["phase"] == "Succeeded" and st["trials"] == 2  # resumePolicy Never: done is done


def test_reaching_the_goal_ends_the_experiment_and_deleting_it_removes_its_trials(shared_server) -> None:
    import time

    grid = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "-3", "max": "1"}},
            {"name": "y", "parameterType": "int", "feasibleSpace": {"min": "-2", "max": "-2"}}]
    manifest = experiment("goal", algorithm="grid", max_trials=5, parallel=1, parameters=grid)
    manifest["spec"]["objective"]["goal"] = 0.5
    with shared_server.client() as c:
        assert c.post(EXPERIMENTS, json=manifest).status_code == 201
        st = wait_done(c, "goal")["status"]
        assert st["phase"] == "Succeeded" and st["conditions"][-1]["reason"] == "ExperimentGoalReached", st
        assert value(st["currentOptimalTrial"]) <= 0.5
        assert c.delete(f"{EXPERIMENTS}/goal").status_code == 200
        deadline = time.monotonic() + 30
        while trials_of(c, "goal"):
            assert time.monotonic() < deadline, "the trials of a deleted experiment must go"
            time.sleep(0.2)


def test_trials_are_admitted_against_the_namespace_quota(shared_server) -> None:
    import time

    code = "import time; time.sleep(1); print('loss=${trialParameters.x}')"
    m = experiment("quota", code=code, max_trials=2, parallel=2)
    container = m["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "1"}}
    m["metadata"]["namespace"] = "tq"
    with shared_server.client() as c:
        assert c.post("/api/v1/profiles", json={"metadata": {"name": "tq"}, "spec": {
            "owner": {"name": "admin"}, "resourceQuotaSpec": {"hard": {"cpu": "1"}}}}).status_code == 201
        assert c.post("/api/v1/namespaces/tq/tuningexperiments", json=m).status_code == 201
        deadline = time.monotonic() + 30
        while True:  # one trial runs, the other waits for the quota
            phases = {t["status"].get("phase"): t["status"].get("message", "")
                      for t in c.get("/api/v1/namespaces/tq/trials").json()["items"]}
            if "Running" in phases and "quota" in phases.get("Pending", "").lower():
                break
            assert time.monotonic() < deadline, phases
            time.sleep(0.1)
        deadline = time.monotonic() + 60
        while (st := c.get("/api/v1/namespaces/tq/tuningexperiments/quota").json()["status"]).get("phase") != "Succeeded":
            assert time.monotonic() < deadline, st
            time.sleep(0.2)
        assert st["trialsSucceeded"] == 2


def test_a_trial_deleted_by_hand_stops_and_is_replaced(shared_server) -> None:
    import time

    code = "import time; x=float('${trialParameters.x}'); time.sleep(60 if x > 0 else 0.2); print(f'loss={x}')"
    grid = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "-1", "max": "1"}},
            {"name": "y", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "0"}}]
    with shared_server.client() as c:
        assert c.post(EXPERIMENTS, json=experiment("handdel", code=code, algorithm="grid", max_trials=3, parallel=3,
                                                   parameters=grid)).status_code == 201
        deadline = time.monotonic() + 30
        while not (slow := [t for t in trials_of(c, "handdel") if t["spec"]["parameterAssignments"][0]["value"] == "1"
                            and t["status"].get("phase") == "Running"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert c.delete(f"{TRIALS}/{slow[0]['metadata']['name']}").status_code == 200
        st = wait_done(c, "handdel", timeout=60)["status"]
        assert st["phase"] == "Succeeded" and st["trials"] == 2, st  # the grid had 3 points; one was deleted
    import json

    state = shared_server.home / "workloads" / f"admin.trial.{slow[0]['metadata']['name']}" / "state.json"
    deadline = time.monotonic() + 30
    while json.loads(state.read_text())["status"]["phase"] != "Stopped":  # its process was stopped
        assert time.monotonic() < deadline, state.read_text()
        time.sleep(0.2)
