"""`albstats parse`: log lines to JSON Lines, CSV or Parquet with the Athena column names."""

from __future__ import annotations

import gc
import os

import typer

from albstats.errors import InputError


def register(app: typer.Typer) -> None:
    """Add `parse`."""

    @app.command("parse")
    def parse(
        paths: list[str] = typer.Argument(..., help="Log files, folders, globs, s3:// prefixes, or - (stdin)."),
        format: str = typer.Option("jsonl", "--format", "-f", help="jsonl, csv or parquet."),
        output: str = typer.Option(None, "-o", "--output", help="Output file (default: stdout); for parquet a "
                                   "folder, the dataset by day (a .parquet name: one file)."),
        fields: str = typer.Option(None, "--fields", help="Comma-separated columns to keep, in this order."),
        kind: str = typer.Option("auto", "--kind", help="access, connection, or auto (from the first file)."),
        strict: bool = typer.Option(False, "--strict", help="Fail on the first malformed line."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
    ) -> None:
        """Parse ALB access (or connection) logs into records whose keys are the Athena column names.

        A summary of files, lines and malformed lines goes to stderr, with the first few bad lines as
        file:line. Exit code 1 if a file was damaged (its good lines are still written).
        """
        # numpy's OpenBLAS would start a spinning thread per core that parsing never uses
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        from albstats.parse import parse_files

        # the modules just imported live as long as the process: the collector need not walk them on
        # every pass (about 50 ms of a parse's single parent process)
        gc.freeze()
        stats = parse_files(paths, fmt=format, output=output,
                            fields=fields.split(",") if fields else None, kind=kind, strict=strict, quiet=quiet)
        if not quiet:
            typer.echo(f"albstats: {stats.summary()}", err=True)
            for ex in stats.bad_examples():
                typer.echo(f"  malformed: {ex}", err=True)
        for err in stats.errors:
            typer.echo(f"albstats: error: {err}", err=True)
        if stats.errors:
            raise typer.Exit(InputError.exit_code)
