"""The tracking SDK: `flowyard.log_metric(...)` and friends, batched and sent in the background.

Calls only append to an in-memory queue; a daemon thread sends the queue as one
`POST .../tracking/runs/{run}/log` when it holds `BATCH` points or `INTERVAL` seconds have
passed, and `flush()` (also run at exit and by `end_run`) sends what is left and raises the
last sending error, so a training loop pays microseconds per call and loses nothing.

The run is the explicit one (`start_run(...)`), else `FLOWYARD_RUN`, which the platform sets
in pipeline tasks, else the tuning trial the workload is (`FLOWYARD_TRIAL_NAME`, logging with
its `FLOWYARD_TRIAL_TOKEN`). The server, token and namespace come
from `FLOWYARD_URL`, `FLOWYARD_TOKEN`, `FLOWYARD_NAMESPACE` (set in tasks and notebooks) or
the saved `flowyard login`. In a notebook there is no run: `start_run(experiment=...)` makes
one (a tracking record the pipeline engine never executes) and makes it the current run; a
`log_*` call without any run starts one in `$FLOWYARD_EXPERIMENT` (else "Default").
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
from collections import defaultdict
from typing import Any

from flowyard.errors import Invalid

BATCH = 5000
INTERVAL = 1.0
ENV_RUN = "FLOWYARD_RUN"
ENV_EXPERIMENT = "FLOWYARD_EXPERIMENT"


class Run:
    """One run being logged to; `with start_run(...) as run:` ends it when the block ends."""

    def __init__(self, run_id: str, namespace: str | None = None, *, client: Any = None, owned: bool = False) -> None:
        from flowyard.sdk import Client

        self.client = client or Client(namespace=namespace)
        self.id = run_id
        self.namespace = namespace or self.client.namespace
        self.owned = owned
        self._path = f"/api/v1/namespaces/{self.namespace}/tracking/runs/{run_id}"
        self._queue: list[list[Any]] = []
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._steps: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._send_lock = threading.Lock()
        self._error: Exception | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"flowyard-log-{run_id[:8]}", daemon=True)
        self._thread.start()

    # -- logging ----------------------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        """Queue one point; `step` defaults to how many values of `key` this process logged before."""
        number = float(value)
        with self._lock:
            if step is None:
                step = self._steps[key]
            self._steps[key] = max(self._steps[key], step + 1)
            self._queue.append([key, number if math.isfinite(number) else None, step,
                                timestamp or int(time.time() * 1000)])
            full = len(self._queue) >= BATCH
        if full:
            self._wake.set()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def log_params(self, params: dict[str, Any]) -> None:
        with self._lock:
            self._params.update({str(k): str(v) for k, v in params.items()})

    def set_tags(self, tags: dict[str, Any]) -> None:
        with self._lock:
            self._tags.update({str(k): str(v) for k, v in tags.items()})

    # -- sending ----------------------------------------------------------------------------

    def _take(self) -> dict[str, Any] | None:
        with self._lock:
            if not (self._queue or self._params or self._tags):
                return None
            body = {"metrics": self._queue[:BATCH], "params": self._params, "tags": self._tags}
            self._queue = self._queue[BATCH:]
            self._params, self._tags = {}, {}
            return body

    def _send(self) -> None:
        with self._send_lock:
            while (body := self._take()) is not None:
                try:
                    self.client.request("POST", f"{self._path}/log", json=body)
                except Exception as e:  # noqa: BLE001 - kept and raised by flush()
                    self._error = e
                    return

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(INTERVAL)
            self._wake.clear()
            self._send()

    def flush(self) -> None:
        """Send everything queued now; raises the last error sending met (once)."""
        self._send()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def end(self, state: str = "SUCCEEDED") -> None:
        """Flush and stop the sender; a run this process started gets its final state."""
        try:
            self.flush()
        finally:
            self._closed = True
            self._wake.set()
        if self.owned:
            self.client.request("POST", f"{self._path}/end", json={"state": state})

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        end_run("FAILED" if exc_type is not None else "SUCCEEDED")


class _TrialTransport:
    """Posts as a tuning trial: with the trial's own token, which only lets it log to itself."""

    def __init__(self, url: str, token: str) -> None:
        import httpx

        self._http = httpx.Client(base_url=url.rstrip("/"), headers={"X-Flowyard-Trial-Token": token}, timeout=30)

    def request(self, method: str, path: str, *, json: Any = None) -> Any:
        from flowyard.sdk.errors import from_response

        response = self._http.request(method, path, json=json)
        if response.is_error:
            raise from_response(response)
        return response.json() if response.content else None


_stack: list[Run] = []
_env_run: Run | None = None
_guard = threading.Lock()


def start_run(experiment: str | None = None, name: str | None = None, *, run_id: str | None = None,
              namespace: str | None = None, params: dict[str, Any] | None = None,
              tags: dict[str, Any] | None = None) -> Run:
    """Start a new run in `experiment` (made if missing), or continue `run_id`; it becomes current."""
    from flowyard.sdk import Client

    client = Client(namespace=namespace)
    ns = namespace or client.namespace
    if run_id is None:
        answer = client.request("POST", f"/api/v1/namespaces/{ns}/tracking/runs",
                                json={"experiment": experiment or "", "name": name, "params": params, "tags": tags})
        run = Run(answer["uid"], ns, client=client, owned=True)
    else:
        run = Run(run_id, ns, client=client)
        if params:
            run.log_params(params)
        if tags:
            run.set_tags(tags)
    _stack.append(run)
    return run


def end_run(state: str = "SUCCEEDED") -> None:
    """End the current run started with `start_run` (flushing what it queued)."""
    if not _stack:
        raise Invalid("no run was started with flowyard.start_run()")
    run = _stack.pop()
    run.end(state)


def active_run() -> Run:
    """The current run: the innermost `start_run`, else the one `FLOWYARD_RUN` names, else a new
    run in experiment `$FLOWYARD_EXPERIMENT` (or "Default"), ended at exit."""
    global _env_run
    if _stack:
        return _stack[-1]
    with _guard:
        if _env_run is None:
            run_id = os.environ.get(ENV_RUN)
            trial, token = os.environ.get("FLOWYARD_TRIAL_NAME"), os.environ.get("FLOWYARD_TRIAL_TOKEN")
            if run_id:
                _env_run = Run(run_id)
            elif trial and token and os.environ.get("FLOWYARD_URL") and os.environ.get("FLOWYARD_NAMESPACE"):
                _env_run = Run(trial, os.environ["FLOWYARD_NAMESPACE"],
                               client=_TrialTransport(os.environ["FLOWYARD_URL"], token))
        if _env_run is not None:
            return _env_run
    # like MLflow: logging with no run starts one (in $FLOWYARD_EXPERIMENT, else "Default")
    return start_run(experiment=os.environ.get(ENV_EXPERIMENT) or "Default")


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log one value of metric `key` to the current run (queued, sent in the background)."""
    active_run().log_metric(key, value, step)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    active_run().log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    active_run().log_params({key: value})


def log_params(params: dict[str, Any]) -> None:
    active_run().log_params(params)


def set_tag(key: str, value: Any) -> None:
    active_run().set_tags({key: value})


def flush() -> None:
    """Send everything queued for the current runs now (raises what sending met)."""
    for run in [*_stack, *([_env_run] if _env_run else [])]:
        run.flush()


@atexit.register
def _at_exit() -> None:
    while _stack:
        try:
            end_run("SUCCEEDED")
        except Exception as e:  # noqa: BLE001 - report, never hang the exit
            print(f"flowyard: could not end the run: {e}")
    if _env_run is not None:
        try:
            _env_run.end()
        except Exception as e:  # noqa: BLE001
            print(f"flowyard: could not send the last metrics: {e}")
