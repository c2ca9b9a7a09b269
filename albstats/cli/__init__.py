"""The `albstats` command: a thin Typer app. Each module in this package registers one concern's commands.

Commands only parse arguments and call library functions; errors derived from
:class:`albstats.errors.AlbstatsError` become one line on stderr and the error's exit code.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from albstats import __version__
from albstats.errors import AlbstatsError

#: One module per concern; each defines ``register(app)``.
COMMAND_MODULES = ("parse", "generate", "query", "athena", "report", "proxy")


class AlbstatsGroup(TyperGroup):
    """Turns user-facing errors into ``albstats: error: ...`` and an exit code, also under CliRunner.

    Only ``typer`` is imported, never ``click``: Typer >= 0.26 carries its own copy of click, and a
    plain ``pip install albstats`` has no separate click package.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AlbstatsError as e:
            typer.echo(f"albstats: error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            typer.echo("albstats: interrupted", err=True)
            ctx.exit(130)


app = typer.Typer(cls=AlbstatsGroup, no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False, rich_markup_mode=None,
                  help="Answers from AWS Application Load Balancer access logs: SLOs, 5XX sources, "
                       "latency, security findings, and before/after comparisons.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"albstats {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Answers from AWS Application Load Balancer access logs."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"albstats.cli.{_name}").register(app)


def main() -> None:
    app()
