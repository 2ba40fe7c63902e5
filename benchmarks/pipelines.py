"""Pipeline run wall time on Flowyard vs `kfp.local` (SubprocessRunner, use_venv=False).

Three pipelines, each timed from submission to completion:
  (a) the calc pipeline (3 tasks, two in parallel),
  (b) a ParallelFor of N (default 100) iterations of a trivial component,
  (c) a chain of M (default 20) trivial tasks.
Flowyard: a throwaway server (`_server.py`), submission with `kfp.Client`
(`create_run_from_pipeline_func(enable_caching=False)`, which compiles and posts; caching off
so every run executes, as in kfp.local), then `GET /apis/v2beta1/runs/{id}`
every 10 ms until the run is final, after one warm-up run and once the environment's kfp
zygote listens (steady state: the first tasks on a fresh server start cold). kfp.local: calling
the pipeline function after
`kfp.local.init(runner=SubprocessRunner(use_venv=False))` in this process.
Then, from the chain run's status (executor start/finish times per task): the median task
duration, the median gap between one task's end and the next one's start (controller latency),
and the per-task overhead = (run wall - sum of task durations) / M; plus the cost of the
pieces of a task's duration: cold (runner start, Python start, `import kfp.dsl.executor_main`)
and warm (a task forked from a kfp zygote, which is how Flowyard runs Python components once
the environment's zygote is up: `flowyard/executor/warm.py`).
Goals: >= 10x faster than kfp.local on (a) and (b); per-task overhead < 50 ms.
Usage: python benchmarks/pipelines.py [--loop 100] [--chain 20] [--repeat 3] [--py-spy FILE]
(`--py-spy` records the server with py-spy during the chain runs; raw format, 200 Hz.)
"""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _server import Server

from kfp import dsl, local

FINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}


@dsl.component
def add(a: float, b: float) -> float:
    return a + b


@dsl.component
def noop(x: int) -> int:
    return x


@dsl.pipeline(name="calc-pipeline")
def calc(a: float = 7.0, b: float = 8.0) -> float:
    first = add(a=a, b=4.0)
    second = add(a=a, b=b)
    return add(a=first.output, b=second.output).output


def loop_pipeline(n: int):
    @dsl.pipeline(name=f"loop-{n}")
    def loop():
        with dsl.ParallelFor(items=list(range(n))) as i:
            noop(x=i)
    return loop


def chain_pipeline(m: int):
    @dsl.pipeline(name=f"chain-{m}")
    def chain(x: int = 0):
        t = noop(x=x)
        for _ in range(m - 1):
            t = noop(x=t.output)
    return chain


@contextlib.contextmanager
def quiet():
    """Send this process's stdout/stderr (and its children's: kfp.local streams task logs) to /dev/null."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (null, *saved):
            os.close(fd)


def run_local(pipeline, args: dict) -> float:
    with quiet():
        t0 = time.perf_counter()
        pipeline(**args)
        return time.perf_counter() - t0


class Flowyard:
    def __init__(self, server: Server) -> None:
        import kfp

        self.server = server
        token = server.token()
        self.kfp = kfp.Client(host=server.url, existing_token=token, namespace="admin")
        self.http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def run(self, pipeline, args: dict) -> tuple[float, str]:
        """Wall seconds from submission to a final state seen by polling; the run id."""
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # kfp prints the UI links
            rid = self.kfp.create_run_from_pipeline_func(pipeline, arguments=args, experiment_name="bench",
                                                      enable_caching=False).run_id
        while True:
            state = self.http.get(f"/apis/v2beta1/runs/{rid}").json().get("state")
            if state in FINAL:
                wall = time.perf_counter() - t0
                if state != "SUCCEEDED":
                    raise RuntimeError(f"run {rid} ended {state}")
                return wall, rid
            time.sleep(0.01)

    def tasks(self, rid: str) -> dict:
        items = self.http.get("/api/v1/namespaces/admin/runs").json()["items"]
        return next(i for i in items if i["metadata"]["uid"] == rid)["status"]["tasks"]


def startup_costs() -> dict[str, float]:
    """Median seconds of the pieces a task pays before and after the user function runs: cold
    (a runner, an interpreter, kfp's executor imported) and warm (forked from a zygote)."""
    env = {**os.environ, "_KFP_RUNTIME": "true"}
    cmds = {"cold: runner interpreter (python -I -S -c pass)": [sys.executable, "-I", "-S", "-c", "pass"],
            "cold: task interpreter (python -c pass)": [sys.executable, "-c", "pass"],
            "cold: task + import kfp.dsl.executor_main": [sys.executable, "-c", "import kfp.dsl.executor_main"]}
    out = {}
    for name, cmd in cmds.items():
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    out.update(warm_costs(env))
    return out


def warm_costs(env: dict, n: int = 10) -> dict[str, float]:
    """A trivial component forked from a kfp zygote as the executor does it (`warm.spawn`)."""
    import json
    import select

    from flowyard.executor import warm

    folder = Path(tempfile.mkdtemp(prefix="fy-warm-"))
    sock = folder / "z.sock"
    zygote = subprocess.Popen([sys.executable, warm.__file__, "serve", str(sock), "_KFP_RUNTIME=true",
                               "kfp.dsl.executor_main"], env=env, stdout=subprocess.DEVNULL)
    (folder / "c.py").write_text("def noop(stamp: str) -> int:\n    import time\n"
                                 "    open(stamp, 'w').write(repr(time.time()))\n    return 1\n")
    spawned, to_func, after = [], [], []
    try:
        while not sock.exists():
            time.sleep(0.01)
        with open(os.devnull, "wb") as log:
            for i in range(n):
                ei = {"inputs": {"parameterValues": {"stamp": str(folder / "t")}},
                      "outputs": {"parameters": {"Output": {"outputFile": str(folder / "o")}},
                                  "outputFile": str(folder / "eo.json")}}
                argv = ["python", "-m", "kfp.dsl.executor_main", "--component_module_path", str(folder / "c.py"),
                        "--executor_input", json.dumps(ei), "--function_to_execute", "noop"]
                request = {"identity": warm.identity(os.path.dirname(sys.executable)), "argv": argv, "env": env,
                           "cwd": str(folder), "cgroup": None, "rlimit_as": 0, "cpus": [], "exit": str(folder / "exit")}
                t0 = time.time()
                pid = warm.spawn(str(sock), request, (0, log.fileno(), log.fileno()))
                t1 = time.time()
                assert isinstance(pid, int), pid
                fd = os.pidfd_open(pid)
                select.select([fd], [], [])
                t2 = time.time()
                os.close(fd)
                func = float((folder / "t").read_text())
                spawned.append(t1 - t0)
                to_func.append(func - t0)
                after.append(t2 - func)
    finally:
        zygote.kill()
        zygote.wait()
        shutil.rmtree(folder, ignore_errors=True)
    return {"warm: hand a task to the zygote (spawn)": statistics.median(spawned),
            "warm: spawn -> user function starts": statistics.median(to_func),
            "warm: user function -> supervisor gone": statistics.median(after)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", type=int, default=100)
    ap.add_argument("--chain", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="Flowyard runs per pipeline (the median is shown)")
    ap.add_argument("--local-repeat", type=int, default=1, help="kfp.local runs per pipeline")
    ap.add_argument("--py-spy", default=None, metavar="FILE")
    args = ap.parse_args()

    cases = [("(a) calc, 3 tasks", calc, {"a": 7.0, "b": 8.0}),
             (f"(b) ParallelFor x{args.loop}", loop_pipeline(args.loop), {}),
             (f"(c) chain of {args.chain}", chain_pipeline(args.chain), {"x": 0})]

    server = Server()
    boot = server.start()
    results: dict[str, dict] = {}
    spy = None
    try:
        fy = Flowyard(server)
        first, _ = fy.run(calc, {"a": 1.0, "b": 2.0})  # warm-up: experiment, page cache, kfp zygote
        deadline = time.time() + 30  # steady state: the environment's zygote listens
        while not any((server.home / "workloads" / ".warm").glob("*.sock")) and time.time() < deadline:
            time.sleep(0.05)
        for label, pipeline, pargs in cases:
            if args.py_spy and label.startswith("(c)"):
                spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p",
                                        str(server.proc.pid), "-r", "200", "-f", "raw", "-o", args.py_spy,
                                        "--nonblocking", "--subprocesses"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            walls, rid = [], ""
            for _ in range(args.repeat):
                wall, rid = fy.run(pipeline, pargs)
                walls.append(wall)
            results[label] = {"flowyard": statistics.median(walls), "fy_all": walls, "rid": rid}
            if spy is not None:
                spy.terminate()
                spy.wait(30)
                spy = None
        chain_tasks = fy.tasks(results[cases[2][0]]["rid"])
        loop_tasks = fy.tasks(results[cases[1][0]]["rid"])
    finally:
        if spy is not None:
            spy.terminate()
        server.stop()

    root = Path(tempfile.mkdtemp(prefix="kfp-local-"))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    try:
        for label, pipeline, pargs in cases:
            times = [run_local(pipeline, pargs) for _ in range(args.local_repeat)]
            results[label]["local"] = statistics.median(times)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    costs = startup_costs()
    if args.py_spy and not Path(args.py_spy).exists():
        print(f"py-spy wrote no {args.py_spy} (it cannot attach where ptrace is not allowed)", file=sys.stderr)

    print(f"\nFlowyard server ready in {boot:.2f} s; {os.cpu_count()} CPUs; "
          f"Flowyard median of {args.repeat}, kfp.local median of {args.local_repeat}; "
          f"first calc run on the fresh server (tasks start cold): {first:.3f} s")
    print(f"{'pipeline':<24}{'Flowyard s':>12}{'kfp.local s':>13}{'speed-up':>10}   Flowyard runs")
    for label, r in results.items():
        print(f"{label:<24}{r['flowyard']:>12.3f}{r['local']:>13.3f}{r['local'] / r['flowyard']:>9.1f}x   "
              + " ".join(f"{w:.3f}" for w in r["fy_all"]))

    def leaves(tasks: dict) -> list[dict]:
        return sorted((t for t in tasks.values() if t.get("ranFrom")), key=lambda t: t["ranFrom"])

    chain = leaves(chain_tasks)
    durations = [t["ranUntil"] - t["ranFrom"] for t in chain]
    gaps = [b["ranFrom"] - a["ranUntil"] for a, b in zip(chain, chain[1:])]
    wall = results[cases[2][0]]["fy_all"][-1]
    span = chain[-1]["ranUntil"] - chain[0]["ranFrom"]
    print(f"\nchain of {len(chain)} (last run): wall {wall:.3f} s; first task start -> last task end {span:.3f} s")
    print(f"  task workload start->finish: median {statistics.median(durations) * 1000:.0f} ms "
          f"(min {min(durations) * 1000:.0f}, max {max(durations) * 1000:.0f})")
    print(f"  gap between a task's end and the next one's start (controller latency): median "
          f"{statistics.median(gaps) * 1000:.1f} ms (min {min(gaps) * 1000:.1f}, max {max(gaps) * 1000:.1f})")
    print(f"  per-task overhead (wall - sum of task durations) / {len(chain)}: "
          f"{(wall - sum(durations)) / len(chain) * 1000:.1f} ms  (goal < 50 ms)")
    print(f"  before the first task + after the last: {(wall - span) * 1000:.0f} ms "
          "(submission with compile, experiment lookup, first reconcile, polling)")
    loop = leaves(loop_tasks)
    if loop:
        ld = [t["ranUntil"] - t["ranFrom"] for t in loop]
        print(f"\nParallelFor x{len(loop)}: task start->finish median {statistics.median(ld) * 1000:.0f} ms, "
              f"first start -> last end {max(t['ranUntil'] for t in loop) - loop[0]['ranFrom']:.2f} s, "
              f"all started within {loop[-1]['ranFrom'] - loop[0]['ranFrom']:.2f} s")
    print("\npieces of a task's duration (medians, this machine; tasks run warm once the zygote is up):")
    for name, seconds in costs.items():
        print(f"  {name:<50}{seconds * 1000:>7.1f} ms")


if __name__ == "__main__":
    main()
