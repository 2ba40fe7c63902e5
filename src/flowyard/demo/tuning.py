"""The `--tune` search of the MNIST demo, as a Katib `Experiment` manifest."""

from __future__ import annotations

from typing import Any


def experiment(name: str, data: str, trials: int, parallel: int = 2) -> dict[str, Any]:
    """TPE over hidden units and L2 strength; each trial is `python -m flowyard.demo.trial`."""
    command = ["python", "-m", "flowyard.demo.trial", "--hidden", "${trialParameters.hidden}",
               "--alpha", "${trialParameters.alpha}"]
    if data:
        command += ["--data", data]
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "1"}]},
            "parallelTrialCount": parallel,
            "maxTrialCount": trials,
            "maxFailedTrialCount": max(1, trials // 2),
            "parameters": [
                {"name": "hidden", "parameterType": "int", "feasibleSpace": {"min": "32", "max": "256"}},
                {"name": "alpha", "parameterType": "double",
                 "feasibleSpace": {"min": "0.00001", "max": "0.01", "distribution": "logUniform"}},
            ],
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "hidden", "reference": "hidden"}, {"name": "alpha", "reference": "alpha"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "containers": [{"name": "training", "image": "default", "command": command}],
                    "restartPolicy": "Never"}}}},
            },
        },
    }
