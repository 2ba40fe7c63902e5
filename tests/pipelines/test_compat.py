"""KFP v2 compatibility suite: pipelines in the spirit of Kubeflow's `sdk_compiled_pipelines`,
written with the real `kfp.dsl`, submitted with the real `kfp.Client` to a live server, and
checked on their OUTPUTS (the engine's `status.outputs` / `status.tasks[*].outputs`).

Every pipeline is submitted at once by a module fixture (the server runs them concurrently),
then each test waits for its own run.
"""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import json
import os
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import pytest

import kfp
import psutil
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
from kfp import dsl  # noqa: E402
from kfp.dsl import (HTML, Artifact, ClassificationMetrics, Dataset, Input, InputPath, Markdown,  # noqa: E402
                     Metrics, Model, Output, OutputPath, PipelineTaskFinalStatus, SlicedClassificationMetrics)

# -- components ---------------------------------------------------------------------------------


@dsl.component
def add(a: float, b: float) -> float:
    return a + b


@dsl.component
def describe(s: str, i: int, f: float, b: bool, l: list, d: dict) -> str:
    import json
    return json.dumps({"s": [s, type(s).__name__], "i": [i, type(i).__name__], "f": [f, type(f).__name__],
                       "b": [b, type(b).__name__], "l": [l, type(l).__name__], "d": [d, type(d).__name__]})


@dsl.component
def make_int() -> int:
    return 42


@dsl.component
def make_float() -> float:
    return 2.5


@dsl.component
def make_bool() -> bool:
    return True


@dsl.component
def make_list() -> list:
    return [1, "two", 3.0]


@dsl.component
def make_dict() -> dict:
    return {"k": [1, 2], "n": None}


@dsl.component
def with_defaults(x: int = 5, y: str = "why", z: Optional[str] = None) -> str:
    return f"{x}-{y}-{z}"


@dsl.component
def produce_all(ds: Output[Dataset], model: Output[Model], metrics: Output[Metrics],
                cm: Output[ClassificationMetrics], scm: Output[SlicedClassificationMetrics],
                html: Output[HTML], md: Output[Markdown], art: Output[Artifact]):
    with open(ds.path, "w") as f:
        f.write("a,b\n1,2\n")
    ds.metadata["rows"] = 1
    with open(model.path, "w") as f:
        f.write("weights")
    model.metadata["framework"] = "none"
    metrics.log_metric("accuracy", 0.9)
    cm.log_confusion_matrix(["cat", "dog"], [[9, 1], [2, 8]])
    cm.log_roc_curve([0.0, 0.5, 1.0], [0.0, 0.8, 1.0], [1.0, 0.5, 0.0])
    scm.metadata["slice"] = "overall"  # kfp 2.17's SlicedClassificationMetrics helpers are broken at runtime
    with open(html.path, "w") as f:
        f.write("<h1>hi</h1>")
    with open(md.path, "w") as f:
        f.write("# hi")
    with open(art.path, "w") as f:
        f.write("generic")
    art.metadata["note"] = "plain"


@dsl.component
def consume_all(ds: Input[Dataset], model: Input[Model], metrics: Input[Metrics],
                cm: Input[ClassificationMetrics], scm: Input[SlicedClassificationMetrics],
                html: Input[HTML], md: Input[Markdown], art: Input[Artifact]) -> str:
    import json
    return json.dumps({
        "ds": [open(ds.path).read(), ds.metadata.get("rows"), ds.schema_title],
        "model": [open(model.path).read(), model.metadata.get("framework"), model.schema_title],
        "acc": metrics.metadata.get("accuracy"), "metrics_type": metrics.schema_title,
        "cm": cm.metadata.get("confusionMatrix", {}).get("rows"), "roc": "confidenceMetrics" in cm.metadata,
        "cm_type": cm.schema_title, "scm_type": scm.schema_title, "scm": scm.metadata.get("slice"),
        "html": open(html.path).read(), "html_type": html.schema_title,
        "md": open(md.path).read(), "md_type": md.schema_title,
        "art": [open(art.path).read(), art.metadata.get("note"), art.schema_title]})


@dsl.component
def number(n: int) -> int:
    return n


@dsl.component
def say(msg: str) -> str:
    return msg


@dsl.component
def square(x: int) -> int:
    return x * x


@dsl.component
def total(xs: List[int]) -> int:
    return sum(xs)


@dsl.component
def slow_square(x: int) -> int:
    import time
    time.sleep(0.6)
    return x * x


@dsl.component
def make_records() -> List[Dict[str, int]]:
    return [{"a": 1, "b": 10}, {"a": 2, "b": 20}, {"a": 3, "b": 30}]


@dsl.component
def mul(a: int, b: int) -> int:
    return a * b


@dsl.component
def fail(msg: str = "boom"):
    import sys
    print(msg)
    sys.exit(3)


@dsl.component
def exit_op(status: PipelineTaskFinalStatus) -> str:
    return f"{status.state}|{status.pipeline_task_name}|{status.error_message}"


@dsl.component
def cleanup() -> str:
    return "cleaned"


@dsl.component
def read_dataset(ds: Input[Dataset]) -> str:
    with open(ds.path) as f:
        return f.read() + "|" + str(ds.metadata.get("origin"))


@dsl.component
def write_dataset(text: str, out: Output[Dataset]):
    with open(out.path, "w") as f:
        f.write(text)
    out.metadata["text"] = text


@dsl.component
def join_datasets(dss: Input[List[Dataset]]) -> str:
    return ",".join(sorted(open(d.path).read() for d in dss))


@dsl.component
def flaky(counter: str, fail_times: int) -> int:
    import os
    n = int(open(counter).read()) if os.path.exists(counter) else 0
    with open(counter, "w") as f:
        f.write(str(n + 1))
    if n < fail_times:
        raise RuntimeError(f"attempt {n} fails")
    return n + 1


@dsl.component
def limits_probe() -> dict:
    import os
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    mem_max = cpu_max = None
    try:
        rel = open("/proc/self/cgroup").read().strip().split("::")[-1]
        base = "/sys/fs/cgroup" + rel
        mem_max = open(base + "/memory.max").read().strip()
        cpu_max = open(base + "/cpu.max").read().strip()
    except OSError:
        pass
    return {"rlimit_as": soft, "cpus": len(os.sched_getaffinity(0)), "memory_max": mem_max, "cpu_max": cpu_max}


@dsl.component
def read_env() -> str:
    import os
    return os.environ.get("GREETING", "") + "|" + os.environ.get("OTHER", "")


@dsl.component
def sleeper(pid_file: str, seconds: int) -> str:
    import os
    import time
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    return "woke"


@dsl.component
def stamp(tag: str) -> str:
    import time
    time.sleep(0.2)
    return f"{tag}@{time.time()}"


@dsl.component
def two_outputs(a: int) -> NamedTuple("Outputs", [("double", int), ("label", str)]):
    from collections import namedtuple
    return namedtuple("Outputs", ["double", "label"])(a * 2, f"n{a}")


@dsl.component
def write_path(text: str, out_text: OutputPath(str), out_file: OutputPath("Dataset")):
    with open(out_text, "w") as f:
        f.write(text.upper())
    with open(out_file, "w") as f:
        f.write(text[::-1])


@dsl.component
def read_path(text: str, path: InputPath("Dataset")) -> str:
    return text + "+" + open(path).read()


@dsl.container_component
def echo_opts(msg: str, out: dsl.OutputPath(str), opt: Optional[str] = None):
    return dsl.ContainerSpec(
        image="python:3.11",
        command=["sh", "-c", 'mkdir -p "$(dirname "$0")" && echo -n "$*" > "$0"'],
        args=[out, dsl.ConcatPlaceholder(["msg=", msg]),
              dsl.IfPresentPlaceholder(input_name="opt", then=["--opt", opt], else_=["--no-opt"])])


@dsl.container_component
def echo_context(out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image="python:3.11",
        command=["sh", "-c", 'mkdir -p "$(dirname "$0")" && echo -n "$1|$2|$3|$4" > "$0"'],
        args=[out, dsl.PIPELINE_JOB_NAME_PLACEHOLDER, dsl.PIPELINE_JOB_ID_PLACEHOLDER,
              dsl.PIPELINE_TASK_NAME_PLACEHOLDER, dsl.PIPELINE_TASK_ID_PLACEHOLDER])


@dsl.container_component
def nested_structs(out: dsl.OutputPath(str), n: int = 3, opt: Optional[str] = None):
    return dsl.ContainerSpec(
        image="python:3.11",
        command=["sh", "-c", 'mkdir -p "$(dirname "$0")" && echo -n "$*" > "$0"'],
        args=[out, dsl.ConcatPlaceholder(["n=", n, dsl.IfPresentPlaceholder(
                  input_name="opt", then=dsl.ConcatPlaceholder(["/", opt]), else_="/none")]),
              dsl.IfPresentPlaceholder(input_name="opt", then=[dsl.ConcatPlaceholder(["--opt=", opt]), "--flag"]),
              dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER, dsl.PIPELINE_ROOT_PLACEHOLDER,
              dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER, dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
              dsl.PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER])


@dsl.container_component
def container_write_ds(text: str, ds: dsl.Output[Dataset]):
    return dsl.ContainerSpec(image="python:3.11", command=["sh", "-c", 'mkdir -p "$(dirname "$0")" && echo -n "$1" > "$0"'],
                             args=[ds.path, text])


YAML_COMPONENT = """
name: Upper
inputs:
- {name: text, type: String}
outputs:
- {name: result, type: String}
implementation:
  container:
    image: python:3.11
    command:
    - sh
    - -c
    - 'mkdir -p "$(dirname "$1")" && printf "%s" "$0" | tr a-z A-Z > "$1"'
    - {inputValue: text}
    - {outputPath: result}
"""


def _upper():
    from kfp import components
    return components.load_component_from_text(YAML_COMPONENT)


# -- pipelines ----------------------------------------------------------------------------------


@dsl.pipeline(name="calc-pipeline")
def calc(a: float = 7.0, b: float = 8.0) -> float:
    first = add(a=a, b=4.0)
    second = add(a=a, b=b)
    return add(a=first.output, b=second.output).output


@dsl.pipeline(name="param-types")
def param_types(s: str = "x", i: int = 1, f: float = 1.5, b: bool = False, l: list = [1], d: dict = {"a": 1}) -> str:
    return describe(s=s, i=i, f=f, b=b, l=l, d=d).output


@dsl.pipeline(name="param-defaults")
def param_defaults(i: int = 7, f: float = 3.0, s: str = "dflt", b: bool = True, l: list = ["p", "q"],
                   d: dict = {"z": [1]}) -> str:
    return describe(s=s, i=i, f=f, b=b, l=l, d=d).output


@dsl.pipeline(name="typed-outputs")
def typed_outputs() -> str:
    return describe(s="const", i=make_int().output, f=make_float().output, b=make_bool().output,
                    l=make_list().output, d=make_dict().output).output


@dsl.pipeline(name="optional-inputs")
def optional_inputs() -> str:
    with_defaults()
    with_defaults(x=9, z="zed").set_display_name("explicit")
    return with_defaults(y="given").output


@dsl.pipeline(name="all-artifacts")
def all_artifacts() -> str:
    p = produce_all()
    return consume_all(ds=p.outputs["ds"], model=p.outputs["model"], metrics=p.outputs["metrics"],
                       cm=p.outputs["cm"], scm=p.outputs["scm"], html=p.outputs["html"], md=p.outputs["md"],
                       art=p.outputs["art"]).output


@dsl.pipeline(name="if-elif-else")
def if_elif_else(n: int = 5) -> str:
    v = number(n=n)
    with dsl.If(v.output > 10):
        a = say(msg="big")
    with dsl.Elif(v.output > 3):
        b = say(msg="medium")
    with dsl.Else():
        c = say(msg="small")
    return dsl.OneOf(a.output, b.output, c.output)


@dsl.pipeline(name="oneof-strings")
def oneof_strings(flag: bool = True) -> str:
    with dsl.If(flag == True):  # noqa: E712 - that is how kfp compiles a bool condition
        t = say(msg="yes")
    with dsl.Else():
        f = say(msg="no")
    return dsl.OneOf(t.output, f.output)


@dsl.pipeline(name="loop-literal")
def loop_literal() -> int:
    with dsl.ParallelFor([1, 2, 3, 4], parallelism=2) as x:
        sq = slow_square(x=x)
    return total(xs=dsl.Collected(sq.output)).output


@dsl.pipeline(name="loop-param")
def loop_param(xs: list = [1]) -> int:
    with dsl.ParallelFor(xs) as x:
        sq = square(x=x)
    return total(xs=dsl.Collected(sq.output)).output


@dsl.pipeline(name="loop-task-output")
def loop_task_output() -> int:
    recs = make_records()
    with dsl.ParallelFor(recs.output) as r:
        m = mul(a=r.a, b=r.b)
    return total(xs=dsl.Collected(m.output)).output


@dsl.pipeline(name="nested-loops")
def nested_loops() -> None:
    with dsl.ParallelFor([1, 2]) as a:
        with dsl.ParallelFor([10, 20]) as b:
            mul(a=a, b=b)


@dsl.pipeline(name="condition-in-loop")
def condition_in_loop() -> None:
    with dsl.ParallelFor([1, 5, 20]) as x:
        v = number(n=x)
        with dsl.If(v.output > 3):
            say(msg="gt3")


@dsl.pipeline(name="collected-artifacts")
def collected_artifacts() -> str:
    with dsl.ParallelFor(["a", "b", "c"]) as t:
        w = write_dataset(text=t)
    return join_datasets(dss=dsl.Collected(w.outputs["out"])).output


@dsl.pipeline(name="exit-handler")
def exit_handler() -> None:
    final = exit_op()
    with dsl.ExitHandler(final):
        ok = say(msg="before")
        fail(msg="exit-handler-boom").after(ok)


@dsl.pipeline(name="ignore-upstream")
def ignore_upstream() -> None:
    f = fail()
    cleanup().after(f).ignore_upstream_failure()


@dsl.pipeline(name="inner-add")
def inner_add(x: float, y: float) -> float:
    return add(a=x, b=y).output


@dsl.pipeline(name="middle")
def middle(x: float) -> float:
    once = inner_add(x=x, y=1.0)
    return inner_add(x=once.output, y=10.0).output


@dsl.pipeline(name="nested-pipelines")
def nested_pipelines(x: float = 1.0) -> float:
    m = middle(x=x)
    return add(a=m.output, b=100.0).output


@dsl.pipeline(name="importer")
def importer_pipeline(uri: str) -> str:
    imp = dsl.importer(artifact_uri=uri, artifact_class=Dataset, metadata={"origin": "imported"})
    return read_dataset(ds=imp.output).output


@dsl.pipeline(name="container-placeholders")
def container_placeholders() -> None:
    echo_opts(msg="hello", opt="o1").set_display_name("with-opt")
    echo_opts(msg="bye").set_display_name("without-opt")
    echo_context().set_display_name("ctx")
    nested_structs(opt="x").set_display_name("structs-with")
    nested_structs().set_display_name("structs-without")


@dsl.pipeline(name="container-artifacts")
def container_artifacts() -> str:
    w = container_write_ds(text="from-container")
    up = _upper()(text="mixed Case")
    return read_path(text=up.outputs["result"], path=w.outputs["ds"]).output


@dsl.pipeline(name="retry-backoff")
def retry_backoff(counter: str) -> int:
    return flaky(counter=counter, fail_times=2).set_retry(num_retries=3, backoff_duration="1s",
                                                           backoff_factor=1.0).output


@dsl.pipeline(name="limits")
def limits_pipeline() -> dict:
    return limits_probe().set_cpu_limit("1").set_memory_limit("3G").output


@dsl.pipeline(name="env-vars")
def env_vars() -> str:
    return read_env().set_env_variable("GREETING", "hola").set_env_variable("OTHER", "x=y").output


@dsl.pipeline(name="terminate-me")
def terminate_me(pid_file: str) -> None:
    sleeper(pid_file=pid_file, seconds=300)


@dsl.pipeline(name="failing")
def failing() -> None:
    ok = say(msg="fine")
    fail(msg="it broke").set_display_name("breaker").after(ok)


@dsl.pipeline(name="after-order")
def after_order() -> None:
    a = stamp(tag="a")
    b = stamp(tag="b").after(a)
    stamp(tag="c").after(b)


@dsl.pipeline(name="namedtuple-outputs")
def namedtuple_outputs() -> str:
    t = two_outputs(a=21)
    return say(msg=t.outputs["label"]).output


@dsl.pipeline(name="output-paths")
def output_paths() -> str:
    w = write_path(text="abc")
    return read_path(text=w.outputs["out_text"], path=w.outputs["out_file"]).output


@dsl.component
def read_text(ds: Input[Dataset]) -> str:
    with open(ds.path) as f:
        return f.read() + ":" + ds.metadata["text"]


@dsl.component
def join_texts(xs: List[str]) -> str:
    return ",".join(xs)


@dsl.pipeline(name="over-artifacts")
def over_artifacts(dss: Input[List[Dataset]]) -> str:
    with dsl.ParallelFor(dss, parallelism=2) as ds:
        r = read_text(ds=ds)
        w = write_dataset(text=r.output)
    join_datasets(dss=dsl.Collected(w.outputs["out"]))
    return join_texts(xs=dsl.Collected(r.output)).output


@dsl.pipeline(name="artifact-loop")
def artifact_loop() -> str:
    with dsl.ParallelFor(["a", "b", "c"]) as t:
        w = write_dataset(text=t)
    return over_artifacts(dss=dsl.Collected(w.outputs["out"])).output


@dsl.pipeline(name="make-datasets")
def make_datasets() -> List[Dataset]:
    with dsl.ParallelFor(["x", "y"]) as t:
        w = write_dataset(text=t)
    return dsl.Collected(w.outputs["out"])


@dsl.pipeline(name="loop-over-pipeline-artifacts")
def loop_over_pipeline_artifacts() -> str:
    made = make_datasets()
    with dsl.ParallelFor(made.output) as ds:  # a nested pipeline's List[Dataset] output
        r = read_text(ds=ds)
    return join_texts(xs=dsl.Collected(r.output)).output


@dsl.container_component
def exit_container(status: PipelineTaskFinalStatus, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image="python:3.11", command=["sh", "-c", 'mkdir -p "$(dirname "$0")" && echo -n "$1" > "$0"'],
                             args=[out, status])


@dsl.pipeline(name="exit-status-container")
def exit_status_container() -> None:
    with dsl.ExitHandler(exit_container()):
        fail(msg="container-exit")


def _json_escape(placeholder, level: int) -> str:
    """What Google Cloud Pipeline Components write: the placeholder with `.json_escape[level]`."""
    return str(placeholder).replace("}}", f".json_escape[{level}]}}}}")


@dsl.container_component
def json_payload(msg: str, d: dict, out: dsl.OutputPath(str)):
    payload = '{"msg": "' + _json_escape(msg, 1) + '", "d": ' + _json_escape(d, 0) + '}'
    return dsl.ContainerSpec(
        image="python:3.11",
        command=["python3", "-c", "import json, os, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); "
                 "open(sys.argv[1], 'w').write(json.dumps(json.loads(sys.argv[2]), sort_keys=True))"],
        args=[out, payload])


@dsl.pipeline(name="json-escape")
def json_escape_pipeline(msg: str, d: dict) -> str:
    return json_payload(msg=msg, d=d).outputs["out"]


# -- harness ------------------------------------------------------------------------------------

WORK: dict[str, Path] = {}


def _submissions(tmp: Path) -> dict[str, tuple]:
    data = tmp / "imported.txt"
    data.write_text("imported-bytes")
    return {
        "calc": (calc, {"a": 7, "b": 8}),
        "types": (param_types, {"s": "str", "i": 3.0, "f": 2, "b": True, "l": [1, "x", {"y": 2}], "d": {"k": {"n": 1}}}),
        "defaults": (param_defaults, {"i": 11}),
        "typed_outputs": (typed_outputs, {}),
        "optional": (optional_inputs, {}),
        "artifacts": (all_artifacts, {}),
        "if_elif": (if_elif_else, {"n": 5}),
        "if_if": (if_elif_else, {"n": 50}),
        "oneof": (oneof_strings, {"flag": False}),
        "loop_literal": (loop_literal, {}),
        "loop_param": (loop_param, {"xs": [2, 3, 4]}),
        "loop_task_output": (loop_task_output, {}),
        "nested_loops": (nested_loops, {}),
        "cond_in_loop": (condition_in_loop, {}),
        "collected_artifacts": (collected_artifacts, {}),
        "exit_handler": (exit_handler, {}),
        "ignore_upstream": (ignore_upstream, {}),
        "nested": (nested_pipelines, {"x": 2.0}),
        "importer": (importer_pipeline, {"uri": f"file://{data}"}),
        "container": (container_placeholders, {}),
        "container_artifacts": (container_artifacts, {}),
        "retry": (retry_backoff, {"counter": str(tmp / "retry-counter")}),
        "limits": (limits_pipeline, {}),
        "env": (env_vars, {}),
        "terminate": (terminate_me, {"pid_file": str(tmp / "sleeper.pid")}),
        "failing": (failing, {}),
        "after": (after_order, {}),
        "namedtuple": (namedtuple_outputs, {}),
        "output_paths": (output_paths, {}),
        "artifact_loop": (artifact_loop, {}),
        "artifact_loop_output": (loop_over_pipeline_artifacts, {}),
        "exit_status_container": (exit_status_container, {}),
        "json_escape": (json_escape_pipeline, {"msg": 'say "hi" \\ bye', "d": {"k": [1, 'x"y']}}),
    }


@pytest.fixture(scope="module")
def client(shared_server):
    return kfp.Client(host=shared_server.url, existing_token=shared_server.token(), namespace="admin")


@pytest.fixture(scope="module")
def launched(client, tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("compat")
    WORK["tmp"] = tmp
    exp = client.create_experiment("compat")
    ids = {}
    for key, (func, args) in _submissions(tmp).items():
        ids[key] = client.create_run_from_pipeline_func(func, arguments=args, run_name=f"compat-{key}",
                                                        experiment_id=exp.experiment_id).run_id
    return ids


def _status(server, run_id: str) -> dict:
    with server.client() as c:
        items = c.get("/api/v1/namespaces/admin/runs").json()["items"]
    return next(i for i in items if i["metadata"]["uid"] == run_id).get("status") or {}


def finished(client, server, launched, key: str, timeout: float = 120) -> tuple:
    """(kfp run, engine status) once the run is final."""
    run_id = launched[key]
    deadline = time.time() + timeout
    while True:
        run = client.get_run(run_id)
        if run.state in ("SUCCEEDED", "FAILED", "CANCELED"):
            return run, _status(server, run_id)
        assert time.time() < deadline, f"{key}: still {run.state} after {timeout}s: {_status(server, run_id)}"
        time.sleep(0.3)


def ok(client, server, launched, key: str) -> dict:
    run, st = finished(client, server, launched, key)
    assert run.state == "SUCCEEDED", (key, st.get("message"), {k: (t.get("state"), t.get("message")) for k, t in st.get("tasks", {}).items()})
    return st


def out(st: dict, name: str = "Output") -> object:
    return st["outputs"]["parameters"][name]


def task(st: dict, suffix: str) -> dict:
    hits = [t for k, t in st["tasks"].items() if k == suffix or k.endswith("/" + suffix)]
    assert len(hits) == 1, (suffix, sorted(st["tasks"]))
    return hits[0]


def tparam(st: dict, suffix: str, name: str = "Output") -> object:
    return task(st, suffix)["outputs"]["parameters"][name]


# -- tests --------------------------------------------------------------------------------------


def test_calc(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "calc")
    assert out(st) == 26.0
    assert tparam(st, "add") == 11.0 and tparam(st, "add-2") == 15.0


def test_every_parameter_type_with_casting(client, shared_server, launched) -> None:
    got = json.loads(out(ok(client, shared_server, launched, "types")))
    assert got == {"s": ["str", "str"], "i": [3, "int"], "f": [2.0, "float"], "b": [True, "bool"],
                   "l": [[1, "x", {"y": 2}], "list"], "d": [{"k": {"n": 1}}, "dict"]}


def test_parameter_defaults(client, shared_server, launched) -> None:
    got = json.loads(out(ok(client, shared_server, launched, "defaults")))
    assert got == {"s": ["dflt", "str"], "i": [11, "int"], "f": [3.0, "float"], "b": [True, "bool"],
                   "l": [["p", "q"], "list"], "d": [{"z": [1]}, "dict"]}


def test_typed_outputs_flow_between_tasks(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "typed_outputs")
    got = json.loads(out(st))
    assert got["i"] == [42, "int"] and got["f"] == [2.5, "float"] and got["b"] == [True, "bool"]
    assert got["l"] == [[1, "two", 3.0], "list"] and got["d"] == [{"k": [1, 2], "n": None}, "dict"]
    assert tparam(st, "make-int") == 42 and isinstance(tparam(st, "make-int"), int)


def test_optional_inputs_and_component_defaults(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "optional")
    values = sorted(t["outputs"]["parameters"]["Output"] for t in st["tasks"].values())
    assert values == ["5-given-None", "5-why-None", "9-why-zed"]
    assert out(st) == "5-given-None"


def test_artifacts_of_every_schema_with_metadata(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "artifacts")
    got = json.loads(out(st))
    assert got["ds"] == ["a,b\n1,2\n", 1, "system.Dataset"]
    assert got["model"] == ["weights", "none", "system.Model"]
    assert got["acc"] == 0.9 and got["metrics_type"] == "system.Metrics"
    assert got["cm"] == [{"row": [9, 1]}, {"row": [2, 8]}] and got["roc"] and got["cm_type"] == "system.ClassificationMetrics"
    assert got["scm_type"] == "system.SlicedClassificationMetrics" and got["scm"] == "overall"
    assert got["html"] == "<h1>hi</h1>" and got["html_type"] == "system.HTML"
    assert got["md"] == "# hi" and got["md_type"] == "system.Markdown"
    assert got["art"] == ["generic", "plain", "system.Artifact"]
    arts = task(st, "produce-all")["outputs"]["artifacts"]
    assert arts["metrics"][0]["metadata"]["accuracy"] == 0.9
    assert Path(arts["ds"][0]["uri"]).read_text() == "a,b\n1,2\n"


def test_if_elif_else_oneof(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "if_elif")
    assert out(st) == "medium"
    says = {k: t["state"] for k, t in st["tasks"].items() if k.split("/")[-1].startswith("say")}
    assert sorted(says.values()) == ["SUCCEEDED"], says  # skipped branches never create their tasks
    branches = [t["state"] for k, t in st["tasks"].items() if k.split("/")[-1].startswith("condition-") and "branches" not in k.split("/")[-1]]
    assert sorted(branches) == ["SKIPPED", "SKIPPED", "SUCCEEDED"]
    assert out(ok(client, shared_server, launched, "if_if")) == "big"


def test_oneof_else_branch(client, shared_server, launched) -> None:
    assert out(ok(client, shared_server, launched, "oneof")) == "no"


def test_parallel_for_literal_parallelism_collected(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "loop_literal")
    assert out(st) == 30
    leafs = [t for k, t in st["tasks"].items() if k.endswith("/slow-square")]
    assert len(leafs) == 4
    spans = [(t["ranFrom"], t["ranUntil"]) for t in leafs]
    for t0, _ in spans:  # at most 2 at a time
        assert sum(1 for a, b in spans if a <= t0 < b) <= 2, spans


def test_parallel_for_over_parameter(client, shared_server, launched) -> None:
    assert out(ok(client, shared_server, launched, "loop_param")) == 4 + 9 + 16


def test_parallel_for_over_task_output_with_fields(client, shared_server, launched) -> None:
    assert out(ok(client, shared_server, launched, "loop_task_output")) == 10 + 40 + 90


def test_nested_loops(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "nested_loops")
    got = sorted(t["outputs"]["parameters"]["Output"] for k, t in st["tasks"].items() if k.endswith("/mul"))
    assert got == [10, 20, 20, 40]


def test_condition_inside_loop(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "cond_in_loop")
    ran = [k for k, t in st["tasks"].items() if k.endswith("/say") and t["state"] == "SUCCEEDED"]
    assert len(ran) == 2, sorted(st["tasks"])


def test_collected_artifacts(client, shared_server, launched) -> None:
    assert out(ok(client, shared_server, launched, "collected_artifacts")) == "a,b,c"


def test_exit_handler_runs_after_failure(client, shared_server, launched) -> None:
    run, st = finished(client, shared_server, launched, "exit_handler")
    assert run.state == "FAILED"
    ex = task(st, "exit-op")
    assert ex["state"] == "SUCCEEDED"
    state, name, _msg = ex["outputs"]["parameters"]["Output"].split("|", 2)
    assert state == "FAILED" and name == "exit-handler-1"
    assert task(st, "say")["state"] == "SUCCEEDED" and task(st, "fail")["state"] == "FAILED"


def test_ignore_upstream_failure(client, shared_server, launched) -> None:
    run, st = finished(client, shared_server, launched, "ignore_upstream")
    assert run.state == "FAILED"
    assert tparam(st, "cleanup") == "cleaned"


def test_nested_pipelines_with_outputs(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "nested")
    assert out(st) == 2.0 + 1 + 10 + 100
    assert task(st, "middle")["outputs"]["parameters"]["Output"] == 13.0


def test_importer_of_a_local_file(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "importer")
    assert out(st) == "imported-bytes|imported"
    art = task(st, "importer")["outputs"]["artifacts"]["artifact"][0]
    assert art["type"]["schemaTitle"] == "system.Dataset" and art["metadata"]["origin"] == "imported"


def test_container_placeholders_ifpresent_concat(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "container")
    by_name = {t["name"]: t for t in st["tasks"].values()}
    assert by_name["with-opt"]["outputs"]["parameters"]["out"] == "msg=hello --opt o1"
    assert by_name["without-opt"]["outputs"]["parameters"]["out"] == "msg=bye --no-opt"
    job, job_id, task_name, task_id = by_name["ctx"]["outputs"]["parameters"]["out"].split("|")
    assert job_id == launched["container"] and task_name == "ctx" and job and task_id
    with_opt = by_name["structs-with"]["outputs"]["parameters"]["out"].split(" ")
    without = by_name["structs-without"]["outputs"]["parameters"]["out"].split(" ")
    assert with_opt[:3] == ["n=3/x", "--opt=x", "--flag"] and without[0] == "n=3/none"  # nested IfPresent/Concat
    resource, root, created, scheduled, output_file = without[1:]
    assert resource == job and Path(root).is_dir() and output_file.endswith("executor_output.json")
    assert created.startswith("20") and scheduled.startswith("20") and created[10] == "T"


def test_container_artifacts_and_yaml_component(client, shared_server, launched) -> None:
    assert out(ok(client, shared_server, launched, "container_artifacts")) == "MIXED CASE+from-container"


def test_retry_with_backoff(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "retry")
    t = task(st, "flaky")
    assert t["outputs"]["parameters"]["Output"] == 3 and t["attempts"] == 3
    assert len(t["failures"]) == 2


def test_resource_limits_are_enforced(client, shared_server, launched) -> None:
    got = out(ok(client, shared_server, launched, "limits"))
    if got["memory_max"] not in (None, "max"):
        assert int(got["memory_max"]) == 3 * 10**9
        assert got["cpu_max"].split()[0] == "100000"
    else:
        assert got["rlimit_as"] == 3 * 10**9
        assert got["cpus"] == 1


def test_env_variables(client, shared_server, launched) -> None:
    assert out(ok(client, shared_server, launched, "env")) == "hola|x=y"


def test_terminate_leaves_no_process(client, shared_server, launched) -> None:
    pid_file = WORK["tmp"] / "sleeper.pid"
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.time() < deadline, "the sleeper never started"
        time.sleep(0.2)
    pid = int(pid_file.read_text())
    assert psutil.pid_exists(pid)
    client.terminate_run(launched["terminate"])
    deadline = time.time() + 30
    while client.get_run(launched["terminate"]).state != "CANCELED":
        assert time.time() < deadline
        time.sleep(0.2)
    deadline = time.time() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.time() < deadline, f"task process {pid} still alive"
        time.sleep(0.2)
    st = _status(shared_server, launched["terminate"])
    assert task(st, "sleeper")["state"] == "CANCELED"


def test_failing_pipeline_names_the_task(client, shared_server, launched) -> None:
    run, st = finished(client, shared_server, launched, "failing")
    assert run.state == "FAILED"
    assert "fail" in run.error.message and "exit code 3" in run.error.message, run.error
    assert task(st, "say")["state"] == "SUCCEEDED"


def test_after_orders_tasks(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "after")
    a, b, c = (task(st, k) for k in ("stamp", "stamp-2", "stamp-3"))
    assert a["ranUntil"] <= b["ranFrom"] and b["ranUntil"] <= c["ranFrom"]


def test_namedtuple_outputs(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "namedtuple")
    assert out(st) == "n21"
    assert task(st, "two-outputs")["outputs"]["parameters"] == {"double": 42, "label": "n21"}


def test_output_and_input_paths(client, shared_server, launched) -> None:
    assert out(ok(client, shared_server, launched, "output_paths")) == "ABC+cba"


def test_parallel_for_over_artifacts(client, shared_server, launched) -> None:
    st = ok(client, shared_server, launched, "artifact_loop")
    assert out(st) == "a:a,b:b,c:c"  # item artifacts with their metadata, collected in iteration order
    assert tparam(st, "join-datasets") == "a:a,b:b,c:c"  # artifacts made inside the artifact loop, collected
    loop = next(t for k, t in st["tasks"].items() if k.startswith("over-artifacts/for-loop-") and t.get("type") == "loop")
    assert len(loop["items"]) == 3 and loop["items"][0]["type"]["schemaTitle"] == "system.Dataset"
    assert out(ok(client, shared_server, launched, "artifact_loop_output")) == "x:x,y:y"
    details = {t.task_id: t for t in client.get_run(launched["artifact_loop"]).run_details.task_details}
    reads = [t for t in details.values() if t.display_name == "read-text"]
    iterations = [details[t.parent_task_id] for t in reads]  # KFP task tree: task → iteration → loop
    assert len(reads) == 3 and all("-iteration-" in i.display_name for i in iterations)
    assert {details[i.parent_task_id].display_name for i in iterations} == {loop["name"]}


def test_task_final_status_placeholder_in_a_container(client, shared_server, launched) -> None:
    run, st = finished(client, shared_server, launched, "exit_status_container")
    assert run.state == "FAILED"
    status = json.loads(tparam(st, "exit-container", "out"))
    assert status["state"] == "FAILED" and status["pipelineTaskName"] == "exit-handler-1"
    assert status["error"]["message"]


def test_json_escape_placeholders(client, shared_server, launched) -> None:
    got = json.loads(out(ok(client, shared_server, launched, "json_escape")))
    assert got == {"msg": 'say "hi" \\ bye', "d": {"k": [1, 'x"y']}}


def test_list_runs_filters_sorting_and_paging(client, shared_server, launched) -> None:
    ok(client, shared_server, launched, "calc")
    finished(client, shared_server, launched, "failing")
    exp_id = client.get_run(launched["calc"]).experiment_id

    def ids(*predicates, **kw) -> set:
        page = client.list_runs(experiment_id=exp_id, page_size=100, filter=json.dumps({"predicates": list(predicates)}), **kw)
        return {r.run_id for r in page.runs or []}

    failed = ids({"key": "state", "operation": "EQUALS", "string_value": "FAILED"})
    assert launched["failing"] in failed and launched["calc"] not in failed
    both = ids({"key": "state", "operation": 8, "stringValues": {"values": ["FAILED", "SUCCEEDED"]}})
    assert {launched["failing"], launched["calc"]} <= both
    loops = {k for k, v in launched.items() if v in ids({"key": "name", "operation": "IS_SUBSTRING", "string_value": "compat-loop"})}
    assert loops == {"loop_literal", "loop_param", "loop_task_output"}
    assert ids({"key": "runtime_config.parameters.a", "operation": "EQUALS", "int_value": "7"}) == {launched["calc"]}
    assert len(ids({"key": "created_at", "operation": "LESS_THAN", "timestamp_value": "2100-01-01T00:00:00Z"})) == len(launched)
    assert ids({"key": "created_at", "operation": "GREATER_THAN", "timestamp_value": "2100-01-01T00:00:00+00:00"}) == set()
    got, token = [], ""
    while True:
        page = client.list_runs(experiment_id=exp_id, page_size=7, sort_by="display_name desc", page_token=token)
        got += [r.display_name for r in page.runs]
        token = page.next_page_token
        if not token:
            break
    assert got == sorted((f"compat-{k}" for k in launched), reverse=True)


# -- caching through kfp.Client -------------------------------------------------------------------


@dsl.component
def logged(log: str, tag: str) -> str:
    with open(log, "a") as f:
        f.write(tag + "\n")
    return tag * 2


@dsl.pipeline(name="cache-me")
def cache_me(log: str, tag: str) -> str:
    return logged(log=log, tag=tag).output


@dsl.pipeline(name="cache-me-nested")
def cache_me_nested(log: str, tag: str) -> str:
    return cache_me(log=log, tag=tag).output


def test_caching_through_the_client(client, shared_server, launched) -> None:
    import uuid

    log = WORK["tmp"] / "cache-log.txt"
    args = {"log": str(log), "tag": uuid.uuid4().hex[:8]}

    def run(**kw) -> dict:
        rid = client.create_run_from_pipeline_func(cache_me_nested, arguments=args, **kw).run_id
        assert client.wait_for_run_completion(rid, timeout=60, sleep_duration=0.3).state == "SUCCEEDED"
        st = _status(shared_server, rid)
        assert st["outputs"]["parameters"]["Output"] == args["tag"] * 2
        kfp_states = {t.display_name: t.state for t in client.get_run(rid).run_details.task_details}
        return {**task(st, "logged"), "kfp_state": kfp_states["logged"]}

    first = run()
    assert not first.get("cached") and first["kfp_state"] == "SUCCEEDED"
    second = run()
    assert second["cached"] is True and second["kfp_state"] == "CACHED"  # as KFP reports a cache hit
    assert not run(enable_caching=False).get("cached")  # reaches the task inside the nested pipeline
    with shared_server.client() as c:
        r = c.delete("/api/v1/namespaces/admin/pipelinecache")
        assert r.status_code == 200 and r.json()["deleted"] >= 1, r.text
    assert not run().get("cached")
    assert log.read_text().splitlines() == [args["tag"]] * 3
