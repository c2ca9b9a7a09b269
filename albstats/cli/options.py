"""Options several commands share (engine choice, cache, Athena settings), declared once.

Typer reads these OptionInfo objects as parameter defaults; reusing one object in several commands
keeps names and help texts identical everywhere.
"""

from __future__ import annotations

from typing import Any

import typer

DB = typer.Option(None, "--db", help="Cache folder (local engine; default ~/.cache/albstats/dataset).")
NO_CACHE = typer.Option(False, "--no-cache", help="Parse the files into a temporary dataset (local engine).")
DATABASE = typer.Option(None, "--database", help="Athena database.")
TABLE = typer.Option(None, "--table", help="Athena table.")
WORKGROUP = typer.Option(None, "--workgroup", help="Athena workgroup.")
OUTPUT_LOCATION = typer.Option(None, "--output-location", help="Athena results, s3://...")
REGION = typer.Option(None, "--region", help="AWS region.")
PROFILE = typer.Option(None, "--profile", help="AWS profile.")


def athena_settings(database: str | None, table: str | None, workgroup: str | None, output_location: str | None,
                    region: str | None, profile: str | None) -> dict[str, Any]:
    """The Athena options as the keyword arguments engines.connect takes (None where not given)."""
    return dict(database=database, table=table, workgroup=workgroup, output_location=output_location,
                region=region, profile=profile)
