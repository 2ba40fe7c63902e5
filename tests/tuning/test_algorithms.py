"""The Optuna glue in-process: every algorithm name samples inside the space, TPE beats random,
hyperband prunes, and a study rebuilt from records carries on without repeating a grid point."""

from __future__ import annotations

import math
import statistics

import pytest
from katib import experiment

from flowyard.tuning.algorithms import ALGORITHMS, Search
from flowyard.tuning.spec import experiment_spec


def _spec(algorithm: str, seed: int = 0, dims: int = 2, **extra) -> dict:
    m = experiment("alg", algorithm=algorithm, **extra)
    m["spec"]["algorithm"]["algorithmSettings"] = [{"name": "random_state", "value": str(seed)}]
    m["spec"]["parameters"] = [{"name": f"x{i}", "parameterType": "double",
                                "feasibleSpace": {"min": "-5", "max": "5", **({"step": "1"} if algorithm == "grid" else {})}}
                               for i in range(dims)]
    m["spec"]["trialTemplate"]["trialParameters"] = []
    m["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = ["true"]
    return experiment_spec(m, None)


def _rastrigin_shifted(p: dict) -> float:
    xs = [float(v) - 1.3 for v in p.values()]
    return sum(x * x - 3 * math.cos(2 * math.pi * x) + 3 for x in xs)


def _best_after(search: Search, n: int, f) -> float:
    best = math.inf
    for i in range(n):
        params, _ = search.ask()
        search.bind(f"t{i}")
        value = f(params)
        search.tell(f"t{i}", "complete", [value])
        best = min(best, value)
    return best


def test_tpe_beats_random_on_average_over_seeds() -> None:
    seeds = range(5)
    tpe = [_best_after(Search(_spec("tpe", s, dims=3)), 60, _rastrigin_shifted) for s in seeds]
    rnd = [_best_after(Search(_spec("random", s, dims=3)), 60, _rastrigin_shifted) for s in seeds]
    assert statistics.mean(tpe) < statistics.mean(rnd), (tpe, rnd)


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if a != "nsga2"])
def test_every_algorithm_samples_inside_the_space(algorithm: str) -> None:
    search = Search(_spec(algorithm, 1))
    _best_after(search, 12, _rastrigin_shifted)
    for t in search.study.get_trials(deepcopy=False):
        assert all(-5 <= v <= 5 for v in t.params.values()), t.params


def test_hyperband_prunes_trials_that_lag_behind() -> None:
    search = Search(_spec("hyperband", 3))
    pruned = 0
    for i in range(30):
        params, _ = search.ask()
        search.bind(f"t{i}")
        level = _rastrigin_shifted(params)
        history: list[float] = []
        stopped = False
        for step in range(9):
            history.append(level + 9 / (step + 1))
            if search.report(f"t{i}", history):
                stopped = True
                break
        search.tell(f"t{i}", "pruned" if stopped else "complete", None if stopped else [history[-1]])
        pruned += stopped
    assert pruned >= 5


def test_a_rebuilt_grid_search_skips_the_points_already_tried() -> None:
    spec = _spec("grid", 0, dims=1)
    first = Search(spec)
    seen = []
    for i in range(4):
        params, attrs = first.ask()
        first.bind(f"t{i}")
        first.tell(f"t{i}", "complete", [params["x0"]])
        seen.append((f"t{i}", params, dict(first.study.get_trials(deepcopy=False)[i].system_attrs)))
    again = Search(spec, seed_offset=4)
    for name, params, attrs in seen:
        again.restore(name, {k: str(v) for k, v in params.items()}, "complete", [float(params["x0"])], {}, attrs)
    rest = []
    while not again.exhausted():
        params, _ = again.ask()
        again.bind(f"n{len(rest)}")
        again.tell(f"n{len(rest)}", "complete", [params["x0"]])
        rest.append(params["x0"])
    assert sorted([p["x0"] for _, p, _ in seen] + rest) == list(range(-5, 6))
