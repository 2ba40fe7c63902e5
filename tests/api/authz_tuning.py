"""Authorisation cases of the tuning routes (collected by test_authorization.py)."""

from __future__ import annotations

import time

import httpx
from test_authorization import NS, WRITERS

_trial: list[str] = []


def _running_trial(owner: httpx.Client) -> str:
    """A trial of an experiment in namespace alice that keeps running (made once)."""
    if not _trial:
        manifest = {
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "authz-tune"},
            "spec": {
                "objective": {"type": "minimize", "objectiveMetricName": "loss"},
                "algorithm": {"algorithmName": "random"}, "parallelTrialCount": 1, "maxTrialCount": 1,
                "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
                "trialTemplate": {"trialParameters": [], "trialSpec": {
                    "apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": [
                        {"name": "main", "command": ["python", "-c", "import time; time.sleep(600)"]}]}}}}},
            },
        }
        assert owner.post(f"{NS}/tuningexperiments", json=manifest).status_code == 201
        deadline = time.time() + 30
        while not (items := owner.get(f"{NS}/trials").json()["items"]):
            assert time.time() < deadline, "no trial was created"
            time.sleep(0.1)
        _trial.append(items[0]["metadata"]["name"])
    return _trial[0]


CASES = [
    ("push trial metrics", "POST /api/v1/namespaces/{namespace}/trials/{name}/metrics", WRITERS,
     lambda a: ("POST", f"{NS}/trials/{_running_trial(a)}/metrics", {"metrics": {"loss": 0.5}})),
]
