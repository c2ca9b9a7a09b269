"""`albstats athena create-table` and `albstats fetch`: Athena table setup and mirroring raw logs from S3.

Argument parsing only; the work is in :mod:`albstats.engines.athena`, :mod:`albstats.athena_ddl` and
:mod:`albstats.s3`.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Literal

import typer

from albstats.cli import options


def query_hint(database: str, table: str, command: str = "query", **given: str | None) -> str:
    """The command to try next (a query, or ``compact``), repeating every Athena option the user gave.

    Why: a hint that drops ``--output-location`` or ``--profile`` fails where create-table worked.
    """
    if command == "compact":
        args = ["albstats", "athena", "compact", "--database", database, "--table", table]
    else:
        args = ["albstats", "query", "error_rate", "--engine", "athena", "--database", database, "--table", table]
    for name, value in given.items():
        if value:
            args += [f"--{name.replace('_', '-')}", value]
    return shlex.join([*args, "--since", "7d" if command == "compact" else "1d"])


def register(app: typer.Typer) -> None:
    """Add the `athena` group and `fetch`."""
    athena = typer.Typer(
        no_args_is_help=True, help="Amazon Athena: create the ALB log tables, compact days into Parquet."
    )
    app.add_typer(athena, name="athena")

    @athena.command("create-table", cls=options.Command)
    def create_table(
        *,  # keyword-only: required and optional options in the order --help lists them
        bucket: Annotated[
            str, typer.Option("--s3-bucket", metavar="NAME", help="S3 bucket the load balancer logs to (name only).")
        ],
        prefix: Annotated[
            str,
            typer.Option(
                "--s3-prefix",
                metavar="PREFIX",
                help="Logging prefix in that bucket, the part before /AWSLogs/ (if any).",
            ),
        ] = "",
        account: Annotated[
            str, typer.Option("--account", metavar="ID", help="12-digit AWS account id in the log keys.")
        ],
        region: Annotated[
            str,
            typer.Option(
                "--region",
                metavar="REGION",
                help="AWS region of the load balancer (in the log keys); also the Athena region unless "
                "--athena-region.",
            ),
        ],
        database: Annotated[
            str, typer.Option("--database", metavar="NAME", help="Athena database (created if missing).")
        ] = "albstats",
        table: Annotated[
            str | None,
            typer.Option(
                "--table",
                metavar="NAME",
                help="Athena table name (default alb_logs, or alb_connection_logs with --connection-logs).",
            ),
        ] = None,
        start: Annotated[
            str, typer.Option("--from", metavar="DAY", help="First day of the day partitions, yyyy/MM/dd.")
        ] = "2024/01/01",
        workgroup: options.Workgroup = None,
        output_location: options.OutputLocation = None,
        connection_logs: Annotated[
            bool,
            typer.Option("--connection-logs", help="Create the connection-log table instead of the access-log one."),
        ] = False,
        replace: Annotated[
            bool, typer.Option("--replace", help="Drop the table first (S3 data is untouched).")
        ] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the DDL, send nothing.")] = False,
        profile: options.Profile = None,
        athena_region: Annotated[
            str | None, typer.Option("--athena-region", metavar="REGION", help="Run Athena in this AWS region instead.")
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress line.")] = False,
        table_format: Annotated[
            Literal["text", "parquet"],
            typer.Option(
                "--format",
                help="Table format: text (the table over the raw logs) or parquet (also the compacted Parquet table, "
                "see `athena compact`, named by --table).",
            ),
        ] = "text",
        location: Annotated[
            str | None,
            typer.Option(
                "--location", metavar="S3_URL", help="With --format parquet: s3://BUCKET/PREFIX/ for the Parquet files."
            ),
        ] = None,
    ) -> None:
        """Create the Athena database and an external table over the ALB log layout.

        The table reads every log format era (fields AWS appends later go to extra_fields), is
        partitioned by day with partition projection (no MSCK REPAIR), and is safe to create
        twice (IF NOT EXISTS). With --format parquet the compacted table is created too (same
        columns, Parquet, day=YYYY/MM/DD folders under --location), filled by `athena compact`.
        """
        from albstats.athena_ddl import ParquetSpec, TableSpec
        from albstats.athena_tables import create_parquet_table
        from albstats.athena_tables import create_table as run
        from albstats.errors import UsageError

        parquet = table_format == "parquet"
        if parquet and (connection_logs or not location):
            raise UsageError(
                "--format parquet needs --location s3://BUCKET/PREFIX/ (where the Parquet files go)"
                if not connection_logs
                else "--format parquet is for access logs, not --connection-logs"
            )
        if location and not parquet:
            raise UsageError("--location is for --format parquet")
        kind = "connection" if connection_logs else "access"
        spec = TableSpec(
            bucket=bucket,
            prefix=prefix,
            account=account,
            region=region,
            database=database,
            table=(None if parquet else table) or ("alb_connection_logs" if connection_logs else "alb_logs"),
            start=start,
            kind=kind,
        )
        engine_options = dict(
            workgroup=workgroup,
            output_location=output_location,
            region=athena_region or region,
            profile=profile,
            quiet=quiet,
        )
        pq = ParquetSpec(location, database, table or "alb_logs_parquet", start) if parquet and location else None
        if pq is not None:
            stmts = create_parquet_table(spec, pq, replace=replace, dry_run=dry_run, **engine_options)
        else:
            stmts = run(spec, replace=replace, dry_run=dry_run, **engine_options)
        if dry_run:
            typer.echo(";\n\n".join(stmts) + ";")
            return
        typer.echo(f"albstats: table {spec.database}.{spec.table} is ready over {spec.location}", err=True)
        if pq is not None:
            typer.echo(f"albstats: table {pq.database}.{pq.table} is ready over {pq.location}", err=True)
            typer.echo(
                "albstats: next: "
                + query_hint(
                    pq.database,
                    pq.table,
                    workgroup=workgroup,
                    output_location=output_location,
                    region=athena_region or region,
                    profile=profile,
                    command="compact",
                ),
                err=True,
            )
            typer.echo(
                "albstats: then: "
                + query_hint(
                    pq.database,
                    pq.table,
                    workgroup=workgroup,
                    output_location=output_location,
                    region=athena_region or region,
                    profile=profile,
                ),
                err=True,
            )
        elif not connection_logs:
            typer.echo(
                "albstats: try: "
                + query_hint(
                    spec.database,
                    spec.table,
                    workgroup=workgroup,
                    output_location=output_location,
                    region=athena_region or region,
                    profile=profile,
                ),
                err=True,
            )

    @athena.command("compact", cls=options.Command)
    def compact(
        since: Annotated[
            str, typer.Option("--since", metavar="TIME", help="Window start: first day to copy, UTC: ISO-8601 or 7d.")
        ],
        until: Annotated[
            str | None,
            typer.Option(
                "--until",
                metavar="TIME",
                help="Window end (exclusive), UTC; default now (today's day is copied as far as it goes).",
            ),
        ] = None,
        database: options.Database = None,
        table: Annotated[
            str | None,
            typer.Option("--table", metavar="NAME", help="Athena table: the Parquet one (default alb_logs_parquet)."),
        ] = None,
        source_table: Annotated[
            str | None, typer.Option("--source-table", metavar="NAME", help="The raw-log table (default alb_logs).")
        ] = None,
        workgroup: options.Workgroup = None,
        output_location: options.OutputLocation = None,
        region: options.Region = None,
        profile: options.Profile = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print the statements and folders, change nothing.")
        ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no per-day lines.")] = False,
    ) -> None:
        """Have Athena copy days from the raw-log table into the Parquet table (INSERT INTO ... SELECT per day).

        Re-running a day replaces it: the day's day=YYYY/MM/DD/ folder is emptied first. Queries then
        run unchanged with --engine athena --table <the Parquet table> and scan far less.
        """
        from albstats.athena_tables import compact as run
        from albstats.engines.base import parse_time

        t_since = parse_time(since, name="since")
        t_until = parse_time(until, name="until") if until is not None else None
        res = run(
            t_since,
            t_until,
            database=database,
            table=table,
            source=source_table,
            dry_run=dry_run,
            quiet=quiet,
            workgroup=workgroup,
            output_location=output_location,
            region=region,
            profile=profile,
            on_day=None if quiet else (lambda d: typer.echo(f"albstats: {d.line()}", err=True)),
        )
        if dry_run:
            typer.echo(";\n\n".join(res.statements) + ";")
            return
        typer.echo(f"albstats: {res.line()}", err=True)

    @app.command("fetch", cls=options.Command)
    def fetch(
        url: Annotated[str, typer.Argument(metavar="URL", help="s3://bucket/prefix holding ALB logs.")],
        out: Annotated[
            str,
            options.output(
                "DIR", "Write the mirror into this folder, same layout (created if missing; its parent must exist)."
            ),
        ],
        since: Annotated[
            str | None,
            typer.Option(
                "--since", metavar="TIME", help="Window start, UTC (ISO-8601 or 7d): only its day folders are fetched."
            ),
        ] = None,
        until: Annotated[
            str | None,
            typer.Option(
                "--until", metavar="TIME", help="Window end (exclusive), UTC; the next day's folder is fetched too."
            ),
        ] = None,
        profile: options.Profile = None,
        region: Annotated[
            str | None, typer.Option("--region", metavar="REGION", help="AWS region of the bucket's endpoint.")
        ] = None,
        workers: Annotated[int, typer.Option("--workers", min=1, max=64, metavar="N", help="Parallel downloads.")] = 8,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Mirror raw log files from S3, resumably (present files with the same size and ETag are skipped)."""
        from albstats.output import check_target
        from albstats.s3 import fetch as run

        check_target(out, "-o", folder=True)  # no tree of folders made from a mistyped path

        summary = run(
            url, out, since=since, until=until, profile=profile, region=region, max_workers=workers, quiet=quiet
        )
        typer.echo(f"albstats: {summary.line()}", err=True)
