"""`albstats report` and `albstats weekly`: the SLO report and the weekly cron summary.

Only argument parsing lives here: :mod:`albstats.report` computes, :mod:`albstats.render` writes,
:mod:`albstats.weekly` picks the week and posts the summary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import typer

from albstats.cli import options
from albstats.errors import InputError, SloBreached, UsageError


def _options(
    slo: str,
    latency_slo: str | None,
    count_460: bool,
    since: str | None = None,
    until: str | None = None,
    min_client_4xx: int = 100,
    now: datetime | None = None,
    allow_empty: bool = False,
    slo_file: str | None = None,
) -> Any:
    from albstats import slo as slo_mod
    from albstats.engines.base import parse_time
    from albstats.report import Options

    target = slo_mod.parse_slo(slo)
    thr, lat_target = slo_mod.parse_latency_slo(latency_slo or "1s@95")
    t_since = parse_time(since, name="since", now=now) if since else None
    t_until = parse_time(until, name="until", now=now) if until else None
    if t_since and t_until and t_since >= t_until:
        raise UsageError(f"--since {since} is not before --until {until}")
    if min_client_4xx < 1:
        raise UsageError("--min-client-4xx must be at least 1")
    return Options(
        slo=target,
        latency_threshold=thr,
        latency_target=lat_target,
        latency_slo_given=latency_slo is not None,
        count_460=count_460,
        since=t_since,
        until=t_until,
        min_client_4xx=min_client_4xx,
        allow_empty=allow_empty,
        slo_file=_slo_file(slo_file),
    )


def _slo_file(path: str | None) -> Any:
    """--slo-file read and checked before any work (every mistake with its line)."""
    if path is None:
        return None
    from albstats.objectives import load

    return load(path)


SloFile = Annotated[
    str | None,
    typer.Option(
        "--slo-file",
        metavar="FILE",
        help="Per-service SLOs (YAML; see docs/slo.md): an overview row and a section per "
        "SLO, and the breach verdict over all of them.",
    ),
]
CountBad460 = Annotated[bool, typer.Option("--count-460", help="Count 460 (client gave up) as bad too.")]


def _warn(r: Any, strict: bool) -> None:
    """No data (with --allow-empty) and damaged input on stderr, --quiet or not: cron mails must carry them."""
    if r.no_data:
        from albstats.render.headline import headline

        typer.echo(f"albstats: warning: {headline(r)}", err=True)
    problems = r.data_quality.problems
    if problems and not strict:  # with --strict the error line says it
        typer.echo(f"albstats: warning: {problems.short()}", err=True)


def _connector(
    paths: list[str], engine: options.Engine, db: str | None, no_cache: bool, quiet: bool, athena: dict[str, Any]
) -> Any:
    from albstats.cli.query import _engine

    if engine == "local" and not paths:
        raise UsageError("give log files, folders or s3:// prefixes to read (or use --engine athena)")
    return lambda: _engine(paths, engine, db, no_cache, quiet, athena)


def register(app: typer.Typer) -> None:
    """Add `report` and `weekly`."""

    @app.command("report", cls=options.Command)
    def report_cmd(
        paths: options.LogPaths = None,
        engine: options.EngineChoice = "local",
        since: options.Since = None,
        until: options.Until = None,
        slo: Annotated[
            str,
            typer.Option(
                "--slo",
                metavar="PERCENT",
                help="Availability SLO in percent: share of requests with elb_status_code below 500.",
            ),
        ] = "99.0",
        latency_slo: Annotated[
            str | None,
            typer.Option(
                "--latency-slo",
                metavar="DURATION@PERCENT",
                help="Latency SLO, e.g. 1s@95: 95 % of requests under 1 s total time. Without it, 1s@95 is shown for "
                "information only.",
            ),
        ] = None,
        count_460: CountBad460 = False,
        slo_file: SloFile = None,
        out: Annotated[
            str | None,
            options.output(
                "DIR",
                "Write report.md, report.html, report.json and PNGs into this folder (created if missing; its "
                "parent must exist).",
            ),
        ] = None,
        format: Annotated[
            Literal["terminal", "md", "html", "json"], typer.Option("--format", "-f", help="Output format to print.")
        ] = "terminal",
        quiet: Annotated[
            bool,
            typer.Option(
                "--quiet",
                "-q",
                help="No progress bar and no terminal summary (md, html or json asked for with "
                "--format are still printed).",
            ),
        ] = False,
        fail_on_breach: Annotated[
            bool, typer.Option("--fail-on-breach", help="Exit 3 when the SLO was breached.")
        ] = False,
        allow_empty: Annotated[
            bool,
            typer.Option(
                "--allow-empty",
                help="A window without requests gives a 'no data' report (exit 0) instead of an error (exit 1).",
            ),
        ] = False,
        strict: Annotated[
            bool,
            typer.Option(
                "--strict", help="Exit 1 (after writing the report) when any input was damaged, skipped or malformed."
            ),
        ] = False,
        min_client_4xx: Annotated[
            int, typer.Option("--min-client-4xx", metavar="N", help="4XX answers that flag a client.")
        ] = 100,
        db: options.Db = None,
        no_cache: options.NoCache = False,
        database: options.Database = None,
        table: options.Table = None,
        workgroup: options.Workgroup = None,
        output_location: options.OutputLocation = None,
        region: options.Region = None,
        profile: options.Profile = None,
    ) -> None:
        """The SLO report: availability and error budget, latency, where 5XX come from, security, data quality.

        Prints a summary; with -o DIR also writes report.md, report.html (self-contained),
        report.json and PNG charts, all or nothing. Without --since the window is all the data given
        (local engine) or the last 7 days (athena). Exit 3 with --fail-on-breach when the SLO was missed;
        exit 1 when the window holds no request (unless --allow-empty), or with --strict when input was
        damaged, skipped or malformed.
        """
        from albstats.render import render_text, write
        from albstats.report import NoData, build

        opts = _options(
            slo, latency_slo, count_460, since, until, min_client_4xx, allow_empty=allow_empty, slo_file=slo_file
        )
        if out:
            from albstats.output import check_target

            check_target(out, "-o", folder=True)  # before the work, not after it
        athena = options.athena_settings(database, table, workgroup, output_location, region, profile)
        connect = _connector(list(paths or []), engine, db, no_cache, quiet, athena)
        with connect() as eng:
            try:
                r = build(eng, opts)
            except NoData as e:
                raise NoData(f"{e} (--allow-empty reports this as no data)") from None
        _warn(r, strict)
        if out:
            write(r, out)
        if format != "terminal":
            typer.echo(render_text(r, format), nl=False)
        elif not quiet:
            from rich.console import Console

            from albstats.render import terminal

            terminal.render(r, Console(), plots_dir=out)
        if strict and (reason := r.strict_failure()):
            shown = (
                f" (report written to {out})"
                if out
                else " (report printed)"
                if format != "terminal" or not quiet
                else ""
            )
            raise InputError(reason + shown)
        if fail_on_breach and r.breached:
            raise SloBreached(_breach_message(r))

    @app.command("weekly", cls=options.Command)
    def weekly_cmd(
        ctx: typer.Context,
        paths: options.LogPaths = None,
        engine: options.EngineChoice = "local",
        out: Annotated[
            str | None, options.output("DIR", "Write the week's report into DIR/YYYY-Www/ (DIR's parent must exist).")
        ] = None,
        webhook: Annotated[
            str | None,
            typer.Option(
                "--webhook",
                envvar="ALBSTATS_WEBHOOK_URL",
                show_envvar=True,
                metavar="URL",
                help="Slack-compatible webhook for the summary (secret: never printed; prefer the environment "
                "variable).",
            ),
        ] = None,
        slo: Annotated[str, typer.Option("--slo", metavar="PERCENT", help="Availability SLO in percent.")] = "99.0",
        latency_slo: Annotated[
            str | None, typer.Option("--latency-slo", metavar="DURATION@PERCENT", help="Latency SLO, e.g. 1s@95.")
        ] = None,
        count_460: CountBad460 = False,
        slo_file: SloFile = None,
        now: Annotated[
            str | None,
            typer.Option(
                "--now",
                metavar="TIME",
                help="Pretend it is this time (UTC, ISO-8601): the report covers the last full ISO week before it.",
            ),
        ] = None,
        webhook_retries: Annotated[
            int,
            typer.Option(
                "--webhook-retries",
                metavar="N",
                help="Retries after a 5XX, 429, timeout or connection error (backoff 1, 2, 4 ... s).",
            ),
        ] = 3,
        webhook_timeout: Annotated[
            float, typer.Option("--webhook-timeout", metavar="SECONDS", help="Seconds per webhook attempt.")
        ] = 10.0,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="No progress bar and no summary: print nothing but errors.")
        ] = False,
        db: options.Db = None,
        no_cache: options.NoCache = False,
        database: options.Database = None,
        table: options.Table = None,
        workgroup: options.Workgroup = None,
        output_location: options.OutputLocation = None,
        region: options.Region = None,
        profile: options.Profile = None,
    ) -> None:
        """Last full ISO week (UTC Monday to Monday) with deltas against the week before, for cron.

        Writes DIR/YYYY-Www/ (report files plus weekly.json with the deltas), posts a short summary
        to the webhook (retried on 5XX and connection errors), and exits 0 when the SLO was met,
        3 when it was breached, 1 on an error (a week without requests included), after posting a
        short failure notice to the webhook. No progress bars without a terminal.
        """
        from datetime import UTC

        from albstats import weekly
        from albstats.engines.base import parse_time

        # the enum is click's (or Typer's copy of click): compare by name
        from_env = getattr(ctx.get_parameter_source("webhook"), "name", None) == "ENVIRONMENT"
        hook_name = weekly.WEBHOOK_ENV if from_env else weekly.WEBHOOK_OPTION
        if webhook:
            weekly.check_webhook_url(webhook, hook_name)  # a bad URL cannot carry a failure notice: exit 2 now
        retries_ok = 0 <= webhook_retries <= weekly.MAX_ATTEMPTS - 1
        timeout_ok = 0 < webhook_timeout <= weekly.MAX_TIMEOUT
        # bad options: cron's webhook hears it too (with safe retry settings when those are the bad ones)
        notice = weekly.FailureNotice(
            webhook,
            attempts=webhook_retries + 1 if retries_ok else 1,
            timeout=webhook_timeout if timeout_ok else 10.0,
            name=hook_name,
        )
        with notice:
            t_now = parse_time(now, name="now") if now else datetime.now(UTC)
            notice.week = weekly.previous_week(t_now)
            if not retries_ok:
                raise UsageError(f"--webhook-retries must be between 0 and {weekly.MAX_ATTEMPTS - 1}")
            if not timeout_ok:
                raise UsageError(f"--webhook-timeout must be above 0 and at most {weekly.MAX_TIMEOUT:g} seconds")
            opts = _options(slo, latency_slo, count_460, now=t_now, slo_file=slo_file)
            athena = options.athena_settings(database, table, workgroup, output_location, region, profile)
            connect = _connector(list(paths or []), engine, db, no_cache, quiet, athena)
            if out:
                from albstats.output import check_target

                check_target(out, "-o", folder=True)
        res = weekly.run(
            connect,
            opts,
            now=t_now,
            out=out,
            webhook=webhook,
            webhook_attempts=webhook_retries + 1,
            webhook_timeout=webhook_timeout,
            webhook_name=hook_name,
        )
        if not quiet:
            typer.echo(res.text)
            if res.directory is not None:
                typer.echo(f"written to {res.directory}")
        if res.report.breached:
            raise SloBreached(_breach_message(res.report))


def _breach_message(r: Any) -> str:
    if r.options.slo_file is not None:
        bad = [
            f"{s.service}/{s.objective} {s.achieved * 100 if s.achieved is not None else 0:.3f} % < "
            f"{s.target * 100:g} %"
            for s in r.slos
            if not s.met
        ]
        return "SLO breached: " + ", ".join(bad)
    a = r.availability
    msg = (
        f"SLO breached: success rate {a.success_rate * 100 if a.success_rate is not None else 0:.3f} % "
        f"< {a.target * 100:g} %"
        if not a.met
        else ""
    )
    ls = r.latency.slo
    if r.options.latency_slo_given and not ls.met:
        lat = (
            f"latency SLO missed: {ls.share * 100 if ls.share is not None else 0:.2f} % under "
            f"{ls.threshold_seconds:g} s < {ls.target * 100:g} %"
        )
        msg = f"{msg}; {lat}" if msg else lat
    return msg
