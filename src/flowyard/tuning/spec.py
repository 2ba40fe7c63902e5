"""Validating and defaulting a Katib `v1beta1` Experiment spec.

Every mistake is an `Invalid` that names the field and says what to fix. The stored spec
is the defaulted one, as Katib's defaulter writes it (`parallelTrialCount: 3`,
`resumePolicy: Never`, metric strategies, a `StdOut` collector), so the controller reads
one shape. Flowyard's additions: `objective.additionalObjectives` (multi-objective search)
and the `Push` collector.
"""

from __future__ import annotations

import math
import re
from typing import Any

from flowyard.errors import Invalid
from flowyard.tuning.algorithms import ALGORITHMS, MULTI_OBJECTIVE, check_settings

PARAMETER_TYPES = ("int", "double", "categorical", "discrete")
COLLECTORS = ("StdOut", "File", "Push")
RESUME_POLICIES = ("Never", "LongRunning", "FromVolume")
EARLY_STOPPING = {"medianstop": {"min_trials_required": 1, "start_step": 1}}
"""Early-stopping algorithms and their settings, each with the smallest value allowed."""
BUDGET_FIELDS = ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")
"""What may change once an experiment exists (as in Katib)."""
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
MAX_GRID = 100_000
RUN_API = "pipelines.kubeflow.org/v2beta1"


def _one_of(value: object, options: Any) -> bool:
    """`value in options` for a value from the user, who may have sent a list or an object."""
    return isinstance(value, str) and value in options


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f"{where} must be a list")
    return value


def _dict(value: object, where: str, required: bool = False) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{where} must be an object" + (" (it is required)" if value is None else ""))
    return value


def _count(spec: dict[str, Any], key: str, minimum: int) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise Invalid(f"spec.{key} must be a whole number >= {minimum}, got {value!r}")
    return value


def number(value: object, where: str) -> float:
    """A finite number from a Katib value (they are strings, but numbers are accepted)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid(f"{where} must be a number (as a string, e.g. \"0.01\"), got {value!r}")
    try:
        out = float(value)
    except ValueError:
        raise Invalid(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise Invalid(f"{where} must be a finite number, got {value!r}")
    return out


def _objective(spec: dict[str, Any], algorithm: str) -> dict[str, Any]:
    obj = dict(_dict(spec.get("objective"), "spec.objective", required=True))
    if obj.get("type") not in ("minimize", "maximize"):
        raise Invalid(f"spec.objective.type must be minimize or maximize, got {obj.get('type')!r}")
    name = obj.get("objectiveMetricName")
    if not isinstance(name, str) or not name.strip():
        raise Invalid("spec.objective.objectiveMetricName is required: the metric the search optimises")
    if obj.get("goal") is not None and (isinstance(obj["goal"], bool) or not isinstance(obj["goal"], (int, float))):
        raise Invalid(f"spec.objective.goal must be a number, got {obj['goal']!r}")
    extra = _list(obj.get("additionalMetricNames"), "spec.objective.additionalMetricNames")
    if not all(isinstance(m, str) and m for m in extra):
        raise Invalid("spec.objective.additionalMetricNames must be a list of metric names")
    if name in extra:
        raise Invalid(f"spec.objective.additionalMetricNames must not repeat the objective metric '{name}'")
    more = _list(obj.get("additionalObjectives"), "spec.objective.additionalObjectives")
    for i, o in enumerate(more):
        where = f"spec.objective.additionalObjectives[{i}]"
        if not isinstance(o, dict) or not isinstance(o.get("name"), str) or not o["name"]:
            raise Invalid(f"{where} needs a metric name and a type (minimize or maximize)")
        if o.get("type") not in ("minimize", "maximize"):
            raise Invalid(f"{where}.type must be minimize or maximize, got {o.get('type')!r}")
        if o["name"] == name or o["name"] in extra:
            raise Invalid(f"{where}: metric '{o['name']}' is already named elsewhere in the objective")
    if more and algorithm not in MULTI_OBJECTIVE:
        raise Invalid(f"spec.objective.additionalObjectives needs a multi-objective algorithm: "
                      f"{', '.join(sorted(MULTI_OBJECTIVE))} (not {algorithm})")
    if more and obj.get("goal") is not None:
        raise Invalid("spec.objective.goal cannot be used with additionalObjectives: a Pareto front has no one goal")
    names = [name, *extra, *(o["name"] for o in more)]
    direction = {"minimize": "min", "maximize": "max"}
    defaults = {name: direction[obj["type"]], **{m: direction[obj["type"]] for m in extra},
                **{o["name"]: direction[o["type"]] for o in more}}
    given = {}
    for i, s in enumerate(_list(obj.get("metricStrategies"), "spec.objective.metricStrategies")):
        if not isinstance(s, dict) or not _one_of(s.get("name"), names):
            raise Invalid(f"spec.objective.metricStrategies[{i}].name must be one of the objective's metrics: "
                          f"{', '.join(names)}")
        if s.get("value") not in ("min", "max", "latest"):
            raise Invalid(f"spec.objective.metricStrategies[{i}].value must be min, max or latest")
        given[s["name"]] = s["value"]
    obj["metricStrategies"] = [{"name": m, "value": given.get(m, defaults[m])} for m in names]
    obj["additionalMetricNames"] = extra
    if more:
        obj["additionalObjectives"] = more
    return obj


def _parameter(i: int, p: object, seen: set[str]) -> dict[str, Any]:
    where = f"spec.parameters[{i}]"
    if not isinstance(p, dict):
        raise Invalid(f"{where} must be an object with name, parameterType and feasibleSpace")
    name = p.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise Invalid(f"{where}.name must be a name of letters, digits, '_', '-' or '.', got {name!r}")
    if name in seen:
        raise Invalid(f"{where}: parameter '{name}' is declared twice")
    seen.add(name)
    where = f"parameter '{name}'"
    ptype = p.get("parameterType")
    if not _one_of(ptype, PARAMETER_TYPES):
        raise Invalid(f"{where}: parameterType must be one of {', '.join(PARAMETER_TYPES)}, got {ptype!r}")
    space = dict(_dict(p.get("feasibleSpace"), f"{where}: feasibleSpace", required=True))
    if ptype in ("categorical", "discrete"):
        values = _list(space.get("list"), f"{where}: feasibleSpace.list")
        if not values:
            raise Invalid(f"{where}: a {ptype} parameter needs feasibleSpace.list with its values")
        if ptype == "discrete":
            for v in values:
                number(v, f"{where}: feasibleSpace.list value")
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise Invalid(f"{where}: feasibleSpace.list must hold strings")
        space["list"] = [str(v) for v in values]
        if len(set(space["list"])) != len(values):
            raise Invalid(f"{where}: feasibleSpace.list has a value twice")
        return {**p, "feasibleSpace": space}
    if space.get("min") is None or space.get("max") is None:
        raise Invalid(f"{where}: an {ptype} parameter needs feasibleSpace.min and feasibleSpace.max")
    low, high = number(space["min"], f"{where}: feasibleSpace.min"), number(space["max"], f"{where}: feasibleSpace.max")
    if ptype == "int" and not (low.is_integer() and high.is_integer()):
        raise Invalid(f"{where}: an int parameter needs whole numbers for min and max")
    if low > high:
        raise Invalid(f"{where}: feasibleSpace.min ({space['min']}) is greater than feasibleSpace.max "
                      f"({space['max']}): swap them")
    dist = space.get("distribution") or "uniform"
    if dist in ("normal", "logNormal"):
        raise Invalid(f"{where}: distribution {dist} is not supported (Optuna samples bounded ranges); "
                      "use uniform or logUniform")
    if dist not in ("uniform", "logUniform"):
        raise Invalid(f"{where}: distribution must be uniform or logUniform, got {dist!r}")
    if dist == "logUniform" and low <= 0:
        raise Invalid(f"{where}: logUniform needs feasibleSpace.min > 0")
    if space.get("step") not in (None, ""):
        step = number(space["step"], f"{where}: feasibleSpace.step")
        if step <= 0 or (ptype == "int" and not step.is_integer()):
            raise Invalid(f"{where}: feasibleSpace.step must be > 0" + (" and whole" if ptype == "int" else ""))
        if dist == "logUniform" and ptype == "double":
            raise Invalid(f"{where}: a logUniform double cannot have a step")
    space = {k: str(v) for k, v in space.items() if k != "list" and v is not None}
    space["distribution"] = dist
    return {**p, "feasibleSpace": space}


def _collector(spec: dict[str, Any]) -> dict[str, Any]:
    mc = dict(_dict(spec.get("metricsCollectorSpec"), "spec.metricsCollectorSpec"))
    collector = dict(_dict(mc.get("collector"), "spec.metricsCollectorSpec.collector"))
    kind = collector.get("kind") or "StdOut"
    if not _one_of(kind, COLLECTORS):
        raise Invalid(f"spec.metricsCollectorSpec.collector.kind {kind!r} is not supported: use "
                      f"{', '.join(COLLECTORS)}")
    collector["kind"] = kind
    source = _dict(mc.get("source"), "spec.metricsCollectorSpec.source")
    formats = _list(_dict(source.get("filter"), "source.filter").get("metricsFormat"),
                    "spec.metricsCollectorSpec.source.filter.metricsFormat")
    for f in formats:
        try:
            groups = re.compile(f).groups if isinstance(f, str) else -1
        except re.error as e:
            raise Invalid(f"metricsFormat {f!r} is not a valid regular expression: {e}") from None
        if groups < 2:
            raise Invalid(f"metricsFormat {f!r} needs two groups: the metric name, then its value")
    if kind == "File":
        path = _dict(source.get("fileSystemPath"), "source.fileSystemPath")
        if not isinstance(path.get("path"), str) or not path["path"]:
            raise Invalid("a File collector needs spec.metricsCollectorSpec.source.fileSystemPath.path")
        if path.get("kind", "File") != "File":
            raise Invalid("fileSystemPath.kind must be File (Directory is for TensorFlow events, not supported)")
        if path.get("format", "TEXT") not in ("TEXT", "JSON"):
            raise Invalid("fileSystemPath.format must be TEXT or JSON")
    return {**mc, "collector": collector}


def _template(spec: dict[str, Any], params: set[str]) -> dict[str, Any]:
    from flowyard.workloads import check_container

    tt = _dict(spec.get("trialTemplate"), "spec.trialTemplate", required=True)
    if tt.get("configMap"):
        raise Invalid("spec.trialTemplate.configMap is not supported: put the Job in trialTemplate.trialSpec")
    declared: set[str] = set()
    for i, tp in enumerate(_list(tt.get("trialParameters"), "spec.trialTemplate.trialParameters")):
        if not isinstance(tp, dict) or not isinstance(tp.get("name"), str) or not tp["name"]:
            raise Invalid(f"spec.trialTemplate.trialParameters[{i}] needs a name and a reference")
        if not _one_of(tp.get("reference"), params):
            raise Invalid(f"trial parameter '{tp['name']}' refers to unknown parameter {tp.get('reference')!r}; "
                          f"spec.parameters has {', '.join(sorted(params))}")
        declared.add(tp["name"])
    trial = _dict(tt.get("trialSpec"), "spec.trialTemplate.trialSpec", required=True)
    used = set(PLACEHOLDER.findall(repr(trial)))
    unknown = used - declared
    if unknown:
        raise Invalid(f"spec.trialTemplate.trialSpec uses unknown parameter ${{trialParameters.{min(unknown)}}}; "
                      f"declare it in trialTemplate.trialParameters (declared: {', '.join(sorted(declared)) or 'none'})")
    if (trial.get("apiVersion"), trial.get("kind")) == (RUN_API, "Run"):
        return _pipeline_template(tt, trial)
    if (trial.get("apiVersion"), trial.get("kind")) != ("batch/v1", "Job"):
        raise Invalid("spec.trialTemplate.trialSpec must be a Job (apiVersion: batch/v1, kind: Job) or a pipeline "
                      f"Run ({RUN_API}, kind: Run), got {trial.get('apiVersion')}/{trial.get('kind')}")
    pod = _dict(_dict(_dict(trial.get("spec"), "trialSpec.spec").get("template"), "trialSpec.spec.template")
                .get("spec"), "trialSpec.spec.template.spec")
    containers = _list(pod.get("containers"), "trialSpec.spec.template.spec.containers")
    if not containers:
        raise Invalid("spec.trialTemplate.trialSpec.spec.template.spec.containers must list the container to run")
    primary = tt.get("primaryContainerName")
    names = [c.get("name") for c in containers if isinstance(c, dict)]
    if primary and primary not in names:
        raise Invalid(f"spec.trialTemplate.primaryContainerName '{primary}' is not a container of the trialSpec "
                      f"(containers: {', '.join(str(n) for n in names)})")
    for i, c in enumerate(containers):
        where = f"trialSpec.spec.template.spec.containers[{i}]"
        if isinstance(c, dict) and not all(isinstance(c.get(k) or [], list) for k in ("command", "args", "env")):
            raise Invalid(f"{where}: command, args and env must be lists")
        check_container(c, where)
    return tt


def _pipeline_template(tt: dict[str, Any], trial: dict[str, Any]) -> dict[str, Any]:
    """A trial that runs a KFP pipeline: its parameters carry the trial parameters."""
    from flowyard.pipelines.kinds import check_pipeline_spec, unwrap_pipeline_spec

    spec = _dict(trial.get("spec"), "trialSpec.spec", required=True)
    pipeline, _ = unwrap_pipeline_spec(spec.get("pipelineSpec"))
    if pipeline is None and not (spec.get("pipelineVersionReference") or {}).get("pipelineId"):
        raise Invalid("a pipeline trialSpec needs spec.pipelineSpec (a compiled KFP pipeline) or "
                      "spec.pipelineVersionReference with pipelineId")
    if pipeline is not None:
        check_pipeline_spec(pipeline, "trialSpec.spec.pipelineSpec")
    if not isinstance(spec.get("parameters", {}), dict):
        raise Invalid("trialSpec.spec.parameters must map pipeline parameters to values such as "
                      "\"${trialParameters.lr}\"")
    return tt


def _early_stopping(spec: dict[str, Any], algorithm: str) -> dict[str, Any] | None:
    es = spec.get("earlyStopping")
    if es is None:
        return None
    es = _dict(es, "spec.earlyStopping")
    name = es.get("algorithmName")
    if not _one_of(name, EARLY_STOPPING):
        raise Invalid(f"spec.earlyStopping.algorithmName {name!r} is unknown: use {', '.join(EARLY_STOPPING)}")
    if algorithm == "hyperband":
        raise Invalid("hyperband stops trials itself: remove spec.earlyStopping")
    for i, s in enumerate(_list(es.get("algorithmSettings"), "spec.earlyStopping.algorithmSettings")):
        allowed = EARLY_STOPPING[name]
        if not isinstance(s, dict) or not _one_of(s.get("name"), allowed):
            raise Invalid(f"spec.earlyStopping.algorithmSettings[{i}]: {name} accepts {', '.join(allowed)}")
        value = number(s.get("value"), f"earlyStopping setting {s['name']}")
        if not value.is_integer() or value < allowed[s["name"]]:
            raise Invalid(f"earlyStopping setting {s['name']} must be a whole number >= {allowed[s['name']]}")
    return es


def experiment_spec(manifest: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """The validated, defaulted spec of an Experiment manifest (`old`: the stored one on update)."""
    spec = dict(_dict(manifest.get("spec"), "spec", required=True))
    name = (manifest.get("metadata") or {}).get("name") if isinstance(manifest.get("metadata"), dict) else None
    if isinstance(name, str) and len(name) > 54:
        raise Invalid(f"metadata.name '{name}' is too long for an experiment (its trials are named after it): "
                      "at most 54 characters")
    if spec.get("nasConfig"):
        raise Invalid("spec.nasConfig (neural architecture search: enas, darts) is not supported")
    algo = dict(_dict(spec.get("algorithm"), "spec.algorithm", required=True))
    name = algo.get("algorithmName")
    if not _one_of(name, ALGORITHMS):
        raise Invalid(f"spec.algorithm.algorithmName {name!r} is not supported; supported: {', '.join(ALGORITHMS)}")
    settings = _list(algo.get("algorithmSettings"), "spec.algorithm.algorithmSettings")
    for i, s in enumerate(settings):
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not isinstance(s.get("value"), str):
            raise Invalid(f"spec.algorithm.algorithmSettings[{i}] needs a name and a value (a string)")
    spec["objective"] = _objective(spec, name)
    seen: set[str] = set()
    params = _list(spec.get("parameters"), "spec.parameters")
    if not params:
        raise Invalid("spec.parameters must list at least one parameter to search")
    spec["parameters"] = [_parameter(i, p, seen) for i, p in enumerate(params)]
    check_settings(name, {s["name"]: s["value"] for s in settings}, spec["parameters"])
    for key, minimum in (("parallelTrialCount", 1), ("maxTrialCount", 1), ("maxFailedTrialCount", 0)):
        _count(spec, key, minimum)
    spec.setdefault("parallelTrialCount", 3)
    policy = spec.setdefault("resumePolicy", "Never")
    if not _one_of(policy, RESUME_POLICIES):
        raise Invalid(f"spec.resumePolicy must be one of {', '.join(RESUME_POLICIES)}, got {policy!r}")
    es = _early_stopping(spec, name)
    if es is None:
        spec.pop("earlyStopping", None)
    if es is not None and spec["objective"].get("additionalObjectives"):
        raise Invalid("spec.earlyStopping works with one objective, not with additionalObjectives")
    spec["metricsCollectorSpec"] = _collector(spec)
    spec["trialTemplate"] = _template(spec, seen)
    if spec["trialTemplate"]["trialSpec"].get("kind") == "Run" and \
            spec["metricsCollectorSpec"]["collector"]["kind"] != "StdOut":
        raise Invalid("a pipeline trial's metrics come from its tasks' output: use the StdOut collector")
    if old is not None:
        before = {k: v for k, v in old["spec"].items() if k not in BUDGET_FIELDS}
        after = {k: v for k, v in spec.items() if k not in BUDGET_FIELDS}
        if before != after:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            raise Invalid(f"only {', '.join(BUDGET_FIELDS)} of an experiment can change (you changed "
                          f"{', '.join(changed)}): create a new experiment for another search")
    return spec
