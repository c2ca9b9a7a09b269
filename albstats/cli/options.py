"""Options several commands share (engine choice, cache, Athena settings), declared once.

Typer reads these OptionInfo objects as parameter defaults; reusing one object in several commands
keeps names and help texts identical everywhere.
"""

from __future__ import annotations

import typer

DB = typer.Option(None, "--db", help="Ingest cache file (local engine; default ~/.cache/albstats/cache.duckdb).")
NO_CACHE = typer.Option(False, "--no-cache", help="Parse the files into a temporary database (local engine).")
DATABASE = typer.Option(None, "--database", help="Athena database.")
TABLE = typer.Option(None, "--table", help="Athena table.")
WORKGROUP = typer.Option(None, "--workgroup", help="Athena workgroup.")
OUTPUT_LOCATION = typer.Option(None, "--output-location", help="Athena results, s3://...")
REGION = typer.Option(None, "--region", help="AWS region.")
PROFILE = typer.Option(None, "--profile", help="AWS profile.")
