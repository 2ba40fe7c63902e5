"""Runs a KFP v2 `PipelineSpec`: the level-triggered engine behind the Run controller.

`reconcile_run(p, run)` reads `run["status"]`, collects finished task workloads, starts the
tasks that became ready and returns the new status; everything it knows lives in that status
(per task: state, workload id, attempt, inputs, outputs, times), so a restarted server never
re-runs a finished task and re-adopts running ones (workload ids are derived from the run's
uid, the task's path and the attempt). Task paths are the DAG keys joined by '/', a loop's
iterations are `<loop>-iteration-<i>`: `for-loop-2-iteration-0/square`.

Supported: parameters (with KFP's int/double casting), artifacts with metadata, nested DAGs
and pipeline outputs, `dsl.If/Elif/Else` (+ OneOf), `dsl.ParallelFor` over literal lists,
parameters and lists of artifacts with `parallelism` and `dsl.Collected`, exit handlers with
`PipelineTaskFinalStatus`, `ignore_upstream_failure`, retries with backoff, importers, and
container components with placeholders, and caching (`cache.py`: on unless the task's
`cachingOptions.enableCache` is off or a DAG task above it has caching options without it, which
is what `enable_caching=False` on a run compiles to; a hit marks the task `cached: true` and
reuses the producer's outputs; the KFP API reports it as state CACHED). Python function
components run their function with `python -m kfp.dsl.executor_main` in the task's environment
(no pip install), forked from a warm zygote of that environment with kfp's executor imported
(`executor/warm.py`); `packages_to_install` maps to an Environment derived from the task's one
plus those packages (`kfp-<content hash>`, built once, shared). Container components run their
command here, in the environment named like their image or the platform's own, with an event
saying the image is not used. Not yet: non-`file://` artifact stores.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from flowyard.controllers.loop import OWNER_NAME, OWNER_NAMESPACE, owner_labels
from flowyard.errors import Conflict, NotFound
from flowyard.executor.base import Phase, Resources, WorkloadSpec
from flowyard.executor.errors import InvalidWorkload, WorkloadNotFound
from flowyard.kinds import Manifest
from flowyard.pipelines import cache, taskio
from flowyard.pipelines.cel import CelError, evaluate
from flowyard.platform import Platform
from flowyard.store.resources import now
from flowyard.tracking.runs import task_env

__all__ = ["reconcile_run", "terminate_run", "finalize_run", "FINAL_STATES"]

log = logging.getLogger(__name__)

RUN_LABEL = "flowyard.io/pipeline-run"
TASK_LABEL = "flowyard.io/pipeline-task"
FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELED"})
_TASK_FINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"})
_MAX_PASSES = 100
_DERIVED_LABEL = "pipelines.flowyard.io/derived-from"
_KFP_WARM = ("_KFP_RUNTIME=true", "kfp.dsl.executor_main")
"""What a Python component's zygote pre-imports: its tasks are forked, not started (~70 ms less)."""


class _Fail(Exception):
    """The task (or run) fails with this message."""


def _duration(text: Any) -> float:
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)?\s*", str(text or "0"))
    if not m:
        return 0.0
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


class _Run:
    """One reconcile pass over one run."""

    def __init__(self, p: Platform, run: Manifest, st: dict[str, Any]) -> None:
        assert p.executor is not None and p.artifacts is not None
        self.p, self.run, self.st = p, run, st
        meta = run["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], str(meta.get("uid") or meta["name"])
        self.spec = run["spec"]["pipelineSpec"]
        self.components = self.spec.get("components") or {}
        self.executors = (self.spec.get("deploymentSpec") or {}).get("executors") or {}
        self.tasks: dict[str, dict[str, Any]] = st["tasks"]
        self.changed = False
        self.wake_at: float | None = None

    # -- helpers ------------------------------------------------------------------------------

    def component(self, name: str) -> dict[str, Any]:
        comp = self.components.get(name)
        if comp is None:
            raise _Fail(f"component '{name}' is not in the pipeline spec")
        return comp

    def store_dir(self, path: str) -> tuple[Path, str]:
        """(local folder, artifact-store path) of a task's outputs."""
        from fsspec.implementations.local import LocalFileSystem

        rel = f"runs/{self.uid}/{path}"
        if not isinstance(self.p.artifacts.fs, LocalFileSystem):  # type: ignore[union-attr]
            raise _Fail(f"the artifact store {self.p.artifacts.url} is not a local folder: pipeline tasks "  # type: ignore[union-attr]
                        "need a file:// artifact store for now")
        return Path(self.p.artifacts.root) / self.ns / rel, rel  # type: ignore[union-attr]

    def workload_id(self, path: str, attempt: int) -> str:
        uid = re.sub(r"[^a-z0-9]", "", self.uid.lower())[:12] or "run"
        slug = re.sub(r"[^a-z0-9.-]+", "-", path.lower().replace("/", "."))
        slug = re.sub(r"\.+", ".", slug).strip(".-") or "task"
        if len(slug) > 120:
            slug = slug[:100].strip(".-") + "-" + hashlib.sha1(path.encode()).hexdigest()[:12]
        return f"{self.ns}.pl.{uid}.{slug}.{attempt}"

    def finish(self, entry: dict[str, Any], state: str, message: str = "") -> None:
        entry["state"] = state
        if message:
            entry["message"] = message
        entry.setdefault("startedAt", now())
        entry["finishedAt"] = now()
        self.changed = True

    # -- inputs -------------------------------------------------------------------------------

    def resolve_inputs(self, prefix: str, task: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        arts: dict[str, Any] = {}
        spec_inputs = task.get("inputs") or {}
        for name, src in (spec_inputs.get("parameters") or {}).items():
            present, value = True, None
            if "componentInputParameter" in src:
                key = src["componentInputParameter"]
                present = key in scope["parameters"]
                value = scope["parameters"].get(key)
            elif "taskOutputParameter" in src:
                ref = src["taskOutputParameter"]
                producer = self.tasks.get(_join(prefix, ref["producerTask"])) or {}
                outs = (producer.get("outputs") or {}).get("parameters") or {}
                if ref["outputParameterKey"] not in outs:
                    if producer.get("state") == "SKIPPED":
                        present = False
                    else:
                        raise _Fail(f"task '{ref['producerTask']}' has no output parameter '{ref['outputParameterKey']}'")
                value = outs.get(ref["outputParameterKey"])
            elif "runtimeValue" in src:
                value = (src["runtimeValue"] or {}).get("constant")
            elif "taskFinalStatus" in src:
                producer_key = src["taskFinalStatus"]["producerTask"]
                producer = self.tasks.get(_join(prefix, producer_key)) or {}
                state = producer.get("state", "FAILED")
                value = {"state": state, "pipelineJobResourceName": self.name, "pipelineTaskName": producer_key,
                         "error": {} if state == "SUCCEEDED" else {"code": 1, "message": producer.get("message") or f"Task {producer_key} {state.lower()}."}}
            else:
                raise _Fail(f"input parameter '{name}': unsupported source {sorted(src)}")
            if present and src.get("parameterExpressionSelector"):
                sv = value if isinstance(value, str) else json.dumps(value)
                try:
                    value = evaluate(src["parameterExpressionSelector"], {"string_value": sv})
                except CelError as e:
                    raise _Fail(f"input parameter '{name}': {e}") from None
            if present:
                params[name] = value
        for name, src in (spec_inputs.get("artifacts") or {}).items():
            if "taskOutputArtifact" in src:
                ref = src["taskOutputArtifact"]
                producer = self.tasks.get(_join(prefix, ref["producerTask"])) or {}
                got = ((producer.get("outputs") or {}).get("artifacts") or {}).get(ref["outputArtifactKey"])
                if got is None and producer.get("state") != "SKIPPED":
                    raise _Fail(f"task '{ref['producerTask']}' has no output artifact '{ref['outputArtifactKey']}'")
            elif "componentInputArtifact" in src:
                got = scope["artifacts"].get(src["componentInputArtifact"])
            else:
                raise _Fail(f"input artifact '{name}': unsupported source {sorted(src)}")
            if got is not None:
                arts[name] = got
        return {"parameters": params, "artifacts": arts}

    # -- the DAG walk -------------------------------------------------------------------------

    async def advance_dag(self, prefix: str, comp: dict[str, Any], scope: dict[str, Any]) -> str | None:
        """Move a DAG forward; its final state once every child is final, else None."""
        tasks = (comp.get("dag") or {}).get("tasks") or {}
        for key, task in tasks.items():
            path = _join(prefix, key)
            entry = self.tasks.get(path)
            if entry is None:
                entry = self.try_create(prefix, key, task, scope)
                if entry is None:
                    continue
            if entry["state"] in _TASK_FINAL:
                continue
            try:
                await self.advance(path, task, entry)
            except _Fail as e:
                self.finish(entry, "FAILED", str(e))
        states = [self.tasks.get(_join(prefix, k), {}).get("state") for k in tasks]
        if not all(s in _TASK_FINAL for s in states):
            return None
        bad = any(s in ("FAILED", "CANCELED") or self.tasks[_join(prefix, k)].get("upstreamFailed")
                  for k, s in zip(tasks, states))
        return "FAILED" if bad else "SUCCEEDED"

    def try_create(self, prefix: str, key: str, task: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any] | None:
        """The entry of a task whose dependencies are final (None while some are not)."""
        deps = [self.tasks.get(_join(prefix, d)) for d in task.get("dependentTasks") or []]
        if any(d is None or d["state"] not in _TASK_FINAL for d in deps):
            return None
        path = _join(prefix, key)
        comp_name = (task.get("componentRef") or {}).get("name", "")
        entry: dict[str, Any] = {"name": (task.get("taskInfo") or {}).get("name", key), "component": comp_name,
                                 "state": "PENDING", "createdAt": now()}
        self.tasks[path] = entry
        self.changed = True
        strategy = (task.get("triggerPolicy") or {}).get("strategy")
        failed = [d for d, e in zip(task.get("dependentTasks") or [], deps)
                  if e["state"] in ("FAILED", "CANCELED") or e.get("upstreamFailed")]
        if failed and strategy != "ALL_UPSTREAM_TASKS_COMPLETED":
            entry["upstreamFailed"] = True
            self.finish(entry, "SKIPPED", f"not run: upstream task {failed[0]} did not succeed")
            return entry
        try:
            comp = self.component(comp_name)
            inputs = self.resolve_inputs(prefix, task, scope)
            defs = copy.deepcopy(comp.get("inputDefinitions") or {})
            if "parameterIterator" in task:  # the loop item arrives per iteration
                (defs.get("parameters") or {}).pop(task["parameterIterator"].get("itemInput"), None)
            inputs["parameters"] = taskio.apply_defaults(inputs["parameters"], defs, f"task {key}")
            entry["inputs"] = inputs
            cond = (task.get("triggerPolicy") or {}).get("condition")
            if cond:
                env = {"inputs": {"parameter_values": inputs["parameters"]}}
                try:
                    ok = evaluate(cond, env)
                except CelError as e:
                    raise _Fail(f"condition {cond!r}: {e}") from None
                if not ok:
                    entry["condition"] = False
                    self.finish(entry, "SKIPPED", "condition is false")
                    return entry
            caching = task.get("cachingOptions")
            if "parameterIterator" in task or "artifactIterator" in task:
                entry["type"] = "loop"
                entry["items"] = self.loop_items(task.get("parameterIterator") or task["artifactIterator"], inputs)
            elif "dag" in comp:
                entry["type"] = "dag"
            else:
                caching = None
                label = comp.get("executorLabel", "")
                ex = self.executors.get(label)
                if ex is None:
                    raise _Fail(f"executor '{label}' is not in deploymentSpec")
                entry["type"] = "importer" if "importer" in ex else "container"
                entry["attempt"] = 0
                if entry["type"] == "container" and (task.get("cachingOptions") or {}).get("enableCache") \
                        and not self.no_cache_above(prefix):
                    entry["cache"] = True
                    if (task.get("cachingOptions") or {}).get("cacheKey"):
                        entry["cacheKeyOption"] = task["cachingOptions"]["cacheKey"]
                if task.get("retryPolicy"):
                    entry["retryPolicy"] = task["retryPolicy"]
            if entry.get("type") in ("dag", "loop") and caching is not None and not caching.get("enableCache"):
                entry["noCache"] = True  # set_caching_options(False) on a DAG task / enable_caching=False
        except (_Fail, taskio.TaskError) as e:
            self.finish(entry, "FAILED", str(e))
        return entry

    def no_cache_above(self, prefix: str) -> bool:
        parts = prefix.split("/") if prefix else []
        return any(self.tasks.get("/".join(parts[:i]), {}).get("noCache") for i in range(1, len(parts) + 1))

    def loop_items(self, it: dict[str, Any], inputs: dict[str, Any]) -> list[Any]:
        """The items a ParallelFor iterates: literal, a list parameter, or a list of artifacts."""
        items_spec = it.get("items") or {}
        if "raw" in items_spec:
            items = items_spec["raw"]
        elif "inputParameter" in items_spec:
            items = inputs["parameters"].get(items_spec["inputParameter"])
        elif "inputArtifact" in items_spec:  # dsl.ParallelFor over an Input[List[Artifact]]
            items = inputs["artifacts"].get(items_spec["inputArtifact"]) or []
        else:
            raise _Fail(f"unsupported loop items {sorted(items_spec)}")
        if isinstance(items, str):
            try:
                items = json.loads(items)
            except ValueError:
                raise _Fail(f"loop items are not a JSON list: {items[:100]!r}") from None
        if not isinstance(items, list):
            raise _Fail(f"loop items must be a list, got {type(items).__name__}")
        return items

    async def advance(self, path: str, task: dict[str, Any], entry: dict[str, Any]) -> None:
        kind = entry.get("type")
        if entry["state"] == "PENDING" and kind in ("dag", "loop", "iteration"):
            entry.update(state="RUNNING", startedAt=now())
            self.changed = True
        if kind == "dag":
            comp = self.component(entry["component"])
            state = await self.advance_dag(path, comp, entry["inputs"])
            if state:
                if state == "SUCCEEDED":
                    entry["outputs"] = self.dag_outputs(path, comp)
                self.finish(entry, state, "" if state == "SUCCEEDED" else "a task inside failed")
        elif kind == "loop":
            await self.advance_loop(path, task, entry)
        elif kind == "importer":
            self.run_importer(path, entry)
        else:
            await self.advance_container(path, entry)

    async def advance_loop(self, path: str, task: dict[str, Any], entry: dict[str, Any]) -> None:
        comp = self.component(entry["component"])
        limit = int((task.get("iteratorPolicy") or {}).get("parallelismLimit") or 0)
        over_artifacts = "artifactIterator" in task
        item_input = (task.get("artifactIterator") if over_artifacts else task["parameterIterator"])["itemInput"]
        states = []
        active = 0
        for i, item in enumerate(entry["items"]):
            ipath = f"{path}-iteration-{i}"
            it = self.tasks.get(ipath)
            if it is None:
                if limit and active >= limit:
                    states.append(None)
                    continue
                if over_artifacts:
                    scope = {"parameters": entry["inputs"]["parameters"],
                             "artifacts": {**entry["inputs"]["artifacts"], item_input: [item]}}
                else:
                    ptype = (((comp.get("inputDefinitions") or {}).get("parameters") or {}).get(item_input)
                             or {}).get("parameterType")
                    try:
                        item = taskio.cast_parameter(item, ptype, item_input)
                    except taskio.TaskError as e:
                        raise _Fail(f"loop item {i}: {e}") from None
                    scope = {"parameters": {**entry["inputs"]["parameters"], item_input: item},
                             "artifacts": entry["inputs"]["artifacts"]}
                it = {"name": f"{entry['name']}-iteration-{i}", "type": "iteration", "state": "RUNNING",
                      "startedAt": now(), "inputs": scope, "iteration": i}
                if entry.get("noCache"):
                    it["noCache"] = True
                self.tasks[ipath] = it
                self.changed = True
            if it["state"] not in _TASK_FINAL:
                state = await self.advance_dag(ipath, comp, it["inputs"])
                if state:
                    self.finish(it, state, "" if state == "SUCCEEDED" else "a task inside failed")
            if it["state"] not in _TASK_FINAL:
                active += 1
            states.append(it["state"])
        if all(s in _TASK_FINAL for s in states):
            bad = any(s in ("FAILED", "CANCELED") for s in states)
            if not bad:
                entry["outputs"] = self.loop_outputs(path, comp, len(states))
            self.finish(entry, "FAILED" if bad else "SUCCEEDED", "an iteration failed" if bad else "")

    def dag_outputs(self, path: str, comp: dict[str, Any]) -> dict[str, Any]:
        outs = (comp.get("dag") or {}).get("outputs") or {}
        params: dict[str, Any] = {}
        for name, spec in (outs.get("parameters") or {}).items():
            selectors = []
            if "valueFromParameter" in spec:
                selectors = [spec["valueFromParameter"]]
            elif "valueFromOneof" in spec:
                selectors = spec["valueFromOneof"].get("parameterSelectors") or []
            for sel in selectors:
                child = self.tasks.get(_join(path, sel["producerSubtask"])) or {}
                values = (child.get("outputs") or {}).get("parameters") or {}
                if child.get("state") == "SUCCEEDED" and sel["outputParameterKey"] in values:
                    params[name] = values[sel["outputParameterKey"]]
                    break
        arts: dict[str, Any] = {}
        for name, spec in (outs.get("artifacts") or {}).items():
            for sel in spec.get("artifactSelectors") or []:
                child = self.tasks.get(_join(path, sel["producerSubtask"])) or {}
                values = (child.get("outputs") or {}).get("artifacts") or {}
                if child.get("state") == "SUCCEEDED" and sel["outputArtifactKey"] in values:
                    arts[name] = values[sel["outputArtifactKey"]]
                    break
        return {"parameters": params, "artifacts": arts}

    def loop_outputs(self, path: str, comp: dict[str, Any], n: int) -> dict[str, Any]:
        """`dsl.Collected`: each output is the list of the iterations' values."""
        outs = (comp.get("dag") or {}).get("outputs") or {}
        params: dict[str, Any] = {}
        for name, spec in (outs.get("parameters") or {}).items():
            sel = spec.get("valueFromParameter") or {}
            values = []
            for i in range(n):
                child = self.tasks.get(_join(f"{path}-iteration-{i}", sel.get("producerSubtask", ""))) or {}
                got = (child.get("outputs") or {}).get("parameters") or {}
                if sel.get("outputParameterKey") in got:
                    values.append(got[sel["outputParameterKey"]])
            params[name] = values
        arts: dict[str, Any] = {}
        for name, spec in (outs.get("artifacts") or {}).items():
            collected: list[Any] = []
            for sel in spec.get("artifactSelectors") or []:
                for i in range(n):
                    child = self.tasks.get(_join(f"{path}-iteration-{i}", sel["producerSubtask"])) or {}
                    collected += ((child.get("outputs") or {}).get("artifacts") or {}).get(sel["outputArtifactKey"]) or []
            arts[name] = collected
        return {"parameters": params, "artifacts": arts}

    # -- leaves -------------------------------------------------------------------------------

    def run_importer(self, path: str, entry: dict[str, Any]) -> None:
        comp = self.component(entry["component"])
        imp = self.executors[comp["executorLabel"]]["importer"]
        src = imp.get("artifactUri") or {}
        params = entry["inputs"]["parameters"]
        uri = src["constant"] if "constant" in src else params.get(src.get("runtimeParameter") or "uri")
        if not uri:
            raise _Fail("the importer has no artifact uri")
        local = uri[len("file://"):] if uri.startswith("file://") else uri
        schema = imp.get("typeSchema") or {}
        entry["outputs"] = {"parameters": {}, "artifacts": {"artifact": [{
            "name": "artifact", "type": {"schemaTitle": schema.get("schemaTitle", "system.Artifact"),
                                          "schemaVersion": schema.get("schemaVersion", "0.0.1")},
            "uri": local, "metadata": imp.get("metadata") or {}}]}}
        self.finish(entry, "SUCCEEDED")

    async def advance_container(self, path: str, entry: dict[str, Any]) -> None:
        ex = self.p.executor
        assert ex is not None
        if not entry.get("workload"):
            if entry.get("cache") and entry["attempt"] == 0 and "cacheKey" not in entry:
                if self.try_cache(path, entry):
                    return
            if entry.get("retryAt") and time.time() < entry["retryAt"]:
                self.wake(entry["retryAt"])
                return
            await self.submit(path, entry)
            if not entry.get("workload"):
                return  # not submitted yet: its environment is being built
        try:
            ws = ex.status(entry["workload"])
        except WorkloadNotFound:
            raise _Fail(f"workload {entry['workload']} is gone (lost while the server was down?)") from None
        if ws.phase == Phase.Pending:
            if entry["state"] != "PENDING" or entry.get("message") != ws.message:
                entry.update(state="PENDING", message=ws.message)
                self.changed = True
            return
        if ws.phase == Phase.Running:
            if entry["state"] != "RUNNING":
                entry.update(state="RUNNING", message="", startedAt=entry.get("startedAt") or now())
                self.changed = True
            return
        entry["exitCode"] = ws.exit_code
        if ws.started_at and ws.finished_at:
            entry["durationSeconds"] = round(ws.finished_at - ws.started_at, 3)
            entry["ranFrom"], entry["ranUntil"] = ws.started_at, ws.finished_at
        if ws.phase == Phase.Succeeded:
            try:
                entry["outputs"] = taskio.read_outputs(self.component(entry["component"]), entry["planned"],
                                                       Path(entry["ioDir"]))
            except taskio.TaskError as e:
                self.finish(entry, "FAILED", str(e))
                return
            entry.pop("planned", None)
            entry.pop("message", None)
            if entry.get("cacheKey"):
                cache.store(self.p, self.ns, entry["cacheKey"], entry["outputs"], self.uid, path)
            self.finish(entry, "SUCCEEDED")
            return
        message = ws.message or f"exit code {ws.exit_code}"
        policy = entry.get("retryPolicy") or {}
        if ws.phase != Phase.Stopped and entry["attempt"] < int(policy.get("maxRetryCount") or 0):
            backoff = _duration(policy.get("backoffDuration")) * float(policy.get("backoffFactor") or 2.0) ** entry["attempt"]
            cap = _duration(policy.get("backoffMaxDuration") or "3600s")
            entry["attempt"] += 1
            entry.setdefault("failures", []).append({"workload": entry["workload"], "exitCode": ws.exit_code,
                                                     "message": message})
            entry.update(workload=None, state="RUNNING", message=f"retrying after: {message}",
                         retryAt=time.time() + min(backoff, cap))
            self.changed = True
            if backoff <= 0:
                await self.advance_container(path, entry)
            else:
                self.wake(entry["retryAt"])
            return
        self.finish(entry, "CANCELED" if ws.phase == Phase.Stopped else "FAILED", message)

    def try_cache(self, path: str, entry: dict[str, Any]) -> bool:
        """Finish the task from the cache when an entry matches; remembers the key either way."""
        comp = self.component(entry["component"])
        key = cache.cache_key(comp, self.executors.get(comp.get("executorLabel", "")) or {}, entry.get("inputs") or {},
                              entry.get("cacheKeyOption"))
        entry["cacheKey"] = key
        self.changed = True
        hit = cache.lookup(self.p, self.ns, key)
        if hit is None:
            return False
        entry.update(outputs=hit["outputs"], cached=True, cachedFrom={"run": hit.get("run"), "task": hit.get("task")})
        entry.pop("message", None)
        self.finish(entry, "SUCCEEDED")
        return True

    def wake(self, at: float) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)

    async def submit(self, path: str, entry: dict[str, Any]) -> None:
        ex = self.p.executor
        assert ex is not None
        comp = self.component(entry["component"])
        container = self.executors[comp["executorLabel"]].get("container") or {}
        task_dir, rel = self.store_dir(path)
        io_dir = task_dir / "_kfp" / str(entry["attempt"])
        taskio.ensure_dirs(task_dir, io_dir / "parameters")
        ei, planned = taskio.executor_input(comp, entry.get("inputs") or {}, task_dir, io_dir)
        ctx = {"pipeline_job_name": self.name, "pipeline_job_resource_name": self.name,
               "pipeline_job_uuid": self.uid, "pipeline_task_name": entry["name"],
               "pipeline_task_uuid": f"{self.uid}/{path}", "pipeline_root": str(task_dir.parents[len(path.split('/'))]),
               "pipeline_job_create_time_utc": self.run["metadata"].get("creationTimestamp", now()),
               "pipeline_job_schedule_time_utc": self.run["metadata"].get("creationTimestamp", now()),
               "workspace_path": str(task_dir.parents[len(path.split('/')) - 1] / "_workspace")}
        command = list(container.get("command") or [])
        args = taskio.resolve_args(list(container.get("args") or []), ei, ctx)
        image = container.get("image") or "default"
        environment = self.environment(image)
        py = taskio.python_component(command)
        if py is not None:
            source, packages = py
            if packages:
                derived = self.with_packages(path, entry, environment, packages)
                if derived is None:
                    return  # its environment is being built; the run looks again shortly
                environment = derived
            module = io_dir / "ephemeral_component.py"
            module.write_text(source)
            argv = ["python", "-m", "kfp.dsl.executor_main", "--component_module_path", str(module), *args]
            warm = list(_KFP_WARM)
        else:
            argv = taskio.resolve_args(command, ei, ctx) + args
            warm = []
            self.check_command(argv, image, environment)
        env = {"_KFP_RUNTIME": "true", "FLOWYARD_URL": self.p.settings.url, "FLOWYARD_NAMESPACE": self.ns,
               "FLOWYARD_DATASETS": str(self.p.settings.home / "datasets"),
               **task_env(self.p, self.run)}  # FLOWYARD_RUN, FLOWYARD_TOKEN
        for var in container.get("env") or []:
            env[str(var.get("name"))] = str(var.get("value", ""))
        requests, limits = _resources(container.get("resources") or {})
        labels = {**owner_labels(self.run), RUN_LABEL: self.uid, TASK_LABEL: path[:250]}
        wid = self.workload_id(path, entry["attempt"])
        try:
            spec = WorkloadSpec(id=wid, namespace=self.ns, command=argv, env=env, environment=environment,
                                workdir=None, requests=requests, limits=limits, labels=labels, warm=warm,
                                timeout=self.deadline(comp["executorLabel"]))
        except InvalidWorkload as e:
            raise _Fail(str(e)) from None
        entry.update(workload=wid, planned=planned, ioDir=str(io_dir), artifactPath=rel, environment=environment,
                     startedAt=entry.get("startedAt") or now(), retryAt=None)
        entry["attempts"] = entry["attempt"] + 1
        self.changed = True
        await ex.submit(spec)

    def with_packages(self, path: str, entry: dict[str, Any], base: str, packages: list[str]) -> str | None:
        """The environment of a component with `packages_to_install`: `base` when they are all
        installed there, else an Environment derived from it plus them (`kfp-<content hash>`,
        built once by the environment controller and shared by every task that needs the same
        content); None while it builds. A failed build fails the task with the installer's output."""
        from flowyard.controllers.environment import ENVIRONMENT, bin_dir

        assert self.p.environments is not None
        spec = {} if base == "default" else dict(self.p.store.get(ENVIRONMENT, "", base).get("spec") or {})
        python, system = spec.get("python"), bool(spec.get("systemSitePackages", True))
        search = None
        if base != "default":
            lib = bin_dir(self.p, base).parent / "lib"
            search = [str(d) for d in lib.glob("python*/site-packages")] + (sys.path if system and not python else [])
        have = list(spec.get("requirements") or [])
        wanted = [r for r in packages if r not in have]  # a path or URL it was built from counts too
        missing = _missing(tuple(wanted), None if search is None else tuple(search))
        if not missing:
            return base
        requirements = [*have, *wanted]
        name = "kfp-" + self.p.environments.spec_hash(requirements, python, system)[:16]
        try:
            env = self.p.store.get(ENVIRONMENT, "", name)
        except NotFound:
            body = {"requirements": requirements, "systemSitePackages": system}
            if python:
                body["python"] = python
            try:
                env = self.p.store.create(ENVIRONMENT, "", {"metadata": {"name": name, "labels": {_DERIVED_LABEL: base}},
                                                            "spec": body})
            except Conflict:
                env = self.p.store.get(ENVIRONMENT, "", name)
        st = env.get("status") or {}
        if st.get("phase") == "Ready":
            return name
        if st.get("phase") == "Failed":
            try:
                self.p.store.delete(ENVIRONMENT, "", name)  # a later run tries again
            except NotFound:
                pass
            raise _Fail(f"cannot install packages_to_install {', '.join(missing)} (environment {name}, "
                        f"'{base}' plus the packages): {st.get('message') or 'the build failed'}")
        message = (f"waiting for environment {name} ('{base}' plus {', '.join(missing)}) to be built; "
                   f"follow with `flowyard logs environment {name} -f`")
        if entry.get("message") != message:
            entry.update(state="PENDING", message=message, environment=name)
            self.changed = True
            self.p.store.record_event(self.run, "BuildingEnvironment", message)
        self.wake(time.time() + 0.5)
        return None

    def check_command(self, argv: list[str], image: str, environment: str) -> None:
        """A container component's command runs here, in `environment`, not in its image: say
        so (an event on the run), and fail at once when its executable is not found here."""
        from flowyard.controllers.environment import bin_dir

        where = "the platform's own environment" if environment == "default" else f"environment '{environment}'"
        if image not in ("default", environment):
            self.p.store.record_event(self.run, "ImageNotUsed", f"image {image} is not used locally: container "
                                      f"components run their command on this machine in {where}")
        exe = argv[0]
        if "/" in exe and not os.path.isabs(exe):
            return  # relative to the task's working folder
        search = os.pathsep.join([str(bin_dir(self.p, environment)), os.environ.get("PATH", os.defpath)])
        if shutil.which(exe, path=search) is None:
            raise _Fail(f"the command {exe!r} cannot run here: no such executable in {where} or on the "
                        f"server's PATH (Flowyard runs container components locally, without the image {image})")

    def deadline(self, executor: str) -> float | None:
        """The task's time limit, as kfp-kubernetes' `set_timeout` records it (activeDeadlineSeconds)."""
        platform = ((self.run["spec"].get("platformSpec") or {}).get("platforms") or {}).get("kubernetes") or {}
        config = ((platform.get("deploymentSpec") or {}).get("executors") or {}).get(executor) or {}
        seconds = config.get("activeDeadlineSeconds")
        try:
            return float(seconds) if seconds is not None and float(seconds) > 0 else None
        except (TypeError, ValueError):
            raise _Fail(f"activeDeadlineSeconds of {executor} must be a number of seconds, not {seconds!r}") from None

    def environment(self, image: str) -> str:
        """A Flowyard environment named like the image, else the platform's own interpreter."""
        from flowyard.controllers.environment import ENVIRONMENT

        if image == "default":
            return image
        try:
            env = self.p.store.get(ENVIRONMENT, "", image)
        except NotFound:
            return "default"
        if (env.get("status") or {}).get("phase") != "Ready":
            raise _Fail(f"environment '{image}' is not ready yet")
        return image


@functools.lru_cache(maxsize=256)
def _missing(packages: tuple[str, ...], path: tuple[str, ...] | None) -> list[str]:
    """`taskio.missing_packages`, remembered (~10 ms a call; environments do not change under us)."""
    return taskio.missing_packages(list(packages), None if path is None else list(path))


def _resources(r: dict[str, Any]) -> tuple[Resources, Resources]:
    acc = r.get("accelerator") or {}
    gpu = int(acc.get("resourceCount") or acc.get("count") or 0)
    try:
        req = Resources.of(r.get("resourceCpuRequest") or r.get("cpuRequest") or 0,
                           r.get("resourceMemoryRequest") or int(float(r.get("memoryRequest") or 0) * 1e9), 0)
        lim = Resources.of(r.get("resourceCpuLimit") or r.get("cpuLimit") or 0,
                           r.get("resourceMemoryLimit") or int(float(r.get("memoryLimit") or 0) * 1e9), gpu)
    except InvalidWorkload as e:
        raise _Fail(f"resources: {e}") from None
    return req, lim


def _join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


def _root_inputs(spec: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    defs = (spec.get("root") or {}).get("inputDefinitions") or {}
    unknown = set(given) - set(defs.get("parameters") or {})
    if unknown:
        raise _Fail(f"unknown pipeline parameter(s): {', '.join(sorted(unknown))}")
    params = taskio.apply_defaults(dict(given), defs, "pipeline")
    return {"parameters": params, "artifacts": {}}


async def reconcile_run(p: Platform, run: Manifest) -> dict[str, Any]:
    """Advance a run one step; returns the new status (see the module docstring)."""
    st = copy.deepcopy(run.get("status") or {})
    if st.get("state") in FINAL_STATES:
        return st
    if st.get("state") == "CANCELING":
        return await terminate_run(p, run)
    st.setdefault("tasks", {})
    if not st.get("state") or st["state"] == "PENDING":
        st.update(state="RUNNING", startedAt=st.get("startedAt") or now(), message="")
    spec = (run.get("spec") or {}).get("pipelineSpec") or {}
    try:
        if "root" not in spec:
            raise _Fail("spec.pipelineSpec has no root DAG: pass the compiled pipeline_spec")
        if "inputs" not in st:
            st["inputs"] = _root_inputs(spec, (run.get("spec") or {}).get("parameters") or {})
        r = _Run(p, run, st)
        state = None
        for _ in range(_MAX_PASSES):
            r.changed = False
            state = await r.advance_dag("", spec["root"], st["inputs"])
            if state or not r.changed:
                break
    except (_Fail, taskio.TaskError) as e:
        st.update(state="FAILED", message=str(e), finishedAt=now())
        return st
    if state:
        st.update(state=state, finishedAt=now())
        if state == "SUCCEEDED":
            st["outputs"] = r.dag_outputs("", spec["root"])
            st["message"] = ""
        else:
            failed = [k for k, t in st["tasks"].items() if t.get("state") == "FAILED" and t.get("type") in ("container", "importer")]
            st["message"] = f"task {failed[0]} failed: {st['tasks'][failed[0]].get('message', '')}" if failed else "the pipeline failed"
    elif r.wake_at is not None and p.controllers is not None:
        delay = max(0.0, r.wake_at - time.time()) + 0.01
        meta = run["metadata"]
        asyncio.get_running_loop().call_later(delay, p.controllers.enqueue, run.get("kind", "Run"), meta["namespace"], meta["name"])
    return st


async def terminate_run(p: Platform, run: Manifest) -> dict[str, Any]:
    """Stop every running task; the run ends CANCELED."""
    assert p.executor is not None
    st = copy.deepcopy(run.get("status") or {})
    if st.get("state") in FINAL_STATES:
        return st
    st.setdefault("tasks", {})
    stops = []
    for entry in st["tasks"].values():
        if entry.get("state") in _TASK_FINAL:
            continue
        if entry.get("workload"):
            try:
                if not p.executor.status(entry["workload"]).finished:
                    stops.append(p.executor.stop(entry["workload"], grace=2.0))
            except WorkloadNotFound:
                pass
        entry.update(state="CANCELED", finishedAt=now(), message="run terminated")
    if stops:
        await asyncio.gather(*stops, return_exceptions=True)
    st.update(state="CANCELED", finishedAt=now(), message="terminated", startedAt=st.get("startedAt") or now())
    return st


async def finalize_run(p: Platform, namespace: str, name: str) -> None:
    """The run was deleted: stop and forget its task workloads (its artifacts stay)."""
    assert p.executor is not None
    for w in p.executor.list(namespace):
        labels = w.labels or {}
        if RUN_LABEL in labels and (labels.get(OWNER_NAMESPACE), labels.get(OWNER_NAME)) == (namespace, name):
            if not w.finished:
                await p.executor.stop(w.id, grace=2.0)
            try:
                p.executor.remove(w.id)
            except Exception as e:  # noqa: BLE001 - best effort, the next resync retries
                log.warning("cannot remove workload %s: %s", w.id, e)
