"""Katib-format Experiment manifests for the tuning tests (trials are tiny `python -c` commands)."""

from __future__ import annotations

import copy
import time
from typing import Any

import httpx

EXPERIMENTS = "/api/v1/namespaces/admin/tuningexperiments"
TRIALS = "/api/v1/namespaces/admin/trials"
QUADRATIC = "x=float('${trialParameters.x}'); y=float('${trialParameters.y}'); print(f'loss={(x-1)**2+(y+2)**2}')"


def experiment(name: str, code: str = QUADRATIC, algorithm: str = "random", max_trials: int = 6,
               parallel: int = 2, **spec: Any) -> dict[str, Any]:
    """A Katib v1beta1 Experiment over x in [-3, 3], y in [-3, 3] whose trial runs `code`."""
    manifest: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": "admin"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": [{"name": "random_state", "value": "7"}]},
            "parallelTrialCount": parallel,
            "maxTrialCount": max_trials,
            "maxFailedTrialCount": 3,
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-3", "max": "3"}},
                {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "-3", "max": "3"}},
            ],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [
                    {"name": "x", "description": "first", "reference": "x"},
                    {"name": "y", "description": "second", "reference": "y"},
                ],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"template": {"spec": {
                        "containers": [{"name": "training-container", "image": "default",
                                        "command": ["python", "-c", code]}],
                        "restartPolicy": "Never"}}},
                },
            },
        },
    }
    manifest["spec"].update(copy.deepcopy(spec))
    return manifest


def wait_done(c: httpx.Client, name: str, timeout: float = 90.0) -> dict[str, Any]:
    """Poll an experiment until it Succeeded or Failed; its last state."""
    deadline = time.monotonic() + timeout
    while True:
        obj = c.get(f"{EXPERIMENTS}/{name}").json()
        if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return obj
        assert time.monotonic() < deadline, f"experiment {name} not done: {obj.get('status')}"
        time.sleep(0.25)


def trials_of(c: httpx.Client, name: str) -> list[dict[str, Any]]:
    return c.get(TRIALS, params={"labelSelector": f"katib.kubeflow.org/experiment={name}"}).json()["items"]


def value(trial_or_optimal: dict[str, Any], metric: str = "loss", what: str = "latest") -> float:
    obs = trial_or_optimal.get("observation") or trial_or_optimal.get("status", {}).get("observation") or {}
    return next(float(m[what]) for m in obs["metrics"] if m["name"] == metric)
