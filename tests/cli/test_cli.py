"""The `flowyard` client commands, run as real subprocesses against one real server."""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

Server = Any  # tests/conftest.py's Server: a running `flowyard up` with helpers
Run = Callable[..., subprocess.CompletedProcess[str]]

MANIFESTS = """\
apiVersion: v1
kind: Secret
metadata:
  name: greeting
stringData:
  word: s3cret-value
---
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
  labels: {app: demo}
spec:
  template:
    spec:
      containers:
      - image: default
        command: [python, -c, "print('hi')"]
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def base_env(shared_server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the CLI: admin credentials, and a HOME of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYARD_")}
    env.update(HOME=str(tmp_path_factory.mktemp("home")), FLOWYARD_URL=shared_server.url,
               FLOWYARD_TOKEN=shared_server.token())
    return env


@pytest.fixture(scope="module")
def run(base_env: dict[str, str]) -> Run:
    """Run `flowyard ARGS`; keyword `input` feeds stdin, `env` overrides variables (None removes)."""

    def run(*args: str, input: str = "", env: dict[str, str | None] | None = None,
            ok: bool | None = True) -> subprocess.CompletedProcess[str]:
        full = dict(base_env)
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        done = subprocess.run([sys.executable, "-m", "flowyard", *args], input=input, env=full,
                              capture_output=True, text=True, timeout=60)
        if ok is True:
            assert done.returncode == 0, f"{args}: {done.stderr}"
        elif ok is False:
            assert done.returncode == 1, f"{args} should fail: {done.stdout}"
            assert_one_error_line(done.stderr)
        return done

    return run


def assert_one_error_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("error: "), stderr


def user_with_namespace(server: Server) -> tuple[str, str]:
    """A fresh user (with their own namespace) and their token."""
    name = unique("u")
    password = server.add_user(name)
    return name, server.token(name, password)


def test_login_whoami_logout(shared_server: Server, run: Run, tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path), "FLOWYARD_URL": None, "FLOWYARD_TOKEN": None}
    password = shared_server.env["FLOWYARD_ADMIN_PASSWORD"]
    out = run("login", "--url", shared_server.url, "--username", "admin", "--password-stdin",
              input=password + "\n", env=home).stdout
    assert "Logged in" in out
    saved = tmp_path / ".config" / "flowyard" / "config.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["url"] == shared_server.url
    me = run("whoami", env=home).stdout
    assert "admin (administrator)" in me and shared_server.url in me
    run("logout", env=home)
    assert not saved.exists()
    err = run("whoami", env=home, ok=False).stderr
    assert "flowyard login" in err
    err = run("login", "--url", shared_server.url, "-u", "admin", "--password-stdin", input="wrong-password\n",
              env=home, ok=False).stderr
    assert "wrong user name or password" in err


def test_user_add_with_stdin_password(shared_server: Server, run: Run) -> None:
    name = unique("bob")
    assert "added" in run("user", "add", name, input="bob-password-1\n").stdout
    assert name in run("user", "list").stdout
    assert shared_server.token(name, "bob-password-1")
    run("user", "passwd", name, input="bob-password-2\n")
    run("user", "disable", name)
    assert "yes" in next(line for line in run("user", "list").stdout.splitlines() if line.startswith(name))
    run("user", "enable", name)
    err = run("user", "add", unique("c"), input="short\n", ok=False).stderr
    assert "at least 8 characters" in err


def test_tokens(shared_server: Server, run: Run) -> None:
    _, token = user_with_namespace(shared_server)
    as_user = {"FLOWYARD_TOKEN": token}
    created = run("token", "create", "--name", "ci", env=as_user)
    secret = created.stdout.strip()
    assert secret.startswith("fy_") and "not shown again" in created.stderr
    token_id = secret.split("_")[1]
    listing = run("token", "list", env=as_user).stdout
    assert token_id in listing and secret not in listing
    run("whoami", env={"FLOWYARD_TOKEN": secret})
    run("token", "revoke", token_id, env=as_user)
    err = run("whoami", env={"FLOWYARD_TOKEN": secret}, ok=False).stderr
    assert "revoked" in err


def test_apply_get_describe_logs_delete(shared_server: Server, run: Run, tmp_path: Path) -> None:
    ns, token = user_with_namespace(shared_server)
    as_user = {"FLOWYARD_TOKEN": token}
    (tmp_path / "app.yaml").write_text(MANIFESTS)
    out = run("apply", "-f", str(tmp_path / "app.yaml"), env=as_user).stdout
    assert out.splitlines() == ["secret/greeting created", "job/hello created"]
    wait_for_phase(shared_server, token, f"/api/v1/namespaces/{ns}/jobs/hello", "Succeeded")

    table = run("get", "jobs", env=as_user).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "EXIT", "AGE"]
    assert table[1].split()[:2] == ["hello", "Succeeded"]
    across = run("get", "jobs", "-A", env=as_user).stdout.splitlines()
    assert across[0].split()[:2] == ["NAMESPACE", "NAME"] and across[1].split()[:2] == [ns, "hello"]
    assert run("get", "job", "-l", "app=demo", "-o", "name", env=as_user).stdout.split() == ["job/hello"]
    as_json = json.loads(run("get", "job", "hello", "-o", "json", env=as_user).stdout)
    assert as_json["status"]["phase"] == "Succeeded"
    as_yaml = yaml.safe_load(run("get", "secrets", "-n", ns, "-o", "yaml", env=as_user).stdout)
    assert as_yaml["items"][0]["data"] == {"word": "<redacted>"}
    assert "s3cret-value" not in run("describe", "secret", "greeting", env=as_user).stdout

    described = run("describe", "job", "hello", env=as_user).stdout
    assert "Name:" in described and "Conditions:" in described
    events = described.split("Events:")[1]
    assert "Started" in events and "Completed" in events
    assert run("logs", "job", "hello", env=as_user).stdout == "hi\n"

    again = run("apply", "-f", "-", input=MANIFESTS, env=as_user).stdout
    assert again.splitlines() == ["secret/greeting configured", "job/hello configured"]
    assert run("delete", "job", "hello", env=as_user).stdout.strip() == "job/hello deleted"
    run("delete", "-f", str(tmp_path / "app.yaml"), env=as_user, ok=False)  # the job is gone already
    assert "not found" in run("get", "job", "hello", env=as_user, ok=False).stderr
    assert "not found" in run("get", "secret", "greeting", env=as_user, ok=False).stderr


def wait_for_phase(server: Server, token: str, path: str, phase: str) -> None:
    """Poll the API (cheaper than a CLI process per poll) until the object reaches `phase`."""
    headers = {"Authorization": f"Bearer {token}"}
    status: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = httpx.get(server.url + path, headers=headers).json().get("status") or {}
        if status.get("phase") == phase:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} never reached {phase}: {status}")


def test_apply_folder_and_follow_logs(shared_server: Server, run: Run, tmp_path: Path) -> None:
    _, token = user_with_namespace(shared_server)
    as_user = {"FLOWYARD_TOKEN": token}
    (tmp_path / "a.json").write_text(json.dumps({"kind": "Secret", "metadata": {"name": "a"},
                                                 "stringData": {"k": "v"}}))
    counting = MANIFESTS.split("---\n")[1].replace("hello", "count").replace(
        "\"print('hi')\"", "\"import time\\nfor i in range(3): print(i, flush=True); time.sleep(0.3)\"")
    (tmp_path / "b.yaml").write_text(counting)
    (tmp_path / "notes.txt").write_text("not a manifest")
    out = run("apply", "-f", str(tmp_path), env=as_user).stdout
    assert out.splitlines() == ["secret/a created", "job/count created"]
    assert run("logs", "job", "count", "-f", env=as_user).stdout == "0\n1\n2\n"
    assert run("logs", "job", "count", "--tail", "1", env=as_user).stdout == "2\n"


def test_namespace_members(shared_server: Server, run: Run) -> None:
    owner, owner_token = user_with_namespace(shared_server)
    member, member_token = user_with_namespace(shared_server)
    as_owner, as_member = {"FLOWYARD_TOKEN": owner_token}, {"FLOWYARD_TOKEN": member_token}
    run("apply", "-f", "-", input=MANIFESTS.split("---\n")[1], env=as_owner)
    err = run("get", "jobs", "-n", owner, env=as_member, ok=False).stderr
    assert "not a member" in err
    run("ns", "add-member", owner, member, "--role", "view", env=as_owner)
    members = run("ns", "members", owner, env=as_owner).stdout
    assert member in members and "view" in members
    assert "hello" in run("get", "jobs", "-n", owner, env=as_member).stdout
    assert owner in run("ns", "list", env=as_member).stdout
    run("ns", "remove-member", owner, member, env=as_owner)
    run("get", "jobs", "-n", owner, env=as_member, ok=False)

    team = unique("team")
    assert "created" in run("ns", "create", team, "--owner", owner).stdout
    assert team in run("get", "profiles", env=as_owner).stdout


def test_environments(run: Run, tmp_path: Path) -> None:
    name = unique("env")
    (tmp_path / "requirements.txt").write_text("# nothing to install\n")
    run("env", "create", name, "-r", str(tmp_path / "requirements.txt"))
    assert name in run("env", "list").stdout
    assert "deleted" in run("env", "delete", name).stdout
    assert "no such file" in run("env", "create", name, "-r", str(tmp_path / "missing.txt"), ok=False).stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["bad url", "bad token", "missing file", "invalid yaml", "not a manifest",
                                  "unknown kind", "no server"])
def test_errors_are_one_line(run: Run, tmp_path: Path, case: str) -> None:
    (tmp_path / "bad.yaml").write_text("kind: Job\nmetadata: {name: x\n")
    args, env, expected = {
        "bad url": (["get", "jobs"], {"FLOWYARD_URL": f"http://127.0.0.1:{_closed_port()}"},
                    "cannot reach Flowyard at http://127.0.0.1:"),
        "bad token": (["get", "jobs"], {"FLOWYARD_TOKEN": "fy_nope_nope"}, "invalid or revoked token"),
        "missing file": (["apply", "-f", str(tmp_path / "missing.yaml")], {}, "no such file"),
        "invalid yaml": (["apply", "-f", str(tmp_path / "bad.yaml")], {}, "invalid YAML at line 3"),
        "not a manifest": (["apply", "-f", "-"], {}, "not a resource manifest"),
        "unknown kind": (["get", "gizmos"], {}, "unknown resource type 'gizmos'"),
        "no server": (["whoami"], {"FLOWYARD_URL": None, "FLOWYARD_TOKEN": None}, "flowyard login --url"),
    }[case]
    done = run(*args, env=env, input="- just a list\n", ok=False)
    assert expected in done.stderr


def test_offline_password_reset_with_home(server, tmp_path: Path) -> None:
    """A forgotten admin password is reset on the server's own machine, from its home folder."""
    import subprocess
    import sys

    env = {**server.env, "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "flowyard", "user", "passwd", "admin", "--home", str(server.home),
                        *(["--db", server.db] if server.db else [])],
                       input="a-brand-new-password\n", capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    import httpx

    ok = httpx.post(f"{server.url}/api/v1/auth/token", json={"username": "admin", "password": "a-brand-new-password"})
    assert ok.status_code == 200
