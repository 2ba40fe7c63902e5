"""`flowyard model ...`: the model registry (register versions, list, move aliases)."""

from __future__ import annotations

import json
from typing import Any

import click

from flowyard.cli.output import age, table
from flowyard.cli.session import client, namespace_option
from flowyard.errors import Invalid


def _ns(namespace: str | None) -> str:
    return namespace or client().namespace


@click.group("model")
def model() -> None:
    """Registered models, their versions and aliases (serve them as models:/NAME/ALIAS)."""


@model.command("register")
@click.argument("name")
@click.option("--run", metavar="RUN", help="The pipeline run (name or id) whose Model artifact to register.")
@click.option("--artifact", metavar="TASK/OUTPUT", help="Which output of the run (default: its first Model).")
@click.option("--uri", metavar="URI", help="Register a model at this location instead (file://, s3://, ...).")
@click.option("--format", "fmt", metavar="FORMAT", help="Model format: sklearn, xgboost, onnx, pytorch, ...")
@click.option("--signature", metavar="JSON", help='{"inputs": [{"name", "datatype", "shape"}], "outputs": [...]}')
@click.option("--description", help="What this version is.")
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS", help="Point this alias at the new version.")
@namespace_option
def register(name: str, run: str | None, artifact: str | None, uri: str | None, fmt: str | None,
             signature: str | None, description: str | None, aliases: tuple[str, ...], namespace: str | None) -> None:
    """Register a new version of model NAME (made if missing) from a run or a URI."""
    if bool(run) == bool(uri):
        raise Invalid("give either --run RUN (its Model artifact) or --uri URI")
    body: dict[str, Any] = {"run": run, "artifact": artifact, "uri": uri, "format": fmt, "description": description}
    if signature:
        try:
            body["signature"] = json.loads(signature)
        except ValueError as e:
            raise Invalid(f"--signature is not JSON: {e}") from None
    ns = _ns(namespace)
    c = client()
    got = c.request("POST", f"/api/v1/namespaces/{ns}/registeredmodels/{name}/versions",
                    json={k: v for k, v in body.items() if v})
    version = got["spec"]["version"]
    click.echo(f"{name} version {version} registered: {got['spec']['uri']}")
    for alias in aliases:
        c.request("PUT", f"/api/v1/namespaces/{ns}/registeredmodels/{name}/aliases/{alias}", json={"version": version})
        click.echo(f"{name}@{alias} -> version {version}")


@model.command("list")
@click.argument("name", required=False)
@namespace_option
def list_models(name: str | None, namespace: str | None) -> None:
    """List registered models, or the versions of model NAME."""
    c = client()
    ns = _ns(namespace)
    if name is None:
        models = c.request("GET", f"/api/v1/namespaces/{ns}/registeredmodels")["items"]
        table(["name", "aliases", "age"],
              [[m["metadata"]["name"], ", ".join(f"{a}={v}" for a, v in sorted(m["spec"]["aliases"].items())),
                age(m["metadata"].get("creationTimestamp"))] for m in models])
        return
    aliases = c.request("GET", f"/api/v1/namespaces/{ns}/registeredmodels/{name}")["spec"]["aliases"]
    versions = [v for v in c.request("GET", f"/api/v1/namespaces/{ns}/modelversions")["items"]
                if v["spec"]["model"] == name]
    versions.sort(key=lambda v: v["spec"]["version"])
    table(["version", "aliases", "format", "run", "uri", "age"],
          [[v["spec"]["version"], ", ".join(a for a, n in sorted(aliases.items()) if n == v["spec"]["version"]),
            v["spec"].get("format") or "", (v["spec"].get("run") or {}).get("name", ""), v["spec"]["uri"],
            age(v["metadata"].get("creationTimestamp"))] for v in versions])


@model.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int, required=False)
@click.option("--delete", is_flag=True, help="Remove the alias instead.")
@namespace_option
def alias(name: str, alias: str, version: int | None, delete: bool, namespace: str | None) -> None:
    """Point ALIAS of model NAME at VERSION (atomically), or remove it with --delete."""
    path = f"/api/v1/namespaces/{_ns(namespace)}/registeredmodels/{name}/aliases/{alias}"
    if delete:
        client().request("DELETE", path)
        click.echo(f"{name}@{alias} removed")
        return
    if version is None:
        raise Invalid("give the VERSION the alias should point at (or --delete)")
    client().request("PUT", path, json={"version": version})
    click.echo(f"{name}@{alias} -> version {version}")
