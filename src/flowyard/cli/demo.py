"""`flowyard demo mnist`: the walk-through end to end against the running platform.

Optionally tunes first (a Katib-style experiment over the training hyperparameters), then
submits the MNIST pipeline with `kfp.Client` (load → train → evaluate → register → deploy),
shows the tasks as they go, and finally asks the endpoint what a few held-out digits are.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from flowyard.cli.session import client, namespace_option
from flowyard.errors import FlowyardError, Invalid

_FINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}


@click.group("demo")
def demo() -> None:
    """Guided end-to-end examples."""


@demo.command("mnist")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with MNIST's IDX .gz files, on the server's machine [default: the platform's "
                   "datasets/mnist, else the public mirrors, else scikit-learn's 8x8 digits].")
@namespace_option
@click.option("--framework", type=click.Choice(["sklearn", "pytorch"]), default="sklearn", show_default=True)
@click.option("--tune", is_flag=True, help="Search the training hyperparameters first and train with the best.")
@click.option("--trials", default=4, show_default=True, help="Trials of the --tune search.")
@click.option("--epochs", default=20, show_default=True, help="Training epochs (an upper bound: early stopping).")
@click.option("--samples", default=10, show_default=True, help="Held-out digits to send to the endpoint.")
@click.option("--timeout", default=600, show_default=True, help="Seconds to wait for the run.")
def mnist(data: Path | None, namespace: str | None, framework: str, tune: bool, trials: int, epochs: int,
          samples: int, timeout: float) -> None:
    """Train, evaluate, register and serve an MNIST classifier, then query it."""
    if framework == "pytorch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise Invalid("--framework pytorch needs torch on the server's machine: pip install torch") from None
    c = client()
    ns = namespace or c.namespace
    data_arg = str(data.resolve()) if data else ""
    started = time.monotonic()
    params: dict[str, Any] = {"hidden": 128, "alpha": 1e-4}
    if tune:
        params = _tune(c, ns, data_arg, trials, timeout)
    run = _run_pipeline(c, ns, {"data": data_arg, "framework": framework, "epochs": epochs, **params}, timeout)
    _query(c, ns, run, samples)
    click.echo(f"done in {time.monotonic() - started:.0f} s — dashboard: {c.url}/runs")


def _kfp(c: Any, ns: str) -> Any:
    import warnings

    import kfp

    warnings.filterwarnings("ignore", category=FutureWarning, module="kfp")

    return kfp.Client(host=c.url, existing_token=c.token, namespace=ns)


def _run_pipeline(c: Any, ns: str, arguments: dict[str, Any], timeout: float) -> Any:
    from flowyard.demo.pipeline import mnist

    kfp_client = _kfp(c, ns)
    shown = ", ".join(f"{k}={v}" for k, v in arguments.items() if v != "")
    click.echo(f"submitting pipeline mnist ({shown}) to namespace {ns}")
    run = kfp_client.create_run_from_pipeline_func(mnist, arguments=arguments, experiment_name="mnist-demo",
                                                   run_name=f"mnist-{time.strftime('%Y%m%d-%H%M%S')}")
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        got = kfp_client.get_run(run.run_id)
        for task in (got.run_details.task_details if got.run_details else None) or []:
            name, state = task.display_name, str(task.state)
            if name and seen.get(name) != state and not name.startswith(("root", "mnist")):
                seen[name] = state
                click.echo(f"  {name:<12} {state.lower()}")
        if str(got.state) in _FINAL:
            break
        if time.monotonic() > deadline:
            raise FlowyardError(f"run {run.run_id} not finished after {timeout:.0f} s (state {got.state})")
        time.sleep(1)
    if str(got.state) != "SUCCEEDED":
        reason = got.error.message if got.error else "see the task logs"
        raise FlowyardError(f"run {run.run_id} {str(got.state).lower()}: {reason} "
                            f"(flowyard logs run {run.run_id} TASK -n {ns})")
    click.echo(f"run {got.display_name} succeeded")
    return got


def _tune(c: Any, ns: str, data: str, trials: int, timeout: float) -> dict[str, Any]:
    """A TPE search over hidden units and L2 strength; the best trial's values."""
    from flowyard.demo.tuning import experiment

    name = f"mnist-tune-{time.strftime('%H%M%S')}"
    c.create(experiment(name, data, trials), namespace=ns)
    click.echo(f"tuning: experiment {name}, {trials} trials (flowyard get trials -n {ns})")
    deadline = time.monotonic() + timeout
    done = -1
    while True:
        obj = c.get("tuningexperiments", name, namespace=ns)
        st = obj.get("status") or {}
        finished = int(st.get("trialsSucceeded") or 0) + int(st.get("trialsFailed") or 0)
        if finished != done:
            done = finished
            click.echo(f"  trials finished: {finished}/{trials}")
        if st.get("phase") in ("Succeeded", "Failed"):
            break
        if time.monotonic() > deadline:
            raise FlowyardError(f"tuning experiment {name} not finished after {timeout:.0f} s")
        time.sleep(1)
    best = st.get("currentOptimalTrial") or {}
    values = {a["name"]: a["value"] for a in best.get("parameterAssignments") or []}
    if st.get("phase") != "Succeeded" or not values:
        raise FlowyardError(f"tuning experiment {name} failed: {st.get('message') or st.get('reason') or st}")
    metric = next((m for m in (best.get("observation") or {}).get("metrics") or [] if m["name"] == "accuracy"), {})
    click.echo(f"best trial: hidden={values['hidden']} alpha={values['alpha']} (accuracy {metric.get('latest')})")
    return {"hidden": int(float(values["hidden"])), "alpha": float(values["alpha"])}


def _query(c: Any, ns: str, run: Any, samples: int) -> None:
    """Send `samples` held-out digits (the run's own test set, from the artifact store) to the
    endpoint in the KServe V1 form and print what it answers."""
    import io

    import numpy as np

    task = c.find_run(run.run_id, namespace=ns)["status"]["tasks"]["load-digits"]
    test_set = task["outputs"]["artifacts"]["test_set"][0]
    uri = str(test_set["uri"])  # <artifact store>/<ns>/runs/<run uid>/<task>/test_set (also when cached)
    at = uri.rfind(f"/{ns}/runs/")
    if at < 0:
        raise FlowyardError(f"cannot find the held-out digits in the artifact store: {uri}")
    with np.load(io.BytesIO(c.download(uri[at + len(ns) + 2:], namespace=ns))) as z:
        x, y = z["x"][:samples], z["y"][:samples]
    path = f"/serving/{ns}/mnist/v1/models/mnist:predict"
    answer = c.request("POST", path, json={"instances": x.tolist()})
    got = np.asarray(answer["predictions"]).reshape(-1).astype(int)
    click.echo(f"POST {c.url}{path}")
    click.echo(f"  expected  {' '.join(map(str, y.tolist()))}")
    click.echo(f"  predicted {' '.join(map(str, got.tolist()))}")
    source = (test_set.get("metadata") or {}).get("source", "")
    click.echo(f"  {int((got == y).sum())}/{len(y)} right ({(got == y).mean():.0%}); digits: {source}")
