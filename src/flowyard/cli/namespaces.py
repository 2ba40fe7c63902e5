"""`flowyard ns ...`: namespaces (Profiles) and their members."""

from __future__ import annotations

import click

from flowyard.cli.output import table
from flowyard.cli.session import client


@click.group("ns")
def ns() -> None:
    """Namespaces and their members."""


@ns.command("list")
def list_namespaces() -> None:
    """The namespaces you can see, with your role."""
    table(["name", "role"], [(n["name"], n["role"]) for n in client().namespaces()])


@ns.command("create")
@click.argument("name")
@click.option("--owner", metavar="USER", help="Who owns it [default: you].")
def create(name: str, owner: str | None) -> None:
    """Create a namespace (a Profile) owned by you or --owner."""
    c = client()
    owner = owner or c.whoami()["username"]
    c.create({"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": name},
              "spec": {"owner": {"kind": "User", "name": owner}}})
    click.echo(f"namespace '{name}' created, owned by {owner}")


@ns.command("delete")
@click.argument("name")
@click.confirmation_option(prompt="Delete the namespace and everything in it?")
def delete(name: str) -> None:
    """Delete a namespace and everything in it."""
    client().delete("profiles", name)
    click.echo(f"namespace '{name}' deleted")


@ns.command("members")
@click.argument("namespace")
def members(namespace: str) -> None:
    """Members of a namespace and their roles."""
    rows = [(m["user"], m["role"], "yes" if m.get("owner") else "") for m in client().members(namespace)]
    table(["user", "role", "owner"], rows)


@ns.command("add-member")
@click.argument("namespace")
@click.argument("user")
@click.option("--role", required=True, type=click.Choice(["admin", "edit", "view"]), help="What they may do.")
def add_member(namespace: str, user: str, role: str) -> None:
    """Add a member to a namespace, or change their role."""
    client().set_member(namespace, user, role)
    click.echo(f"{user} is now {role} in namespace '{namespace}'")


@ns.command("remove-member")
@click.argument("namespace")
@click.argument("user")
def remove_member(namespace: str, user: str) -> None:
    """Remove a member from a namespace."""
    client().remove_member(namespace, user)
    click.echo(f"{user} removed from namespace '{namespace}'")
