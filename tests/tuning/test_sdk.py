"""`flowyard.tune`: a Python function as trials, its printed `name=value` lines as metrics."""

from __future__ import annotations

from katib import trials_of

import flowyard
from flowyard.sdk import Client
from flowyard.tuning import search


def objective(parameters):
    import math

    bonus = 1.0 if parameters["kind"] == "good" else 0.0
    result = 4 * parameters["a"] - parameters["b"] ** 2 + bonus + 0 * math.pi
    print(f"result={result}")


def test_tune_runs_a_function_as_trials_and_returns_the_best(shared_server) -> None:
    with Client(shared_server.url, shared_server.token(), namespace="admin") as client:
        best = flowyard.tune(objective=objective, objective_metric_name="result", name="sdk-tune",
                             parameters={"a": search.int(min=10, max=20), "b": search.double(min=0.1, max=0.2),
                                         "kind": search.categorical(["good", "bad"])},
                             max_trial_count=6, parallel_trial_count=3, algorithm="tpe", client=client)
    assert isinstance(best, flowyard.tuning.sdk.BestTrial)
    with shared_server.client() as c:
        trials = trials_of(c, "sdk-tune")
    assert len(trials) == 6 and all(t["status"]["phase"] == "Succeeded" for t in trials)
    results = {t["metadata"]["name"]: float(t["status"]["observation"]["metrics"][0]["max"]) for t in trials}
    assert best.name == max(results, key=results.get) and best.metrics["result"] == max(results.values())
    p = best.parameters
    expected = 4 * int(p["a"]) - float(p["b"]) ** 2 + (1.0 if p["kind"] == "good" else 0.0)
    assert abs(best.metrics["result"] - expected) < 1e-9
