"""The `flowyard` command: `up` starts the platform; the rest are thin clients of its REST API."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flowyard import __version__
from flowyard.errors import FlowyardError


class _Commands(click.Group):
    """Loads the client commands only when one is asked for, so `flowyard up` starts fast."""

    _loaded = False

    def _load(self) -> None:
        if not self._loaded:
            from flowyard.cli import commands

            commands.register(self)
            type(self)._loaded = True

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._load()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowyard")
def cli() -> None:
    """Flowyard: notebooks, pipelines, tuning, registry and serving in one process."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--home", type=click.Path(path_type=Path), help="Data folder [default: $FLOWYARD_HOME or ~/.flowyard].")
@click.option("--db", help="Database URL, e.g. postgresql://user@host/db [default: SQLite in the home].")
@click.option("--artifacts", help="Artifact store fsspec URL [default: file://<home>/artifacts].")
@click.option("--tls", is_flag=True, help="Serve HTTPS with a self-signed certificate kept in the home.")
@click.option("--cert", type=click.Path(exists=True, path_type=Path), help="TLS certificate (PEM).")
@click.option("--key", type=click.Path(exists=True, path_type=Path), help="TLS private key (PEM).")
@click.option("--keep-workloads", is_flag=True, help="On shutdown leave workloads running, to re-adopt next start.")
def up(host: str, port: int, home: Path | None, db: str | None, artifacts: str | None, tls: bool,
       cert: Path | None, key: Path | None, keep_workloads: bool) -> None:
    """Start Flowyard: API, UI and gateway in this process."""
    from flowyard.config import Settings
    from flowyard.server.serve import serve

    if bool(cert) != bool(key):
        raise click.UsageError("--cert and --key go together")
    settings = Settings(host=host, port=port, db=db, artifacts=artifacts, tls=tls, cert=cert, key=key,
                        keep_workloads=keep_workloads, **({"home": home} if home else {}))
    serve(settings)


def main() -> None:
    """Entry point: one line and a non-zero exit on any error, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except FlowyardError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
