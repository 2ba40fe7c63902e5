"""The pipelines engine on real compiled KFP pipelines, real processes, no HTTP server."""


import json
import warnings
from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from engine_helpers import leaf_tasks, run_pipeline

warnings.filterwarnings("ignore", category=FutureWarning)


@dsl.component
def add(a: float, b: float) -> float:
    return a + b


@dsl.pipeline(name="calc-pipeline")
def calc_pipeline(a: float = 7.0, b: float = 8.0) -> float:
    t1 = add(a=a, b=4.0)
    t2 = add(a=a, b=b)
    return add(a=t1.output, b=t2.output).output


def test_calc_diamond(tmp_path: Path) -> None:
    status, seconds, _ = run_pipeline(tmp_path, calc_pipeline, {"a": 7, "b": 8})
    assert status["state"] == "SUCCEEDED", status
    assert status["tasks"]["add"]["outputs"]["parameters"]["Output"] == 11.0
    assert status["tasks"]["add-2"]["outputs"]["parameters"]["Output"] == 15.0
    assert status["tasks"]["add-3"]["outputs"]["parameters"]["Output"] == 26.0
    assert status["outputs"]["parameters"]["Output"] == 26.0
    assert status["tasks"]["add-3"]["inputs"]["parameters"] == {"a": 11.0, "b": 15.0}
    for t in leaf_tasks(status).values():
        assert t["exitCode"] == 0 and t["attempts"] == 1 and t["workload"].startswith("admin.pl.")
    print(f"calc: 3 tasks (2 parallel + 1) in {seconds:.2f}s; per task "
          + ", ".join(f"{k}={t['durationSeconds']:.2f}s" for k, t in leaf_tasks(status).items()))


@dsl.component
def double(n: int) -> int:
    return n * 2


@dsl.pipeline
def linear(n: int = 5) -> int:
    return double(n=double(n=double(n=n).output).output).output


def test_linear_ints_are_ints(tmp_path: Path) -> None:
    status, seconds, _ = run_pipeline(tmp_path, linear, {"n": 3.0})  # a float from the proto world
    assert status["state"] == "SUCCEEDED", status
    assert status["outputs"]["parameters"]["Output"] == 24
    assert isinstance(status["outputs"]["parameters"]["Output"], int)
    print(f"linear: 3 sequential tasks in {seconds:.2f}s ({seconds / 3:.2f}s per task incl. polling)")


@dsl.component
def make_data(rows: int, data: Output[Dataset]) -> None:
    with open(data.path, "w") as f:
        f.write("\n".join(str(i) for i in range(rows)))
    data.metadata["rows"] = rows


@dsl.component
def train(data: Input[Dataset], model: Output[Model], metrics: Output[Metrics]) -> str:
    with open(data.path) as f:
        values = [int(x) for x in f.read().split()]
    with open(model.path, "w") as f:
        f.write(f"mean={sum(values) / len(values)}")
    model.metadata["framework"] = "mean"
    metrics.log_metric("rows_seen", data.metadata["rows"])
    return "good" if len(values) > 3 else "bad"


@dsl.component
def evaluate(model: Input[Model]) -> str:
    with open(model.path) as f:
        return f.read() + ";" + model.metadata["framework"]


@dsl.pipeline
def artifacts_pipeline(rows: int = 5) -> str:
    d = make_data(rows=rows)
    t = train(data=d.outputs["data"])
    return evaluate(model=t.outputs["model"]).output


def test_artifacts_with_metadata(tmp_path: Path) -> None:
    status, _, _ = run_pipeline(tmp_path, artifacts_pipeline)
    assert status["state"] == "SUCCEEDED", status
    data = status["tasks"]["make-data"]["outputs"]["artifacts"]["data"][0]
    assert data["metadata"] == {"rows": 5} and data["type"]["schemaTitle"] == "system.Dataset"
    assert Path(data["uri"]).read_text() == "0\n1\n2\n3\n4"
    assert "/admin/runs/" in data["uri"] and data["uri"].endswith("/make-data/data")
    tr = status["tasks"]["train"]["outputs"]
    assert tr["parameters"]["Output"] == "good"
    assert tr["artifacts"]["metrics"][0]["metadata"] == {"rows_seen": 5}
    assert status["outputs"]["parameters"]["Output"] == "mean=2.0;mean"


@dsl.pipeline
def inner(x: float) -> float:
    return add(a=x, b=x).output


@dsl.pipeline
def outer(x: float = 2.0) -> float:
    i = inner(x=x)
    return add(a=i.output, b=1.0).output


def test_nested_pipeline_outputs(tmp_path: Path) -> None:
    status, _, _ = run_pipeline(tmp_path, outer)
    assert status["state"] == "SUCCEEDED", status
    assert status["tasks"]["inner"]["type"] == "dag"
    assert status["tasks"]["inner"]["outputs"]["parameters"]["Output"] == 4.0
    assert status["outputs"]["parameters"]["Output"] == 5.0


@dsl.component
def num() -> int:
    return 3


@dsl.component
def flip() -> str:
    return "heads"


@dsl.component
def echo(x: str) -> str:
    return x


@dsl.pipeline
def conditions(flag: bool = True) -> str:
    n = num()
    f = flip()
    with dsl.If(n.output > 5):
        big = echo(x="big")
    with dsl.Elif(f.output == "heads"):
        heads = echo(x="heads")
    with dsl.Else():
        other = echo(x="other")
    with dsl.If(flag == True):  # noqa: E712 - kfp needs the comparison
        echo(x="flag")
    return dsl.OneOf(big.output, heads.output, other.output)


def test_if_elif_else_and_oneof(tmp_path: Path) -> None:
    status, _, _ = run_pipeline(tmp_path, conditions, {"flag": False})
    assert status["state"] == "SUCCEEDED", status
    tasks = status["tasks"]
    ran = {k for k, t in tasks.items() if t.get("type") == "container"}
    assert ran == {"num", "flip", "condition-branches-1/condition-3/echo-2"}, ran
    assert tasks["condition-branches-1/condition-2"]["state"] == "SKIPPED"
    assert tasks["condition-branches-1/condition-4"]["state"] == "SKIPPED"
    assert tasks["condition-5"]["state"] == "SKIPPED"
    assert status["outputs"]["parameters"]["Output"] == "heads"


@dsl.component
def square(x: int) -> int:
    import time

    time.sleep(0.3)
    return x * x


@dsl.component
def total(xs: list) -> int:
    return sum(xs)


@dsl.component
def pick(x: int) -> int:
    return x


@dsl.pipeline
def loops(items: list = [1, 2, 3, 4]) -> int:
    with dsl.ParallelFor([{"a": 10}, {"a": 20}]) as it:
        pick(x=it.a)
    with dsl.ParallelFor(items, parallelism=2) as i:
        s = square(x=i)
    return total(xs=dsl.Collected(s.output)).output


def test_parallel_for_parallelism_collected(tmp_path: Path) -> None:
    status, _, _ = run_pipeline(tmp_path, loops)
    assert status["state"] == "SUCCEEDED", status
    assert status["outputs"]["parameters"]["Output"] == 1 + 4 + 9 + 16
    tasks = status["tasks"]
    picks = sorted(t["outputs"]["parameters"]["Output"] for k, t in tasks.items() if k.endswith("/pick"))
    assert picks == [10, 20]
    squares = [t for k, t in tasks.items() if k.endswith("/square")]
    assert len(squares) == 4
    # parallelism=2: never more than two squares ran at once
    spans = [(t["ranFrom"], t["ranUntil"]) for t in squares]
    most = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert most <= 2, spans


@dsl.component
def fail_op(msg: str) -> None:
    raise SystemExit(f"boom: {msg}")


@dsl.component
def report(status: dsl.PipelineTaskFinalStatus) -> str:
    return f"{status.state}:{status.pipeline_task_name}"


@dsl.pipeline
def exit_pipeline() -> None:
    r = report()
    with dsl.ExitHandler(r):
        fail_op(msg="x")
        add(a=1.0, b=2.0)


def test_exit_handler_and_failure(tmp_path: Path) -> None:
    status, _, _ = run_pipeline(tmp_path, exit_pipeline)
    assert status["state"] == "FAILED", status
    tasks = status["tasks"]
    assert tasks["exit-handler-1/fail-op"]["state"] == "FAILED"
    assert tasks["exit-handler-1/fail-op"]["exitCode"] != 0
    assert tasks["exit-handler-1/add"]["state"] == "SUCCEEDED"
    assert tasks["exit-handler-1"]["state"] == "FAILED"
    assert tasks["report"]["state"] == "SUCCEEDED"
    assert tasks["report"]["outputs"]["parameters"]["Output"] == "FAILED:exit-handler-1"
    assert "fail-op" in status["message"]


@dsl.component
def flaky(marker: str) -> str:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "ok"


def test_retry(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")

    @dsl.pipeline
    def retry_pipeline() -> str:
        return flaky(marker=marker).set_retry(num_retries=2, backoff_duration="0s").output

    status, _, _ = run_pipeline(tmp_path, retry_pipeline)
    assert status["state"] == "SUCCEEDED", status
    t = status["tasks"]["flaky"]
    assert t["attempts"] == 2 and len(t["failures"]) == 1
    assert t["workload"].endswith(".1")
    assert status["outputs"]["parameters"]["Output"] == "ok"


@dsl.container_component
def shell(msg: str, out: dsl.OutputPath(str), opt: str = ""):
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", 'printf "%s" "$0" > "$1"'],
        args=[dsl.ConcatPlaceholder(["hi-", msg]), out,
              dsl.IfPresentPlaceholder(input_name="opt", then=["--opt", opt])],
    )


@dsl.pipeline
def container_pipeline() -> str:
    return shell(msg="there").outputs["out"]


def test_container_component_placeholders(tmp_path: Path) -> None:
    status, _, _ = run_pipeline(tmp_path, container_pipeline)
    assert status["state"] == "SUCCEEDED", status
    assert status["outputs"]["parameters"]["Output"] == "hi-there"


def test_missing_parameter_fails_clearly(tmp_path: Path) -> None:
    @dsl.pipeline
    def needs(x: float) -> float:
        return add(a=x, b=1.0).output

    status, _, _ = run_pipeline(tmp_path, needs)
    assert status["state"] == "FAILED"
    assert "required parameter 'x'" in status["message"]


@dsl.component
def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@dsl.pipeline
def napping(seconds: float = 1.5) -> float:
    first = add(a=1.0, b=1.0)
    return nap(seconds=seconds).after(first).output


def test_restart_readopts_and_never_reruns(tmp_path: Path) -> None:
    import asyncio

    from engine_helpers import close_platform, compile_spec, create_run, drive, open_platform

    spec = compile_spec(napping, tmp_path)

    async def main() -> None:
        p = await open_platform(tmp_path / "home")
        run = create_run(p, spec)
        mid = await drive(p, run, until=lambda s: (s["tasks"].get("nap") or {}).get("state") == "RUNNING")
        assert p.executor is not None
        await p.executor.close(stop_workloads=False)  # the server goes away, the task keeps running
        p2 = await open_platform(tmp_path / "home")
        try:
            final = await drive(p2, run)
        finally:
            await close_platform(p2)
        assert final["state"] == "SUCCEEDED", final
        assert final["tasks"]["nap"]["workload"] == mid["tasks"]["nap"]["workload"]
        assert final["tasks"]["nap"]["attempts"] == 1
        assert final["tasks"]["add"]["finishedAt"] == mid["tasks"]["add"]["finishedAt"]
        assert [w.id for w in p2.executor.list("admin")].count(final["tasks"]["add"]["workload"]) == 1

    asyncio.run(main())


def test_terminate_cancels_running_tasks(tmp_path: Path) -> None:
    import asyncio

    from engine_helpers import close_platform, compile_spec, create_run, drive, open_platform, terminate

    spec = compile_spec(napping, tmp_path)

    async def main() -> None:
        p = await open_platform(tmp_path / "home")
        try:
            run = create_run(p, spec, {"seconds": 60.0})
            await drive(p, run, until=lambda s: (s["tasks"].get("nap") or {}).get("state") == "RUNNING")
            status = await terminate(p, "run")
            assert status["state"] == "CANCELED"
            assert status["tasks"]["nap"]["state"] == "CANCELED"
            assert p.executor is not None
            assert p.executor.status(status["tasks"]["nap"]["workload"]).finished
            again = await drive(p, run)
            assert again["state"] == "CANCELED"
        finally:
            await close_platform(p)

    asyncio.run(main())


def test_kfp_kubernetes_timeout_stops_the_task(tmp_path: Path) -> None:
    """`kfp.kubernetes.set_timeout(task, 1)` compiles to the platform spec's activeDeadlineSeconds
    (written here by hand: kfp-kubernetes is not a dependency); the task is stopped and fails."""
    import asyncio
    import time

    from engine_helpers import NS, RUN, close_platform, compile_spec, drive, open_platform

    spec = compile_spec(napping, tmp_path)
    label = spec["root"]["dag"]["tasks"]["nap"]["componentRef"]["name"].replace("comp-", "exec-")
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {label: {"activeDeadlineSeconds": 1}}}}}}

    async def main() -> None:
        p = await open_platform(tmp_path / "home")
        try:
            run = p.store.create(RUN, NS, {"metadata": {"name": "run"}, "spec": {
                "pipelineSpec": spec, "platformSpec": platform, "parameters": {"seconds": 60.0}}})
            started = time.monotonic()
            status = await drive(p, run)
            assert time.monotonic() - started < 30
            assert status["state"] == "FAILED", status
            assert "exceeding its timeout of 1 s" in status["tasks"]["nap"]["message"], status["tasks"]["nap"]
        finally:
            await close_platform(p)

    asyncio.run(main())
