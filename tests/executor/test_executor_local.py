"""LocalExecutor with real processes: lifecycle, logs, services, admission, limits, restarts."""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from flowyard.executor import (
    LocalExecutor,
    Phase,
    Quota,
    Resources,
    UnknownEnvironment,
    WorkloadActive,
    WorkloadNotFound,
    WorkloadSpec,
)

from executor_helpers import PY, read_logs, run, spec, wait_for, wait_running

SLEEP_IGNORING_TERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_batch_success_and_failure(make_executor):
    async def body():
        ex = make_executor()
        ok = await ex.submit(spec("ok", "print('hello')"))
        bad = await ex.submit(spec("bad", "import sys; print('boom'); sys.exit(3)"))
        assert ok.phase in (Phase.Pending, Phase.Running)
        ok = await ex.wait("ok", 10)
        bad = await ex.wait("bad", 10)
        assert (ok.phase, ok.exit_code, ok.reason) == (Phase.Succeeded, 0, "Completed")
        assert ok.started_at and ok.finished_at and ok.finished_at >= ok.started_at
        assert (bad.phase, bad.exit_code, bad.reason) == (Phase.Failed, 3, "Error")
        assert bad.message.startswith("exit code 3") and "boom" in bad.message
        assert await read_logs(ex, "ok") == b"hello\n"
        assert bad.to_dict()["phase"] == "Failed"
        await ex.close()

    run(body())


def test_command_not_found_fails_clearly(make_executor):
    async def body():
        ex = make_executor()
        await ex.submit(WorkloadSpec(id="nope", namespace="t", command=["no-such-cmd-xyz"]))
        status = await ex.wait("nope", 10)
        assert (status.phase, status.exit_code) == (Phase.Failed, 127)
        assert "no-such-cmd-xyz" in status.message
        await ex.close()

    run(body())


def test_submit_is_idempotent_and_changes_are_reported(make_executor):
    async def body():
        ex = make_executor()
        seen = []
        unsubscribe = ex.on_change(lambda s: seen.append((s.id, s.phase)))
        first = await ex.submit(spec("once", "print(1)"))
        again = await ex.submit(spec("once", "print(2)"))
        assert again.pid == first.pid
        await ex.wait("once", 10)
        assert seen == [("once", Phase.Pending), ("once", Phase.Running),
                        ("once", Phase.Succeeded)]
        assert await read_logs(ex, "once") == b"1\n"
        unsubscribe()
        await ex.submit(spec("twice"))
        await ex.wait("twice", 10)
        assert all(i == "once" for i, _ in seen)
        await ex.close()

    run(body())


def test_logs_follow_and_tail(make_executor):
    code = "import time\nfor i in range(5):\n    print(f'line {i}')\n    time.sleep(0.1)\n"

    async def body():
        ex = make_executor()
        await ex.submit(spec("chatty", code))
        followed = await read_logs(ex, "chatty", follow=True)
        assert followed == b"".join(f"line {i}\n".encode() for i in range(5))
        assert ex.status("chatty").finished
        assert await read_logs(ex, "chatty", tail=2) == b"line 3\nline 4\n"
        assert await read_logs(ex, "chatty", tail=0) == b""
        await ex.close()

    run(body())


def test_env_environment_path_and_workdir(make_executor, tmp_path, monkeypatch):
    env_dir = tmp_path / "myenv"
    (env_dir / "bin").mkdir(parents=True)
    tool = env_dir / "bin" / "envtool"
    tool.write_text(f"#!{PY}\nimport os\nprint('tool', os.getcwd())\n"
                    "for k in ('FOO', 'VIRTUAL_ENV', 'FLOWYARD_SECRET'):\n"
                    "    print(k, os.environ.get(k))\n")
    tool.chmod(0o755)
    monkeypatch.setenv("FLOWYARD_SECRET", "s3cret")

    def resolve(name: str) -> Path:
        if name == "myenv":
            return env_dir / "bin"
        raise UnknownEnvironment(f"unknown environment {name!r}")

    async def body():
        ex = make_executor(resolve_environment=resolve)
        await ex.submit(WorkloadSpec(id="env", namespace="t", command=["envtool"],
                                     environment="myenv", env={"FOO": "bar"},
                                     workdir=str(tmp_path)))
        assert (await ex.wait("env", 10)).phase == Phase.Succeeded
        out = (await read_logs(ex, "env")).decode().splitlines()
        assert out == [f"tool {tmp_path}", "FOO bar", f"VIRTUAL_ENV {env_dir}",
                       "FLOWYARD_SECRET None"]
        await ex.submit(WorkloadSpec(id="missing", namespace="t", command=["true"],
                                     environment="other"))
        status = await ex.wait("missing", 10)
        assert (status.phase, status.reason) == (Phase.Failed, "InvalidEnvironment")
        assert "other" in status.message
        await ex.close()

    run(body())


def test_default_environment_comes_first_on_path(make_executor):
    async def body():
        ex = make_executor()
        await ex.submit(spec("path", "import os; print(os.environ['PATH'].split(os.pathsep)[0])"))
        await ex.wait("path", 10)
        assert (await read_logs(ex, "path")).decode().strip() == os.path.dirname(sys.executable)
        await ex.close()

    run(body())


def test_service_gets_port_and_endpoint(make_executor, tmp_path):
    (tmp_path / "index.html").write_text("served")

    async def body():
        ex = make_executor()
        status = await ex.submit(WorkloadSpec(
            id="web", namespace="t", kind="service", workdir=str(tmp_path),
            command=[PY, "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
        ))
        assert status.phase == Phase.Running and status.endpoint
        host, port = status.endpoint.split(":")
        assert host == "127.0.0.1" and int(port) > 0

        def reachable() -> bool:
            try:
                with urllib.request.urlopen(f"http://{status.endpoint}/index.html", timeout=1) as r:
                    return r.read() == b"served"
            except OSError:
                return False

        await wait_for(reachable)
        stopped = await ex.stop("web", grace=5)
        assert (stopped.phase, stopped.reason) == (Phase.Stopped, "Stopped")
        assert not psutil.pid_exists(status.pid) or psutil.Process(status.pid).status() == "zombie"
        await ex.close()

    run(body())


def test_stop_escalates_to_sigkill_after_grace(make_executor):
    async def body():
        ex = make_executor()
        await ex.submit(spec("stubborn", SLEEP_IGNORING_TERM))
        await wait_for(lambda: (ex.root / "stubborn" / "log").read_bytes() == b"ready\n")
        started = time.monotonic()
        status = await ex.stop("stubborn", grace=0.5)
        assert 0.4 < time.monotonic() - started < 5
        assert (status.phase, status.exit_code) == (Phase.Stopped, -signal.SIGKILL)
        assert "killed after a 0.5 s grace period" in status.message
        # a polite process ends on SIGTERM, well within its grace period
        await ex.submit(spec("polite", "import time; print('ready'); time.sleep(60)"))
        await wait_for(lambda: (ex.root / "polite" / "log").read_bytes() == b"ready\n")
        status = await ex.stop("polite", grace=10)
        assert (status.phase, status.exit_code) == (Phase.Stopped, -signal.SIGTERM)
        assert (await ex.stop("polite")).phase == Phase.Stopped  # stopping again is harmless
        await ex.close()

    run(body())


def test_timeout_fails_with_deadline_exceeded(make_executor):
    async def body():
        ex = make_executor()
        await ex.submit(spec("slow", "import time; time.sleep(30)", timeout=0.3))
        status = await ex.wait("slow", 10)
        assert (status.phase, status.reason) == (Phase.Failed, "DeadlineExceeded")
        assert "0.3 s" in status.message
        await ex.close()

    run(body())


def test_admission_waits_for_free_cpu_fifo(make_executor):
    async def body():
        ex = make_executor(capacity=Resources(cpu=1, memory=2**30))
        one_cpu = Resources(cpu=1)
        await ex.submit(spec("first", "import time; time.sleep(0.5)", requests=one_cpu))
        second = await ex.submit(spec("second", "pass", limits=one_cpu))  # requests := limits
        assert (second.phase, second.reason) == (Phase.Pending, "Insufficient")
        assert second.message == "waiting for 1 cpu: 0 of 1 free on this host"
        third = await ex.submit(spec("third", "pass", requests=Resources(memory=2**20)))
        assert third.phase == Phase.Running  # fits: does not wait behind "second"
        first = await ex.wait("first", 10)
        second = await ex.wait("second", 10)
        assert second.phase == Phase.Succeeded
        assert second.started_at >= first.finished_at
        await ex.close()

    run(body())


def test_never_fits_fails_immediately(make_executor):
    async def body():
        ex = make_executor(capacity=Resources(cpu=1, memory=2**30))
        status = await ex.submit(spec("huge", requests=Resources(cpu=8)))
        assert (status.phase, status.reason) == (Phase.Failed, "Unschedulable")
        assert status.message == "requests 8 cpu but this host has 1 cpu in total"
        status = await ex.submit(spec("gpu", requests=Resources(gpu=1)))
        assert (status.phase, status.reason) == (Phase.Failed, "Unschedulable")
        await ex.close()

    run(body())


def test_namespace_quota(make_executor):
    quotas = {"small": Quota(cpu=1, memory=None)}

    async def body():
        ex = make_executor(quota=quotas.get)
        cpu = Resources(cpu=1)
        await ex.submit(spec("a", "import time; time.sleep(0.4)", namespace="small", requests=cpu))
        waiting = await ex.submit(spec("b", namespace="small", requests=cpu))
        assert (waiting.phase, waiting.reason) == (Phase.Pending, "QuotaExceeded")
        assert waiting.message == ("waiting for quota of namespace 'small': "
                                   "1 cpu: 0 of 1 left")
        other = await ex.submit(spec("c", "import time; time.sleep(0.2)", namespace="big",
                                     requests=cpu))
        assert other.phase == Phase.Running  # other namespaces are not held up
        too_big = await ex.submit(spec("d", namespace="small", requests=Resources(cpu=2)))
        assert (too_big.phase, too_big.reason) == (Phase.Failed, "QuotaExceeded")
        assert "quota of namespace 'small' allows 1 cpu in total" in too_big.message
        assert (await ex.wait("b", 10)).phase == Phase.Succeeded
        assert [s.id for s in ex.list("small")] == ["a", "b", "d"]
        await ex.close()

    run(body())


def test_gpus_are_assigned_and_hidden(make_executor, monkeypatch):
    monkeypatch.setenv("FLOWYARD_GPUS", "0,1")
    show = "import os, time; print(repr(os.environ.get('CUDA_VISIBLE_DEVICES'))); time.sleep(0.3)"

    async def body():
        ex = make_executor(capacity=Resources(cpu=4, memory=2**30, gpu=2))
        a = await ex.submit(spec("g1", show, requests=Resources(gpu=1)))
        b = await ex.submit(spec("g2", show, requests=Resources(gpu=1)))
        c = await ex.submit(spec("g3", show, requests=Resources(gpu=1)))
        none = await ex.submit(spec("g0", show))
        assert (a.gpus, b.gpus, none.gpus) == (["0"], ["1"], [])
        assert (c.phase, c.reason) == (Phase.Pending, "Insufficient")
        assert c.message == "waiting for 1 gpu: 0 of 2 free on this host"
        for wid in ("g1", "g2", "g3", "g0"):
            assert (await ex.wait(wid, 10)).phase == Phase.Succeeded
        assert await read_logs(ex, "g1") == b"'0'\n"
        assert await read_logs(ex, "g2") == b"'1'\n"
        assert (await read_logs(ex, "g3")).strip() in (b"'0'", b"'1'")
        assert await read_logs(ex, "g0") == b"''\n"
        await ex.close()

    run(body())


def test_memory_limit_is_enforced(make_executor):
    alloc = "b = bytearray({n} * 2**20); b[::4096] = b'x' * len(b[::4096]); print('allocated')"

    async def body():
        ex = make_executor()
        limit = Resources(memory=256 * 2**20)
        await ex.submit(spec("small", alloc.format(n=16), limits=limit))
        await ex.submit(spec("big", alloc.format(n=1024), limits=limit))
        small = await ex.wait("small", 20)
        big = await ex.wait("big", 20)
        assert small.phase == Phase.Succeeded, small.message
        assert big.phase == Phase.Failed
        assert big.reason in ("Error", "OOMKilled")
        assert b"allocated" not in await read_logs(ex, "big")
        assert small.limits_mode == ex.limits_mode in ("cgroup", "rlimit")
        if ex.limits_mode == "rlimit":
            assert b"MemoryError" in await read_logs(ex, "big")
        await ex.close()

    run(body())


def test_running_message_says_what_is_enforced(make_executor):
    async def body():
        ex = make_executor()
        code = "import os, time; print(len(os.sched_getaffinity(0)), flush=True); time.sleep(5)"
        status = await ex.submit(spec("lim", code,
                                      limits=Resources.of(cpu="500m", memory="1Gi")))
        assert status.phase == Phase.Running
        if ex.limits_mode == "rlimit":
            assert "memory 1Gi of address space (RLIMIT_AS)" in status.message
            assert "cpu pinned to 1 core(s)" in status.message
            await wait_for(lambda: (ex.root / "lim" / "log").read_bytes() == b"1\n")
        else:
            assert "memory 1Gi (cgroup memory.max)" in status.message
            assert "cpu 0.5 (cgroup cpu.max)" in status.message
        await ex.close()
        assert ex.status("lim").phase == Phase.Stopped

    run(body())


def test_remove_and_not_found(make_executor):
    async def body():
        ex = make_executor()
        await ex.submit(spec("busy", "import time; time.sleep(30)"))
        with pytest.raises(WorkloadActive):
            ex.remove("busy")
        await ex.stop("busy", grace=5)
        ex.remove("busy")
        assert not (ex.root / "busy").exists()
        with pytest.raises(WorkloadNotFound):
            ex.status("busy")
        with pytest.raises(KeyError):
            ex.status("never-was")
        await ex.close()

    run(body())


def test_pending_workload_can_be_stopped(make_executor):
    async def body():
        ex = make_executor(capacity=Resources(cpu=1, memory=2**30))
        await ex.submit(spec("runner", "import time; time.sleep(30)", requests=Resources(cpu=1)))
        await ex.submit(spec("queued", requests=Resources(cpu=1)))
        status = await ex.stop("queued")
        assert (status.phase, status.reason) == (Phase.Stopped, "Stopped")
        await ex.close()
        assert ex.status("runner").phase == Phase.Stopped

    run(body())


def test_readoption_after_crash(make_executor):
    """A new executor on the same root finds running, finished and vanished workloads."""
    state: dict[str, int] = {}

    async def before_crash():
        ex = make_executor(capacity=Resources(cpu=2, memory=2**30))
        cpu = Resources(cpu=1)
        for wid, code in [("survivor", "import time; time.sleep(1.5)"),
                          ("finisher", "import sys; sys.exit(4)"),
                          ("victim", "import time; time.sleep(30)")]:
            await ex.submit(spec(wid, code, requests=cpu))
        # "finisher" ends at once and frees its cpu for "queued", which the crash interrupts
        await ex.wait("finisher", 10)
        await ex.submit(spec("queued", "print('late')", requests=Resources(cpu=2)))
        await wait_running(ex, "victim")
        state.update({wid: ex.status(wid).pid or 0 for wid in ("survivor", "victim")})
        # the server dies here: no close()

    run(before_crash())
    # kill "victim"'s runner and command while no executor watches it
    victim = psutil.Process(state["victim"])
    procs = [*victim.children(recursive=True), victim]
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)  # a kill is delivered asynchronously; on a loaded machine it takes a while

    async def after_restart():
        ex = make_executor(capacity=Resources(cpu=2, memory=2**30))
        await ex.start()
        survivor = ex.status("survivor")
        assert (survivor.phase, survivor.pid) == (Phase.Running, state["survivor"])
        victim_status = ex.status("victim")
        assert (victim_status.phase, victim_status.reason) == (Phase.Failed, "Lost")
        assert "vanished while the server was down" in victim_status.message
        assert ex.status("finisher").exit_code == 4
        assert ex.status("queued").phase == Phase.Pending  # needs both cpus
        survivor = await ex.wait("survivor", 10)
        assert (survivor.phase, survivor.exit_code) == (Phase.Succeeded, 0)
        queued = await ex.wait("queued", 10)
        assert queued.phase == Phase.Succeeded
        assert await read_logs(ex, "queued") == b"late\n"
        await ex.close()

    run(after_restart())


def test_finished_while_down_is_collected(make_executor):
    async def before_crash():
        ex = make_executor()
        status = await ex.submit(spec("quick", "import time; time.sleep(0.3); exit(5)"))
        return status.pid

    pid = run(before_crash())
    time.sleep(0.2)
    os.waitpid(pid, 0)  # the runner ends while no executor is watching (we reap it here)

    async def after_restart():
        ex = make_executor()
        await ex.start()
        status = ex.status("quick")
        assert (status.phase, status.exit_code, status.reason) == (Phase.Failed, 5, "Error")
        await ex.close()

    run(after_restart())


def test_close_without_stopping_leaves_workloads_running(make_executor):
    async def first():
        ex = make_executor()
        status = await ex.submit(spec("long", "import time; time.sleep(30)"))
        await ex.close(stop_workloads=False)
        return status.pid

    pid = run(first())
    assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE

    async def second():
        ex = make_executor()
        await ex.start()
        assert ex.status("long").phase == Phase.Running
        await ex.close()
        assert ex.status("long").phase == Phase.Stopped

    run(second())


CUDA_COUNT = (
    "import ctypes\n"
    "cuda = ctypes.CDLL('libcuda.so.1')\n"
    "rc = cuda.cuInit(0)\n"
    "n = ctypes.c_int(0)\n"
    "if rc == 0:\n"
    "    cuda.cuDeviceGetCount(ctypes.byref(n))\n"
    "print(rc, n.value)\n"
)


def _has_cuda() -> bool:
    import ctypes

    from flowyard.executor.gpus import discover_gpus

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return bool(discover_gpus())


@pytest.mark.skipif(not _has_cuda(), reason="needs a real NVIDIA GPU and driver")
def test_real_gpu_is_visible_only_to_workloads_that_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOWYARD_GPUS", raising=False)

    async def body():
        ex = LocalExecutor(tmp_path / "w")  # capacity discovered from nvidia-smi
        assert ex.capacity.gpu >= 1
        await ex.submit(spec("with-gpu", CUDA_COUNT, requests=Resources(gpu=1)))
        await ex.submit(spec("without", CUDA_COUNT))
        assert (await ex.wait("with-gpu", 60)).phase == Phase.Succeeded
        assert (await ex.wait("without", 60)).phase == Phase.Succeeded
        assert await read_logs(ex, "with-gpu") == b"0 1\n"
        assert (await read_logs(ex, "without")).split()[0] != b"0"  # CUDA_ERROR_NO_DEVICE
        await ex.close()

    run(body())
