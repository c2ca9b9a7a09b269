"""`albstats parse`: log lines to JSON Lines, CSV or Parquet with the Athena column names."""

from __future__ import annotations

import os
from typing import Annotated, Literal

import typer

from albstats.cli import options
from albstats.errors import InputError, UsageError


def register(app: typer.Typer) -> None:
    """Add `parse`."""

    @app.command("parse", cls=options.Command)
    def parse(
        paths: Annotated[
            list[str],
            typer.Argument(metavar="PATH...", help="Log files, folders, globs, s3:// prefixes, or - (stdin)."),
        ],
        format: Annotated[
            Literal["jsonl", "csv", "parquet"], typer.Option("--format", "-f", help="Output format.")
        ] = "jsonl",
        output: Annotated[
            str | None,
            options.output(
                "PATH",
                "Write to this file (default: stdout); for parquet a folder, the dataset by day (a .parquet "
                "name: one file); its parent must exist.",
            ),
        ] = None,
        fields: Annotated[
            str | None,
            typer.Option("--fields", metavar="COLUMNS", help="Comma-separated columns to keep, in this order."),
        ] = None,
        kind: Annotated[
            Literal["auto", "access", "connection"],
            typer.Option("--kind", help="Access or connection logs; auto: connection logs if every file is one."),
        ] = "auto",
        strict: Annotated[bool, typer.Option("--strict", help="Fail on the first malformed line.")] = False,
        quiet: options.Quiet = False,
        profile: options.Profile = None,
        region: options.Region = None,
    ) -> None:
        """Parse ALB access (or connection) logs into records whose keys are the Athena column names.

        A summary of files, lines and malformed lines goes to stderr, with the first few bad lines as
        file:line. Exit code 1 if a file was damaged (its good lines are still written).
        """
        # numpy's OpenBLAS would start a spinning thread per core that parsing never uses
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        from albstats.parse import parse_files

        s3 = {k: v for k, v in (("profile", profile), ("region", region)) if v is not None}
        if s3 and not any(p.startswith("s3://") for p in paths):
            raise UsageError(f"--{next(iter(s3))} is the AWS {next(iter(s3))}, for s3:// paths only")

        stats = parse_files(
            paths,
            fmt=format,
            output=output,
            fields=fields.split(",") if fields else None,
            kind=kind,
            strict=strict,
            quiet=quiet,
            s3_options=s3 or None,
        )
        if not quiet:
            typer.echo(f"albstats: {stats.summary()}", err=True)
            for ex in stats.bad_examples():
                typer.echo(f"  malformed: {ex}", err=True)
        from albstats.inputs import no_log_files

        if (nothing := no_log_files(paths, stats)) is not None:  # said even with --quiet: empty output is not fine
            typer.echo(f"albstats: warning: {nothing}", err=True)
        for err in stats.errors:
            typer.echo(f"albstats: error: {err}", err=True)
        if stats.errors:
            raise typer.Exit(InputError.exit_code)
