"""`flowyard login`, `logout` and `whoami`: getting and showing credentials."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from flowyard.errors import FlowyardError, Invalid
from flowyard.sdk import Client, config, login as exchange
from flowyard.cli.output import table
from flowyard.cli.session import client, read_password


@click.command()
@click.option("--url", required=True, help="The server, e.g. http://127.0.0.1:8080.")
@click.option("--username", "-u", help="User name [prompted for when on a terminal].")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--insecure", is_flag=True, help="Do not verify the server's TLS certificate (self-signed).")
@click.option("--ca-cert", type=click.Path(dir_okay=False), help="Verify the server with this CA bundle.")
@click.option("-n", "--namespace", metavar="NS", help="Default namespace for later commands.")
def login(url: str, username: str | None, password_stdin: bool, insecure: bool, ca_cert: str | None,
          namespace: str | None) -> None:
    """Log in: exchange a password for an API token and save it (mode 0600)."""
    if not username:
        if not sys.stdin.isatty():
            raise Invalid("--username is required when stdin is not a terminal")
        username = str(click.prompt("Username"))
    password = read_password(from_stdin=password_stdin)
    verify: bool | str = False if insecure else (str(Path(ca_cert).expanduser().resolve()) if ca_cert else True)
    answer = exchange(url, username, password, verify, name=f"cli@{socket.gethostname()}")
    saved = config.Saved(url=url.rstrip("/"), token=answer["token"], namespace=namespace, verify=verify,
                         tokenId=answer.get("id"))
    if namespace:
        with Client(url, answer["token"], namespace, verify=verify) as c:
            try:
                c.members(namespace)  # fails unless the user may see it
            except FlowyardError:
                c.revoke_token(answer["id"])
                raise
    path = config.save(saved)
    click.echo(f"Logged in to {saved.url} as {username} (saved in {path})")


@click.command()
def logout() -> None:
    """Revoke the saved token and forget the login."""
    saved = config.load()
    if saved is None:
        click.echo("Not logged in")
        return
    if saved.tokenId:
        try:
            with Client(saved.url, saved.token, verify=saved.verify) as c:
                c.revoke_token(saved.tokenId)
        except FlowyardError as e:
            click.echo(f"warning: could not revoke the token on the server: {e.message}", err=True)
    config.forget()
    click.echo(f"Logged out of {saved.url}")


@click.command()
def whoami() -> None:
    """Show who you are, on which server, and your namespaces."""
    c = client()
    me = c.whoami()
    role = " (administrator)" if me.get("admin") else ""
    click.echo(f"User:       {me['username']}{role}")
    click.echo(f"Server:     {c.url}")
    if me.get("tokenNamespace"):
        click.echo(f"Token:      limited to namespace {me['tokenNamespace']}")
    namespaces = me.get("namespaces") or []
    if namespaces:
        click.echo(f"Namespace:  {c.namespace} (default)")
        click.echo()
        table(["namespace", "role"], [(n["name"], n["role"]) for n in namespaces])
