"""The default executor: workloads as local processes, admitted against this host.

Each workload is started through `_runner.py`, a small supervisor in its own session that
survives a server crash and records the exit code, so a restarted executor re-adopts what
is still running (pid + create time recorded in state.json), collects what finished while it
was down, and fails cleanly (`Lost`) what vanished. Admission keeps the sum of running
requests within the host's capacity and each namespace's quota; limits are enforced with
cgroup v2 or rlimits (see `limits.py`). Everything runs on the server's event loop.

Warm starts: a workload whose spec lists `warm` modules and runs `python -m MODULE …` is
forked from a zygote of its environment (`warm.py`, a system workload in `flowyard-system`
that this executor starts on first use) instead of starting a runner and an interpreter; the
zygote's per-workload helper does the runner's job (limits, process group, signals, exit file)
and outlives the server the same way, so such a workload is otherwise like any other. While the
zygote starts, or when it refuses, the workload starts cold.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil

from flowyard.executor import _process, warm
from flowyard.executor._files import read_exit_code, read_json, tail_lines, write_json
from flowyard.executor.logfile import stream_log
from flowyard.executor.admission import Verdict, check_admission, never_fits
from flowyard.executor.base import Phase, Quota, Resources, WorkloadSpec, WorkloadStatus
from flowyard.executor.errors import UnknownEnvironment, WorkloadActive, WorkloadNotFound
from flowyard.executor.gpus import discover_gpus
from flowyard.executor.limits import Limiter, LimitPlan, detect_limiter

__all__ = ["LocalExecutor", "default_environment"]

log = logging.getLogger(__name__)
_RUNNER = str(Path(__file__).with_name("_runner.py"))
_WARM = str(Path(__file__).with_name("warm.py"))
_ZYGOTE_RETRY = 60.0  # seconds before a zygote that failed is started again
_ZYGOTE_IDLE = 900.0  # seconds a zygote waits for work before it ends (a later ask restarts it)
WARM_NAMESPACE = "flowyard-system"
SYSTEM_LABEL = "flowyard.io/system"
"""Label of platform-internal workloads (zygotes), hidden from user-facing counts."""
WARM_ENV_LABEL = "flowyard.io/warm-environment"
_KILL_WAIT = 5.0  # seconds to wait for the process tree to vanish after SIGKILL
_LOG_TAIL_LINES = 5


def default_environment(name: str) -> Path:
    """Resolve only "default": the bin directory of the platform's own interpreter."""
    if name == "default":
        return Path(sys.executable).parent
    raise UnknownEnvironment(f"unknown environment {name!r}: only 'default' is available")


class _Workload:
    """In-memory bookkeeping of one workload; `status` is what callers see."""

    def __init__(self, spec: WorkloadSpec, directory: Path, status: WorkloadStatus) -> None:
        self.spec = spec
        self.dir = directory
        self.status = status
        self.requests = spec.effective_requests()
        self.popen: subprocess.Popen[bytes] | None = None
        self.create_time: float | None = None  # of the runner process, identifies it
        self.plan: LimitPlan | None = None
        self.stop_reason: str | None = None  # "Stopped" or "DeadlineExceeded" once asked
        self.killed_after: float | None = None  # grace after which SIGKILL was needed
        self.done = asyncio.Event()
        self.monitor: asyncio.Task[None] | None = None
        self.stopping: asyncio.Task[None] | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def state(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "status": self.status.to_dict(),
            "create_time": self.create_time,
            "stop_reason": self.stop_reason,
            "plan": None if plan is None else {**plan.runner_config(), "mode": plan.mode,
                                               "description": plan.description},
        }


class LocalExecutor:
    """Runs workloads as local process groups under `root/<id>/`.

    `capacity` defaults to this host (usable cpu cores, total memory, discovered GPUs).
    `quota(namespace)` returns the namespace's `Quota` (None: unlimited); it is asked on
    every admission pass, so changes apply to waiting workloads. `resolve_environment(name)`
    returns the bin directory of a named environment (raise `UnknownEnvironment` if none).
    """

    def __init__(
        self,
        root: Path,
        *,
        capacity: Resources | None = None,
        quota: Callable[[str], Quota | None] | None = None,
        resolve_environment: Callable[[str], Path] | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        gpus = discover_gpus()
        if capacity is None:
            capacity = Resources(
                cpu=float(len(os.sched_getaffinity(0))),
                memory=psutil.virtual_memory().total,
                gpu=len(gpus),
            )
        elif capacity.gpu > len(gpus):
            raise ValueError(
                f"capacity has {capacity.gpu} gpu but {len(gpus)} were found "
                "(set FLOWYARD_GPUS to choose devices)"
            )
        self.capacity = capacity
        self._gpu_ids = [g.index for g in gpus][: capacity.gpu]
        self._hide_gpus = bool(gpus)  # set CUDA_VISIBLE_DEVICES="" for workloads without any
        self._quota = quota or (lambda namespace: None)
        self._resolve = resolve_environment or default_environment
        self._workloads: dict[str, _Workload] = {}
        self._queue: list[str] = []  # pending ids, FIFO
        self._callbacks: list[Callable[[WorkloadStatus], None]] = []
        self._limiter: Limiter | None = None
        self._started = False
        self._scheduling = False
        self._reschedule = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def limits_mode(self) -> str:
        """ "cgroup" or "rlimit", known after `start()`."""
        return self._limiter.mode if self._limiter else ""

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Detect the limits mode, load persisted workloads, re-adopt, resume admission."""
        if self._started:
            return
        self._started = True
        if self._limiter is None:
            self._limiter = detect_limiter(str(self.root.resolve()))
        loaded = []
        for directory in self.root.iterdir():
            workload = self._load(directory)
            if workload is not None and workload.spec.id not in self._workloads:
                loaded.append(workload)
        loaded.sort(key=lambda w: w.status.created_at or 0.0)
        for workload in loaded:
            self._workloads[workload.spec.id] = workload
        for workload in loaded:
            phase = workload.status.phase
            if phase == Phase.Running:
                self._readopt(workload)
            elif phase == Phase.Pending:
                self._queue.append(workload.spec.id)
            else:
                workload.done.set()
        self._schedule()

    async def close(self, stop_workloads: bool = True) -> None:
        """Stop watching. With `stop_workloads`, stop running ones and drop pending ones
        (as Stopped); without, leave both for the next executor on this root to re-adopt."""
        if stop_workloads:
            for workload_id in list(self._queue):
                workload = self._workloads[workload_id]
                if workload.status.phase == Phase.Pending:
                    self._terminate_record(workload, Phase.Stopped, "Stopped",
                                           "stopped before it started: executor shut down")
            self._queue.clear()
            running = [w for w in self._workloads.values() if w.status.phase == Phase.Running]
            await asyncio.gather(*(self._stop_running(w, None, "Stopped") for w in running))
        self._started = False
        for workload in self._workloads.values():
            if workload.deadline:
                workload.deadline.cancel()
            if workload.monitor and not workload.monitor.done():
                workload.monitor.cancel()
        pending = [t for t in self._tasks if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, *(w.monitor for w in self._workloads.values()
                                         if w.monitor), return_exceptions=True)

    # -- public API -------------------------------------------------------------------------

    async def submit(self, spec: WorkloadSpec) -> WorkloadStatus:
        """Queue a workload and admit it if it fits; an existing id returns its status."""
        await self.start()
        existing = self._workloads.get(spec.id)
        if existing is not None:
            return existing.status
        directory = self.root / spec.id
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)  # leftovers of a removed workload
        directory.mkdir(mode=0o700)
        write_json(directory / "spec.json", spec.to_dict())
        status = WorkloadStatus(
            id=spec.id,
            namespace=spec.namespace,
            kind=spec.kind,
            phase=Phase.Pending,
            reason="Queued",
            message="waiting to be admitted",
            created_at=time.time(),
            limits_mode=self.limits_mode,
            labels=dict(spec.labels),
        )
        workload = _Workload(spec, directory, status)
        self._workloads[spec.id] = workload
        self._persist(workload)
        self._notify(status)
        self._queue.append(spec.id)
        self._schedule()
        return workload.status

    def status(self, workload_id: str) -> WorkloadStatus:
        """Current status; raises `WorkloadNotFound`."""
        return self._get(workload_id).status

    def list(self, namespace: str | None = None) -> list[WorkloadStatus]:
        """All workloads (of `namespace`), in submission order."""
        return [
            w.status
            for w in self._workloads.values()
            if namespace is None or w.spec.namespace == namespace
        ]

    async def stop(self, workload_id: str, grace: float | None = None) -> WorkloadStatus:
        """SIGTERM the workload's process group, SIGKILL it after `grace` seconds."""
        workload = self._get(workload_id)
        if workload.status.phase == Phase.Pending:
            self._queue = [i for i in self._queue if i != workload_id]
            self._terminate_record(workload, Phase.Stopped, "Stopped", "stopped before it started")
            return workload.status
        if workload.status.phase == Phase.Running:
            await self._stop_running(workload, grace, "Stopped")
        return workload.status

    def remove(self, workload_id: str) -> None:
        """Forget a finished workload and delete its files; raises `WorkloadActive`."""
        workload = self._get(workload_id)
        if not workload.status.finished:
            raise WorkloadActive(
                f"workload {workload_id!r} is {workload.status.phase}; stop it before removing it"
            )
        del self._workloads[workload_id]
        if self._limiter:
            self._limiter.release(workload.plan)
        shutil.rmtree(workload.dir, ignore_errors=True)

    def logs(
        self, workload_id: str, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[bytes]:
        """Its combined stdout+stderr in chunks; `follow` streams until it finishes."""
        workload = self._get(workload_id)
        return stream_log(workload.dir / "log", lambda: workload.status.finished, follow, tail)

    async def wait(self, workload_id: str, timeout: float | None = None) -> WorkloadStatus:
        """The final status; raises `TimeoutError` when not finished within `timeout`."""
        workload = self._get(workload_id)
        await asyncio.wait_for(workload.done.wait(), timeout)
        return workload.status

    def on_change(self, callback: Callable[[WorkloadStatus], None]) -> Callable[[], None]:
        """Call `callback(status)` (on the event loop) on every phase change."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    # -- admission --------------------------------------------------------------------------

    def _schedule(self) -> None:
        """Admit pending workloads in FIFO order; each one that fits now starts now.

        A workload that does not fit does not block later, smaller ones. Re-entrant calls
        (a workload failing while being admitted) just ask for another pass.
        """
        if not self._started:
            return
        if self._scheduling:
            self._reschedule = True
            return
        self._scheduling = True
        try:
            self._reschedule = True
            while self._reschedule:
                self._reschedule = False
                self._schedule_pass()
        finally:
            self._scheduling = False

    def _schedule_pass(self) -> None:
        waiting = []
        for workload_id in self._queue:
            workload = self._workloads.get(workload_id)
            if workload is None or workload.status.phase != Phase.Pending:
                continue
            verdict, gpus = self._admit(workload)
            if verdict is None:
                self._launch(workload, gpus)
            elif workload.status.phase == Phase.Pending:
                waiting.append(workload_id)
                if (workload.status.reason, workload.status.message) != (verdict.reason,
                                                                          verdict.message):
                    self._update(workload, reason=verdict.reason, message=verdict.message)
        self._queue = waiting

    def usage(self, namespace: str | None = None) -> Resources:
        """Requests held by running workloads (of one namespace), as admission counts them."""
        return sum((w.requests for w in self._workloads.values() if w.status.phase == Phase.Running
                    and namespace in (None, w.spec.namespace)), Resources())

    def _admit(self, workload: _Workload) -> tuple[Verdict | None, list[str]]:
        """(None, gpu ids) when it may start; (why not, []) otherwise. Fails never-fits."""
        namespace = workload.spec.namespace
        try:
            quota = self._quota(namespace)
        except Exception as exc:  # a broken quota source must not stop admission of others
            log.exception("quota lookup for namespace %r failed", namespace)
            return Verdict("QuotaUnavailable", f"cannot read the namespace quota: {exc}"), []
        impossible = never_fits(workload.requests, self.capacity, quota, namespace)
        if impossible is not None:
            self._terminate_record(workload, Phase.Failed, impossible.reason, impossible.message)
            return impossible, []
        running = [w for w in self._workloads.values() if w.status.phase == Phase.Running]
        used, used_ns = self.usage(), self.usage(namespace)
        taken = {g for w in running for g in w.status.gpus}
        free_gpus = [g for g in self._gpu_ids if g not in taken]
        free = self.capacity - used
        free = Resources(free.cpu, free.memory, len(free_gpus))
        verdict = check_admission(workload.requests, free, self.capacity, quota, used_ns, namespace)
        if verdict is not None:
            return verdict, []
        return None, free_gpus[: workload.requests.gpu]

    # -- starting ---------------------------------------------------------------------------

    def _launch(self, workload: _Workload, gpus: list[str]) -> None:
        spec = workload.spec
        assert self._limiter is not None
        try:
            bin_dir = Path(self._resolve(spec.environment))
        except Exception as exc:
            self._terminate_record(workload, Phase.Failed, "InvalidEnvironment", str(exc))
            return
        port = _free_port() if spec.kind == "service" else None
        command = list(spec.command)
        if port is not None:
            command = [arg.replace("{port}", str(port)) for arg in command]
        workdir = Path(spec.workdir) if spec.workdir else workload.dir / "work"
        try:
            if not spec.workdir:
                workdir.mkdir(exist_ok=True)
            (workload.dir / "exit").unlink(missing_ok=True)
            workload.plan = self._limiter.prepare(spec.id, spec.limits)
            config = {
                "command": command,
                "cwd": str(workdir),
                "exit": str(workload.dir / "exit"),
                **workload.plan.runner_config(),
            }
            env = self._child_env(spec, bin_dir, gpus, port)
            with open(workload.dir / "log", "ab") as log_file:
                pid = self._warm_start(spec, bin_dir, config, env, log_file) if spec.warm else None
                if pid is None:
                    workload.popen = subprocess.Popen(
                        [sys.executable, "-I", "-S", _RUNNER, json.dumps(config)],
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=workload.dir,
                        start_new_session=True,
                    )
                    pid = workload.popen.pid
        except OSError as exc:
            self._limiter.release(workload.plan)
            self._terminate_record(workload, Phase.Failed, "StartError", f"cannot start: {exc}")
            return
        workload.create_time = _process.create_time(pid)
        self._update(
            workload,
            phase=Phase.Running,
            reason="Started",
            message=workload.plan.description,
            pid=pid,
            started_at=time.time(),
            endpoint=f"127.0.0.1:{port}" if port is not None else None,
            gpus=gpus,
            limits_mode=workload.plan.mode,
        )
        self._watch(workload)

    def _warm_start(self, spec: WorkloadSpec, bin_dir: Path, config: dict[str, Any],
                    env: dict[str, str], log_file: Any) -> int | None:
        """Fork the workload from its environment's zygote, whose helper then supervises it as
        the runner would; the helper's pid, or None to start it cold (no zygote yet, refused)."""
        zygote = self._zygote(spec, bin_dir)
        if zygote is None:
            return None
        zid, sock = zygote
        request = {**config, "identity": warm.identity(str(bin_dir)), "argv": config["command"], "env": env}
        with open(os.devnull, "rb") as null:
            got = warm.spawn(sock, request, (null.fileno(), log_file.fileno(), log_file.fileno()))
        if isinstance(got, int):
            return got
        if got == "timeout" or "other-environment" in got:  # a stuck or outdated zygote: replace it
            log.warning("warm start of %s: %s; stopping zygote %s", spec.id, got, zid)
            self._spawn(self.stop(zid, grace=1.0))
        return None

    def _zygote(self, spec: WorkloadSpec, bin_dir: Path) -> tuple[str, str] | None:
        """(id, socket) of the zygote for (environment build, warm list) once it runs; the first
        ask starts it, a system workload in `flowyard-system` (after a failure: not for a minute)."""
        key = hashlib.sha1("\0".join([spec.environment, str(bin_dir), *spec.warm]).encode()).hexdigest()[:12]
        zid = f"{WARM_NAMESPACE}.warm.{key}"
        sock = str(self.root / ".warm" / f"{key}.sock")
        zygote = self._workloads.get(zid)
        if zygote is not None and zygote.status.phase == Phase.Running:
            return zid, sock
        if zygote is not None and zygote.status.finished:
            if zygote.status.phase == Phase.Failed and time.time() - (zygote.status.finished_at or 0) < _ZYGOTE_RETRY:
                return None
            self.remove(zid)
        elif zygote is not None:
            return None  # pending
        (self.root / ".warm").mkdir(mode=0o700, exist_ok=True)
        self._spawn(self.submit(WorkloadSpec(
            id=zid, namespace=WARM_NAMESPACE, kind="service",
            command=["python", _WARM, "serve", sock, "--idle", f"{_ZYGOTE_IDLE:g}", *spec.warm],
            environment=spec.environment, grace_period=2.0,
            labels={SYSTEM_LABEL: "true", WARM_ENV_LABEL: spec.environment})))
        return None

    def _child_env(
        self, spec: WorkloadSpec, bin_dir: Path, gpus: list[str], port: int | None
    ) -> dict[str, str]:
        """The server's environment minus FLOWYARD_* (may hold secrets), plus the spec's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYARD_")}
        env.update(spec.env)
        env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", os.defpath)
        if spec.environment != "default":
            env["VIRTUAL_ENV"] = str(bin_dir.parent)
            env.pop("PYTHONHOME", None)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if port is not None:
            env["PORT"] = str(port)
        if self._hide_gpus or gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        return env

    def _watch(self, workload: _Workload) -> None:
        """Start the exit monitor and, for batch workloads, the deadline."""
        workload.monitor = asyncio.get_running_loop().create_task(self._monitor(workload))
        timeout = workload.spec.timeout
        if timeout is not None and workload.spec.kind == "batch":
            started = workload.status.started_at or time.time()
            remaining = max(0.0, started + timeout - time.time())
            workload.deadline = asyncio.get_running_loop().call_later(
                remaining, self._on_deadline, workload
            )

    def _on_deadline(self, workload: _Workload) -> None:
        if workload.status.phase == Phase.Running:
            self._spawn(self._stop_running(workload, None, "DeadlineExceeded"))

    # -- re-adoption ------------------------------------------------------------------------

    def _load(self, directory: Path) -> _Workload | None:
        try:
            spec = WorkloadSpec.from_dict(read_json(directory / "spec.json"))
        except FileNotFoundError:
            return None
        except Exception as exc:
            log.warning("ignoring unreadable workload in %s: %s", directory, exc)
            return None
        try:
            state = read_json(directory / "state.json")
            status = WorkloadStatus.from_dict(state["status"])
        except Exception:  # crashed between writing spec.json and state.json
            state = {}
            status = WorkloadStatus(spec.id, spec.namespace, spec.kind, Phase.Pending,
                                    created_at=time.time(), labels=dict(spec.labels))
        workload = _Workload(spec, directory, status)
        workload.create_time = state.get("create_time")
        workload.stop_reason = state.get("stop_reason")
        plan = state.get("plan")
        if plan:
            workload.plan = LimitPlan(plan["mode"], plan.get("cgroup"), plan.get("rlimit_as", 0),
                                      plan.get("cpus") or [], plan.get("description", ""))
        return workload

    def _readopt(self, workload: _Workload) -> None:
        """A workload recorded as Running: watch it again, or record how it ended."""
        pid = workload.status.pid
        if pid is not None and _process.is_alive(pid, workload.create_time):
            log.info("re-adopted workload %s (pid %s)", workload.spec.id, pid)
            self._watch(workload)
            return
        code = read_exit_code(workload.dir / "exit")
        if code is not None:
            self._record_exit(workload, code)
        else:
            self._terminate_record(workload, Phase.Failed, "Lost",
                                   "process vanished while the server was down")

    # -- stopping and finishing -------------------------------------------------------------

    async def _stop_running(self, workload: _Workload, grace: float | None, reason: str) -> None:
        if workload.stopping is None:
            workload.stop_reason = reason
            self._persist(workload)
            grace = workload.spec.grace_period if grace is None else grace
            workload.stopping = asyncio.get_running_loop().create_task(
                self._terminate(workload, grace)
            )
        await asyncio.shield(workload.stopping)

    async def _terminate(self, workload: _Workload, grace: float) -> None:
        """SIGTERM (the runner forwards it to the command's group), then SIGKILL."""
        pid = workload.status.pid
        if pid is None or workload.monitor is None:
            return
        if _process.is_alive(pid, workload.create_time):
            _signal(pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(workload.done.wait(), grace)
            return
        except TimeoutError:
            pass
        workload.killed_after = grace
        self._persist(workload)
        try:
            for child in psutil.Process(pid).children():
                _signal_group(child.pid, signal.SIGKILL)
        except psutil.Error:
            pass
        if self._limiter:
            self._limiter.kill_all(workload.plan)
        try:
            await asyncio.wait_for(workload.done.wait(), _KILL_WAIT)
        except TimeoutError:
            if _process.is_alive(pid, workload.create_time):
                _signal(pid, signal.SIGKILL)
            await workload.done.wait()

    async def _monitor(self, workload: _Workload) -> None:
        """Wait for the runner to exit, then record the outcome. Cancelling leaves it running."""
        pid = workload.status.pid
        assert pid is not None
        await _process.wait_exit(pid, workload.create_time, workload.popen)
        code = read_exit_code(workload.dir / "exit")
        if code is None and workload.popen is not None:
            code = workload.popen.returncode  # the runner itself was killed (e.g. early stop)
        self._record_exit(workload, code)

    def _record_exit(self, workload: _Workload, code: int | None) -> None:
        spec = workload.spec
        if workload.stop_reason == "DeadlineExceeded":
            phase, reason = Phase.Failed, "DeadlineExceeded"
            message = f"stopped after exceeding its timeout of {spec.timeout:g} s"
        elif workload.stop_reason:
            phase, reason, message = Phase.Stopped, "Stopped", "stopped on request"
            if workload.killed_after is not None:
                message += f" (killed after a {workload.killed_after:g} s grace period)"
        elif code is None:
            phase, reason = Phase.Failed, "Lost"
            message = "the runner ended without recording an exit code"
        elif code == 0:
            phase, reason, message = Phase.Succeeded, "Completed", "exit code 0"
        else:
            oom = self._limiter is not None and self._limiter.oom_killed(workload.plan)
            phase, reason = Phase.Failed, "OOMKilled" if oom else "Error"
            message = _describe_exit(code)
            tail = tail_lines(workload.dir / "log", _LOG_TAIL_LINES).decode("utf-8", "replace")
            if tail.strip():
                lines = [line[:300] for line in tail.rstrip("\n").splitlines()]
                message += "; last log lines:\n" + "\n".join(lines)
        self._terminate_record(workload, phase, reason, message, exit_code=code)

    def _terminate_record(
        self, workload: _Workload, phase: Phase, reason: str, message: str,
        exit_code: int | None = None,
    ) -> None:
        """Record a terminal phase, free the resources and admit whoever waits."""
        if workload.deadline:
            workload.deadline.cancel()
        if self._limiter:
            self._limiter.release(workload.plan)
        self._update(workload, phase=phase, reason=reason, message=message,
                     exit_code=exit_code, finished_at=time.time())
        workload.done.set()
        self._schedule()

    # -- helpers ----------------------------------------------------------------------------

    def _get(self, workload_id: str) -> _Workload:
        try:
            return self._workloads[workload_id]
        except KeyError:
            raise WorkloadNotFound(workload_id) from None

    def _update(self, workload: _Workload, **changes: Any) -> None:
        before = workload.status.phase
        workload.status = workload.status.evolve(**changes)
        self._persist(workload)
        if workload.status.phase != before:
            self._notify(workload.status)

    def _persist(self, workload: _Workload) -> None:
        if workload.dir.exists():
            write_json(workload.dir / "state.json", workload.state())

    def _notify(self, status: WorkloadStatus) -> None:
        for callback in list(self._callbacks):
            try:
                callback(status)
            except Exception:
                log.exception("workload change callback failed")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"exit code {code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"exit code {code}"


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except OSError:
        pass
