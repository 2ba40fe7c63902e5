"""The pipeline kinds (`pipelines.kubeflow.org/v2beta1`): Experiment, Pipeline,
PipelineVersion, Run and RecurringRun, with their spec validation.

The KFP id of every object is its resource `uid`; `metadata.name` is a readable slug so the
generic API and CLI (`flowyard get runs -n NS`) work too. Index labels (`LABEL_*`) carry the
ids of related objects so lists can be narrowed in SQL.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from flowyard.errors import Invalid
from flowyard.kinds import Kind, Manifest, register

API_VERSION = "pipelines.kubeflow.org/v2beta1"
LABEL_EXPERIMENT = "pipelines.kubeflow.org/experiment-id"
LABEL_PIPELINE = "pipelines.kubeflow.org/pipeline-id"
LABEL_RECURRING = "pipelines.kubeflow.org/recurring-run-id"
STORAGE_STATES = ("AVAILABLE", "ARCHIVED")
RUN_STATES = ("PENDING", "RUNNING", "SUCCEEDED", "SKIPPED", "FAILED", "CANCELING", "CANCELED", "PAUSED")
TERMINAL = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}
_PARAM_TYPES = {"NUMBER_DOUBLE", "NUMBER_INTEGER", "STRING", "BOOLEAN", "LIST", "STRUCT", "TASK_FINAL_STATUS"}


def slug(text: str | None, fallback: str = "x") -> str:
    """A valid object name made from a display name, with a short random suffix."""
    base = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")[:40].strip("-") or fallback
    return f"{base}-{secrets.token_hex(3)}"


def _text(spec: dict, key: str, what: str, required: bool = False) -> str:
    value = spec.get(key)
    if value is None or value == "":
        if required:
            raise Invalid(f"{what} is required")
        return ""
    if not isinstance(value, str):
        raise Invalid(f"{what} must be a string")
    if len(value) > 10_000:
        raise Invalid(f"{what} is too long (at most 10000 characters)")
    return value


def _storage(spec: dict) -> str:
    state = spec.get("storageState") or "AVAILABLE"
    if state not in STORAGE_STATES:
        raise Invalid(f"spec.storageState '{state}' is invalid: use AVAILABLE or ARCHIVED")
    return state


def unwrap_pipeline_spec(value: Any) -> tuple[Any, Any]:
    """(PipelineSpec, PlatformSpec or None) from what a client sent: a bare PipelineSpec or the
    `{pipeline_spec: ..., platform_spec: ...}` wrapper kfp sends for two-document packages."""
    if isinstance(value, dict) and "root" not in value:
        for key in ("pipeline_spec", "pipelineSpec"):
            if isinstance(value.get(key), dict):
                return value[key], value.get("platform_spec") or value.get("platformSpec")
    return value, None


def check_pipeline_spec(value: Any, what: str = "spec.pipelineSpec") -> dict[str, Any]:
    """Validate the shape of a KFP PipelineSpec (the IR `kfp.compiler` writes)."""
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be a KFP PipelineSpec object (compile the pipeline with kfp.compiler)")
    info = value.get("pipelineInfo")
    if not isinstance(info, dict) or not isinstance(info.get("name"), str) or not info["name"]:
        raise Invalid(f"{what}.pipelineInfo.name is required: is this a compiled KFP v2 pipeline?")
    root = value.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("dag"), dict):
        raise Invalid(f"{what}.root.dag is required: is this a compiled KFP v2 pipeline (not v1)?")
    components = value.get("components", {})
    if not isinstance(components, dict):
        raise Invalid(f"{what}.components must be a map of component specs")
    executors = (value.get("deploymentSpec") or {}).get("executors", {})
    if not isinstance(executors, dict):
        raise Invalid(f"{what}.deploymentSpec.executors must be a map")
    for tname, task in (root["dag"].get("tasks") or {}).items():
        ref = ((task or {}).get("componentRef") or {}).get("name")
        if ref is not None and ref not in components:
            raise Invalid(f"{what}: task '{tname}' refers to component '{ref}', which is not in components")
    for cname, comp in components.items():
        label = (comp or {}).get("executorLabel")
        if label is not None and label not in executors:
            raise Invalid(f"{what}: component '{cname}' refers to executor '{label}', which is not in "
                          "deploymentSpec.executors")
    return value


def _coerce(name: str, ptype: str, value: Any) -> Any:
    bad = Invalid(f"parameter '{name}' must be of type {ptype}, got {value!r}")
    if ptype == "NUMBER_INTEGER":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad from None
        if not isinstance(value, int):
            raise bad
        return value
    if ptype == "NUMBER_DOUBLE":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if ptype == "BOOLEAN":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise bad
        return value
    if ptype == "STRING":
        if not isinstance(value, str):
            raise bad
        return value
    if ptype == "LIST" and not isinstance(value, list):
        raise bad
    if ptype == "STRUCT" and not isinstance(value, dict):
        raise bad
    return value


def resolve_parameters(pipeline_spec: dict[str, Any], given: Any) -> dict[str, Any]:
    """The runtime parameters: given values coerced by `parameterType`, defaults filled in."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise Invalid("the run parameters must be a map of parameter name to value")
    defs = ((pipeline_spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    unknown = sorted(set(given) - set(defs))
    if unknown:
        known = ", ".join(sorted(defs)) or "none"
        raise Invalid(f"unknown pipeline parameter(s): {', '.join(unknown)} (the pipeline takes: {known})")
    out: dict[str, Any] = {}
    for name, d in defs.items():
        ptype = (d or {}).get("parameterType", "STRING")
        if name in given and given[name] is not None:
            out[name] = _coerce(name, ptype, given[name])
        elif "defaultValue" in (d or {}):
            out[name] = _coerce(name, ptype, d["defaultValue"]) if d["defaultValue"] is not None else None
        elif (d or {}).get("isOptional"):
            continue
        else:
            raise Invalid(f"pipeline parameter '{name}' ({ptype}) is required and has no default")
    return out


def _trigger(spec: dict) -> dict[str, Any]:
    from flowyard.controllers.recurringrun import parse_cron

    trig = spec.get("trigger")
    if not isinstance(trig, dict):
        raise Invalid("spec.trigger is required: {cron: '0 * * * * *'} or {intervalSecond: 60}")
    out: dict[str, Any] = {}
    if trig.get("cron") not in (None, ""):
        if trig.get("intervalSecond") not in (None, 0, "0"):
            raise Invalid("spec.trigger: give either cron or intervalSecond, not both")
        if not isinstance(trig["cron"], str):
            raise Invalid("spec.trigger.cron must be a string")
        parse_cron(trig["cron"])
        out["cron"] = trig["cron"]
    elif trig.get("intervalSecond") not in (None, ""):
        try:
            interval = int(trig["intervalSecond"])
        except (TypeError, ValueError):
            raise Invalid("spec.trigger.intervalSecond must be a whole number of seconds") from None
        if interval < 1:
            raise Invalid("spec.trigger.intervalSecond must be at least 1")
        out["intervalSecond"] = interval
    else:
        raise Invalid("spec.trigger needs cron or intervalSecond")
    for key in ("startTime", "endTime"):
        if trig.get(key):
            out[key] = _text(trig, key, f"spec.trigger.{key}")
    return out


# -- spec validators --------------------------------------------------------------------------


def _spec(manifest: Manifest) -> dict[str, Any]:
    spec = manifest.get("spec") or {}
    if not isinstance(spec, dict):
        raise Invalid("spec must be an object")
    return spec


def _experiment_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = _spec(manifest)
    return {"displayName": _text(spec, "displayName", "spec.displayName", required=True),
            "description": _text(spec, "description", "spec.description"), "storageState": _storage(spec)}


def _pipeline_spec_kind(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = _spec(manifest)
    return {"displayName": _text(spec, "displayName", "spec.displayName", required=True),
            "description": _text(spec, "description", "spec.description")}


def _version_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = _spec(manifest)
    pipeline_spec, platform_spec = unwrap_pipeline_spec(spec.get("pipelineSpec"))
    out = {"displayName": _text(spec, "displayName", "spec.displayName", required=True),
           "description": _text(spec, "description", "spec.description"),
           "pipeline": _text(spec, "pipeline", "spec.pipeline (the Pipeline's name)", required=True),
           "pipelineId": _text(spec, "pipelineId", "spec.pipelineId"),
           "pipelineSpec": check_pipeline_spec(pipeline_spec)}
    if platform_spec or spec.get("platformSpec"):
        out["platformSpec"] = platform_spec or spec["platformSpec"]
    return out


def _source(spec: dict, out: dict) -> None:
    """The pipeline a Run or RecurringRun runs: an inline spec and/or a version reference."""
    pipeline_spec, platform_spec = unwrap_pipeline_spec(spec.get("pipelineSpec"))
    ref = spec.get("pipelineVersionReference")
    if ref is not None:
        if not isinstance(ref, dict) or not ref.get("pipelineId"):
            raise Invalid("spec.pipelineVersionReference needs pipelineId (and pipelineVersionId)")
        out["pipelineVersionReference"] = {k: str(ref[k]) for k in ("pipelineId", "pipelineVersionId") if ref.get(k)}
    if pipeline_spec is None:
        if ref is None:
            raise Invalid("spec.pipelineSpec (a compiled KFP PipelineSpec) or spec.pipelineVersionReference is required")
        out["parameters"] = spec.get("parameters") or {}
        if not isinstance(out["parameters"], dict):
            raise Invalid("spec.parameters must be a map of parameter name to value")
        return
    out["pipelineSpec"] = check_pipeline_spec(pipeline_spec)
    if platform_spec or spec.get("platformSpec"):
        out["platformSpec"] = platform_spec or spec["platformSpec"]
    out["parameters"] = resolve_parameters(out["pipelineSpec"], spec.get("parameters"))


def _common_run(spec: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"displayName": _text(spec, "displayName", "spec.displayName", required=True),
                           "description": _text(spec, "description", "spec.description")}
    for key in ("experiment", "experimentId", "pipelineRoot", "serviceAccount"):
        if spec.get(key):
            out[key] = _text(spec, key, f"spec.{key}")
    _source(spec, out)
    return out


def _run_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = _spec(manifest)
    out = _common_run(spec)
    out["storageState"] = _storage(spec)
    if spec.get("recurringRunId"):
        out["recurringRunId"] = _text(spec, "recurringRunId", "spec.recurringRunId")
    if spec.get("terminate"):
        out["terminate"] = True
    retries = spec.get("retry", 0)
    if not isinstance(retries, int) or retries < 0:
        raise Invalid("spec.retry must be a non-negative count")
    if retries:
        out["retry"] = retries
    if old is not None:
        # what a run runs is fixed once it exists
        if old["spec"].get("pipelineSpec") is not None:
            for key in ("pipelineSpec", "parameters"):
                if out.get(key) != old["spec"].get(key):
                    raise Invalid(f"spec.{key} of a run cannot be changed: create a new run")
    return out


def _recurring_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = _spec(manifest)
    out = _common_run(spec)
    out["trigger"] = _trigger(spec)
    try:
        out["maxConcurrency"] = int(spec.get("maxConcurrency") or 1)
    except (TypeError, ValueError):
        raise Invalid("spec.maxConcurrency must be a whole number") from None
    if not 1 <= out["maxConcurrency"] <= 10:
        raise Invalid("spec.maxConcurrency must be between 1 and 10")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise Invalid("spec.enabled must be true or false")
    out["enabled"] = enabled
    out["noCatchup"] = True  # runs missed while the server was down are not made up
    return out


EXPERIMENT = register(Kind("Experiment", (API_VERSION,), spec_from=_experiment_spec))
PIPELINE = register(Kind("Pipeline", (API_VERSION,), spec_from=_pipeline_spec_kind))
PIPELINE_VERSION = register(Kind("PipelineVersion", (API_VERSION,), spec_from=_version_spec))
RUN = register(Kind("Run", (API_VERSION,), spec_from=_run_spec))
RECURRING_RUN = register(Kind("RecurringRun", (API_VERSION,), spec_from=_recurring_spec))
