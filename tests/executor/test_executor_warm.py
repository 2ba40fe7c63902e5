"""Warm workloads: `WorkloadSpec.warm` forks `python -m MODULE` from a zygote of the environment
that the executor starts itself; the forked workload is otherwise an ordinary one."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
from executor_helpers import read_logs, run, wait_for, wait_running

from flowyard.executor import Phase, Resources, WorkloadSpec

WARM = ["FY_WARM_TEST=1", "platform", "http.server"]


def _warm_spec(id: str, command: list[str], **kwargs) -> WorkloadSpec:
    return WorkloadSpec(id=id, namespace="team", command=command, warm=WARM, **kwargs)


def test_warm_workloads_fork_from_a_zygote_and_stay_ordinary(make_executor, tmp_path) -> None:
    async def body() -> None:
        ex = make_executor()
        await ex.start()
        try:
            await ex.submit(_warm_spec("first", ["python", "-m", "platform"]))
            assert (await ex.wait("first", 30)).phase == Phase.Succeeded
            assert b"Linux" in await read_logs(ex, "first")  # cold: the zygote was only starting
            [zygote] = ex.list("flowyard-system")
            assert zygote.labels["flowyard.io/system"] == "true" and zygote.kind == "service"
            sockets = tmp_path / "workloads" / ".warm"
            await wait_for(lambda: any(sockets.glob("*.sock")), timeout=30)

            await ex.submit(_warm_spec("again", ["python", "-m", "platform"]))
            done = await ex.wait("again", 30)
            assert done.phase == Phase.Succeeded and done.exit_code == 0
            assert b"Linux" in await read_logs(ex, "again")

            web = _warm_spec("web", ["python", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
                             kind="service", limits=Resources.of(memory="1Gi"), grace_period=2.0)
            await ex.submit(web)
            await wait_running(ex, "web")
            st = ex.status("web")
            helper = psutil.Process(st.pid)
            assert any("warm.py" in a for a in helper.cmdline()), helper.cmdline()
            assert helper.parent().pid == zygote.pid or helper.parent().parent().pid == zygote.pid
            await wait_for(lambda: _get(st.endpoint), timeout=20)
            [server] = helper.children()
            if ex.limits_mode == "rlimit":
                limits = Path(f"/proc/{server.pid}/limits").read_text()
                assert f"{2**30}" in next(line for line in limits.splitlines() if "address space" in line)
        except BaseException:
            await ex.close(stop_workloads=True)  # leave nothing behind
            raise
        await ex.close(stop_workloads=False)

        ex2 = make_executor()  # a restart re-adopts the forked service
        await ex2.start()
        try:
            assert ex2.status("web").phase == Phase.Running and ex2.status("web").pid == st.pid
            stopped = await ex2.stop("web")
            assert stopped.phase == Phase.Stopped
            await wait_for(lambda: not server.is_running() or server.status() == psutil.STATUS_ZOMBIE)
            assert ex2.status(zygote.id).phase == Phase.Running  # the zygote stays for the next one

            psutil.Process(zygote.pid).children()[0].kill()  # the zygote dies: later ones start cold
            await wait_for(lambda: ex2.status(zygote.id).finished)
            await ex2.submit(_warm_spec("cold", ["python", "-m", "platform"]))
            assert (await ex2.wait("cold", 30)).phase == Phase.Succeeded
        finally:
            await ex2.close(stop_workloads=True)
        assert ex2.status(zygote.id).finished

    run(body())


def _get(endpoint: str | None) -> bool:
    try:
        return httpx.get(f"http://{endpoint}/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


PROBE = """
import atexit, sys, threading, time

def late():
    time.sleep(1.0)
    print("thread done", flush=True)

if __name__ == "__main__":
    atexit.register(lambda: print("atexit ran", flush=True))
    threading.Thread(target=late).start()
    print("main done", flush=True)
    sys.exit(3)
"""


def test_a_forked_workload_ends_like_an_interpreter(make_executor, tmp_path, monkeypatch) -> None:
    """Non-daemon threads are joined, atexit handlers run and the exit code is kept, warm as cold."""
    (tmp_path / "fy_exit_probe.py").write_text(PROBE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the zygote and the workloads find the probe

    async def body() -> None:
        ex = make_executor()
        await ex.start()
        try:
            logs = []
            for i, want_warm in enumerate((False, True)):
                if want_warm:
                    await wait_for(lambda: any((tmp_path / "workloads" / ".warm").glob("*.sock")), timeout=30)
                await ex.submit(WorkloadSpec(id=f"probe-{i}", namespace="team", command=["python", "-m", "fy_exit_probe"],
                                             warm=["fy_exit_probe"]))
                await wait_running(ex, f"probe-{i}")
                forked = any("warm.py" in a for a in psutil.Process(ex.status(f"probe-{i}").pid).cmdline())
                assert forked == want_warm
                done = await ex.wait(f"probe-{i}", 30)
                assert done.phase == Phase.Failed and done.exit_code == 3, done
                logs.append((await read_logs(ex, f"probe-{i}")).decode().split())
            assert logs[0] == logs[1] == ["main", "done", "thread", "done", "atexit", "ran"], logs
        finally:
            await ex.close(stop_workloads=True)

    run(body())
