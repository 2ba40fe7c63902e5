"""Katib's algorithm names on Optuna: samplers, pruners, search spaces, and a study per experiment.

The study lives in memory only as a cache: it is rebuilt from the stored Trial records
(`Search.restore`, `add_trial` with each trial's parameters, values, intermediate values
and the sampler's system attributes), so an experiment resumes after a restart without
repeating a finished trial. Katib values are strings; `assignment()` writes them the way
Katib does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from flowyard.errors import Invalid

ALGORITHMS: dict[str, tuple[str, ...]] = {
    "random": ("random_state",),
    "grid": ("random_state",),
    "tpe": ("random_state", "n_startup_trials", "n_ei_candidates", "n_EI_candidates", "prior_weight"),
    "multivariate-tpe": ("random_state", "n_startup_trials", "n_ei_candidates", "n_EI_candidates", "prior_weight"),
    "cmaes": ("random_state", "sigma", "restart_strategy", "n_startup_trials", "popsize"),
    "sobol": ("random_state", "scramble"),
    "bayesianoptimization": ("random_state", "n_initial_points", "base_estimator"),
    "hyperband": ("random_state", "eta", "r_l", "min_resource", "resource_name"),
    "nsga2": ("random_state", "population_size", "mutation_prob", "crossover_prob"),
}
"""Supported `algorithmName`s and the `algorithmSettings` each accepts."""
MULTI_OBJECTIVE = {"random", "grid", "tpe", "multivariate-tpe", "sobol", "nsga2"}
_INTS = {"random_state", "n_startup_trials", "n_ei_candidates", "n_EI_candidates", "popsize", "eta", "r_l",
         "min_resource", "n_initial_points", "population_size"}
_FLOATS = {"prior_weight", "sigma", "mutation_prob", "crossover_prob"}
_CHOICES = {"restart_strategy": ("ipop", "bipop", "none"), "scramble": ("true", "false"), "base_estimator": ("GP",)}


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    return optuna


def check_settings(name: str, settings: dict[str, str], parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """Typed settings of algorithm `name`; raises Invalid naming a bad one."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in ALGORITHMS[name]:
            raise Invalid(f"algorithm {name} has no setting '{key}'; it accepts {', '.join(ALGORITHMS[name])}")
        try:
            if key in _INTS:
                out[key] = int(value)
                if out[key] < (0 if key == "random_state" else 1):
                    raise ValueError
            elif key in _FLOATS:
                out[key] = float(value)
                if not (math.isfinite(out[key]) and out[key] > 0):
                    raise ValueError
            elif key in _CHOICES:
                if value not in _CHOICES[key]:
                    raise ValueError
                out[key] = value
            else:
                out[key] = value
        except ValueError:
            what = " or ".join(_CHOICES.get(key, ())) or ("a whole number" if key in _INTS else "a number > 0")
            raise Invalid(f"algorithm setting {key}={value!r} is invalid: use {what}") from None
    if name == "hyperband" and "resource_name" in out and out["resource_name"] not in {p["name"] for p in parameters}:
        raise Invalid(f"hyperband setting resource_name '{out['resource_name']}' must name one of spec.parameters")
    if name == "bayesianoptimization":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise Invalid("bayesianoptimization needs PyTorch on the server (pip install torch)") from None
    if name == "grid":
        size = 1
        for p in parameters:
            if p["parameterType"] == "double" and "step" not in p["feasibleSpace"]:
                raise Invalid(f"grid search needs feasibleSpace.step for double parameter '{p['name']}'")
            size *= len(grid_values(p))
        if size > 100_000:
            raise Invalid(f"the grid has {size} points; at most 100000: use larger steps")
    return out


def grid_values(p: dict[str, Any]) -> list[Any]:
    """The points of one parameter on a grid."""
    space = p["feasibleSpace"]
    if p["parameterType"] in ("categorical", "discrete"):
        return list(space["list"])
    low, high = float(space["min"]), float(space["max"])
    step = float(space.get("step") or 1)
    count = math.floor((high - low) / step + 1e-9) + 1
    if p["parameterType"] == "int":
        return [int(low + i * step) for i in range(count)]
    return [round(low + i * step, 12) for i in range(count)]


def distributions(parameters: list[dict[str, Any]], grid: bool = False) -> dict[str, Any]:
    """Optuna distributions of the search space (on a grid: the grid's points as choices)."""
    d = _optuna().distributions
    out: dict[str, Any] = {}
    for p in parameters:
        space, ptype = p["feasibleSpace"], p["parameterType"]
        if grid or ptype in ("categorical", "discrete"):
            out[p["name"]] = d.CategoricalDistribution(grid_values(p) if grid else space["list"])
            continue
        log = space.get("distribution") == "logUniform"
        step = float(space["step"]) if space.get("step") else None
        if ptype == "int":
            out[p["name"]] = d.IntDistribution(int(float(space["min"])), int(float(space["max"])), log=log,
                                               step=int(step or 1))
        else:
            low, high = float(space["min"]), float(space["max"])
            if step:
                high = low + math.floor((high - low) / step + 1e-9) * step
            out[p["name"]] = d.FloatDistribution(low, high, log=log, step=step)
    return out


def assignment(value: Any) -> str:
    """A parameter value as Katib writes it (a string)."""
    if isinstance(value, float):
        return repr(round(value, 12)) if not value.is_integer() else repr(value)
    return str(value)


def _sampler(name: str, s: dict[str, Any], parameters: list[dict[str, Any]], seed: int | None) -> Any:
    samplers = _optuna().samplers
    tpe = {"n_startup_trials": s.get("n_startup_trials", 10),
           "n_ei_candidates": s.get("n_ei_candidates", s.get("n_EI_candidates", 24))}
    if "prior_weight" in s:
        tpe["prior_weight"] = s["prior_weight"]
    makers: dict[str, Callable[[], Any]] = {
        "random": lambda: samplers.RandomSampler(seed=seed),
        "grid": lambda: _grid_sampler()({p["name"]: grid_values(p) for p in parameters}, seed=seed),
        "tpe": lambda: samplers.TPESampler(seed=seed, **tpe),
        "multivariate-tpe": lambda: samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, **tpe),
        "cmaes": lambda: samplers.CmaEsSampler(
            seed=seed, sigma0=s.get("sigma"), n_startup_trials=s.get("n_startup_trials", 1), popsize=s.get("popsize"),
            restart_strategy=None if s.get("restart_strategy", "none") == "none" else s["restart_strategy"],
            warn_independent_sampling=False),
        "sobol": lambda: samplers.QMCSampler(qmc_type="sobol", seed=seed, scramble=s.get("scramble") == "true",
                                             warn_independent_sampling=False, warn_asynchronous_seeding=False),
        "bayesianoptimization": lambda: samplers.GPSampler(seed=seed, n_startup_trials=s.get("n_initial_points", 10),
                                                           warn_independent_sampling=False),
        "hyperband": lambda: samplers.TPESampler(seed=seed),
        "nsga2": lambda: samplers.NSGAIISampler(
            seed=seed, population_size=s.get("population_size", 50), mutation_prob=s.get("mutation_prob"),
            crossover_prob=s.get("crossover_prob", 0.9)),
    }
    return makers[name]()


def _grid_sampler() -> Any:
    class Grid(_optuna().samplers.GridSampler):  # type: ignore[misc]
        """Optuna's grid, without its `study.stop()` at the end (the controller sees the end itself)."""

        def after_trial(self, *args: Any) -> None:
            pass

    return Grid


def _pruner(spec: dict[str, Any], s: dict[str, Any]) -> Any:
    pruners = _optuna().pruners
    if spec["algorithm"]["algorithmName"] == "hyperband":
        return pruners.HyperbandPruner(min_resource=s.get("min_resource", 1), max_resource=s.get("r_l", "auto"),
                                       reduction_factor=s.get("eta", 3))
    es = spec.get("earlyStopping")
    if es:
        # A real median: a trial stops when its best value so far is worse than the median of the
        # completed trials' values at the same step (Katib's medianstop compares with a mean).
        settings = {x["name"]: int(float(x["value"])) for x in es.get("algorithmSettings") or []}
        need = settings.get("min_trials_required", 3)
        return pruners.MedianPruner(n_startup_trials=need, n_warmup_steps=settings.get("start_step", 4) - 1,
                                    n_min_trials=need)
    return pruners.NopPruner()


def directions(objective: dict[str, Any]) -> list[str]:
    return [objective["type"]] + [o["type"] for o in objective.get("additionalObjectives") or []]


class Search:
    """The Optuna study of one experiment, with Trial names mapped to Optuna trial numbers."""

    def __init__(self, spec: dict[str, Any], seed_offset: int = 0) -> None:
        optuna = _optuna()
        algo = spec["algorithm"]
        name = algo["algorithmName"]
        settings = check_settings(name, {x["name"]: x["value"] for x in algo.get("algorithmSettings") or []},
                                  spec["parameters"])
        seed = settings.get("random_state")
        # A restored study must not replay the seeded sampler's first suggestions (but a grid's
        # seed also orders its points, and its visited points are known: keep it).
        if seed is not None and name != "grid":
            seed += seed_offset
        self.grid = name == "grid"
        self.space = distributions(spec["parameters"], grid=self.grid)
        self.study = optuna.create_study(directions=directions(spec["objective"]),
                                         sampler=_sampler(name, settings, spec["parameters"], seed),
                                         pruner=_pruner(spec, settings))
        self.ids: dict[str, int] = {}
        """Trial name -> Optuna trial id."""
        self.pruning = name == "hyperband" or bool(spec.get("earlyStopping"))

    def ask(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """New parameters and the sampler's attributes to keep with the trial."""
        trial = self.study.ask(self.space)
        self._last = trial
        return trial.params, dict(self.study._storage.get_trial(trial._trial_id).system_attrs)

    def bind(self, trial_name: str) -> None:
        """Tie the last asked trial to the Trial record just created for it."""
        self.ids[trial_name] = self._last._trial_id

    def exhausted(self) -> bool:
        """True when a grid has no unvisited point left."""
        if not self.grid:
            return False
        total = math.prod(len(d.choices) for d in self.space.values())
        return len(self.study.get_trials(deepcopy=False)) >= total

    def restore(self, trial_name: str, params: dict[str, Any], state: str, values: list[float] | None,
                intermediate: dict[int, float], system_attrs: dict[str, Any]) -> None:
        """Add a stored trial to the study (state: running, complete, pruned or fail)."""
        optuna = _optuna()
        states = optuna.trial.TrialState
        st = {"running": states.RUNNING, "complete": states.COMPLETE, "pruned": states.PRUNED,
              "fail": states.FAIL}[state]
        typed = {k: self._typed(k, v) for k, v in params.items() if k in self.space}
        with warnings.catch_warnings():  # system_attrs is deprecated, but samplers still keep state there
            warnings.simplefilter("ignore", FutureWarning)
            frozen = optuna.trial.create_trial(
                state=st, values=values if st == states.COMPLETE else None, params=typed,
                distributions={k: self.space[k] for k in typed}, intermediate_values=intermediate,
                system_attrs=system_attrs)
        self.study.add_trial(frozen)
        self.ids[trial_name] = self.study.get_trials(deepcopy=False)[-1]._trial_id

    def _typed(self, name: str, text: str) -> Any:
        dist = self.space[name]
        if hasattr(dist, "choices"):
            for c in dist.choices:
                if assignment(c) == text or str(c) == text:
                    return c
            return text
        return int(float(text)) if type(dist).__name__ == "IntDistribution" else float(text)

    def report(self, trial_name: str, values: list[float]) -> bool:
        """Record a running trial's intermediate objective values; True when it should stop."""
        tid = self.ids.get(trial_name)
        if tid is None or not values:
            return False
        storage = self.study._storage
        frozen = storage.get_trial(tid)
        if frozen.state.name != "RUNNING":
            return False
        for step, value in enumerate(values):
            if step not in frozen.intermediate_values and math.isfinite(value):
                storage.set_trial_intermediate_value(tid, step, value)
        return bool(self.study.pruner.prune(self.study, storage.get_trial(tid)))

    def tell(self, trial_name: str, state: str, values: list[float] | None = None) -> dict[str, Any]:
        """Finish a trial (complete, pruned or fail); returns its system attributes to keep."""
        tid = self.ids.get(trial_name)
        if tid is None:
            return {}
        states = _optuna().trial.TrialState
        storage = self.study._storage
        trial = storage.get_trial(tid)
        if trial.state == states.RUNNING:
            if state == "complete":
                self.study.tell(trial.number, values)
            else:
                self.study.tell(trial.number, state=states.PRUNED if state == "pruned" else states.FAIL)
        return dict(storage.get_trial(tid).system_attrs)
