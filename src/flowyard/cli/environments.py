"""`flowyard env ...`: named Python environments, the local analogue of container images."""

from __future__ import annotations

from pathlib import Path

import click

from flowyard.cli.columns import columns
from flowyard.cli.output import table
from flowyard.cli.session import client
from flowyard.errors import Invalid, NotFound


def _requirements(path: str) -> list[str]:
    try:
        text = Path(path).expanduser().read_text()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise Invalid(f"{path}: cannot read: {e}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


@click.group("env")
def env() -> None:
    """Python environments that jobs run in (their `image`)."""


@env.command("create")
@click.argument("name")
@click.option("-r", "--requirements", "requirements", metavar="FILE", help="A requirements.txt to install.")
@click.option("--python", metavar="VERSION", help="Python version or interpreter, e.g. 3.11.")
@click.option("--no-system-site-packages", is_flag=True, help="Do not see the platform's own packages.")
@click.option("--wait", is_flag=True, help="Wait until it is built.")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds --wait waits.")
def create(name: str, requirements: str | None, python: str | None, no_system_site_packages: bool, wait: bool,
           timeout: float) -> None:
    """Create an environment; it builds in the background (`flowyard logs env NAME -f`)."""
    spec: dict[str, object] = {"requirements": _requirements(requirements) if requirements else []}
    if python:
        spec["python"] = python
    if no_system_site_packages:
        spec["systemSitePackages"] = False
    c = client()
    c.create({"apiVersion": "flowyard.io/v1", "kind": "Environment", "metadata": {"name": name}, "spec": spec})
    click.echo(f"environment/{name} created")
    if wait:
        obj = c.wait("environments", name, ("Ready", "Failed"), timeout)
        status = obj.get("status") or {}
        if status.get("phase") == "Failed":
            raise Invalid(f"environment '{name}' failed to build: {status.get('message', '')}")
        click.echo(f"environment/{name} ready")


@env.command("list")
def list_environments() -> None:
    """List environments and whether they are built."""
    cols = columns("Environment")
    table([h for h, _ in cols], [[f(o) for _, f in cols] for o in client().get("environments")])


@env.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete an environment."""
    client().delete("environments", name)
    click.echo(f"environment/{name} deleted")
