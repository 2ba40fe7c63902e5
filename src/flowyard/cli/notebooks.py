"""`flowyard notebook ...`: JupyterLab servers as Kubeflow `Notebook` objects, over the REST API."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import click

from flowyard.cli.output import age, table
from flowyard.cli.session import client, namespace_option
from flowyard.errors import Invalid

_KIND = "notebooks"
_STOPPED = "kubeflow-resource-stopped"
_CREATOR = "notebooks.kubeflow.org/creator"
_HOME = "/home/jovyan"


def _volume(text: str) -> tuple[str, str]:
    claim, sep, path = text.partition(":")
    if not sep or not claim or not path.startswith("/"):
        raise Invalid(f"--volume {text}: use CLAIM:/absolute/path, e.g. data:/data or ws:{_HOME}")
    return claim, path


def manifest(name: str, env: str, cpu: str | None, memory: str | None, gpu: int | None,
             volumes: list[tuple[str, str]], creator: str | None = None) -> dict[str, Any]:
    """The Kubeflow Notebook manifest the options describe (requests = limits)."""
    amounts: dict[str, Any] = {}
    if cpu:
        amounts["cpu"] = cpu
    if memory:
        amounts["memory"] = memory
    if gpu:
        amounts["nvidia.com/gpu"] = gpu
    container: dict[str, Any] = {"name": name, "image": env,
                                 "resources": {"requests": dict(amounts), "limits": dict(amounts)}}
    spec: dict[str, Any] = {"containers": [container]}
    if volumes:
        spec["volumes"] = [{"name": f"vol-{i}", "persistentVolumeClaim": {"claimName": claim}}
                           for i, (claim, _) in enumerate(volumes)]
        container["volumeMounts"] = [{"name": f"vol-{i}", "mountPath": path} for i, (_, path) in enumerate(volumes)]
    meta: dict[str, Any] = {"name": name}
    if creator:
        meta["annotations"] = {_CREATOR: creator}
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": meta, "spec": {"template": {"spec": spec}}}


@click.group("notebook")
def notebook() -> None:
    """JupyterLab servers (Kubeflow Notebooks), reached under /notebook/<ns>/<name>/."""


@notebook.command("create")
@click.argument("name")
@click.option("--env", "env", default="default", show_default=True, help="Environment (the image) to run in.")
@click.option("--cpu", help="CPU cores, request = limit, e.g. 2 or 500m.")
@click.option("--memory", help="Memory, request = limit, e.g. 4Gi.")
@click.option("--gpu", type=click.IntRange(min=0), help="Number of GPUs.")
@click.option("--volume", "volumes", multiple=True, metavar="CLAIM:/PATH",
              help=f"Mount a volume (created with 5Gi if missing). {_HOME} is the workspace; "
                   "others appear in it under the last part of PATH.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it is running.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds --wait waits.")
@namespace_option
def create(name: str, env: str, cpu: str | None, memory: str | None, gpu: int | None, volumes: tuple[str, ...],
           wait: bool, timeout: float, namespace: str | None) -> None:
    """Create a notebook server and (by default) wait until it answers."""
    c = client()
    body = manifest(name, env, cpu, memory, gpu, [_volume(v) for v in volumes], c.whoami().get("username"))
    c.create(body, namespace)
    click.echo(f"notebook/{name} created")
    if wait:
        _wait_running(name, namespace, timeout)


def _wait_running(name: str, namespace: str | None, timeout: float) -> None:
    c = client()
    obj = c.wait(_KIND, name, ("Running", "Failed", "Stopped"), timeout, namespace)
    st = obj.get("status") or {}
    if st.get("phase") != "Running":
        raise Invalid(f"notebook '{name}' is {st.get('phase')}: {st.get('message', '')}")
    click.echo(f"notebook/{name} running: {c.url}{st.get('url', '')}")


@notebook.command("list")
@namespace_option
def list_notebooks(namespace: str | None) -> None:
    """List notebooks with their phase and URL."""
    c = client()
    items = c.get(_KIND, None, namespace)
    if not items:
        click.echo(f"No notebooks found in namespace '{namespace or c.namespace}'.", err=True)
        return
    rows = []
    for obj in items:
        st = obj.get("status") or {}
        image = obj["spec"]["template"]["spec"]["containers"][0].get("image", "default")
        rows.append([obj["metadata"]["name"], st.get("phase", ""), image, f"{c.url}{st.get('url', '')}",
                     age(obj["metadata"].get("creationTimestamp")), (st.get("message") or "").split("\n")[0][:60]])
    table(["name", "phase", "env", "url", "age", "message"], rows)


@notebook.command("stop")
@click.argument("name")
@namespace_option
def stop(name: str, namespace: str | None) -> None:
    """Stop a notebook server; its volumes are kept."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    client().patch(_KIND, name, {"metadata": {"annotations": {_STOPPED: stamp}}}, namespace)
    click.echo(f"notebook/{name} stopping")


@notebook.command("start")
@click.argument("name")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it is running.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds --wait waits.")
@namespace_option
def start(name: str, wait: bool, timeout: float, namespace: str | None) -> None:
    """Start a stopped notebook server again."""
    client().patch(_KIND, name, {"metadata": {"annotations": {_STOPPED: None}}}, namespace)
    click.echo(f"notebook/{name} starting")
    if wait:
        _wait_running(name, namespace, timeout)


@notebook.command("delete")
@click.argument("name")
@namespace_option
def delete(name: str, namespace: str | None) -> None:
    """Delete a notebook (its volumes are kept: `flowyard delete persistentvolumeclaims NAME` removes one)."""
    client().delete(_KIND, name, namespace)
    click.echo(f"notebook/{name} deleted")


@notebook.command("open")
@click.argument("name")
@namespace_option
def open_(name: str, namespace: str | None) -> None:
    """Print the notebook's URL (open it in a browser logged in to Flowyard)."""
    c = client()
    st = c.get(_KIND, name, namespace).get("status") or {}
    url = st.get("url") or f"/notebook/{namespace or c.namespace}/{name}/"
    click.echo(f"{c.url}{url}")
    if st.get("phase") != "Running":
        click.echo(f"note: notebook '{name}' is {st.get('phase', 'Pending')}", err=True)
