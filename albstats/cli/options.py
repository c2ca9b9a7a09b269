"""Options several commands share (engine choice, cache, Athena settings), declared once, and the
command class that keeps every command's options to the same conventions (docs/cli.md).

They are ``Annotated`` types (Typer's documented style): using one type in several commands keeps names,
placeholders and help texts identical everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from typer.core import TyperCommand, TyperGroup

from albstats.errors import UsageError

if TYPE_CHECKING:
    # Typer declares the methods of TyperCommand and TyperGroup that a subclass overrides with the Context of
    # its bundled click (what they are called with; typer.Context is a subclass of it, narrower than an
    # override may ask for). Typer exports no public name for it: mypy reads it here, run time never imports it.
    from typer._click import Context as ClickContext

#: Old spellings kept working in the commands that had them (scripts and cron jobs): hidden, with a
#: one-line notice on stderr. Command name -> {old: new}.
DEPRECATED_ALIASES = {cmd: {"--out": "--output"} for cmd in ("report", "weekly", "generate", "fetch")}
#: Old names that mean something else elsewhere in albstats now (``--profile`` is the AWS profile): not
#: aliases but an error naming the new option, so a script never runs with an option silently reinterpreted.
#: Old name -> (its new names, what the old name means now).
RENAMED = {
    "--profile": (("--scenario", "--policy"), "the AWS profile"),
    "--bucket": (("--s3-bucket",), "the time-bucket width"),
    "--prefix": (("--s3-prefix",), "the nginx prefix folder"),
}


def _takes_value(param: Any) -> bool:
    return param.param_type_name == "option" and not param.is_flag and not param.count


def translate_args(cmd: Any, args: list[str], *, group: bool = False) -> list[str]:
    """``args`` with deprecated option spellings replaced (a notice on stderr for each), or a UsageError for an
    option that was renamed because its old name means something else now.

    Only option positions are looked at: option values, anything after ``--`` and (for a group) anything from
    its subcommand on are left as they are.
    """
    opts = {name: p for p in cmd.params if p.param_type_name == "option" for name in (*p.opts, *p.secondary_opts)}
    out = list(args)
    i = 0
    while i < len(out):
        tok = out[i]
        if tok == "--" or (group and not tok.startswith("-")):
            break
        name, eq, value = tok.partition("=")
        if name.startswith("--") and name not in opts:
            new = DEPRECATED_ALIASES.get(cmd.name, {}).get(name)
            if new is not None and new in opts:
                typer.echo(
                    f"albstats: warning: {name} is deprecated; use {' or '.join(opts[new].opts)} (same meaning)",
                    err=True,
                )
                out[i] = name = new
                if eq:
                    out[i] += f"={value}"
            new_names, meaning = RENAMED.get(name, ((), ""))
            renamed = [n for n in new_names if n in opts]
            if renamed:
                raise UsageError(
                    f"{name} was renamed {renamed[0]} in `{cmd.name}` ({name} is {meaning} elsewhere in albstats)"
                )
        if not eq and name in opts and _takes_value(opts[name]):
            i += 1  # skip its value
        i += 1
    return out


class Command(TyperCommand):
    """The class of every albstats command: placeholders as in click's usage lines (``PATH...`` required,
    ``[PATH]...`` optional; Typer would print ``{PATH...}``), and :func:`translate_args` before parsing."""

    def collect_usage_pieces(self, ctx: ClickContext) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            var = param.metavar or param.name.upper()
            if param.nargs != 1 and not var.endswith("..."):
                var += "..."
            if not param.required:
                base = var.removesuffix("...")
                var = f"[{base}]" + var[len(base) :]
            pieces.append(var)
        return pieces

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        return super().parse_args(ctx, translate_args(self, args))


class Group(TyperGroup):
    """For a group with options of its own (``albstats proxy``): :func:`translate_args` on the group's part."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        return super().parse_args(ctx, translate_args(self, args, group=True))


def output(metavar: str, help: str) -> Any:
    """The ``-o/--output`` option (``--out`` still works, with a notice), for ``Annotated[str | None, ...]``.

    Why a function: the names and the no-default display are declared once, the placeholder (FILE, DIR,
    PATH) and the help text say what each command writes.
    """
    return typer.Option("-o", "--output", metavar=metavar, help=help, show_default=False)


#: A local or the Athena query engine (``--engine``).
Engine = Literal["local", "athena"]

# The options several commands share, declared once (`Annotated` types, Typer's documented style): a command
# takes ``db: options.Db = None`` and gets the same name, placeholder and help as every other command.
EngineChoice = Annotated[
    Engine, typer.Option("--engine", help="Query engine: local (DuckDB over the files) or athena.")
]
Since = Annotated[
    str | None, typer.Option("--since", metavar="TIME", help="Window start, UTC: ISO-8601 or relative (7d, 12h).")
]
Until = Annotated[
    str | None, typer.Option("--until", metavar="TIME", help="Window end (exclusive), UTC: ISO-8601 or relative.")
]
LogPaths = Annotated[
    list[str] | None,
    typer.Argument(metavar="PATH...", help="Log files, folders, globs or s3:// prefixes (local engine)."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")]
Db = Annotated[
    str | None,
    typer.Option("--db", metavar="DIR", help="Cache folder (local engine; default ~/.cache/albstats/dataset)."),
]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Parse the files into a temporary dataset (local engine).")]
Database = Annotated[str | None, typer.Option("--database", metavar="NAME", help="Athena database.")]
Table = Annotated[str | None, typer.Option("--table", metavar="NAME", help="Athena table.")]
Workgroup = Annotated[
    str | None, typer.Option("--workgroup", metavar="NAME", help="Athena workgroup (default: primary).")
]
OutputLocation = Annotated[
    str | None,
    typer.Option("--output-location", metavar="URL", help="Athena results, s3://... (default: the workgroup's)."),
]
Region = Annotated[str | None, typer.Option("--region", metavar="REGION", help="AWS region (S3 and Athena).")]
Profile = Annotated[
    str | None,
    typer.Option("--profile", metavar="NAME", help="AWS profile (S3 and Athena; default: the standard boto3 chain)."),
]


def athena_settings(
    database: str | None,
    table: str | None,
    workgroup: str | None,
    output_location: str | None,
    region: str | None,
    profile: str | None,
) -> dict[str, Any]:
    """The Athena options as the keyword arguments engines.connect takes (None where not given)."""
    return dict(
        database=database,
        table=table,
        workgroup=workgroup,
        output_location=output_location,
        region=region,
        profile=profile,
    )
