"""`flowyard token ...`: API tokens for programs (shown once, stored hashed, revocable)."""

from __future__ import annotations

import click

from flowyard.cli.output import age, table
from flowyard.cli.session import client


@click.group()
def token() -> None:
    """Manage your API tokens."""


@token.command("create")
@click.option("--name", default="", help="A label to recognise the token by.")
@click.option("-n", "--namespace", metavar="NS", help="Limit the token to this namespace.")
def create(name: str, namespace: str | None) -> None:
    """Create a token and print it (only this once)."""
    answer = client().create_token(name, namespace)
    click.echo(answer["token"])
    click.echo(f"token {answer['id']} created: keep it safe, it is not shown again", err=True)


@token.command("list")
@click.option("--all", "all_", is_flag=True, help="Every user's tokens (administrators).")
def list_tokens(all_: bool) -> None:
    """List tokens (never their secrets)."""
    rows = [(t["id"], t.get("name"), t.get("user"), t.get("namespace") or "*", age(t.get("createdAt")),
             age(t["lastUsedAt"]) if t.get("lastUsedAt") else "never")
            for t in client().tokens(all=all_)]
    table(["id", "name", "user", "namespace", "age", "last used"], rows)


@token.command("revoke")
@click.argument("token_id", metavar="ID")
def revoke(token_id: str) -> None:
    """Revoke a token: it stops working at once."""
    client().revoke_token(token_id)
    click.echo(f"token {token_id} revoked")
