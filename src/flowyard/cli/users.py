"""`flowyard user ...`: add users, change passwords, disable and enable them (admins)."""

from __future__ import annotations

from pathlib import Path

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
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="Change it directly in this server home's database (e.g. a forgotten admin password).")
@click.option("--db", help="With --home: the database URL, when the server uses one (postgresql://...).")
def passwd(name: str, home: Path | None, db: str | None) -> None:
    """Change a password (stdin, or prompted for twice)."""
    password = read_password(f"New password for {name}", confirm=True)
    if home is None:
        client().update_user(name, password=password)
    else:
        from flowyard.config import Settings
        from flowyard.platform import Platform

        if not (home / "session.key").exists():
            raise click.ClickException(f"{home} is not a Flowyard home (no session.key)")
        Platform.open(Settings(home=home, db=db)).accounts.update_user(name, password=password)
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
