"""KFP caching in the engine: hits across runs, misses on changed inputs, the opt-outs, clearing."""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import asyncio
import copy
from pathlib import Path

import pytest

import kfp  # noqa: F401
from kfp import dsl  # noqa: E402
from kfp.dsl import Dataset, Input, Output  # noqa: E402

from engine_helpers import close_platform, compile_spec, create_run, drive, open_platform  # noqa: E402
from flowyard.pipelines import cache  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@dsl.component
def produce(log: str, tag: str, out: Output[Dataset]) -> str:
    with open(log, "a") as f:
        f.write(f"produce {tag}\n")
    with open(out.path, "w") as f:
        f.write(f"data-{tag}")
    out.metadata["tag"] = tag
    return tag.upper()


@dsl.component
def consume(log: str, ds: Input[Dataset]) -> str:
    with open(log, "a") as f:
        f.write("consume\n")
    return open(ds.path).read() + "|" + ds.metadata["tag"]


@dsl.pipeline(name="cached")
def cached_pipeline(log: str, tag: str = "a") -> str:
    p = produce(log=log, tag=tag)
    return consume(log=log, ds=p.outputs["out"]).output


@dsl.pipeline(name="uncached-task")
def uncached_task(log: str) -> str:
    p = produce(log=log, tag="u").set_caching_options(False)
    return consume(log=log, ds=p.outputs["out"]).output


@dsl.pipeline(name="inner")
def inner(log: str) -> str:
    return produce(log=log, tag="n").outputs["Output"]


@dsl.pipeline(name="outer")
def outer(log: str) -> str:
    with dsl.ParallelFor([1]):
        inner(log=log)
    return inner(log=log).output


def _disable_on_run(spec: dict) -> dict:
    """What `kfp.Client(...).create_run_from_pipeline_func(..., enable_caching=False)` sends."""
    spec = copy.deepcopy(spec)
    for task in spec["root"]["dag"]["tasks"].values():
        task["cachingOptions"] = {}
    return spec


def _runs(tmp: Path, plan: list) -> tuple[list, object]:
    """Run each (spec, parameters) of `plan` in turn on one platform; their statuses."""

    async def main():
        p = await open_platform(tmp / "home")
        try:
            out = []
            for i, step in enumerate(plan):
                if step == "clear":
                    out.append(cache.clear(p, "admin"))
                    continue
                spec, params = step
                out.append(await drive(p, create_run(p, spec, params, name=f"run-{i}"), 60))
            return out, p
        finally:
            await close_platform(p)

    return asyncio.run(main())


def test_hit_miss_and_clear(tmp_path: Path) -> None:
    spec = compile_spec(cached_pipeline, tmp_path)
    log = tmp_path / "log.txt"
    args = {"log": str(log), "tag": "a"}
    (first, second, changed, cleared, after_clear), _ = _runs(
        tmp_path, [(spec, args), (spec, args), (spec, {**args, "tag": "b"}), "clear", (spec, args)])
    assert first["state"] == second["state"] == changed["state"] == after_clear["state"] == "SUCCEEDED"
    assert first["outputs"]["parameters"]["Output"] == second["outputs"]["parameters"]["Output"] == "data-a|a"
    assert not any(t.get("cached") for t in first["tasks"].values())
    assert all(t.get("cached") for t in second["tasks"].values())
    # artifacts are reused by reference, metadata included
    a1, a2 = (s["tasks"]["produce"]["outputs"]["artifacts"]["out"][0] for s in (first, second))
    assert a1 == a2 and Path(a1["uri"]).read_text() == "data-a"
    assert second["tasks"]["produce"]["cachedFrom"]["task"] == "produce"
    assert changed["outputs"]["parameters"]["Output"] == "data-b|b"
    assert not any(t.get("cached") for t in changed["tasks"].values())
    assert cleared >= 3
    assert not any(t.get("cached") for t in after_clear["tasks"].values())
    assert log.read_text().splitlines() == ["produce a", "consume", "produce b", "consume", "produce a", "consume"]


def test_consumer_hits_on_equal_content_from_an_uncached_producer(tmp_path: Path) -> None:
    spec = compile_spec(uncached_task, tmp_path)
    log = tmp_path / "log.txt"
    (first, second), _ = _runs(tmp_path, [(spec, {"log": str(log)}), (spec, {"log": str(log)})])
    assert second["state"] == "SUCCEEDED" and second["outputs"]["parameters"]["Output"] == "data-u|u"
    assert not second["tasks"]["produce"].get("cached")  # set_caching_options(False)
    assert second["tasks"]["consume"].get("cached")  # same content digest, other uri
    assert log.read_text().splitlines() == ["produce u", "consume", "produce u"]


def test_run_level_disable_reaches_nested_pipelines_and_loops(tmp_path: Path) -> None:
    spec = compile_spec(outer, tmp_path)
    assert "cachingOptions" not in spec["root"]["dag"]["tasks"]["for-loop-2"]  # kfp: loop DAG tasks carry none
    log = tmp_path / "log.txt"
    args = {"log": str(log)}
    (first, second, off), _ = _runs(tmp_path, [(spec, args), (spec, args), (_disable_on_run(spec), args)])
    assert [s["state"] for s in (first, second, off)] == ["SUCCEEDED"] * 3
    leafs = lambda st: {k: t for k, t in st["tasks"].items() if t.get("type") == "container"}  # noqa: E731
    assert len(leafs(second)) == 2 and all(t.get("cached") for t in leafs(second).values())
    assert len(leafs(off)) == 2 and not any(t.get("cached") for t in leafs(off).values())
    # run 1: both leaves may run (they start together); run 2: none; run 3: both again
    lines = log.read_text().splitlines()
    assert lines.count("produce n") in (3, 4)
