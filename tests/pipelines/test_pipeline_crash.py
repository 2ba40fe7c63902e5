"""SIGKILL the server in the middle of a KFP run: after a restart the finished tasks are not run
again, the running one is re-adopted (not restarted), and the run completes with its artifacts."""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import signal
import time
from pathlib import Path

import pytest

import kfp
from kfp import dsl  # noqa: E402
from kfp.dsl import Dataset, Output  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@dsl.component
def step(log: str, i: int, text: str, seconds: float, out: Output[Dataset]) -> str:
    import time
    with open(log, "a") as f:
        f.write(f"start {i}\n")
    time.sleep(seconds)
    result = text + str(i)
    with open(out.path, "w") as f:
        f.write(result)
    with open(log, "a") as f:
        f.write(f"end {i}\n")
    return result


@dsl.pipeline(name="crash-chain")
def chain(log: str) -> str:
    a = step(log=log, i=0, text="", seconds=0.5)
    b = step(log=log, i=1, text=a.outputs["Output"], seconds=6.0)
    c = step(log=log, i=2, text=b.outputs["Output"], seconds=0.5)
    return step(log=log, i=3, text=c.outputs["Output"], seconds=0.5).outputs["Output"]


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_sigkill_mid_run_resumes_without_rerunning(server, tmp_path: Path) -> None:
    log = tmp_path / "side-effects.txt"
    client = kfp.Client(host=server.url, existing_token=server.token(), namespace="admin")
    run_id = client.create_run_from_pipeline_func(chain, arguments={"log": str(log)}, run_name="crash").run_id

    deadline = time.time() + 60
    while "start 1" not in _lines(log):  # step 0 finished, step 1 is sleeping
        assert time.time() < deadline, _lines(log)
        time.sleep(0.1)
    time.sleep(0.5)  # let the server record step 1 as running
    server.stop(signal.SIGKILL)
    time.sleep(1.0)
    server.start()

    client = kfp.Client(host=server.url, existing_token=server.token(), namespace="admin")
    run = client.wait_for_run_completion(run_id, timeout=90, sleep_duration=0.5)
    assert run.state == "SUCCEEDED", run
    assert _lines(log) == [f"{w} {i}" for i in range(4) for w in ("start", "end")]  # each task ran once

    with server.client() as c:
        st = next(i for i in c.get("/api/v1/namespaces/admin/runs").json()["items"]
                  if i["metadata"]["uid"] == run_id)["status"]
    assert st["outputs"]["parameters"]["Output"] == "0123"
    for key, want in (("step", "0"), ("step-2", "01"), ("step-3", "012"), ("step-4", "0123")):
        t = st["tasks"][key]
        assert t["state"] == "SUCCEEDED" and t.get("attempts") == 1, (key, t)
        assert Path(t["outputs"]["artifacts"]["out"][0]["uri"]).read_text() == want
