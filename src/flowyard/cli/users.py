"""`flowyard user ...`: add users, change passwords, disable and enable them (admins)."""

from __future__ import annotations

import click

from flowyard.cli.output import age, table
from flowyard.cli.session import client, read_password


@click.group()
def user() -> None:
    """Manage users (administrators; anyone may change their own password)."""


@user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user a platform administrator.")
@click.option("--no-namespace", is_flag=True, help="Do not create a namespace named after the user.")
def add(name: str, admin: bool, no_namespace: bool) -> None:
    """Add a user; the password comes from stdin, or is prompted for twice."""
    password = read_password(f"Password for {name}", confirm=True)
    client().add_user(name, password, admin=admin, namespace=not no_namespace)
    extra = "" if no_namespace else f" with namespace '{name}'"
    click.echo(f"user '{name}' added{extra}")


@user.command("passwd")
@click.argument("name")
def passwd(name: str) -> None:
    """Change a password (stdin, or prompted for twice)."""
    client().update_user(name, password=read_password(f"New password for {name}", confirm=True))
    click.echo(f"password of '{name}' changed")


@user.command("list")
def list_users() -> None:
    """List users."""
    rows = [(u["name"], "yes" if u.get("admin") else "", "yes" if u.get("disabled") else "", age(u.get("createdAt")))
            for u in client().users()]
    table(["name", "admin", "disabled", "age"], rows)


@user.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable a user: their tokens and sessions stop working."""
    client().update_user(name, disabled=True)
    click.echo(f"user '{name}' disabled")


@user.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Enable a disabled user again."""
    client().update_user(name, disabled=False)
    click.echo(f"user '{name}' enabled")
