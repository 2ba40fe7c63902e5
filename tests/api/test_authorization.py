"""Authorisation matrix: every API route × {owner, editor, viewer, outsider, anonymous, bad token}.

Namespace `alice` is owned by alice; bob is `edit`, carol is `view`; dave owns only his own
namespace. Each case states who may call the route; everyone else must get 401 (no or bad
credentials) or 403/404 (authenticated but not allowed) and no data.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import httpx
import pytest

ROLES = ["owner", "editor", "viewer", "outsider", "anonymous", "badtoken"]
USERS = {"owner": "alice", "editor": "bob", "viewer": "carol", "outsider": "dave"}
NS = "/api/v1/namespaces/alice"
_counter = itertools.count()


def _job(name: str) -> dict:
    return {"metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"command": ["python", "-c", "pass"]}]}}}}


def _secret(name: str) -> dict:
    return {"metadata": {"name": name}, "stringData": {"k": "top-secret-value"}}


# Each case: (name, allowed roles, setup(admin client) -> (method, path, json body or None))
def _fresh(kind: str, make: Callable[[str], dict]) -> Callable[[httpx.Client], str]:
    def setup(admin: httpx.Client) -> str:
        name = f"{kind[:-1]}-{next(_counter)}"
        assert admin.post(f"{NS}/{kind}", json=make(name)).status_code == 201
        return name
    return setup


new_job, new_secret = _fresh("jobs", _job), _fresh("secrets", _secret)


def _env(admin_owner: httpx.Client) -> str:
    name = f"env-{next(_counter)}"
    assert admin_owner.post("/api/v1/environments", json={"metadata": {"name": name}, "spec": {}}).status_code == 201
    return name


ALL_MEMBERS = {"owner", "editor", "viewer"}
WRITERS = {"owner", "editor"}
AUTHENTICATED = {"owner", "editor", "viewer", "outsider"}

A = f"{NS}/artifacts"


def _token_of_alice(a: httpx.Client) -> str:
    return a.post("/api/v1/tokens", json={"name": "to-revoke"}).json()["id"]


def _artifact(a: httpx.Client) -> str:
    path = f"data/f{next(_counter)}.txt"
    assert a.put(f"{NS}/artifacts/{path}", content=b"top-secret-value").status_code == 201
    return path


def _profile(a: httpx.Client) -> str:
    name = f"p{next(_counter)}"
    assert a.post("/api/v1/profiles", json={"metadata": {"name": name}, "spec": {"owner": {"name": "alice"}}}).status_code == 201
    a.put(f"/api/v1/namespaces/{name}/members/bob", json={"role": "edit"})
    a.put(f"/api/v1/namespaces/{name}/members/carol", json={"role": "view"})
    return name



# -- KFP v2beta1 (/apis/v2beta1): objects in namespace alice, addressed by KFP id -----------------
K = "/apis/v2beta1"
_KFP_SPEC = {
    "pipelineInfo": {"name": "authz-pipeline"}, "schemaVersion": "2.1.0", "sdkVersion": "kfp-2.17.3",
    "components": {"comp-echo": {"executorLabel": "exec-echo"}},
    "deploymentSpec": {"executors": {"exec-echo": {"container": {"image": "python:3.11",
                                                                  "command": ["python", "-c", "pass"]}}}},
    "root": {"dag": {"tasks": {"echo": {"componentRef": {"name": "comp-echo"}, "taskInfo": {"name": "echo"}}}}},
}


def _kfp_experiment(a: httpx.Client) -> str:
    r = a.post(f"{K}/experiments", json={"display_name": f"kx-{next(_counter)}", "namespace": "alice"})
    assert r.status_code == 200, r.text
    return r.json()["experiment_id"]


def _kfp_pipeline(a: httpx.Client) -> str:
    import yaml

    r = a.post(f"{K}/pipelines/upload", params={"name": f"kp-{next(_counter)}", "namespace": "alice"},
               files={"uploadfile": ("p.yaml", yaml.safe_dump(_KFP_SPEC).encode())})
    assert r.status_code == 200, r.text
    return r.json()["pipeline_id"]


def _kfp_version(a: httpx.Client) -> tuple[str, str]:
    pid = _kfp_pipeline(a)
    return pid, a.get(f"{K}/pipelines/{pid}/versions").json()["pipeline_versions"][0]["pipeline_version_id"]


def _kfp_run_body(a: httpx.Client) -> dict:
    return {"display_name": f"kr-{next(_counter)}", "experiment_id": _kfp_experiment(a), "pipeline_spec": _KFP_SPEC}


def _kfp_run(a: httpx.Client) -> str:
    r = a.post(f"{K}/runs", json=_kfp_run_body(a))
    assert r.status_code == 200, r.text
    return r.json()["run_id"]


def _kfp_run_name(a: httpx.Client) -> str:
    run_id = _kfp_run(a)
    return next(i["metadata"]["name"] for i in a.get(f"{NS}/runs").json()["items"] if i["metadata"]["uid"] == run_id)


def _kfp_rr_body(a: httpx.Client) -> dict:
    return {**_kfp_run_body(a), "trigger": {"cron_schedule": {"cron": "0 0 3 * * *"}}, "mode": "DISABLE"}


def _kfp_rr(a: httpx.Client) -> str:
    r = a.post(f"{K}/recurringruns", json=_kfp_rr_body(a))
    assert r.status_code == 200, r.text
    return r.json()["recurring_run_id"]


def _wait_run_over(a: httpx.Client, run_id: str) -> None:
    deadline = time.time() + 30
    while a.get(f"{K}/runs/{run_id}").json().get("state") not in ("FAILED", "CANCELED", "SUCCEEDED"):
        assert time.time() < deadline, "run did not stop"
        time.sleep(0.2)


def _kfp_upload(query: str) -> Callable:
    import yaml

    def make(a: httpx.Client):
        return ("UPLOAD", f"{K}/pipelines/{query.format(pid=_kfp_pipeline(a) if '{pid}' in query else '', n=next(_counter))}",
                {"uploadfile": ("p.yaml", yaml.safe_dump(_KFP_SPEC).encode())})
    return make


# Each case: (name, route template as in /openapi.json, allowed roles, setup(owner client) -> request)
CASES: list[tuple[str, str, set[str], Callable]] = [
    ("list jobs", "GET /api/v1/namespaces/{namespace}/{plural}", ALL_MEMBERS, lambda a: ("GET", f"{NS}/jobs", None)),
    ("create job", "POST /api/v1/namespaces/{namespace}/{plural}", WRITERS, lambda a: ("POST", f"{NS}/jobs", _job(f"c-{next(_counter)}"))),
    ("get job", "GET /api/v1/namespaces/{namespace}/{plural}/{name}", ALL_MEMBERS, lambda a: ("GET", f"{NS}/jobs/{new_job(a)}", None)),
    ("replace job labels", "PUT /api/v1/namespaces/{namespace}/{plural}/{name}", WRITERS, lambda a: (lambda n: ("PUT", f"{NS}/jobs/{n}", {**_job(n), "metadata": {"name": n, "labels": {"x": "y"}}}))(new_job(a))),
    ("patch job", "PATCH /api/v1/namespaces/{namespace}/{plural}/{name}", WRITERS, lambda a: ("PATCH", f"{NS}/jobs/{new_job(a)}", {"metadata": {"labels": {"a": "b"}}})),
    ("delete job", "DELETE /api/v1/namespaces/{namespace}/{plural}/{name}", WRITERS, lambda a: ("DELETE", f"{NS}/jobs/{new_job(a)}", None)),
    ("job events", "GET /api/v1/namespaces/{namespace}/{plural}/{name}/events", ALL_MEMBERS, lambda a: ("GET", f"{NS}/jobs/{new_job(a)}/events", None)),
    ("job log", "GET /api/v1/namespaces/{namespace}/{plural}/{name}/log", ALL_MEMBERS, lambda a: ("GET", f"{NS}/jobs/{new_job(a)}/log?follow=true", None)),
    ("namespace events", "GET /api/v1/namespaces/{namespace}/events", ALL_MEMBERS, lambda a: ("GET", f"{NS}/events", None)),
    ("list secrets", None, WRITERS, lambda a: ("GET", f"{NS}/secrets", None)),
    ("get secret", None, WRITERS, lambda a: ("GET", f"{NS}/secrets/{new_secret(a)}", None)),
    ("create secret", None, WRITERS, lambda a: ("POST", f"{NS}/secrets", _secret(f"s-{next(_counter)}"))),
    ("delete secret", None, WRITERS, lambda a: ("DELETE", f"{NS}/secrets/{new_secret(a)}", None)),
    ("list members", "GET /api/v1/namespaces/{namespace}/members", ALL_MEMBERS, lambda a: ("GET", f"{NS}/members", None)),
    ("add member", "PUT /api/v1/namespaces/{namespace}/members/{user}", {"owner"}, lambda a: ("PUT", f"{NS}/members/erin", {"role": "view"})),
    ("remove member", "DELETE /api/v1/namespaces/{namespace}/members/{user}", {"owner"}, lambda a: (a.put(f"{NS}/members/frank", json={"role": "view"}),
                                            ("DELETE", f"{NS}/members/frank", None))[1]),
    ("list artifacts", "GET /api/v1/namespaces/{namespace}/artifacts", ALL_MEMBERS, lambda a: ("GET", A, None)),
    ("download artifact", "GET /api/v1/namespaces/{namespace}/artifacts/{path}", ALL_MEMBERS, lambda a: ("GET", f"{A}/{_artifact(a)}", None)),
    ("upload artifact", "PUT /api/v1/namespaces/{namespace}/artifacts/{path}", WRITERS, lambda a: ("PUT", f"{A}/up/{next(_counter)}.bin", None)),
    ("delete artifact", "DELETE /api/v1/namespaces/{namespace}/artifacts/{path}", WRITERS, lambda a: ("DELETE", f"{A}/{_artifact(a)}", None)),
    ("list profiles", "GET /api/v1/{plural}", AUTHENTICATED, lambda a: ("GET", "/api/v1/profiles", None)),
    ("get profile", "GET /api/v1/{plural}/{name}", ALL_MEMBERS, lambda a: ("GET", "/api/v1/profiles/alice", None)),
    ("patch profile", "PATCH /api/v1/{plural}/{name}", {"owner"}, lambda a: ("PATCH", "/api/v1/profiles/alice",
                                            {"metadata": {"labels": {"team": "ml"}}})),
    ("replace profile", "PUT /api/v1/{plural}/{name}", {"owner"}, lambda a: ("PUT", "/api/v1/profiles/alice",
                                            {"metadata": {"name": "alice"}, "spec": {"owner": {"name": "alice"}}})),
    ("delete profile", "DELETE /api/v1/{plural}/{name}", {"owner"}, lambda a: ("DELETE", f"/api/v1/profiles/{_profile(a)}", None)),
    ("profile events", "GET /api/v1/{plural}/{name}/events", ALL_MEMBERS, lambda a: ("GET", "/api/v1/profiles/alice/events", None)),
    ("environment log", "GET /api/v1/{plural}/{name}/log", AUTHENTICATED, lambda a: ("GET", "/api/v1/environments/built/log", None)),
    ("list jobs everywhere", None, AUTHENTICATED, lambda a: ("GET", "/api/v1/jobs", None)),
    ("list users", "GET /api/v1/users", set(), lambda a: ("GET", "/api/v1/users", None)),
    ("add user", "POST /api/v1/users", set(), lambda a: ("POST", "/api/v1/users", {"username": f"u{next(_counter)}", "password": "password-123"})),
    ("get own user", "GET /api/v1/users/{name}", {"owner"}, lambda a: ("GET", "/api/v1/users/alice", None)),
    ("change password", "PATCH /api/v1/users/{name}", {"owner"}, lambda a: ("PATCH", "/api/v1/users/alice", {"password": "alice-password-1"})),
    ("list environments", None, AUTHENTICATED, lambda a: ("GET", "/api/v1/environments", None)),
    ("create environment", "POST /api/v1/{plural}", AUTHENTICATED, lambda a: ("POST", "/api/v1/environments",
                                                     {"metadata": {"name": f"e-{next(_counter)}"}, "spec": {}})),
    ("whoami", "GET /api/v1/auth/whoami", AUTHENTICATED, lambda a: ("GET", "/api/v1/auth/whoami", None)),
    ("list tokens", "GET /api/v1/tokens", AUTHENTICATED, lambda a: ("GET", "/api/v1/tokens", None)),
    ("create token", "POST /api/v1/tokens", AUTHENTICATED, lambda a: ("POST", "/api/v1/tokens", {"name": "t"})),
    ("revoke token", "DELETE /api/v1/tokens/{token_id}", {"owner"}, lambda a: ("DELETE", f"/api/v1/tokens/{_token_of_alice(a)}", None)),
    ("list namespaces", "GET /api/v1/namespaces", AUTHENTICATED, lambda a: ("GET", "/api/v1/namespaces", None)),
    ("kinds", "GET /api/v1/kinds", AUTHENTICATED, lambda a: ("GET", "/api/v1/kinds", None)),
    ("kfp create experiment", "POST /apis/v2beta1/experiments", WRITERS, lambda a: ("POST", f"{K}/experiments", {"display_name": f"ce-{next(_counter)}", "namespace": "alice"})),
    ("kfp list experiments", "GET /apis/v2beta1/experiments", ALL_MEMBERS, lambda a: ("GET", f"{K}/experiments?namespace=alice", None)),
    ("kfp get experiment", "GET /apis/v2beta1/experiments/{experiment_id}", ALL_MEMBERS, lambda a: ("GET", f"{K}/experiments/{_kfp_experiment(a)}", None)),
    ("kfp archive experiment", "POST /apis/v2beta1/experiments/{experiment_id}:archive", WRITERS, lambda a: ("POST", f"{K}/experiments/{_kfp_experiment(a)}:archive", None)),
    ("kfp unarchive experiment", "POST /apis/v2beta1/experiments/{experiment_id}:unarchive", WRITERS, lambda a: ("POST", f"{K}/experiments/{_kfp_experiment(a)}:unarchive", None)),
    ("kfp delete experiment", "DELETE /apis/v2beta1/experiments/{experiment_id}", WRITERS, lambda a: ("DELETE", f"{K}/experiments/{_kfp_experiment(a)}", None)),
    ("kfp upload pipeline", "POST /apis/v2beta1/pipelines/upload", WRITERS, _kfp_upload("upload?name=up-{n}&namespace=alice")),
    ("kfp upload version", "POST /apis/v2beta1/pipelines/upload_version", WRITERS, _kfp_upload("upload_version?name=v-{n}&pipelineid={pid}")),
    ("kfp list pipelines", "GET /apis/v2beta1/pipelines", ALL_MEMBERS, lambda a: ("GET", f"{K}/pipelines?namespace=alice", None)),
    ("kfp get pipeline", "GET /apis/v2beta1/pipelines/{pipeline_id}", ALL_MEMBERS, lambda a: ("GET", f"{K}/pipelines/{_kfp_pipeline(a)}", None)),
    ("kfp delete pipeline", "DELETE /apis/v2beta1/pipelines/{pipeline_id}", WRITERS, lambda a: ("DELETE", f"{K}/pipelines/{_kfp_pipeline(a)}?cascade=true", None)),
    ("kfp list versions", "GET /apis/v2beta1/pipelines/{pipeline_id}/versions", ALL_MEMBERS, lambda a: ("GET", f"{K}/pipelines/{_kfp_pipeline(a)}/versions", None)),
    ("kfp get version", "GET /apis/v2beta1/pipelines/{pipeline_id}/versions/{pipeline_version_id}", ALL_MEMBERS, lambda a: ("GET", "{}/pipelines/{}/versions/{}".format(K, *_kfp_version(a)), None)),
    ("kfp delete version", "DELETE /apis/v2beta1/pipelines/{pipeline_id}/versions/{pipeline_version_id}", WRITERS, lambda a: ("DELETE", "{}/pipelines/{}/versions/{}".format(K, *_kfp_version(a)), None)),
    ("kfp create run", "POST /apis/v2beta1/runs", WRITERS, lambda a: ("POST", f"{K}/runs", _kfp_run_body(a))),
    ("kfp list runs", "GET /apis/v2beta1/runs", ALL_MEMBERS, lambda a: ("GET", f"{K}/runs?namespace=alice", None)),
    ("kfp get run", "GET /apis/v2beta1/runs/{run_id}", ALL_MEMBERS, lambda a: ("GET", f"{K}/runs/{_kfp_run(a)}", None)),
    ("kfp terminate run", "POST /apis/v2beta1/runs/{run_id}:terminate", WRITERS, lambda a: ("POST", f"{K}/runs/{_kfp_run(a)}:terminate", None)),
    ("kfp retry run", "POST /apis/v2beta1/runs/{run_id}:retry", WRITERS, lambda a: (lambda r: (a.post(f"{K}/runs/{r}:terminate"), _wait_run_over(a, r), ("POST", f"{K}/runs/{r}:retry", None))[2])(_kfp_run(a))),
    ("kfp archive run", "POST /apis/v2beta1/runs/{run_id}:archive", WRITERS, lambda a: ("POST", f"{K}/runs/{_kfp_run(a)}:archive", None)),
    ("kfp unarchive run", "POST /apis/v2beta1/runs/{run_id}:unarchive", WRITERS, lambda a: ("POST", f"{K}/runs/{_kfp_run(a)}:unarchive", None)),
    ("kfp delete run", "DELETE /apis/v2beta1/runs/{run_id}", WRITERS, lambda a: ("DELETE", f"{K}/runs/{_kfp_run(a)}", None)),
    ("kfp create recurring run", "POST /apis/v2beta1/recurringruns", WRITERS, lambda a: ("POST", f"{K}/recurringruns", _kfp_rr_body(a))),
    ("kfp list recurring runs", "GET /apis/v2beta1/recurringruns", ALL_MEMBERS, lambda a: ("GET", f"{K}/recurringruns?namespace=alice", None)),
    ("kfp get recurring run", "GET /apis/v2beta1/recurringruns/{recurring_run_id}", ALL_MEMBERS, lambda a: ("GET", f"{K}/recurringruns/{_kfp_rr(a)}", None)),
    ("kfp enable recurring run", "POST /apis/v2beta1/recurringruns/{recurring_run_id}:enable", WRITERS, lambda a: ("POST", f"{K}/recurringruns/{_kfp_rr(a)}:enable", None)),
    ("kfp disable recurring run", "POST /apis/v2beta1/recurringruns/{recurring_run_id}:disable", WRITERS, lambda a: ("POST", f"{K}/recurringruns/{_kfp_rr(a)}:disable", None)),
    ("pipeline task log", "GET /api/v1/namespaces/{namespace}/runs/{run}/tasks/{task}/log", ALL_MEMBERS, lambda a: ("GET", f"{NS}/runs/{_kfp_run(a)}/tasks/echo/log?follow=true", None)),
    ("pipeline run log", "", ALL_MEMBERS, lambda a: ("GET", f"{NS}/runs/{_kfp_run_name(a)}/log?follow=true", None)),
    ("lineage of a run", "GET /api/v1/namespaces/{namespace}/lineage", ALL_MEMBERS, lambda a: ("GET", f"{NS}/lineage?run={_kfp_run(a)}", None)),
    ("kfp delete recurring run", "DELETE /apis/v2beta1/recurringruns/{recurring_run_id}", WRITERS, lambda a: ("DELETE", f"{K}/recurringruns/{_kfp_rr(a)}", None)),
    ("clear pipeline cache", "DELETE /api/v1/namespaces/{namespace}/pipelinecache", WRITERS, lambda a: ("DELETE", f"{NS}/pipelinecache", None)),
]

def _area_cases() -> list:
    """Cases that feature areas keep beside this file, in `authz_<area>.py` modules (a `CASES` list
    of the same shape, using this module's helpers), so each area adds its routes on its own."""
    import importlib
    import pathlib
    import sys

    here = pathlib.Path(__file__).parent
    sys.path.insert(0, str(here))
    try:
        return [c for f in sorted(here.glob("authz_*.py")) for c in importlib.import_module(f.stem).CASES]
    finally:
        sys.path.remove(str(here))


CASES += _area_cases()
PUBLIC = {"GET /apis/v2beta1/healthz", "GET /healthz", "GET /readyz", "GET /metrics", "POST /api/v1/auth/token"}


@pytest.fixture(scope="module")
def world(shared_server):
    for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
        shared_server.add_user(user)
    with shared_server.client("alice", "alice-password-1") as alice:
        assert alice.put(f"{NS}/members/bob", json={"role": "edit"}).status_code == 200
        assert alice.put(f"{NS}/members/carol", json={"role": "view"}).status_code == 200
        assert alice.post("/api/v1/environments", json={"metadata": {"name": "built"}, "spec": {}}).status_code == 201
        deadline = time.time() + 60
        while alice.get("/api/v1/environments/built").json()["status"].get("phase") != "Ready":
            assert time.time() < deadline, "environment 'built' did not build"
            time.sleep(0.2)
    return shared_server


def _client(server, role: str) -> httpx.Client:
    if role == "anonymous":
        return httpx.Client(base_url=server.url, timeout=30)
    if role == "badtoken":
        return httpx.Client(base_url=server.url, headers={"Authorization": "Bearer fy_0000_bogus"}, timeout=30)
    user = USERS[role]
    return server.client(user, f"{user}-password-1")


def test_every_route_is_in_the_matrix(world) -> None:
    spec = httpx.get(f"{world.url}/openapi.json").json()
    routes = {f"{m.upper()} {path}" for path, ops in spec["paths"].items() for m in ops}
    covered = {c[1] for c in CASES if c[1]}
    assert routes - PUBLIC - covered == set(), "add a case for each new route"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matrix(world, case, role: str) -> None:
    name, _, allowed, setup = case
    with world.client("alice", "alice-password-1") as owner:
        method, path, body = setup(owner)
    with _client(world, role) as c:
        if method == "UPLOAD":  # multipart (KFP pipeline uploads)
            r = c.post(path, files=body)
        else:
            r = c.request(method, path, json=body)
    if role in allowed:
        assert r.status_code < 300, f"{role} should be allowed to {name}: {r.status_code} {r.text}"
    elif role in ("anonymous", "badtoken"):
        assert r.status_code == 401, f"{role} {name}: {r.status_code} {r.text}"
        assert r.json()["code"] == "Unauthorized"
    else:
        assert r.status_code in (403, 404), f"{role} must not {name}: {r.status_code} {r.text}"
        assert "top-secret-value" not in r.text and "items" not in r.json()


def test_outsider_learns_nothing_from_cross_namespace_lists(world) -> None:
    with world.client("alice", "alice-password-1") as alice:
        alice.post(f"{NS}/jobs", json=_job("private-job"))
    with world.client("dave", "dave-password-1") as dave:
        everywhere = dave.get("/api/v1/jobs").json()["items"]
        assert all(i["metadata"]["namespace"] == "dave" for i in everywhere)
        assert [n["name"] for n in dave.get("/api/v1/namespaces").json()["items"]] == ["dave"]
        assert [p["metadata"]["name"] for p in dave.get("/api/v1/profiles").json()["items"]] == ["dave"]
        missing = dave.get("/api/v1/namespaces/no-such-ns/jobs")
        hidden = dave.get(f"{NS}/jobs/private-job")
        assert missing.status_code == hidden.status_code == 403  # same answer: existence is not revealed


def test_platform_admin_sees_all(world) -> None:
    with world.client() as admin:
        assert admin.get(f"{NS}/jobs").status_code == 200
        assert {"alice", "dave", "admin"} <= {n["name"] for n in admin.get("/api/v1/namespaces").json()["items"]}


def test_namespace_scoped_token(world) -> None:
    with world.client("bob", "bob-password-1") as bob:
        r = bob.post("/api/v1/tokens", json={"name": "ci", "namespace": "alice"})
        assert r.status_code == 201
        token = r.json()["token"]
    with httpx.Client(base_url=world.url, headers={"Authorization": f"Bearer {token}"}) as scoped:
        assert scoped.get(f"{NS}/jobs").status_code == 200
        assert scoped.get("/api/v1/namespaces/bob/jobs").status_code == 403


def test_environment_changes_only_by_creator(world) -> None:
    with world.client("alice", "alice-password-1") as alice:
        name = _env(alice)
    with world.client("bob", "bob-password-1") as bob:
        assert bob.delete(f"/api/v1/environments/{name}").status_code == 403
    with world.client("alice", "alice-password-1") as alice:
        assert alice.delete(f"/api/v1/environments/{name}").status_code == 200
    with world.client() as admin:
        assert admin.delete("/api/v1/environments/default").status_code == 422
