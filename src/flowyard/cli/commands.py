"""The client commands of `flowyard`, attached to the `cli` group by `register()`."""

from __future__ import annotations

import click

from flowyard.cli import auth, environments, namespaces, notebooks, resources, tokens, users


def register(cli: click.Group) -> None:
    """Add every client command to `cli`."""
    for command in (auth.login, auth.logout, auth.whoami, users.user, tokens.token, resources.apply,
                    resources.get, resources.delete, resources.describe, resources.logs, namespaces.ns,
                    environments.env, notebooks.notebook):
        cli.add_command(command)
