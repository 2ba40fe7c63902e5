"""The one `Client` a CLI invocation talks through, and the options every command shares."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from flowyard.errors import Invalid
from flowyard.sdk import Client

F = TypeVar("F", bound=Callable[..., Any])

namespace_option: Callable[[F], F] = click.option(
    "-n", "--namespace", metavar="NS",
    help="Namespace [default: $FLOWYARD_NAMESPACE, the login's, else your own].")


def client() -> Client:
    """The invocation's client (made on first use, closed when the command ends)."""
    ctx = click.get_current_context().find_root()
    found = ctx.meta.get("flowyard.client")
    if found is None:
        found = ctx.meta["flowyard.client"] = Client()
        ctx.call_on_close(found.close)
    return found


def read_password(prompt: str = "Password", confirm: bool = False, from_stdin: bool = False) -> str:
    """A password: the first line of stdin when asked or when stdin is not a terminal, else prompted."""
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise Invalid("no password on stdin: pipe it in, e.g. `echo \"$PW\" | flowyard ...`")
        return password
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))
