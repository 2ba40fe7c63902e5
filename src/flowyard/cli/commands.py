"""The client commands of `flowyard`, attached to the `cli` group by `register()`."""

from __future__ import annotations

import click

from flowyard.cli import auth, demo, environments, models, namespaces, notebooks, resources, serving, tokens, users


def register(cli: click.Group) -> None:
    """Add every client command to `cli`."""
    for command in (auth.login, auth.logout, auth.whoami, users.user, tokens.token, resources.apply,
                    resources.get, resources.delete, resources.describe, resources.logs, namespaces.ns,
                    environments.env, notebooks.notebook, models.model, serving.serve, demo.demo):
        cli.add_command(command)
