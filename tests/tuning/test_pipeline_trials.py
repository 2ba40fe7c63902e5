"""Flowyard's addition: a trial that runs a KFP pipeline, its parameters being the trial's."""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import yaml
from katib import EXPERIMENTS, TRIALS, experiment, trials_of, value, wait_done
from kfp import compiler, dsl


@dsl.component(base_image="python:3.11")
def train(x: float, y: float) -> float:
    loss = (x - 1) ** 2 + (y + 2) ** 2
    print(f"loss={loss}")
    return loss


@dsl.pipeline(name="tune-me")
def tune_me(x: float = 0.0, y: float = 0.0) -> float:
    return train(x=x, y=y).output


def test_pipeline_trials_run_the_pipeline_with_the_trial_parameters(shared_server, tmp_path) -> None:
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(tune_me, str(path))
    manifest = experiment("pipes", max_trials=3, parallel=3)
    manifest["spec"]["trialTemplate"] = {
        "trialParameters": [{"name": "x", "reference": "x"}, {"name": "y", "reference": "y"}],
        "trialSpec": {"apiVersion": "pipelines.kubeflow.org/v2beta1", "kind": "Run",
                      "spec": {"pipelineSpec": yaml.safe_load(path.read_text()),
                               "parameters": {"x": "${trialParameters.x}", "y": "${trialParameters.y}"}}},
    }
    with shared_server.client() as c:
        r = c.post(EXPERIMENTS, json=manifest)
        assert r.status_code == 201, r.text
        st = wait_done(c, "pipes", timeout=120)["status"]
        assert st["phase"] == "Succeeded" and st["trialsSucceeded"] == 3, st
        for t in trials_of(c, "pipes"):
            x, y = (float(a["value"]) for a in t["spec"]["parameterAssignments"])
            assert abs(value(t) - ((x - 1) ** 2 + (y + 2) ** 2)) < 1e-9
            run = c.get(f"/api/v1/namespaces/admin/runs/{t['metadata']['name']}").json()
            assert run["status"]["state"] == "SUCCEEDED"
        name = st["currentOptimalTrial"]["bestTrialName"]
        assert "loss=" in c.get(f"{TRIALS}/{name}/log").text
        bad = experiment("pipes-bad")
        bad["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": "pipelines.kubeflow.org/v2beta1", "kind": "Run",
                                                    "spec": {"parameters": {}}}
        r = c.post(EXPERIMENTS, json=bad)
        assert r.status_code == 422 and "pipelineSpec" in r.json()["message"]
