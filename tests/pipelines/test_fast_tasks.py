"""Fast local tasks: Python components forked from a warm zygote, `packages_to_install` as a
cached derived environment, container components run locally with a clear word about the image."""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import base64
import hashlib
import json
import signal
import time
import warnings
import zipfile
from pathlib import Path

import kfp
import psutil
import pytest
from kfp import dsl

warnings.filterwarnings("ignore", category=FutureWarning)  # at import: the @dsl.component below
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
NS = "admin"


@dsl.component
def parent_cmdline(x: int) -> str:
    import os

    with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


@dsl.pipeline(name="who-starts-me")
def who(n: int = 0) -> str:
    t = parent_cmdline(x=n)
    for _ in range(3):
        t = parent_cmdline(x=n).after(t)
    return t.output


@dsl.component
def sleeper(pid_file: str, seconds: float) -> int:
    import os
    import time

    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


@dsl.pipeline(name="sleepy")
def sleepy(pid_file: str, seconds: float) -> int:
    return sleeper(pid_file=pid_file, seconds=seconds).output


def _client(server) -> kfp.Client:
    return kfp.Client(host=server.url, existing_token=server.token(), namespace=NS)


def _status(server, run_id: str) -> dict:
    with server.client() as c:
        return next(i for i in c.get(f"/api/v1/namespaces/{NS}/runs").json()["items"]
                    if i["metadata"]["uid"] == run_id)


def _events(server, run: dict) -> list[dict]:
    with server.client() as c:
        return c.get(f"/api/v1/namespaces/{NS}/runs/{run['metadata']['name']}/events").json()["items"]


def _wait(client: kfp.Client, run_id: str, timeout: float = 120) -> str:
    return client.wait_for_run_completion(run_id, timeout=timeout, sleep_duration=0.2).state


def test_python_tasks_fork_from_a_warm_zygote_and_stay_normal_workloads(server, tmp_path: Path) -> None:
    client = _client(server)
    rid = client.create_run_from_pipeline_func(who, arguments={}, enable_caching=False).run_id
    assert _wait(client, rid) == "SUCCEEDED"
    zygotes = [json.loads(p.read_text()) for p in (server.home / "workloads").glob("flowyard-system.warm.*/spec.json")]
    assert len(zygotes) == 1, zygotes
    assert zygotes[0]["labels"]["flowyard.io/system"] == "true" and zygotes[0]["namespace"] == "flowyard-system"
    sock = Path(zygotes[0]["command"][3])
    deadline = time.time() + 30
    while not sock.exists():
        assert time.time() < deadline, "the zygote never listened"
        time.sleep(0.1)

    rid = client.create_run_from_pipeline_func(who, arguments={}, enable_caching=False).run_id
    assert _wait(client, rid) == "SUCCEEDED"
    run = _status(server, rid)
    tasks = [t for t in run["status"]["tasks"].values() if t.get("type") == "container"]
    assert len(tasks) == 4
    for t in tasks:  # each was forked: its parent is the zygote's per-task helper, not a runner
        parent = t["outputs"]["parameters"]["Output"]
        assert "warm.py serve" in parent and "_runner.py" not in parent, parent
        log = (server.home / "workloads" / t["workload"] / "log").read_text()
        assert "KFP Executor" in log  # the task's own output is its workload's log
    with server.client() as c:  # and through the API, like any task's
        r = c.get(f"/api/v1/namespaces/{NS}/runs/{run['metadata']['name']}/tasks/parent-cmdline/log")
        assert r.status_code == 200 and "KFP Executor" in r.text, r.text

    # the server is killed mid-task: the forked task lives on, is re-adopted and finishes once
    proc, rid = _start_sleeper(client, tmp_path / "nap.pid", 4.0)
    server.stop(signal.SIGKILL)
    server.start()
    client = _client(server)
    assert _wait(client, rid) == "SUCCEEDED"
    t = _status(server, rid)["status"]["tasks"]["sleeper"]
    assert t["attempts"] == 1 and t["outputs"]["parameters"]["Output"] == proc.pid, t

    # terminate kills a forked task
    proc, rid = _start_sleeper(client, tmp_path / "sleeper.pid", 300.0)
    client.terminate_run(rid)
    deadline = time.time() + 30
    while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
        assert time.time() < deadline, "the forked task survived terminate"
        time.sleep(0.1)
    deadline = time.time() + 30
    while _status(server, rid)["status"]["state"] != "CANCELED":
        assert time.time() < deadline
        time.sleep(0.2)


def _start_sleeper(client: kfp.Client, pid_file: Path, seconds: float) -> tuple[psutil.Process, str]:
    rid = client.create_run_from_pipeline_func(sleepy, arguments={"pid_file": str(pid_file), "seconds": seconds},
                                               enable_caching=False).run_id
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.time() < deadline, "the sleeper never started"
        time.sleep(0.05)
    proc = psutil.Process(int(pid_file.read_text()))
    assert "warm.py" in " ".join(proc.parent().cmdline()), proc.parent().cmdline()
    return proc, rid


def _wheel(folder: Path, name: str = "fy_tiny_pkg", value: int = 42) -> Path:
    """A minimal pure-Python wheel, so installing it needs no network."""
    dist = f"{name}-1.0"
    files = {f"{name}/__init__.py": f"VALUE = {value}\n",
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}.dist-info/RECORD,,")
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
        z.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def test_packages_to_install_and_container_components(server, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)

    @dsl.component(packages_to_install=[str(wheel)])
    def uses_tiny(x: int) -> int:
        import fy_tiny_pkg

        return fy_tiny_pkg.VALUE + x

    @dsl.component(packages_to_install=[str(tmp_path / "fy_missing-1.0-py3-none-any.whl")])
    def needs_missing() -> int:
        return 1

    @dsl.container_component
    def echo(out: dsl.OutputPath(str)):
        return dsl.ContainerSpec(image="alpine:3.19", command=["sh", "-c", 'printf hello > "$0"'], args=[out])

    @dsl.container_component
    def absent():
        return dsl.ContainerSpec(image="example.org/tool:1", command=["fy-no-such-tool"], args=["--help"])

    @dsl.pipeline(name="with-packages")
    def with_packages() -> int:
        a = uses_tiny(x=1)
        return uses_tiny(x=a.output).output

    @dsl.pipeline(name="broken-packages")
    def broken_packages():
        needs_missing()

    @dsl.pipeline(name="containers")
    def containers():
        echo()
        absent()

    client = _client(server)
    first = client.create_run_from_pipeline_func(with_packages, enable_caching=False).run_id
    broken = client.create_run_from_pipeline_func(broken_packages, enable_caching=False).run_id
    local = client.create_run_from_pipeline_func(containers, enable_caching=False).run_id
    assert _wait(client, first, 180) == "SUCCEEDED"
    run = _status(server, first)
    assert run["status"]["outputs"]["parameters"]["Output"] == 85
    env_name = run["status"]["tasks"]["uses-tiny"]["environment"]
    assert env_name.startswith("kfp-")
    assert any(e["reason"] == "BuildingEnvironment" and env_name in e["message"] for e in _events(server, run))
    with server.client() as c:
        env = c.get(f"/api/v1/environments/{env_name}").json()
        assert env["status"]["phase"] == "Ready" and str(wheel) in env["spec"]["requirements"]
        built = [e for e in c.get(f"/api/v1/environments/{env_name}/events").json()["items"] if e["reason"] == "Built"]
    again = client.create_run_from_pipeline_func(with_packages, enable_caching=False).run_id  # cached: no new build
    assert _wait(client, again) == "SUCCEEDED"
    assert not any(e["reason"] == "BuildingEnvironment" for e in _events(server, _status(server, again)))
    with server.client() as c:
        assert [e for e in c.get(f"/api/v1/environments/{env_name}/events").json()["items"] if e["reason"] == "Built"] == built

    assert _wait(client, broken) == "FAILED"
    t = _status(server, broken)["status"]["tasks"]["needs-missing"]
    assert t["state"] == "FAILED" and "cannot install packages_to_install" in t["message"], t
    assert "fy_missing-1.0-py3-none-any.whl" in t["message"].split(":", 1)[1]  # the installer's own words follow

    assert _wait(client, local) == "FAILED"
    run = _status(server, local)
    tasks = run["status"]["tasks"]
    assert tasks["echo"]["state"] == "SUCCEEDED" and tasks["echo"]["outputs"]["parameters"]["out"] == "hello"
    assert tasks["absent"]["state"] == "FAILED"
    assert "'fy-no-such-tool' cannot run here" in tasks["absent"]["message"]
    notes = [e["message"] for e in _events(server, run) if e["reason"] == "ImageNotUsed"]
    assert any("alpine:3.19 is not used locally" in m for m in notes), notes


def test_packages_and_index_urls_are_read_from_the_compiled_command() -> None:
    from flowyard.pipelines import taskio

    @dsl.component(packages_to_install=["kfp-kubernetes", "numpy>=1"],
                   pip_index_urls=["https://a.example/simple", "https://b.example/simple"])
    def f(x: int) -> int:
        return x

    source, packages = taskio.python_component(f.component_spec.implementation.container.command)
    assert "def f(x: int) -> int:" in source
    assert packages == ["--index-url https://a.example/simple", "--extra-index-url https://b.example/simple",
                        "kfp-kubernetes", "numpy>=1"]
    assert taskio.missing_packages(["--index-url https://a.example/simple", "kfp", "packaging>=1"]) == []
    assert taskio.missing_packages(["fy-no-such-package", "kfp<1", "/tmp/x.whl"]) == [
        "fy-no-such-package", f"kfp<1 (found {kfp.__version__})", "/tmp/x.whl"]
