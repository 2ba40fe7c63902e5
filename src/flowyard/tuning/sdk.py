"""`flowyard.tune`: tune a Python function, in the spirit of Katib's `KatibClient().tune()`.

The function's source becomes the trial's program (so it must import what it uses inside
its body, as Katib requires), run in a Flowyard environment. It gets one dict of parameter
values (typed: int, float, or str for categorical ones); the `name=value` lines it prints
are its metrics, and a number (or a dict of numbers) it returns is printed that way for it.
`tune` applies a Katib Experiment, waits, and returns the best trial.
"""

from __future__ import annotations

import inspect
import re
import secrets
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowyard.errors import FlowyardError, Invalid

_RUNNER = """
import os as _os
{source}
_params = {{}}
for _name, _kind in {kinds!r}.items():
    _text = _os.environ["FLOWYARD_PARAM_" + _name.upper().replace("-", "_").replace(".", "_")]
    _params[_name] = int(_text) if _kind == "int" else float(_text) if _kind in ("double", "discrete") else _text
_result = {name}(_params)
if isinstance(_result, dict):
    for _k, _v in _result.items():
        print(f"{{_k}}={{_v}}", flush=True)
elif isinstance(_result, (int, float)) and not isinstance(_result, bool):
    print(f"{metric}={{_result}}", flush=True)
"""


class ExperimentFailed(FlowyardError):
    """The tuning experiment ended Failed (too many failed trials); the message says why."""

    status = 500
    code = "ExperimentFailed"


@dataclass(frozen=True)
class BestTrial:
    """The best trial of a finished experiment."""

    experiment: str
    name: str
    parameters: dict[str, str]
    """Parameter values as Katib writes them (strings)."""
    metrics: dict[str, float]
    """Each metric's value by its strategy (the objective's min when minimising, max when maximising)."""
    status: dict[str, Any]
    """The experiment's whole status (counts, conditions, `currentOptimalTrial`)."""


def _source(objective: Callable[..., Any]) -> str:
    if not callable(objective) or getattr(objective, "__name__", "<lambda>") == "<lambda>":
        raise Invalid("objective must be a function defined with def (its source is what each trial runs)")
    try:
        source = textwrap.dedent(inspect.getsource(objective))
    except (OSError, TypeError) as e:
        raise Invalid(f"cannot read the source of {objective.__name__}: {e}") from None
    return re.sub(r"^(@.*\n)+", "", source)  # decorators would not exist in the trial


def manifest(objective: Callable[..., Any], parameters: Mapping[str, dict[str, Any]], objective_metric_name: str,
             *, name: str, objective_type: str = "maximize", objective_goal: float | None = None,
             additional_metric_names: list[str] | None = None, algorithm: str = "random",
             algorithm_settings: Mapping[str, Any] | None = None, max_trial_count: int | None = None,
             parallel_trial_count: int | None = None, max_failed_trial_count: int | None = None,
             resources_per_trial: Mapping[str, Any] | None = None, environment: str = "default",
             env_per_trial: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Katib Experiment that `tune` applies."""
    if not parameters:
        raise Invalid("parameters must name at least one search space, e.g. {'lr': search.double(0.01, 0.1)}")
    kinds = {p: dict(space).get("parameterType") for p, space in parameters.items()}
    code = _RUNNER.format(source=_source(objective), kinds=kinds, name=objective.__name__,
                          metric=objective_metric_name)
    env = [{"name": "FLOWYARD_PARAM_" + p.upper().replace("-", "_").replace(".", "_"),
            "value": "${trialParameters." + p + "}"} for p in parameters]
    env += [{"name": k, "value": str(v)} for k, v in (env_per_trial or {}).items()]
    container: dict[str, Any] = {"name": "training-container", "image": environment,
                                 "command": ["python", "-u", "-c", code], "env": env}
    if resources_per_trial:
        container["resources"] = {"limits": dict(resources_per_trial)}
    spec: dict[str, Any] = {
        "objective": {"type": objective_type, "objectiveMetricName": objective_metric_name,
                      "additionalMetricNames": list(additional_metric_names or [])},
        "algorithm": {"algorithmName": algorithm, "algorithmSettings": [
            {"name": k, "value": str(v)} for k, v in (algorithm_settings or {}).items()]},
        "parameters": [{"name": p, **space} for p, space in parameters.items()],
        "trialTemplate": {
            "primaryContainerName": "training-container",
            "trialParameters": [{"name": p, "description": f"{p} of {objective.__name__}", "reference": p}
                                for p in parameters],
            "trialSpec": {"apiVersion": "batch/v1", "kind": "Job",
                          "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}}},
        },
    }
    if objective_goal is not None:
        spec["objective"]["goal"] = objective_goal
    for key, value in (("maxTrialCount", max_trial_count), ("parallelTrialCount", parallel_trial_count),
                       ("maxFailedTrialCount", max_failed_trial_count)):
        if value is not None:
            spec[key] = value
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}


def tune(objective: Callable[..., Any], parameters: Mapping[str, dict[str, Any]], objective_metric_name: str,
         *, name: str | None = None, namespace: str | None = None, client: Any = None, wait: bool = True,
         timeout: float = 3600.0, **options: Any) -> BestTrial | str:
    """Search `parameters` for the best `objective_metric_name` of `objective`; the best trial.

    `options` are `manifest`'s: objective_type ("maximize", as Katib's SDK), objective_goal,
    algorithm ("random", "tpe", "grid", ...), algorithm_settings, max_trial_count,
    parallel_trial_count, max_failed_trial_count, resources_per_trial ({"cpu": "1"}),
    environment (a Flowyard environment name), env_per_trial. With `wait=False` the
    experiment's name comes back at once. Raises ExperimentFailed if it fails.
    """
    from flowyard.sdk import Client

    base = re.sub(r"[^a-z0-9]+", "-", getattr(objective, "__name__", "objective").lower()).strip("-")[:30] or "tune"
    name = name or f"tune-{base}-{secrets.token_hex(3)}"
    own = client is None
    client = client or Client(namespace=namespace)
    try:
        client.create(manifest(objective, parameters, objective_metric_name, name=name, **options), namespace)
        if not wait:
            return name
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            exp = client.get("tuningexperiment", name, namespace)
            st = exp.get("status") or {}
            if st.get("phase") == "Failed":
                raise ExperimentFailed(f"experiment {name} failed: {st.get('message', '')}")
            if st.get("phase") == "Succeeded":
                break
            if time.monotonic() > deadline:
                from flowyard.sdk import WaitTimeout

                raise WaitTimeout(f"experiment {name} is still {st.get('phase', 'Created')} after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
    finally:
        if own:
            client.close()
    best = st.get("currentOptimalTrial") or {}
    if not best.get("bestTrialName"):
        raise ExperimentFailed(f"experiment {name} ended without a successful trial: {st.get('message', '')}")
    strategies = {s["name"]: s["value"] for s in exp["spec"]["objective"]["metricStrategies"]}
    return BestTrial(
        experiment=name, name=best["bestTrialName"],
        parameters={a["name"]: a["value"] for a in best["parameterAssignments"]},
        metrics={m["name"]: float(m[strategies.get(m["name"], "latest")]) for m in best["observation"]["metrics"]},
        status=st)


def report_metrics(metrics: Mapping[str, float]) -> None:
    """From inside a trial of a `Push`-collector experiment: send metrics (like Katib's
    `report_metrics`). Each call is one step; the trial's environment holds where and how."""
    import os

    import httpx

    env = os.environ
    missing = [k for k in ("FLOWYARD_URL", "FLOWYARD_NAMESPACE", "FLOWYARD_TRIAL_NAME", "FLOWYARD_TRIAL_TOKEN")
               if not env.get(k)]
    if missing:
        raise Invalid(f"report_metrics works inside a trial ({', '.join(missing)} not set)")
    url = f"{env['FLOWYARD_URL']}/api/v1/namespaces/{env['FLOWYARD_NAMESPACE']}/trials/{env['FLOWYARD_TRIAL_NAME']}/metrics"
    r = httpx.post(url, json={"metrics": dict(metrics)}, headers={"X-Flowyard-Trial-Token": env["FLOWYARD_TRIAL_TOKEN"]},
                   verify=False, timeout=30)
    if r.status_code >= 400:
        raise Invalid(f"reporting metrics failed: {r.status_code} {r.text}")

