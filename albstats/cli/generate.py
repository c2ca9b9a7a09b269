"""`albstats generate`: synthetic ALB access logs in the S3 key layout, deterministic by seed."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from albstats.cli import options
from albstats.errors import UsageError


def register(app: typer.Typer) -> None:
    """Add `generate`. The generator (and numpy) is imported only when the command runs, to keep start-up fast."""

    @app.command("generate", cls=options.Command)
    def generate(
        out: Annotated[
            str,
            options.output("DIR", "Write AWSLogs/... into this folder (created if missing; its parent must exist)."),
        ],
        start: Annotated[
            str | None,
            typer.Option(
                "--start",
                show_default=False,
                metavar="TIME",
                help="UTC start on a 5-minute boundary [default: 2026-11-16T00:00:00Z, fixed so runs are "
                "reproducible].",
            ),
        ] = None,
        days: Annotated[
            float, typer.Option("--days", metavar="DAYS", help="Length of the log span in days (fractions allowed).")
        ] = 1.0,
        rps: Annotated[
            float | None,
            typer.Option(
                "--rps",
                metavar="N",
                help="Mean requests per second around a daily curve [default: 5; not with --lines].",
            ),
        ] = None,
        lines: Annotated[
            int | None,
            typer.Option("--lines", metavar="N", help="Exact total number of lines instead of --rps (benchmarks)."),
        ] = None,
        seed: Annotated[
            int, typer.Option("--seed", metavar="N", help="Random seed: the same arguments give byte-identical files.")
        ] = 1,
        profile: Annotated[
            Literal["default", "hosp"],
            typer.Option(
                "--scenario",
                help="Traffic scenario: default (healthy, one incident a day) or hosp (the flaky "
                "vet-hospital system: frequent 5XX, 2 to 20 s responses).",
            ),
        ] = "default",
        nodes: Annotated[
            int | None,
            typer.Option(
                "--nodes",
                metavar="N",
                help="Load balancer nodes (one file each per 5 minutes) [default: 2 for default, 3 for hosp].",
            ),
        ] = None,
        format_era: Annotated[
            int | None,
            typer.Option(
                "--format-era",
                show_default=False,
                metavar="N",
                help="Tokens per line, i.e. the format era: 20, 24, 25, 27, 29, 30, 33, 34 (today's fields cut to that "
                'count; 36 adds two "-") [default: 34].',
            ),
        ] = None,
        compress_level: Annotated[
            int, typer.Option("--compress-level", metavar="LEVEL", help="gzip level 0-9 (1 is fastest).")
        ] = 6,
        quiet: options.Quiet = False,
    ) -> None:
        """Write realistic synthetic ALB access logs as ALB delivers them to S3.

        One .log.gz per load-balancer node per 5 minutes under
        DIR/AWSLogs/<account>/elasticloadbalancing/<region>/yyyy/mm/dd/ (the delivery date), with
        HTTP/HTTPS/h2/gRPC/WebSocket traffic, IPv6 clients, ELB- and target-generated 5XX, 460s,
        redirects, WAF blocks, a slow tail, scanners and incident windows. A one-line summary goes
        to stderr.
        """
        from albstats import progress
        from albstats.generate import DEFAULT_ERA, DEFAULT_START, expected_files
        from albstats.generate import generate as run
        from albstats.output import check_target

        check_target(out, "-o", folder=True)  # no tree of folders made from a mistyped path

        start = DEFAULT_START if start is None else start
        format_era = DEFAULT_ERA if format_era is None else format_era
        if rps is not None and lines is not None:
            raise UsageError("--rps and --lines: give one of them, not both")
        total = expected_files(days, profile, nodes) if 0 < days <= 3660 else None
        with progress.bar("generating files", total=total, quiet=quiet) as tick:
            done = 0

            def advance(files: int, lines_so_far: int) -> None:
                nonlocal done
                tick.advance(files - done, lines=lines_so_far)
                done = files

            summary = run(
                out,
                start=start,
                days=days,
                rps=5.0 if rps is None else rps,
                seed=seed,
                profile=profile,
                lines=lines,
                format_era=format_era,
                nodes=nodes,
                compresslevel=compress_level,
                on_file=advance,
            )
        if not quiet:
            typer.echo(f"albstats: {summary.line()}", err=True)
