"""Authorisation cases for tracking, the model registry, lineage graph and endpoint monitoring
(picked up by test_authorization.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from test_authorization import ALL_MEMBERS, NS, WRITERS, _counter

T = f"{NS}/tracking"
M = f"{NS}/registeredmodels"


def _run(a: httpx.Client) -> str:
    r = a.post(f"{T}/runs", json={"experiment": "authz", "params": {"lr": 0.1}})
    assert r.status_code == 201, r.text
    uid = r.json()["uid"]
    assert a.post(f"{T}/runs/{uid}/log", json={"metrics": [{"key": "loss", "value": 0.5}]}).status_code == 200
    return uid


def _model(a: httpx.Client) -> str:
    name = f"m{next(_counter)}"
    r = a.post(f"{M}/{name}/versions", json={"uri": "file:///models/top-secret-value"})
    assert r.status_code == 201, r.text
    return name


def _aliased(a: httpx.Client) -> str:
    name = _model(a)
    assert a.put(f"{M}/{name}/aliases/production", json={"version": 1}).status_code == 200
    return name


def _req(method: str, path: Callable[[httpx.Client], str], body: object = None) -> Callable:
    return lambda a: (method, path(a), body)


CASES: list[tuple[str, str, set[str], Callable]] = [
    ("start tracking run", "POST /api/v1/namespaces/{namespace}/tracking/runs", WRITERS,
     _req("POST", lambda a: f"{T}/runs", {"experiment": "authz"})),
    ("get tracking run", "GET /api/v1/namespaces/{namespace}/tracking/runs/{run}", ALL_MEMBERS,
     _req("GET", lambda a: f"{T}/runs/{_run(a)}")),
    ("log to run", "POST /api/v1/namespaces/{namespace}/tracking/runs/{run}/log", WRITERS,
     _req("POST", lambda a: f"{T}/runs/{_run(a)}/log", {"metrics": [{"key": "x", "value": 1}]})),
    ("end tracking run", "POST /api/v1/namespaces/{namespace}/tracking/runs/{run}/end", WRITERS,
     _req("POST", lambda a: f"{T}/runs/{_run(a)}/end", {"state": "SUCCEEDED"})),
    ("metric history", "GET /api/v1/namespaces/{namespace}/tracking/runs/{run}/metrics", ALL_MEMBERS,
     _req("GET", lambda a: f"{T}/runs/{_run(a)}/metrics")),
    ("tracking experiments", "GET /api/v1/namespaces/{namespace}/tracking/experiments", ALL_MEMBERS,
     _req("GET", lambda a: f"{T}/experiments")),
    ("experiment runs", "GET /api/v1/namespaces/{namespace}/tracking/experiments/{experiment}/runs", ALL_MEMBERS,
     _req("GET", lambda a: (_run(a), f"{T}/experiments/authz/runs?filter=metrics.loss%20%3C%201")[1])),
    ("compare runs", "GET /api/v1/namespaces/{namespace}/tracking/compare", ALL_MEMBERS,
     _req("GET", lambda a: f"{T}/compare?runs={_run(a)},{_run(a)}")),
    ("register model version", "POST /api/v1/namespaces/{namespace}/registeredmodels/{model}/versions", WRITERS,
     _req("POST", lambda a: f"{M}/r{next(_counter)}/versions", {"uri": "file:///m"})),
    ("set model alias", "PUT /api/v1/namespaces/{namespace}/registeredmodels/{model}/aliases/{alias}", WRITERS,
     _req("PUT", lambda a: f"{M}/{_model(a)}/aliases/production", {"version": 1})),
    ("delete model alias", "DELETE /api/v1/namespaces/{namespace}/registeredmodels/{model}/aliases/{alias}", WRITERS,
     _req("DELETE", lambda a: f"{M}/{_aliased(a)}/aliases/production")),
    ("resolve model", "GET /api/v1/namespaces/{namespace}/registeredmodels/{model}/resolve", ALL_MEMBERS,
     _req("GET", lambda a: f"{M}/{_aliased(a)}/resolve?ref=production")),
    ("list registered models", None, ALL_MEMBERS, _req("GET", lambda a: (_model(a), M)[1])),
    ("lineage graph", "GET /api/v1/namespaces/{namespace}/lineagegraph", ALL_MEMBERS,
     _req("GET", lambda a: f"{NS}/lineagegraph?node=model:{_model(a)}")),
    ("endpoint monitoring", "GET /api/v1/namespaces/{namespace}/inferenceservices/{name}/monitoring", ALL_MEMBERS,
     _req("GET", lambda a: f"{NS}/inferenceservices/any/monitoring")),
]
