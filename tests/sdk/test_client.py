"""`flowyard.sdk.Client` against a real server: configuration, resources, errors, helpers."""

from __future__ import annotations

import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowyard.errors import AlreadyExists, Conflict, Forbidden, Invalid, NotFound, Unauthorized
from flowyard.sdk import Client, NotConfigured, Unreachable, WaitTimeout, config, login


Server = Any  # tests/conftest.py's Server: a running `flowyard up` with helpers


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No FLOWYARD_* variables; the saved login lives in this test's folder."""
    for var in ("FLOWYARD_URL", "FLOWYARD_TOKEN", "FLOWYARD_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "flowyard-config.json"
    monkeypatch.setenv("FLOWYARD_CONFIG", str(path))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def job(name: str, code: str = "print('hi')", **labels: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
            "spec": {"template": {"spec": {"containers": [{"image": "default",
                                                           "command": ["python", "-u", "-c", code]}]}}}}


def secret(name: str, **values: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": values}


@pytest.fixture
def admin(shared_server: Server) -> Iterator[Client]:
    with Client(shared_server.url, shared_server.token()) as c:
        yield c


@pytest.fixture
def user(shared_server: Server) -> Iterator[Client]:
    """A fresh non-admin user with their own namespace."""
    name = unique("u")
    password = shared_server.add_user(name)
    with Client(shared_server.url, shared_server.token(name, password)) as c:
        yield c


# -- configuration -------------------------------------------------------------------------


def test_needs_a_server() -> None:
    with pytest.raises(NotConfigured, match="flowyard login"):
        Client()


def test_environment_variables(shared_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWYARD_URL", shared_server.url)
    monkeypatch.setenv("FLOWYARD_TOKEN", shared_server.token())
    monkeypatch.setenv("FLOWYARD_NAMESPACE", "elsewhere")
    with Client() as c:
        assert c.whoami()["username"] == "admin"
        assert c.namespace == "elsewhere"


def test_saved_login(shared_server: Server, isolated_config: Path) -> None:
    answer = login(shared_server.url, "admin", shared_server.env["FLOWYARD_ADMIN_PASSWORD"])
    path = config.save(config.Saved(url=shared_server.url, token=answer["token"], namespace="admin"))
    assert path == isolated_config
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Client() as c:
        assert c.whoami()["username"] == "admin"
        assert c.namespace == "admin"


def test_saved_token_is_not_sent_to_another_url(shared_server: Server) -> None:
    config.save(config.Saved(url=shared_server.url, token=shared_server.token()))
    other = shared_server.url.replace("127.0.0.1", "localhost")
    with Client(other) as c, pytest.raises(Unauthorized, match="log in"):
        c.whoami()


def test_broken_saved_login(shared_server: Server, isolated_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolated_config.write_text("{not json")
    with pytest.raises(Invalid, match="flowyard login"):
        Client()
    monkeypatch.setenv("FLOWYARD_URL", shared_server.url)
    monkeypatch.setenv("FLOWYARD_TOKEN", shared_server.token())
    with Client() as c:  # everything needed is given: the broken file does not matter
        assert c.whoami()["username"] == "admin"


def test_default_namespace_is_the_users_own(user: Client) -> None:
    me = user.whoami()
    assert user.namespace == me["username"]


def test_wrong_password(shared_server: Server) -> None:
    with pytest.raises(Unauthorized, match="wrong user name or password"):
        login(shared_server.url, "admin", "not-the-password")


# -- errors --------------------------------------------------------------------------------


def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, "fy_x_y") as c, pytest.raises(Unreachable, match="cannot reach Flowyard at .*flowyard up"):
        c.whoami()


def test_invalid_url() -> None:
    with Client("nowhere", "t") as c, pytest.raises(Invalid, match="invalid Flowyard URL"):
        c.whoami()


def test_bad_token(shared_server: Server) -> None:
    with Client(shared_server.url, "fy_nope_nope") as c, pytest.raises(Unauthorized, match="invalid or revoked"):
        c.whoami()


def test_server_errors_keep_class_and_message(admin: Client, user: Client) -> None:
    ns = user.namespace
    with pytest.raises(NotFound, match="unknown resource type 'gizmos'"):
        admin.get("gizmos")
    with pytest.raises(NotFound, match="job 'absent' not found"):
        user.get("job", "absent")
    user.create(secret("s", a="1"))
    with pytest.raises(AlreadyExists, match="already exists") as info:
        user.create(secret("s", a="1"))
    assert isinstance(info.value, Conflict) and info.value.status == 409
    with pytest.raises(Invalid, match="stringData"):
        user.create({"kind": "Secret", "metadata": {"name": "bad"}, "stringData": {"a": 1}})
    with pytest.raises(Forbidden, match="not a member"):
        with Client(user.url, admin_token_of_other(admin)) as other:
            other.get("jobs", namespace=ns)
    with pytest.raises(Forbidden, match="administrator"):
        user.users()


def admin_token_of_other(admin: Client) -> str:
    """A token of yet another plain user, who is in no namespace but their own."""
    name = unique("o")
    admin.add_user(name, "other-password-1", namespace=False)
    return login(admin.url, name, "other-password-1")["token"]


# -- resources -----------------------------------------------------------------------------


def test_kind_names(admin: Client) -> None:
    for word in ("Job", "job", "jobs", "JOBS", "jobs.batch"):
        assert admin.kind(word).kind == "Job"
    assert admin.kind("env").kind == "Environment"
    assert not admin.kind("environment").namespaced
    assert {"Job", "Secret", "Profile", "Environment"} <= {k.kind for k in admin.kinds()}


def test_apply_creates_then_replaces(user: Client) -> None:
    obj, created = user.apply_one(secret("cfg", password="one"))
    assert created and obj["data"] == {"password": "<redacted>"}
    changed = secret("cfg", password="two", extra="x")
    changed["metadata"].update(labels={"tier": "db"}, resourceVersion="1")
    obj, created = user.apply_one(changed)
    assert not created
    assert obj["metadata"]["labels"] == {"tier": "db"}
    assert set(obj["data"]) == {"password", "extra"}
    assert "two" not in str(obj)


def test_apply_list_and_get_pages(user: Client) -> None:
    names = [f"s{i}" for i in range(5)]
    applied = user.apply([secret(n, k="v") | {"metadata": {"name": n, "labels": {"i": n}}} for n in names])
    assert [o["metadata"]["name"] for o in applied] == names
    assert [o["metadata"]["name"] for o in user.get("secrets", page_size=2)] == names
    assert [o["metadata"]["name"] for o in user.get("secrets", label_selector="i in (s1,s3)")] == ["s1", "s3"]


def test_replace_patch_delete(user: Client) -> None:
    obj = user.create(secret("p", a="1"))
    user.patch("secret", "p", {"metadata": {"labels": {"x": "y"}}})
    stale = secret("p", a="2")
    stale["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
    with pytest.raises(Conflict, match="changed since you read it"):
        user.replace(stale)
    assert user.get("secret", "p")["metadata"]["labels"] == {"x": "y"}
    assert user.delete("secret", "p")["metadata"]["name"] == "p"
    with pytest.raises(NotFound):
        user.get("secret", "p")


def test_job_wait_events_logs(user: Client) -> None:
    user.apply(job("hello", "import time\nfor i in range(3):\n    print('line', i); time.sleep(0.2)"))
    lines = list(_follow(user, "hello"))
    assert lines == ["line 0\n", "line 1\n", "line 2\n"]
    done = user.wait("job", "hello", "Succeeded", timeout=60)
    assert done["status"]["exitCode"] == 0
    assert list(user.logs("job", "hello", tail=1)) == ["line 2\n"]
    reasons = [e["reason"] for e in user.events("job", "hello")]
    assert "Completed" in reasons
    with pytest.raises(WaitTimeout, match="still Succeeded"):
        user.wait("job", "hello", "Nope", timeout=0.3)


def _follow(c: Client, name: str) -> Iterator[str]:
    c.wait("job", name, ("Running", "Succeeded", "Failed"), timeout=60)
    yield from c.logs("job", name, follow=True)


def test_cluster_scoped_environment(user: Client) -> None:
    name = unique("env")
    obj = user.create({"apiVersion": "flowyard.io/v1", "kind": "Environment", "metadata": {"name": name},
                       "spec": {"requirements": ["# nothing"]}})
    assert "namespace" not in obj["metadata"]
    assert name in [e["metadata"]["name"] for e in user.get("environments")]
    user.delete("environment", name)


# -- users, tokens, members ----------------------------------------------------------------


def test_users_tokens_members(shared_server: Server, admin: Client) -> None:
    name = unique("m")
    admin.add_user(name, "member-password-1", namespace=False)
    assert name in [u["name"] for u in admin.users()]
    token = login(admin.url, name, "member-password-1")
    with Client(admin.url, token["token"]) as member:
        with pytest.raises(Invalid, match="in no namespace"):
            member.namespace
        admin.set_member("admin", name, "view")
        assert {"user": name, "role": "view", "owner": False} in admin.members("admin")
        assert member.namespaces() == [{"name": "admin", "role": "view"}]
        assert member.namespace == "admin"
        admin.remove_member("admin", name)
        extra = member.create_token("ci")
        assert extra["id"] in [t["id"] for t in member.tokens()]
        member.revoke_token(extra["id"])
        with Client(admin.url, extra["token"]) as revoked, pytest.raises(Unauthorized):
            revoked.whoami()
    admin.update_user(name, disabled=True)
    assert admin.get_user(name)["disabled"]
    with Client(admin.url, token["token"]) as disabled, pytest.raises(Unauthorized):
        disabled.whoami()
