"""`albstats athena create-table` and `albstats fetch`: Athena table setup and mirroring raw logs from S3.

Argument parsing only; the work is in :mod:`albstats.engines.athena`, :mod:`albstats.athena_ddl` and
:mod:`albstats.s3`.
"""

from __future__ import annotations

import typer

from albstats.cli import options


def register(app: typer.Typer) -> None:
    """Add the `athena` group and `fetch`."""
    athena = typer.Typer(no_args_is_help=True, help="Amazon Athena: create the ALB log tables.")
    app.add_typer(athena, name="athena")

    @athena.command("create-table", cls=options.Command)
    def create_table(
        bucket: str = typer.Option(..., "--s3-bucket", metavar="NAME",
                                   help="S3 bucket the load balancer logs to (name only)."),
        prefix: str = typer.Option("", "--s3-prefix", metavar="PREFIX",
                                   help="Logging prefix in that bucket, the part before /AWSLogs/ (if any)."),
        account: str = typer.Option(..., "--account", metavar="ID", help="12-digit AWS account id in the log keys."),
        region: str = typer.Option(..., "--region", metavar="REGION",
                                   help="AWS region of the load balancer (in the log keys); also the Athena "
                                        "region unless --athena-region."),
        database: str = typer.Option("albstats", "--database", metavar="NAME",
                                     help="Athena database (created if missing)."),
        table: str = typer.Option(None, "--table", metavar="NAME",
                                  help="Athena table name (default alb_logs, or alb_connection_logs with "
                                       "--connection-logs)."),
        start: str = typer.Option("2024/01/01", "--from", metavar="DAY",
                                  help="First day of the day partitions, yyyy/MM/dd."),
        workgroup: str = typer.Option(None, "--workgroup", metavar="NAME", help="Athena workgroup (default: primary)."),
        output_location: str = typer.Option(None, "--output-location", metavar="URL",
                                            help="Athena results, s3://... (default: the workgroup's)."),
        connection_logs: bool = typer.Option(False, "--connection-logs",
                                             help="Create the connection-log table instead of the access-log one."),
        replace: bool = typer.Option(False, "--replace", help="Drop the table first (S3 data is untouched)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the DDL, send nothing."),
        profile: str = options.PROFILE,
        athena_region: str = typer.Option(None, "--athena-region", metavar="REGION",
                                          help="Run Athena in this AWS region instead."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress line."),
    ) -> None:
        """Create the Athena database and an external table over the ALB log layout.

        The table reads every log format era (fields AWS appends later go to extra_fields), is
        partitioned by day with partition projection (no MSCK REPAIR), and is safe to create
        twice (IF NOT EXISTS).
        """
        from albstats.athena_ddl import TableSpec
        from albstats.engines.athena import create_table as run

        kind = "connection" if connection_logs else "access"
        spec = TableSpec(bucket=bucket, prefix=prefix, account=account, region=region, database=database,
                         table=table or ("alb_connection_logs" if connection_logs else "alb_logs"),
                         start=start, kind=kind)
        stmts = run(spec, replace=replace, dry_run=dry_run, workgroup=workgroup, output_location=output_location,
                    region=athena_region or region, profile=profile, quiet=quiet)
        if dry_run:
            typer.echo(";\n\n".join(stmts) + ";")
            return
        typer.echo(f"albstats: table {spec.database}.{spec.table} is ready over {spec.location}", err=True)
        if not connection_logs:
            typer.echo(f"albstats: try: albstats query error_rate --engine athena --database {spec.database} "
                       f"--table {spec.table} --since 1d" + (f" --workgroup {workgroup}" if workgroup else ""),
                       err=True)

    @app.command("fetch", cls=options.Command)
    def fetch(
        url: str = typer.Argument(..., metavar="URL", help="s3://bucket/prefix holding ALB logs."),
        out: str = options.output("DIR", "Write the mirror into this folder, same layout (created if missing; its "
                                         "parent must exist).", required=True),
        since: str = typer.Option(None, "--since", metavar="TIME",
                                  help="Window start, UTC (ISO-8601 or 7d): only its day folders are fetched."),
        until: str = typer.Option(None, "--until", metavar="TIME",
                                  help="Window end (exclusive), UTC; the next day's folder is fetched too."),
        profile: str = options.PROFILE,
        region: str = typer.Option(None, "--region", metavar="REGION", help="AWS region of the bucket's endpoint."),
        workers: int = typer.Option(8, "--workers", min=1, max=64, metavar="N", help="Parallel downloads."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Mirror raw log files from S3, resumably (present files with the same size and ETag are skipped)."""
        from albstats.output import check_target
        from albstats.s3 import fetch as run

        check_target(out, "-o", folder=True)  # no tree of folders made from a mistyped path

        summary = run(url, out, since=since, until=until, profile=profile, region=region, max_workers=workers,
                      quiet=quiet)
        typer.echo(f"albstats: {summary.line()}", err=True)
