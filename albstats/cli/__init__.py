"""The `albstats` command: a thin Typer app. Each module in this package registers one concern's commands.

Commands only parse arguments and call library functions; errors derived from
:class:`albstats.errors.AlbstatsError` become one line on stderr and the error's exit code.

A command's module is imported (and its commands built) only when that command runs or help lists
it: `albstats query` over a warm cache should not pay for the imports and signatures of a dozen other
commands (:data:`COMMANDS` says which module registers what; a test checks it against the modules).
"""

from __future__ import annotations

import errno
import importlib
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from albstats import __version__, shutdown
from albstats.errors import AlbstatsError

if TYPE_CHECKING:
    from typer._click import Command as ClickCommand  # why a private name here: see cli/options.py

    from albstats.cli.options import ClickContext

#: One module per concern; each defines ``register(app)``.
COMMAND_MODULES = ("parse", "generate", "query", "athena", "report", "proxy", "slo", "cache")
#: Each top-level command or group -> the module that registers it, in the order help lists them.
COMMANDS = {
    "parse": "parse",
    "generate": "generate",
    "query": "query",
    "fetch": "athena",
    "report": "report",
    "weekly": "report",
    "upstream-sim": "proxy",
    "compare": "proxy",
    "whatif": "proxy",
    "sql": "query",
    "athena": "athena",
    "proxy": "proxy",
    "check": "slo",
    "slo": "slo",
    "cache": "cache",
}
#: Settings every command is built with (the root app's; Typer applies them per command).
_TYPER_SETTINGS: dict[str, Any] = dict(pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)


def module_app(module: str) -> typer.Typer:
    """A Typer app holding the commands ``albstats.cli.<module>`` registers."""
    sub = typer.Typer(**_TYPER_SETTINGS)
    importlib.import_module(f"albstats.cli.{module}").register(sub)
    return sub


class AlbstatsGroup(TyperGroup):
    """Turns user-facing errors into ``albstats: error: ...`` and an exit code, also under CliRunner.

    Only ``typer`` is imported, never ``click``: Typer >= 0.26 carries its own copy of click (private), and a
    plain ``pip install albstats`` has no separate click package. Typer's public ``TyperException`` is the
    base of the errors its parser raises (an unknown option, a value that is no int, a missing argument).
    """

    def list_commands(self, ctx: ClickContext) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: ClickContext, cmd_name: str) -> ClickCommand | None:
        """The command ``cmd_name``, building its module's commands the first time one is asked for."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            for name, cmd in typer.main.get_group(module_app(COMMANDS[cmd_name])).commands.items():
                self.add_command(cmd, name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: ClickContext, args: list[str]) -> tuple[str | None, ClickCommand | None, list[str]]:
        if args and args[0] not in COMMANDS:  # build them all, so an unknown name gets "Did you mean ...?"
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return self._invoke(ctx)
        except BaseException as e:
            # SIGTERM or SIGHUP arrived: whatever it became on its way out (an interrupted DuckDB query is a
            # RuntimeError, a parse worker stopped with the group a BrokenProcessPool), the exit says so
            code = shutdown.exit_code()
            if code is None or getattr(e, "exit_code", None) == code:
                raise
            _say(shutdown.describe(code))
            ctx.exit(code)

    def _invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except AlbstatsError as e:
            typer.echo(f"albstats: error: {e}", err=True)
            ctx.exit(e.exit_code)
        except typer.TyperException as e:
            if type(e).__name__ == "NoArgsIsHelpError":
                raise  # `albstats sql`: the help text, as asked
            # the parser's own (an int that is not one, an unknown option): one line like ours, not a usage
            # block; a usage error carries the context of the command it was raised in
            hint = ""
            if hasattr(e, "ctx"):
                hint = f" (see {e.ctx.command_path if e.ctx is not None else 'albstats'} --help)"
            typer.echo(f"albstats: error: {e.format_message().rstrip('.')}{hint}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise  # `albstats ... | head`: click exits quietly
            # the file system said no (permissions, a full disk, a file where a folder should be): its own words
            where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
            typer.echo(f"albstats: error: {where + ': ' if where else ''}{e.strerror or e}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP (albstats.shutdown): cleaned up on the way here
            code = shutdown.exit_code(e) or 130
            _say(shutdown.describe(code))
            ctx.exit(code)


def _say(line: str) -> None:
    """A line on stderr that may be gone (SIGHUP: the terminal closed): the exit code still tells."""
    try:
        typer.echo(line, err=True)
    except OSError:
        pass


app = typer.Typer(
    cls=AlbstatsGroup,
    no_args_is_help=True,
    **_TYPER_SETTINGS,
    help="Answers from AWS Application Load Balancer access logs: SLOs, 5XX sources, "
    "latency, security findings, and before/after comparisons.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"albstats {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Answers from AWS Application Load Balancer access logs."""


def main() -> None:
    """The ``albstats`` console script: SIGTERM and SIGHUP handled like Ctrl-C (:mod:`albstats.shutdown`)."""
    shutdown.install()
    try:
        app()
    except SystemExit as e:
        # a signal that landed outside a command (click turns a KeyboardInterrupt there into "Aborted!", 1)
        code = shutdown.exit_code()
        if code is not None and e.code != code:
            raise SystemExit(code) from None
        raise
