"""The Kubeflow Pipelines REST API `/apis/v2beta1`, as the unmodified `kfp.Client` 2.x uses it.

Objects are the pipeline kinds (`flowyard.pipelines.kinds`); a KFP id is the resource uid.
Responses use KFP's snake_case field names; errors keep Flowyard's `{code, message}` bodies.
An empty `namespace` means the caller's own namespace (or the first one they can edit).
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from fastapi import APIRouter, Body, Depends, File, Query, UploadFile

from flowyard.accounts import Principal
from flowyard.api.deps import platform, principal
from flowyard.api.resources import CREATOR
from flowyard.errors import AlreadyExists, Conflict, Invalid
from flowyard.kinds import Manifest
from flowyard.pipelines.api_common import (find_allowed, all_items, listing,
                                           namespace_of, page, version_spec, versions_of)
from flowyard.pipelines.kinds import (EXPERIMENT, LABEL_EXPERIMENT, LABEL_PIPELINE, PIPELINE,
                                      PIPELINE_VERSION, RECURRING_RUN, RUN, TERMINAL, slug, unwrap_pipeline_spec)
from flowyard.platform import Platform

router = APIRouter(prefix="/apis/v2beta1", tags=["kfp"])
_Body = Body(..., description="A KFP v2beta1 object (snake_case fields)")
MAX_PACKAGE = 32 * 1024 * 1024


def _patch(p: Platform, kind: Any, obj: Manifest, patch: dict[str, Any]) -> Manifest:
    """Merge-patch `obj`, retrying when a controller's status write raced with it."""
    for attempt in range(10):
        try:
            return p.store.patch(kind, obj["metadata"]["namespace"], obj["metadata"]["name"], patch)
        except Conflict:
            if attempt == 9:
                raise
    raise AssertionError("unreachable")


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, "", {}, [])}


def _meta(name_hint: str | None, who: Principal, labels: dict[str, str] | None = None, fallback: str = "x") -> dict:
    return {"name": slug(name_hint, fallback), "labels": labels or {}, "annotations": {CREATOR: who.user}}


def _manifest(kind: Any, meta: dict, spec: dict) -> Manifest:
    return {"apiVersion": kind.api_version, "kind": kind.name, "metadata": meta, "spec": spec}


# -- KFP shapes -------------------------------------------------------------------------------


def kfp_experiment(obj: Manifest) -> dict[str, Any]:
    m, s = obj["metadata"], obj["spec"]
    return _clean({"experiment_id": m["uid"], "display_name": s["displayName"], "description": s.get("description"),
                   "created_at": m["creationTimestamp"], "namespace": m["namespace"],
                   "storage_state": s.get("storageState", "AVAILABLE")})


def kfp_pipeline(obj: Manifest) -> dict[str, Any]:
    m, s = obj["metadata"], obj["spec"]
    return _clean({"pipeline_id": m["uid"], "display_name": s["displayName"], "name": s["displayName"],
                   "description": s.get("description"), "created_at": m["creationTimestamp"],
                   "namespace": m["namespace"]})


def kfp_version(obj: Manifest) -> dict[str, Any]:
    m, s = obj["metadata"], obj["spec"]
    return _clean({"pipeline_id": s.get("pipelineId"), "pipeline_version_id": m["uid"],
                   "display_name": s["displayName"], "name": s["displayName"], "description": s.get("description"),
                   "created_at": m["creationTimestamp"], "pipeline_spec": s.get("pipelineSpec")})


def _parent_path(path: str, entry: dict[str, Any]) -> str:
    """The task path holding `path`: a loop for its iterations, else the enclosing DAG."""
    if entry.get("type") == "iteration":
        return re.sub(r"-iteration-\d+$", "", path)
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _task_details(run_id: str, tasks: Any) -> list[dict[str, Any]]:
    """KFP `run_details.task_details` from the engine's task entries (keyed by task path)."""
    out = []
    for path, t in (tasks or {}).items() if isinstance(tasks, dict) else []:
        if not isinstance(t, dict):
            continue
        state = t.get("state")
        if state == "SUCCEEDED" and t.get("cached"):
            state = "CACHED"  # KFP's task state for an execution served from the cache
        parent = _parent_path(path, t)
        detail = {"run_id": run_id, "task_id": f"{run_id}.{path}", "display_name": t.get("name") or path,
                  "state": state, "create_time": t.get("createdAt") or t.get("startedAt"),
                  "start_time": t.get("startedAt"), "end_time": t.get("finishedAt"),
                  "parent_task_id": f"{run_id}.{parent}" if parent else None, "pod_name": t.get("workload")}
        if t.get("message") and t.get("state") in ("FAILED", "CANCELED"):
            detail["error"] = {"message": t["message"]}
        out.append(_clean(detail))
    return out


def kfp_run(obj: Manifest) -> dict[str, Any]:
    m, s, st = obj["metadata"], obj["spec"], obj.get("status") or {}
    ref = s.get("pipelineVersionReference") or {}
    state = st.get("state") or "PENDING"
    run = {"run_id": m["uid"], "experiment_id": s.get("experimentId"), "display_name": s["displayName"],
           "description": s.get("description"), "storage_state": s.get("storageState", "AVAILABLE"),
           "pipeline_version_id": ref.get("pipelineVersionId"), "pipeline_spec": s.get("pipelineSpec"),
           "pipeline_version_reference": _clean({"pipeline_id": ref.get("pipelineId"),
                                                 "pipeline_version_id": ref.get("pipelineVersionId")}),
           "runtime_config": _clean({"parameters": s.get("parameters"), "pipeline_root": s.get("pipelineRoot")}),
           "service_account": s.get("serviceAccount"), "created_at": m["creationTimestamp"],
           "scheduled_at": (m.get("annotations") or {}).get("pipelines.kubeflow.org/scheduled-at")
           or m["creationTimestamp"],
           "finished_at": st.get("finishedAt") if state in TERMINAL else None, "state": state,
           "recurring_run_id": s.get("recurringRunId"),
           "state_history": [_clean({"update_time": h.get("updateTime"), "state": h.get("state")})
                             for h in st.get("stateHistory") or [] if isinstance(h, dict)]}
    if st.get("message") and state in ("FAILED", "CANCELED", "PENDING"):
        run["error"] = {"message": st["message"]}
    details = _task_details(m["uid"], st.get("tasks"))
    if details:
        run["run_details"] = {"task_details": details}
    return _clean(run)


def kfp_recurring(obj: Manifest) -> dict[str, Any]:
    m, s, st = obj["metadata"], obj["spec"], obj.get("status") or {}
    ref, trig = s.get("pipelineVersionReference") or {}, s["trigger"]
    window = _clean({"start_time": trig.get("startTime"), "end_time": trig.get("endTime")})
    trigger = ({"cron_schedule": {**window, "cron": trig["cron"]}} if trig.get("cron")
               else {"periodic_schedule": {**window, "interval_second": str(trig["intervalSecond"])}})
    enabled = s.get("enabled", True)
    return _clean({
        "recurring_run_id": m["uid"], "display_name": s["displayName"], "description": s.get("description"),
        "pipeline_version_id": ref.get("pipelineVersionId"), "pipeline_spec": s.get("pipelineSpec"),
        "pipeline_version_reference": _clean({"pipeline_id": ref.get("pipelineId"),
                                              "pipeline_version_id": ref.get("pipelineVersionId")}),
        "runtime_config": _clean({"parameters": s.get("parameters"), "pipeline_root": s.get("pipelineRoot")}),
        "service_account": s.get("serviceAccount"), "max_concurrency": str(s.get("maxConcurrency", 1)),
        "trigger": trigger, "mode": "ENABLE" if enabled else "DISABLE", "created_at": m["creationTimestamp"],
        "updated_at": st.get("lastRunAt") or m["creationTimestamp"], "status": "ENABLED" if enabled else "DISABLED",
        "no_catchup": True, "namespace": m["namespace"], "experiment_id": s.get("experimentId")})


# -- health -------------------------------------------------------------------------------------


@router.get("/healthz", summary="KFP health (public)")
async def healthz() -> dict[str, Any]:
    # multi_user is false on purpose: with true, kfp.Client tries to read the Kubernetes
    # service-account namespace file, which does not exist outside a pod. Namespaces still work:
    # an empty namespace means the caller's own.
    return {"multi_user": False, "pipeline_store": "database"}


# -- experiments ------------------------------------------------------------------------------


def _experiment_for(p: Platform, who: Principal, experiment_id: str | None, namespace: str | None,
                    role: str = "edit") -> Manifest:
    """The experiment a run goes to: the one named, or the namespace's 'Default' (created when missing)."""
    if experiment_id:
        return find_allowed(p, who, EXPERIMENT, experiment_id, role)
    ns = namespace_of(p, who, namespace, role)
    for e in all_items(p, EXPERIMENT, ns):
        if e["spec"]["displayName"] == "Default":
            return e
    return p.store.create(EXPERIMENT, ns, _manifest(EXPERIMENT, _meta("default", who), {"displayName": "Default"}))


@router.post("/experiments", summary="Create an experiment")
def create_experiment(body: dict[str, Any] = _Body, who: Principal = Depends(principal),
                      p: Platform = Depends(platform)) -> dict[str, Any]:
    ns = namespace_of(p, who, body.get("namespace"), "edit")
    name = body.get("display_name") or body.get("name")
    if not name:
        raise Invalid("display_name is required")
    if any(e["spec"]["displayName"] == name for e in all_items(p, EXPERIMENT, ns)):
        raise AlreadyExists(f"experiment '{name}' already exists in namespace '{ns}'")
    spec = {"displayName": name, "description": body.get("description") or ""}
    return kfp_experiment(p.store.create(EXPERIMENT, ns, _manifest(EXPERIMENT, _meta(name, who), spec)))


@router.get("/experiments", summary="List experiments")
async def list_experiments(namespace: str | None = None, filter: str | None = None, sort_by: str | None = None,
                           page_size: int | None = Query(None), page_token: str | None = None,
                           who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    ns = namespace_of(p, who, namespace, "view")
    items = [kfp_experiment(e) for e in all_items(p, EXPERIMENT, ns)]
    return listing("experiments", *page(items, "experiment_id", filter, sort_by, page_size, page_token))


@router.get("/experiments/{experiment_id}", summary="Get an experiment")
async def get_experiment(experiment_id: str, who: Principal = Depends(principal),
                         p: Platform = Depends(platform)) -> dict[str, Any]:
    return kfp_experiment(find_allowed(p, who, EXPERIMENT, experiment_id, "view"))


def _set_storage(p: Platform, kind: Any, obj: Manifest, state: str) -> None:
    _patch(p, kind, obj, {"spec": {"storageState": state}})


@router.post("/experiments/{experiment_id}:archive", summary="Archive an experiment and its runs")
def archive_experiment(experiment_id: str, who: Principal = Depends(principal),
                       p: Platform = Depends(platform)) -> dict[str, Any]:
    exp = find_allowed(p, who, EXPERIMENT, experiment_id, "edit")
    _set_storage(p, EXPERIMENT, exp, "ARCHIVED")
    for run in all_items(p, RUN, exp["metadata"]["namespace"], f"{LABEL_EXPERIMENT}={experiment_id}"):
        _set_storage(p, RUN, run, "ARCHIVED")
    for rr in all_items(p, RECURRING_RUN, exp["metadata"]["namespace"], f"{LABEL_EXPERIMENT}={experiment_id}"):
        _patch(p, RECURRING_RUN, rr, {"spec": {"enabled": False}})
    return {}


@router.post("/experiments/{experiment_id}:unarchive", summary="Unarchive an experiment")
def unarchive_experiment(experiment_id: str, who: Principal = Depends(principal),
                         p: Platform = Depends(platform)) -> dict[str, Any]:
    _set_storage(p, EXPERIMENT, find_allowed(p, who, EXPERIMENT, experiment_id, "edit"), "AVAILABLE")
    return {}


@router.delete("/experiments/{experiment_id}", summary="Delete an experiment with its runs and recurring runs")
def delete_experiment(experiment_id: str, who: Principal = Depends(principal),
                      p: Platform = Depends(platform)) -> dict[str, Any]:
    exp = find_allowed(p, who, EXPERIMENT, experiment_id, "edit")
    ns = exp["metadata"]["namespace"]
    for kind in (RECURRING_RUN, RUN):
        for obj in all_items(p, kind, ns, f"{LABEL_EXPERIMENT}={experiment_id}"):
            p.store.delete(kind, ns, obj["metadata"]["name"])
    p.store.delete(EXPERIMENT, ns, exp["metadata"]["name"])
    return {}


# -- pipelines --------------------------------------------------------------------------------


def _read_package(upload: UploadFile) -> tuple[dict[str, Any], Any]:
    data = upload.file.read(MAX_PACKAGE + 1)
    if len(data) > MAX_PACKAGE:
        raise Invalid("the pipeline package is larger than 32 MiB")
    filename = (upload.filename or "").lower()
    if filename.endswith((".tar.gz", ".tgz", ".zip")):
        raise Invalid("upload the compiled pipeline as a .yaml (or .json) file; archives are not supported")
    try:
        docs = [d for d in yaml.safe_load_all(data.decode("utf-8")) if d is not None]
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise Invalid(f"the pipeline package is not valid YAML: {str(e)[:200]}") from None
    if not docs or not isinstance(docs[0], dict):
        raise Invalid("the pipeline package is empty: upload a YAML file written by kfp.compiler.Compiler")
    spec, platform_spec = unwrap_pipeline_spec(docs[0])
    if platform_spec is None and len(docs) > 1 and isinstance(docs[1], dict):
        platform_spec = docs[1]
    return spec, platform_spec


def _create_version(p: Platform, who: Principal, pipeline: Manifest, name: str, description: str | None,
                    spec: dict, platform_spec: Any) -> Manifest:
    ns, pid = pipeline["metadata"]["namespace"], pipeline["metadata"]["uid"]
    if any(v["spec"]["displayName"] == name for v in versions_of(p, pipeline)):
        raise AlreadyExists(f"pipeline version '{name}' already exists in pipeline '{pipeline['spec']['displayName']}'")
    vspec = {"displayName": name, "description": description or "", "pipeline": pipeline["metadata"]["name"],
             "pipelineId": pid, "pipelineSpec": spec}
    if platform_spec:
        vspec["platformSpec"] = platform_spec
    return p.store.create(PIPELINE_VERSION, ns, _manifest(PIPELINE_VERSION, _meta(name, who, {LABEL_PIPELINE: pid}),
                                                          vspec))


@router.post("/pipelines/upload", summary="Upload a compiled pipeline (multipart field 'uploadfile')")
def upload_pipeline(uploadfile: UploadFile = File(...), name: str | None = None, display_name: str | None = None,
                    description: str | None = None, namespace: str | None = None,
                    who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    ns = namespace_of(p, who, namespace, "edit")
    spec, platform_spec = _read_package(uploadfile)
    from flowyard.pipelines.kinds import check_pipeline_spec

    check_pipeline_spec(spec, "the uploaded pipeline")
    title = display_name or name or spec["pipelineInfo"]["name"]
    if any(x["spec"]["displayName"] == title for x in all_items(p, PIPELINE, ns)):
        raise AlreadyExists(f"pipeline '{title}' already exists in namespace '{ns}': upload a new version instead")
    pipeline = p.store.create(PIPELINE, ns, _manifest(PIPELINE, _meta(title, who), {
        "displayName": title, "description": description or spec["pipelineInfo"].get("description") or ""}))
    try:
        _create_version(p, who, pipeline, title, description, spec, platform_spec)
    except Exception:
        p.store.delete(PIPELINE, ns, pipeline["metadata"]["name"])
        raise
    return kfp_pipeline(pipeline)


@router.post("/pipelines/upload_version", summary="Upload a new version of a pipeline (multipart 'uploadfile')")
def upload_pipeline_version(uploadfile: UploadFile = File(...), name: str | None = None,
                            display_name: str | None = None, pipelineid: str | None = None,
                            description: str | None = None, who: Principal = Depends(principal),
                            p: Platform = Depends(platform)) -> dict[str, Any]:
    if not pipelineid:
        raise Invalid("pipelineid is required: the id of the pipeline this version belongs to")
    pipeline = find_allowed(p, who, PIPELINE, pipelineid, "edit")
    spec, platform_spec = _read_package(uploadfile)
    from flowyard.pipelines.kinds import check_pipeline_spec

    check_pipeline_spec(spec, "the uploaded pipeline")
    title = display_name or name or f"{spec['pipelineInfo']['name']}-{len(versions_of(p, pipeline)) + 1}"
    return kfp_version(_create_version(p, who, pipeline, title, description, spec, platform_spec))


@router.get("/pipelines", summary="List pipelines")
async def list_pipelines(namespace: str | None = None, filter: str | None = None, sort_by: str | None = None,
                         page_size: int | None = Query(None), page_token: str | None = None,
                         who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    ns = namespace_of(p, who, namespace, "view")
    items = [kfp_pipeline(x) for x in all_items(p, PIPELINE, ns)]
    return listing("pipelines", *page(items, "pipeline_id", filter, sort_by, page_size, page_token))


@router.get("/pipelines/{pipeline_id}", summary="Get a pipeline")
async def get_pipeline(pipeline_id: str, who: Principal = Depends(principal),
                       p: Platform = Depends(platform)) -> dict[str, Any]:
    return kfp_pipeline(find_allowed(p, who, PIPELINE, pipeline_id, "view"))


@router.delete("/pipelines/{pipeline_id}", summary="Delete a pipeline (with cascade=true, also its versions)")
def delete_pipeline(pipeline_id: str, cascade: bool = False, who: Principal = Depends(principal),
                    p: Platform = Depends(platform)) -> dict[str, Any]:
    pipeline = find_allowed(p, who, PIPELINE, pipeline_id, "edit")
    ns = pipeline["metadata"]["namespace"]
    versions = versions_of(p, pipeline)
    if versions and not cascade:
        raise Conflict(f"pipeline '{pipeline_id}' still has {len(versions)} version(s): delete them first "
                       "or pass cascade=true")
    for v in versions:
        p.store.delete(PIPELINE_VERSION, ns, v["metadata"]["name"])
    p.store.delete(PIPELINE, ns, pipeline["metadata"]["name"])
    return {}


@router.get("/pipelines/{pipeline_id}/versions", summary="List the versions of a pipeline")
async def list_pipeline_versions(pipeline_id: str, filter: str | None = None, sort_by: str | None = None,
                                 page_size: int | None = Query(None), page_token: str | None = None,
                                 who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    pipeline = find_allowed(p, who, PIPELINE, pipeline_id, "view")
    items = [kfp_version(v) for v in versions_of(p, pipeline)]
    return listing("pipeline_versions", *page(items, "pipeline_version_id", filter, sort_by, page_size, page_token))


def _version(p: Platform, who: Principal, pipeline_id: str, version_id: str, role: str) -> Manifest:
    version = find_allowed(p, who, PIPELINE_VERSION, version_id, role)
    if version["spec"].get("pipelineId") != pipeline_id:
        from flowyard.errors import NotFound

        raise NotFound(f"pipeline version '{version_id}' not found in pipeline '{pipeline_id}'")
    return version


@router.get("/pipelines/{pipeline_id}/versions/{pipeline_version_id}", summary="Get a pipeline version")
async def get_pipeline_version(pipeline_id: str, pipeline_version_id: str, who: Principal = Depends(principal),
                               p: Platform = Depends(platform)) -> dict[str, Any]:
    return kfp_version(_version(p, who, pipeline_id, pipeline_version_id, "view"))


@router.delete("/pipelines/{pipeline_id}/versions/{pipeline_version_id}", summary="Delete a pipeline version")
def delete_pipeline_version(pipeline_id: str, pipeline_version_id: str, who: Principal = Depends(principal),
                            p: Platform = Depends(platform)) -> dict[str, Any]:
    v = _version(p, who, pipeline_id, pipeline_version_id, "edit")
    p.store.delete(PIPELINE_VERSION, v["metadata"]["namespace"], v["metadata"]["name"])
    return {}


# -- runs ---------------------------------------------------------------------------------------


def _source_spec(p: Platform, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    """Run/RecurringRun spec fields for what to run: the inline spec, or the referenced version's spec."""
    out: dict[str, Any] = {}
    runtime = body.get("runtime_config") or {}
    if not isinstance(runtime, dict):
        raise Invalid("runtime_config must be an object")
    out["parameters"] = runtime.get("parameters") or {}
    if runtime.get("pipeline_root"):
        out["pipelineRoot"] = runtime["pipeline_root"]
    ref = body.get("pipeline_version_reference")
    if body.get("pipeline_spec") is not None:
        spec, platform_spec = unwrap_pipeline_spec(body["pipeline_spec"])
        out["pipelineSpec"] = spec
        if platform_spec:
            out["platformSpec"] = platform_spec
    elif isinstance(ref, dict) and (ref.get("pipeline_id") or ref.get("pipeline_version_id")):
        out["pipelineSpec"] = version_spec(p, ns, ref)
        out["pipelineVersionReference"] = {k2: ref[k1] for k1, k2 in (("pipeline_id", "pipelineId"),
                                           ("pipeline_version_id", "pipelineVersionId")) if ref.get(k1)}
    elif body.get("pipeline_version_id"):
        out["pipelineSpec"] = version_spec(p, ns, {"pipeline_version_id": body["pipeline_version_id"]})
        out["pipelineVersionReference"] = {"pipelineVersionId": body["pipeline_version_id"]}
    else:
        raise Invalid("give pipeline_spec (a compiled pipeline) or pipeline_version_reference "
                      "{pipeline_id, pipeline_version_id}")
    if out.get("pipelineVersionReference", {}).get("pipelineVersionId") and not out["pipelineVersionReference"].get("pipelineId"):
        from flowyard.pipelines.api_common import find

        out["pipelineVersionReference"]["pipelineId"] = find(
            p, PIPELINE_VERSION, out["pipelineVersionReference"]["pipelineVersionId"])["spec"].get("pipelineId", "")
    if body.get("service_account"):
        out["serviceAccount"] = body["service_account"]
    return out


@router.post("/runs", summary="Create a run")
def create_run(body: dict[str, Any] = _Body, who: Principal = Depends(principal),
               p: Platform = Depends(platform)) -> dict[str, Any]:
    exp = _experiment_for(p, who, body.get("experiment_id"), None)
    ns, eid = exp["metadata"]["namespace"], exp["metadata"]["uid"]
    name = body.get("display_name") or body.get("name")
    if not name:
        raise Invalid("display_name is required")
    spec = {"displayName": name, "description": body.get("description") or "", "experimentId": eid,
            "experiment": exp["metadata"]["name"], **_source_spec(p, ns, body)}
    run = p.store.create(RUN, ns, _manifest(RUN, _meta(name, who, {LABEL_EXPERIMENT: eid}, "run"), spec))
    return kfp_run(run)


@router.get("/runs", summary="List runs")
async def list_runs(namespace: str | None = None, experiment_id: str | None = None, filter: str | None = None,
                    sort_by: str | None = None, page_size: int | None = Query(None), page_token: str | None = None,
                    who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    if experiment_id:
        exp = find_allowed(p, who, EXPERIMENT, experiment_id, "view")
        objs = all_items(p, RUN, exp["metadata"]["namespace"], f"{LABEL_EXPERIMENT}={experiment_id}")
    else:
        objs = all_items(p, RUN, namespace_of(p, who, namespace, "view"))
    items = [kfp_run(r) for r in objs]
    return listing("runs", *page(items, "run_id", filter, sort_by, page_size, page_token))


@router.get("/runs/{run_id}", summary="Get a run")
async def get_run(run_id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    return kfp_run(find_allowed(p, who, RUN, run_id, "view"))


def _patch_run(p: Platform, run: Manifest, spec: dict[str, Any]) -> None:
    _patch(p, RUN, run, {"spec": spec})


@router.post("/runs/{run_id}:terminate", summary="Terminate a run")
def terminate_run(run_id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    run = find_allowed(p, who, RUN, run_id, "edit")
    if (run.get("status") or {}).get("state") not in TERMINAL:
        _patch_run(p, run, {"terminate": True})
    return {}


@router.post("/runs/{run_id}:retry", summary="Retry a failed or canceled run")
def retry_run(run_id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    run = find_allowed(p, who, RUN, run_id, "edit")
    state = (run.get("status") or {}).get("state")
    if state not in ("FAILED", "CANCELED"):
        raise Invalid(f"run '{run_id}' is {state or 'PENDING'}: only a FAILED or CANCELED run can be retried")
    _patch_run(p, run, {"terminate": None, "retry": run["spec"].get("retry", 0) + 1})
    return {}


@router.post("/runs/{run_id}:archive", summary="Archive a run")
def archive_run(run_id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    _set_storage(p, RUN, find_allowed(p, who, RUN, run_id, "edit"), "ARCHIVED")
    return {}


@router.post("/runs/{run_id}:unarchive", summary="Unarchive a run")
def unarchive_run(run_id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    _set_storage(p, RUN, find_allowed(p, who, RUN, run_id, "edit"), "AVAILABLE")
    return {}


@router.delete("/runs/{run_id}", summary="Delete a run (stopping it first)")
def delete_run(run_id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    run = find_allowed(p, who, RUN, run_id, "edit")
    p.store.delete(RUN, run["metadata"]["namespace"], run["metadata"]["name"])
    return {}


# -- recurring runs -----------------------------------------------------------------------------


def _trigger(body: dict[str, Any]) -> dict[str, Any]:
    trig = body.get("trigger")
    if not isinstance(trig, dict):
        raise Invalid("trigger is required: {cron_schedule: {cron}} or {periodic_schedule: {interval_second}}")
    cron, periodic = trig.get("cron_schedule"), trig.get("periodic_schedule")
    if isinstance(cron, dict) and cron.get("cron"):
        src, out = cron, {"cron": cron["cron"]}
    elif isinstance(periodic, dict) and periodic.get("interval_second"):
        src, out = periodic, {"intervalSecond": periodic["interval_second"]}
    else:
        raise Invalid("trigger needs cron_schedule.cron or periodic_schedule.interval_second")
    for k1, k2 in (("start_time", "startTime"), ("end_time", "endTime")):
        if src.get(k1):
            out[k2] = str(src[k1])
    return out


@router.post("/recurringruns", summary="Create a recurring run")
def create_recurring_run(body: dict[str, Any] = _Body, who: Principal = Depends(principal),
                         p: Platform = Depends(platform)) -> dict[str, Any]:
    exp = _experiment_for(p, who, body.get("experiment_id"), body.get("namespace"))
    ns, eid = exp["metadata"]["namespace"], exp["metadata"]["uid"]
    name = body.get("display_name") or body.get("name")
    if not name:
        raise Invalid("display_name is required")
    mode = body.get("mode") or "ENABLE"
    if mode not in ("ENABLE", "DISABLE", "MODE_UNSPECIFIED"):
        raise Invalid(f"mode '{mode}' is invalid: use ENABLE or DISABLE")
    spec = {"displayName": name, "description": body.get("description") or "", "experimentId": eid,
            "experiment": exp["metadata"]["name"], **_source_spec(p, ns, body), "trigger": _trigger(body),
            "maxConcurrency": body.get("max_concurrency") or 1, "enabled": mode != "DISABLE"}
    obj = p.store.create(RECURRING_RUN, ns, _manifest(RECURRING_RUN, _meta(name, who, {LABEL_EXPERIMENT: eid}, "rr"),
                                                      spec))
    return kfp_recurring(obj)


@router.get("/recurringruns", summary="List recurring runs")
async def list_recurring_runs(namespace: str | None = None, experiment_id: str | None = None,
                              filter: str | None = None, sort_by: str | None = None,
                              page_size: int | None = Query(None), page_token: str | None = None,
                              who: Principal = Depends(principal), p: Platform = Depends(platform)) -> dict[str, Any]:
    if experiment_id:
        exp = find_allowed(p, who, EXPERIMENT, experiment_id, "view")
        objs = all_items(p, RECURRING_RUN, exp["metadata"]["namespace"], f"{LABEL_EXPERIMENT}={experiment_id}")
    else:
        objs = all_items(p, RECURRING_RUN, namespace_of(p, who, namespace, "view"))
    items = [kfp_recurring(r) for r in objs]
    chunk, total, token = page(items, "recurring_run_id", filter, sort_by, page_size, page_token)
    out = listing("recurring_runs", chunk, total, token)
    out["recurringRuns"] = chunk  # kfp-server-api 2.x reads this one key in camelCase
    return out


@router.get("/recurringruns/{recurring_run_id}", summary="Get a recurring run")
async def get_recurring_run(recurring_run_id: str, who: Principal = Depends(principal),
                            p: Platform = Depends(platform)) -> dict[str, Any]:
    return kfp_recurring(find_allowed(p, who, RECURRING_RUN, recurring_run_id, "view"))


def _enable(p: Platform, who: Principal, rid: str, enabled: bool) -> dict[str, Any]:
    rr = find_allowed(p, who, RECURRING_RUN, rid, "edit")
    _patch(p, RECURRING_RUN, rr, {"spec": {"enabled": enabled}})
    return {}


@router.post("/recurringruns/{recurring_run_id}:enable", summary="Enable a recurring run")
def enable_recurring_run(recurring_run_id: str, who: Principal = Depends(principal),
                         p: Platform = Depends(platform)) -> dict[str, Any]:
    return _enable(p, who, recurring_run_id, True)


@router.post("/recurringruns/{recurring_run_id}:disable", summary="Disable a recurring run")
def disable_recurring_run(recurring_run_id: str, who: Principal = Depends(principal),
                          p: Platform = Depends(platform)) -> dict[str, Any]:
    return _enable(p, who, recurring_run_id, False)


@router.delete("/recurringruns/{recurring_run_id}", summary="Delete a recurring run (its runs stay)")
def delete_recurring_run(recurring_run_id: str, who: Principal = Depends(principal),
                         p: Platform = Depends(platform)) -> dict[str, Any]:
    rr = find_allowed(p, who, RECURRING_RUN, recurring_run_id, "edit")
    p.store.delete(RECURRING_RUN, rr["metadata"]["namespace"], rr["metadata"]["name"])
    return {}


__all__ = ["router"]
