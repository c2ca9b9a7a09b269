"""`albstats slo validate` and `albstats check`: SLO files and the 5-minute burn-rate check.

Argument parsing only: :mod:`albstats.objectives` reads SLO files, :mod:`albstats.check` evaluates
alerts and keeps the state.
"""

from __future__ import annotations

from typing import Annotated

import typer

from albstats.cli import options
from albstats.errors import SloBreached, UsageError


def register(app: typer.Typer) -> None:
    """Add the `slo` group and `check`."""
    slo_app = typer.Typer(no_args_is_help=True, help="SLO files: per-service objectives as code.")
    app.add_typer(slo_app, name="slo")

    @slo_app.command("validate", cls=options.Command)
    def validate_cmd(
        file: Annotated[str, typer.Argument(metavar="FILE", help="The SLO file (YAML) to check.")],
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Print nothing when the file is valid (no progress, no summary).")
        ] = False,
    ) -> None:
        """Check an SLO file; every mistake is printed as FILE:LINE: what is wrong (exit 2).

        A valid file prints one line per SLO: service, selection, window, objective and alerts.
        """
        from albstats.objectives import load

        spec = load(file)
        if quiet:
            return
        for s, o in spec.slos:
            alerts = ", ".join(f"{a.severity} {a.name} >{a.burn_rate:g}x" for a in s.alerts) or "no alerts"
            typer.echo(f"{s.name}/{o.name}: {o.describe()}; {s.selector.describe()}; {s.window.describe()}; {alerts}")
        typer.echo(
            f"{file}: valid, {len(spec.services)} services, {len(spec.slos)} SLOs, no-data alert after "
            f"{int(spec.no_data.total_seconds() // 60)} minutes"
        )

    @app.command("check", cls=options.Command)
    def check_cmd(
        paths: options.LogPaths = None,
        *,  # keyword-only: the required options stay where --help lists them
        slo_file: Annotated[str, typer.Option("--slo-file", metavar="FILE", help="The SLO file (YAML).")],
        state: Annotated[
            str,
            typer.Option(
                "--state", metavar="FILE", help="State file: which alerts fired at the last run (created if missing)."
            ),
        ],
        webhook: Annotated[
            str | None,
            typer.Option(
                "--webhook",
                envvar="ALBSTATS_WEBHOOK_URL",
                show_envvar=True,
                metavar="URL",
                help="Slack-compatible webhook for alerts that start firing or resolve (secret: never printed; prefer "
                "the environment variable).",
            ),
        ] = None,
        now: Annotated[
            str | None,
            typer.Option(
                "--now", metavar="TIME", help="Evaluate at this time (UTC, ISO-8601) instead of at the newest data."
            ),
        ] = None,
        engine: options.EngineChoice = "local",
        lock_timeout: Annotated[
            float,
            typer.Option("--lock-timeout", metavar="SECONDS", help="Wait this long for an overlapping run to finish."),
        ] = 120.0,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="No progress and no summary: print nothing but errors.")
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
        """Evaluate every burn-rate alert of every SLO now, for a cron every 5 minutes.

        Posts to the webhook only alerts that started firing or resolved since the last run (kept in
        --state; overlapping runs wait for each other). "No new log file for N minutes" (noData in
        the SLO file) is an alert of its own. Exit 0 when no page alert fires, 3 while one does,
        1 on an error (a webhook failure included: the next run posts again).
        """
        from albstats import check
        from albstats.cli.report import _connector
        from albstats.engines.base import parse_time
        from albstats.objectives import load

        spec = load(slo_file)
        t_now = parse_time(now, name="now") if now else None
        if not 0 <= lock_timeout <= 3600:
            raise UsageError("--lock-timeout must be between 0 and 3600 seconds")
        athena = options.athena_settings(database, table, workgroup, output_location, region, profile)
        connect = _connector(list(paths or []), engine, db, no_cache, True, athena)
        res = check.run(connect, spec, state=state, webhook=webhook, now=t_now, lock_timeout=lock_timeout)
        if not quiet:
            firing = [a for a in res.alerts if a.firing]
            typer.echo(
                f"evaluated at {check._iso(res.at)} (newest request {check._iso(res.newest_request) or 'none'}): "
                f"{len(res.alerts)} alerts, {len(firing)} firing, {len(res.transitions)} changed"
                + (", posted" if res.posted else "")
            )
            for a in firing:
                typer.echo(f"  FIRING {a.severity} {a.key}: {a.summary}")
            for t in res.transitions:
                if t.status == "resolved":
                    typer.echo(f"  resolved {t.alert.severity} {t.key}")
        if res.paging:
            raise SloBreached(f"{len(res.paging)} page alert(s) firing: " + ", ".join(a.key for a in res.paging))
