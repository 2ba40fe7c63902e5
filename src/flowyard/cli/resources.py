"""Kubernetes-style resource commands: apply, get, delete, describe, logs."""

from __future__ import annotations

import time
from typing import Any

import click

from flowyard.cli import describe as describing
from flowyard.cli import manifests
from flowyard.cli.columns import columns
from flowyard.cli.output import dump, table
from flowyard.cli.session import client, namespace_option
from flowyard.errors import FlowyardError, Invalid, NotFound

_FILES = click.option("-f", "--filename", "files", multiple=True, metavar="FILE",
                      help="Manifest file (YAML or JSON, several --- documents), folder, or - for stdin.")
_DONE_PHASES = {"Succeeded", "Failed", "Ready"}


def _with_context(manifest: dict[str, Any], err: FlowyardError) -> FlowyardError:
    """The same error, its message prefixed with the manifest it is about."""
    err.message = f"{manifests.label(manifest)}: {err.message}"
    err.args = (err.message,)
    return err


@click.command()
@_FILES
@namespace_option
def apply(files: tuple[str, ...], namespace: str | None) -> None:
    """Create or update the resources in manifest files."""
    if not files:
        raise Invalid("say what to apply: -f FILE (a file, a folder, or - for stdin)")
    c = client()
    for manifest in manifests.load(list(files)):
        try:
            _, created = c.apply_one(manifest, namespace)
        except FlowyardError as e:
            raise _with_context(manifest, e) from None
        click.echo(f"{manifests.label(manifest)} {'created' if created else 'configured'}")


@click.command()
@click.argument("kind")
@click.argument("name", required=False)
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="List across every namespace you can see.")
@click.option("-l", "--selector", metavar="SELECTOR", help="Label selector, e.g. app=web,tier!=db.")
@click.option("-o", "--output", type=click.Choice(["json", "yaml", "wide", "name"]), help="Output format.")
def get(kind: str, name: str | None, namespace: str | None, all_namespaces: bool, selector: str | None,
        output: str | None) -> None:
    """Show one object, or list objects of a kind (a table by default)."""
    c = client()
    info = c.kind(kind)
    across = all_namespaces and info.namespaced and name is None
    found = c.get(kind, name, namespace, label_selector=selector, all_namespaces=across)
    items = [found] if name is not None else found
    if output in ("json", "yaml"):
        dump(found if name is not None else {"apiVersion": "v1", "kind": "List", "items": items}, output)
        return
    if output == "name":
        for obj in items:
            click.echo(f"{info.kind.lower()}/{obj['metadata']['name']}")
        return
    if not items:
        where = "" if across or not info.namespaced else f" in namespace '{namespace or c.namespace}'"
        click.echo(f"No {info.plural} found{where}.", err=True)
        return
    cols = columns(info.kind, wide=output == "wide", all_namespaces=across)
    table([h for h, _ in cols], [[f(obj) for _, f in cols] for obj in items])


@click.command()
@click.argument("kind", required=False)
@click.argument("names", nargs=-1, metavar="NAME...")
@_FILES
@namespace_option
def delete(kind: str | None, names: tuple[str, ...], files: tuple[str, ...], namespace: str | None) -> None:
    """Delete objects by kind and name, or those in manifest files."""
    c = client()
    if files:
        if kind:
            raise Invalid("give either KIND NAME or -f FILE, not both")
        for manifest in manifests.load(list(files)):
            name = (manifest.get("metadata") or {}).get("name")
            ns = namespace or (manifest.get("metadata") or {}).get("namespace")
            try:
                if not name:
                    raise Invalid("metadata.name is required to delete")
                c.delete(c.kind_of(manifest).plural, name, ns)
            except FlowyardError as e:
                raise _with_context(manifest, e) from None
            click.echo(f"{manifests.label(manifest)} deleted")
        return
    if not kind or not names:
        raise Invalid("say what to delete: KIND NAME... or -f FILE")
    info = c.kind(kind)
    for name in names:
        c.delete(kind, name, namespace)
        click.echo(f"{info.kind.lower()}/{name} deleted")


@click.command()
@click.argument("kind")
@click.argument("name")
@namespace_option
def describe(kind: str, name: str, namespace: str | None) -> None:
    """Show an object in detail: metadata, spec, status, conditions and events."""
    c = client()
    obj = c.get(kind, name, namespace)
    describing.render(obj, c.events(kind, name, namespace))


@click.command()
@click.argument("kind")
@click.argument("name")
@click.argument("task", required=False)
@namespace_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the work ends.")
@click.option("--tail", type=click.IntRange(min=0), help="Only the last N lines (per task for a run).")
def logs(kind: str, name: str, task: str | None, namespace: str | None, follow: bool, tail: int | None) -> None:
    """Print the log of a Job, an Environment's build, or a pipeline run.

    For a run (`flowyard logs run RUN [TASK]`), RUN is its name or KFP run id; without TASK
    every task's lines are printed, prefixed with `[task] `; TASK is a key of `status.tasks`
    (e.g. `train` or `for-loop-2-iteration-0/square`).
    """
    c = client()
    if c.kind(kind).kind == "Run":
        run = c.find_run(name, namespace)["metadata"]["name"]
        lines = (c.task_logs(run, task, follow=follow, tail=tail, namespace=namespace) if task
                 else c.logs("run", run, follow=follow, tail=tail, namespace=namespace))
        for line in lines:
            click.echo(line, nl=False)
        return
    if task:
        raise Invalid("a TASK argument is only for pipeline runs: flowyard logs run RUN TASK")
    while True:
        try:
            for line in c.logs(kind, name, follow=follow, tail=tail, namespace=namespace):
                click.echo(line, nl=False)
            return
        except NotFound:
            phase = ((c.get(kind, name, namespace).get("status") or {}).get("phase"))  # NotFound if gone
            if not follow or phase in _DONE_PHASES:
                raise
        time.sleep(0.5)  # following something that has not started yet
