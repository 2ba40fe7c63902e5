"""Lineage of pipeline artifacts, derived from Run statuses (no tables of its own).

The graph has three kinds of node, each `{id, kind, name, ...}`:

- `artifact` (id `artifact:<uri>`): type, uri, metadata and the executions that produced it;
- `execution` (id `execution:<run uid>/<task path>`): one leaf task of a run (container or
  importer): component, state, cached, times, workload;
- `run` (id `run:<run uid>`): the run, its state and display name;

and edges `{source, target, kind}`: `input` (artifact → execution), `output` (execution →
artifact) and `task` (run → execution). The same URI used by several runs (an importer, or a
later run reading a dataset by path) is one artifact node, so lineage crosses runs.

Past the runs, the registry and serving add two more node kinds:

- `modelversion` (id `modelversion:<name>`): a registry ModelVersion, with an edge
  `registered` from the artifact its URI names (a run's Model artifact, or a bare URI);
- `inferenceservice` (id `inferenceservice:<name>`): an InferenceService, with an edge `serves`
  from the model version its `storageUri` names (`models:/<name>/<version|alias|latest>`,
  resolved through the aliases as they are now) or from the artifact at that URI.

So one graph runs dataset → execution → model artifact → model version → inference service,
and `around()` walks it both ways from any node. A query scans the Run statuses of one
namespace once (only the status column, paged) plus the registry and serving objects (read by
kind name, so none of those areas needs to be installed), builds the index and walks it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from flowyard.errors import Invalid, NotFound
from flowyard.platform import Platform
from flowyard.store.tables import resources

__all__ = ["Graph", "scan", "lineage", "around", "normalize_uri"]

_LEAVES = ("container", "importer")
_PAGE = 500
DIRECTIONS = ("upstream", "downstream", "both")


def normalize_uri(uri: str) -> str:
    """Artifact URIs are local paths in the Run status; accept `file://` forms as well."""
    uri = str(uri or "").strip()
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return uri.rstrip("/") or uri


def _run_rows(p: Platform, namespace: str) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(name, uid, created_at, status) of every Run in `namespace`, paged by name."""
    last = ""
    while True:
        query = (select(resources.c.name, resources.c.uid, resources.c.created_at, resources.c.status)
                 .where(resources.c.kind == "Run", resources.c.namespace == namespace, resources.c.name > last)
                 .order_by(resources.c.name).limit(_PAGE))
        with p.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        for row in rows:
            yield row.name, row.uid, row.created_at, row.status or {}
        if len(rows) < _PAGE:
            return
        last = rows[-1].name


class Graph:
    """Every run, leaf task and artifact of one namespace, with the data edges between them."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.nodes: dict[str, dict[str, Any]] = {}
        self.out_edges: dict[str, list[tuple[str, str]]] = {}  # id -> [(target, kind)]
        self.in_edges: dict[str, list[tuple[str, str]]] = {}  # id -> [(source, kind)]
        self.runs_by_name: dict[str, str] = {}

    def _edge(self, source: str, target: str, kind: str) -> None:
        self.out_edges.setdefault(source, []).append((target, kind))
        self.in_edges.setdefault(target, []).append((source, kind))

    def _artifact(self, art: dict[str, Any], run_id: str, task: str, produced: bool) -> str | None:
        uri = normalize_uri(art.get("uri") or "")
        if not uri:
            return None
        aid = f"artifact:{uri}"
        node = self.nodes.get(aid)
        if node is None:
            atype = art.get("type") or {}
            node = self.nodes[aid] = {"id": aid, "kind": "artifact", "name": art.get("name") or uri.rsplit("/", 1)[-1],
                                      "uri": uri, "type": atype.get("schemaTitle", "system.Artifact"),
                                      "metadata": art.get("metadata") or {}, "producers": []}
        if produced:
            node["producers"].append({"run": run_id, "task": task})
            if art.get("metadata"):
                node["metadata"] = art["metadata"]
        return aid

    def add_run(self, name: str, uid: str, created: str, status: dict[str, Any]) -> None:
        rid = f"run:{uid}"
        self.runs_by_name[name] = rid
        self.nodes[rid] = {"id": rid, "kind": "run", "name": name, "uid": uid, "namespace": self.namespace,
                           "state": status.get("state"), "createdAt": created,
                           "startedAt": status.get("startedAt"), "finishedAt": status.get("finishedAt")}
        for path, entry in (status.get("tasks") or {}).items():
            if entry.get("type") not in _LEAVES:
                continue
            eid = f"execution:{uid}/{path}"
            self.nodes[eid] = {"id": eid, "kind": "execution", "name": entry.get("name") or path, "run": name,
                               "runUid": uid, "task": path, "component": entry.get("component"),
                               "type": entry.get("type"), "state": entry.get("state"),
                               "cached": bool(entry.get("cached")), "workload": entry.get("workload"),
                               "startedAt": entry.get("startedAt"), "finishedAt": entry.get("finishedAt")}
            self._edge(rid, eid, "task")
            for arts in ((entry.get("inputs") or {}).get("artifacts") or {}).values():
                for art in arts if isinstance(arts, list) else [arts]:
                    if isinstance(art, dict) and (aid := self._artifact(art, name, path, False)):
                        self._edge(aid, eid, "input")
            for arts in ((entry.get("outputs") or {}).get("artifacts") or {}).values():
                for art in arts if isinstance(arts, list) else [arts]:
                    if isinstance(art, dict) and (aid := self._artifact(art, name, path, True)):
                        self._edge(eid, aid, "output")

    def _uri_node(self, uri: str) -> str:
        """The artifact node of `uri`, made bare when no run produced or used it."""
        aid = f"artifact:{normalize_uri(uri)}"
        if aid not in self.nodes:
            self._artifact({"uri": uri, "name": normalize_uri(uri).rsplit("/", 1)[-1]}, "", "", False)
        return aid

    def add_model_version(self, name: str, spec: dict[str, Any]) -> None:
        vid = f"modelversion:{name}"
        run = spec.get("run") or {}
        self.nodes[vid] = {"id": vid, "kind": "modelversion", "name": name, "model": spec.get("model"),
                           "version": spec.get("version"), "uri": spec.get("uri"), "format": spec.get("format"),
                           "run": run.get("name"), "runUid": run.get("uid"), "task": run.get("task")}
        if spec.get("uri"):
            self._edge(self._uri_node(spec["uri"]), vid, "registered")

    def add_service(self, name: str, spec: dict[str, Any], versions: dict[tuple[str, str], str]) -> None:
        sid = f"inferenceservice:{name}"
        predictor = spec.get("predictor") or {}
        model = predictor.get("model") if isinstance(predictor.get("model"), dict) else \
            next((v for v in predictor.values() if isinstance(v, dict) and "storageUri" in v), {})
        uri = str((model or {}).get("storageUri") or "")
        self.nodes[sid] = {"id": sid, "kind": "inferenceservice", "name": name, "storageUri": uri}
        if uri.startswith("models:"):
            ref = uri[len("models:"):].strip("/").split("/")
            if len(ref) == 2 and (vid := versions.get((ref[0], ref[1]))):
                self._edge(vid, sid, "serves")
        elif uri:
            self._edge(self._uri_node(uri), sid, "serves")

    # -- walks --------------------------------------------------------------------------------

    def walk(self, start: str, direction: str, depth: int) -> tuple[set[str], set[tuple[str, str, str]]]:
        """Nodes and edges reachable from `start` over data edges, at most `depth` executions
        away (with their artifacts on that side); each execution reached brings its run along."""
        nodes, edges = {start}, set()
        ways = ("upstream", "downstream") if direction == "both" else (direction,)
        for way in ways:
            queue = deque([(start, 0)])
            seen = {start}
            while queue:
                node, hops = queue.popleft()
                is_exec = self.nodes[node]["kind"] == "execution"
                if is_exec:
                    hops += 1
                    for src, kind in self.in_edges.get(node, []):
                        if kind == "task":
                            nodes.add(src)
                            edges.add((src, node, kind))
                elif node != start and hops >= depth:
                    continue  # an artifact `depth` executions away: no further
                links = self.in_edges.get(node, []) if way == "upstream" else self.out_edges.get(node, [])
                for other, kind in links:
                    if kind == "task":
                        continue
                    edges.add((other, node, kind) if way == "upstream" else (node, other, kind))
                    nodes.add(other)
                    if other not in seen:
                        seen.add(other)
                        queue.append((other, hops))
        return nodes, edges

    def of_run(self, rid: str) -> tuple[set[str], set[tuple[str, str, str]]]:
        """A run, its executions and their input and output artifacts."""
        nodes, edges = {rid}, set()
        for eid, _ in self.out_edges.get(rid, []):
            nodes.add(eid)
            edges.add((rid, eid, "task"))
            for src, kind in self.in_edges.get(eid, []):
                if kind == "input":
                    nodes.add(src)
                    edges.add((src, eid, kind))
            for dst, kind in self.out_edges.get(eid, []):
                nodes.add(dst)
                edges.add((eid, dst, kind))
        return nodes, edges

    def answer(self, nodes: set[str], edges: set[tuple[str, str, str]]) -> dict[str, Any]:
        order = {"run": 0, "execution": 1, "artifact": 2, "modelversion": 3, "inferenceservice": 4}
        items = sorted((self.nodes[n] for n in nodes), key=lambda n: (order.get(n["kind"], 9), n["id"]))
        return {"nodes": items,
                "edges": [{"source": s, "target": t, "kind": k} for s, t, k in sorted(edges)]}


def scan(p: Platform, namespace: str) -> Graph:
    """The lineage graph of every Run in `namespace` (one pass over their statuses)."""
    graph = Graph(namespace)
    for name, uid, created, status in _run_rows(p, namespace):
        graph.add_run(name, uid, created, status)
    _add_registry(p, graph)
    return graph


def _add_registry(p: Platform, graph: Graph) -> None:
    """Model versions and inference services (by kind name: those areas may be absent)."""
    query = (select(resources.c.kind, resources.c.name, resources.c.spec)
             .where(resources.c.namespace == graph.namespace,
                    resources.c.kind.in_(("ModelVersion", "RegisteredModel", "InferenceService"))))
    with p.store.engine.connect() as conn:
        rows = conn.execute(query).all()
    versions: dict[tuple[str, str], str] = {}  # (model, version | alias | latest) -> node id
    newest: dict[str, int] = {}
    for r in rows:
        if r.kind == "ModelVersion" and isinstance(r.spec, dict):
            graph.add_model_version(r.name, r.spec)
            model, number = str(r.spec.get("model")), int(r.spec.get("version") or 0)
            versions[(model, str(number))] = f"modelversion:{r.name}"
            if number >= newest.get(model, 0):
                newest[model] = number
                versions[(model, "latest")] = f"modelversion:{r.name}"
    for r in rows:
        if r.kind == "RegisteredModel" and isinstance(r.spec, dict):
            for alias, number in (r.spec.get("aliases") or {}).items():
                if (vid := versions.get((r.name, str(number)))):
                    versions[(r.name, alias)] = vid
    for r in rows:
        if r.kind == "InferenceService" and isinstance(r.spec, dict):
            graph.add_service(r.name, r.spec, versions)


def around(p: Platform, namespace: str, node: str, direction: str = "both", depth: int = 10) -> dict[str, Any]:
    """`{nodes, edges}` around any node: `artifact:<uri>`, `execution:<run uid>/<task>`, `run:<name|uid>`,
    `modelversion:<name>`, `model:<name>` (all its versions) or `inferenceservice:<name>`."""
    if direction not in DIRECTIONS:
        raise Invalid(f"direction must be one of {', '.join(DIRECTIONS)}")
    kind, sep, key = node.partition(":")
    if not sep or not key:
        raise Invalid("node must look like artifact:<uri>, run:<name>, modelversion:<name>, model:<name> "
                      "or inferenceservice:<name>")
    graph = scan(p, namespace)
    if kind == "run":
        nodes, edges = graph.of_run(_run_id(p, graph, key))
        return _decorate(p, graph, graph.answer(nodes, edges))
    if kind == "artifact":
        starts = [f"artifact:{normalize_uri(key)}"]
    elif kind == "model":
        starts = [n for n, v in graph.nodes.items() if v["kind"] == "modelversion" and v.get("model") == key]
    else:
        starts = [node]
    starts = [s for s in starts if s in graph.nodes]
    if not starts:
        raise NotFound(f"no lineage node '{node}' in namespace '{namespace}'")
    nodes, edges = set(), set()
    for start in starts:
        more_nodes, more_edges = graph.walk(start, direction, depth)
        nodes |= more_nodes
        edges |= more_edges
    return _decorate(p, graph, graph.answer(nodes, edges))


def _run_id(p: Platform, graph: Graph, run: str) -> str:
    rid = graph.runs_by_name.get(run) or (f"run:{run}" if f"run:{run}" in graph.nodes else None)
    if rid is None:
        raise NotFound(f"run '{run}' not found in namespace '{graph.namespace}'")
    return rid


def _decorate(p: Platform, graph: Graph, answer: dict[str, Any]) -> dict[str, Any]:
    """Add display and pipeline names to the run nodes of an answer (read from the cache)."""
    from flowyard.pipelines.kinds import RUN

    for node in answer["nodes"]:
        if node["kind"] != "run":
            continue
        try:
            spec = p.store.get(RUN, graph.namespace, node["name"]).get("spec") or {}
        except NotFound:
            continue
        node["displayName"] = spec.get("displayName")
        node["pipeline"] = ((spec.get("pipelineSpec") or {}).get("pipelineInfo") or {}).get("name")
        node["experimentId"] = spec.get("experimentId")
    return answer


def lineage(p: Platform, namespace: str, *, artifact: str | None = None, run: str | None = None,
            direction: str = "both", depth: int = 10) -> dict[str, Any]:
    """`{nodes, edges}` around an artifact URI (`direction`, `depth` in executions) or of a run."""
    if (artifact is None) == (run is None):
        raise Invalid("give exactly one of ?artifact=<uri> or ?run=<name>")
    if direction not in DIRECTIONS:
        raise Invalid(f"direction must be one of {', '.join(DIRECTIONS)}")
    if depth < 1:
        raise Invalid("depth must be at least 1")
    graph = scan(p, namespace)
    if run is not None:
        nodes, edges = graph.of_run(_run_id(p, graph, run))
    else:
        aid = f"artifact:{normalize_uri(artifact or '')}"
        if aid not in graph.nodes:
            raise NotFound(f"no run in namespace '{namespace}' produced or used artifact '{artifact}'")
        nodes, edges = graph.walk(aid, direction, depth)
    return _decorate(p, graph, graph.answer(nodes, edges))
