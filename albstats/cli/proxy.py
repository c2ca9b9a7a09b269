"""`albstats proxy`, `albstats proxy nginx-config`, `albstats upstream-sim`, `albstats compare`, `albstats whatif`.

`albstats proxy --upstream URL` runs the proxy (the group's default action); `albstats proxy
nginx-config` prints the equivalent nginx configuration instead. Both take the same policy options.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from albstats.cli import options
from albstats.errors import UsageError

if TYPE_CHECKING:
    from albstats.proxy.policy import RetryPolicy

#: The retry policies of albstats.proxy.policy.PROFILES (a test checks they agree).
Policy = Literal["recommended", "seed"]
PolicyChoice = Annotated[
    Policy, typer.Option("--policy", help="Retry policy: recommended or seed (the original 5 tries, 3 s apart).")
]
#: A number of seconds, or None for the policy's own.
Seconds = float | None
FormatChoice = Annotated[Literal["table", "json"], typer.Option("--format", "-f", help="Output format.")]


def _policy(
    profile: str,
    tries: int | None,
    per_try_timeout: float | None,
    deadline: float | None,
    retry_budget: float | None,
    backoff: float | None,
    backoff_cap: float | None = None,
    retry_500: bool = False,
) -> RetryPolicy:
    from albstats.proxy.policy import PROFILES, make_policy

    over: dict[str, object] = {
        "max_attempts": tries,
        "per_try_timeout": per_try_timeout,
        "deadline": deadline,
        "backoff_cap": backoff_cap,
    }
    if retry_budget is not None:
        if retry_budget < 0:
            raise UsageError("--retry-budget must be >= 0 (0 allows only the floor of retries)")
        over["budget_ratio"] = retry_budget
    if backoff is not None:
        if backoff < 0:
            raise UsageError("--backoff must be >= 0 seconds")
        if profile in PROFILES and PROFILES[profile].fixed_interval is not None:
            over["fixed_interval"] = backoff
        else:
            over["backoff_base"] = backoff
    if retry_500 and profile in PROFILES:
        over["retry_statuses"] = PROFILES[profile].retry_statuses | {500}
    return make_policy(profile, **over)


def register(app: typer.Typer) -> None:
    """Add the proxy, upstream-sim, compare and whatif commands."""
    proxy_app = typer.Typer(
        cls=options.Group,
        no_args_is_help=False,
        add_completion=False,
        rich_markup_mode=None,
        help="A retrying reverse proxy that writes ALB-format access logs.",
    )

    @proxy_app.callback(invoke_without_command=True)
    def proxy(
        ctx: typer.Context,
        upstream: Annotated[
            str | None, typer.Option("--upstream", metavar="URL", help="The one upstream, e.g. http://127.0.0.1:8081.")
        ] = None,
        listen: Annotated[
            str, typer.Option("--listen", metavar="HOST:PORT", help="Address to listen on (port 0: any free).")
        ] = "127.0.0.1:8080",
        profile: PolicyChoice = "recommended",
        tries: Annotated[
            int | None, typer.Option("--tries", metavar="N", help="Most attempts per request, the first included.")
        ] = None,
        per_try_timeout: Annotated[
            Seconds, typer.Option("--per-try-timeout", metavar="SECONDS", help="Seconds one attempt may take.")
        ] = None,
        deadline: Annotated[
            Seconds,
            typer.Option("--deadline", metavar="SECONDS", help="Seconds a whole request may take, retries included."),
        ] = None,
        retry_budget: Annotated[
            float | None,
            typer.Option(
                "--retry-budget", metavar="FRACTION", help="Retries as a share of requests over 10 s, e.g. 0.2."
            ),
        ] = None,
        backoff: Annotated[
            Seconds,
            typer.Option(
                "--backoff", metavar="SECONDS", help="Seconds: backoff base (recommended) or fixed interval (seed)."
            ),
        ] = None,
        backoff_cap: Annotated[
            Seconds, typer.Option("--backoff-cap", metavar="SECONDS", help="Longest single backoff wait, seconds.")
        ] = None,
        retry_500: Annotated[
            bool, typer.Option("--retry-500", help="Also retry 500 (off: 500 is usually a bug).")
        ] = False,
        access_log: Annotated[
            str | None,
            typer.Option(
                "--access-log", metavar="PATH", help="Append ALB-format access-log lines here (- for stdout)."
            ),
        ] = None,
        max_body: Annotated[
            int, typer.Option("--max-body", metavar="BYTES", help="Largest request body in bytes (413 above).")
        ] = 10 << 20,
        seed: Annotated[
            int | None, typer.Option("--seed", metavar="N", help="Random seed for the jitter, for reproducible runs.")
        ] = None,
    ) -> None:
        """Run the retry proxy in front of one upstream (Ctrl-C stops it and prints a summary).

        Subcommand `nginx-config` prints the equivalent nginx configuration instead.
        """
        if ctx.invoked_subcommand is not None:
            sources = {p.opts[0]: ctx.get_parameter_source(p.name) for p in ctx.command.params if p.name and p.opts}
            given = [opt for opt, src in sources.items() if src is not None and src.name != "DEFAULT"]
            if given:
                raise UsageError(
                    f"{', '.join(given)}: put options after `{ctx.invoked_subcommand}`, e.g. "
                    f"albstats proxy {ctx.invoked_subcommand} {given[0]} ..."
                )
            return
        if not upstream:
            raise UsageError("--upstream is required, e.g. albstats proxy --upstream http://127.0.0.1:8081")
        from albstats.proxy.server import ProxyConfig, parse_listen, parse_upstream, run

        host, port = parse_listen(listen)
        parse_upstream(upstream)
        pol = _policy(profile, tries, per_try_timeout, deadline, retry_budget, backoff, backoff_cap, retry_500)
        run(
            ProxyConfig(
                upstream=upstream,
                listen_host=host,
                listen_port=port,
                policy=pol,
                access_log=access_log,
                max_body=max_body,
                seed=seed,
            )
        )

    @proxy_app.command("nginx-config", cls=options.Command)
    def nginx_config(
        upstream: Annotated[
            str, typer.Option("--upstream", metavar="HOST:PORT", help="The backend, the one upstream.")
        ],
        listen: Annotated[
            str, typer.Option("--listen", metavar="[HOST:]PORT", help="Address for nginx to listen on.")
        ] = "8080",
        profile: PolicyChoice = "recommended",
        tries: Annotated[
            int | None,
            typer.Option("--tries", metavar="N", help="Most attempts per request (proxy_next_upstream_tries)."),
        ] = None,
        per_try_timeout: Annotated[
            Seconds,
            typer.Option(
                "--per-try-timeout", metavar="SECONDS", help="Seconds one attempt may take (proxy_read/send_timeout)."
            ),
        ] = None,
        deadline: Annotated[
            Seconds,
            typer.Option(
                "--deadline", metavar="SECONDS", help="Seconds a whole request may take (proxy_next_upstream_timeout)."
            ),
        ] = None,
        retry_500: Annotated[
            bool, typer.Option("--retry-500", help="Also retry 500 (http_500 in proxy_next_upstream).")
        ] = False,
        access_log: Annotated[
            str | None,
            typer.Option("--access-log", metavar="PATH", help="Where nginx writes ALB-format access-log lines."),
        ] = None,
        prefix: Annotated[
            str | None,
            typer.Option(
                "--prefix",
                metavar="DIR",
                help="nginx prefix: pid, error log, temp dirs and access log go under this folder.",
            ),
        ] = None,
        workers: Annotated[
            str,
            typer.Option(
                "--workers", metavar="N", help="Parallel nginx worker processes (worker_processes): N or auto."
            ),
        ] = "auto",
    ) -> None:
        """Print the equivalent production nginx.conf, with an ALB-format access log albstats reads."""
        from albstats.proxy.nginx import nginx_config as make

        pol = _policy(profile, tries, per_try_timeout, deadline, None, None, None, retry_500)
        typer.echo(
            make(
                pol,
                upstream,
                listen=listen,
                access_log=access_log,
                prefix=prefix,
                worker_processes=workers,
            ),
            nl=False,
        )

    app.add_typer(proxy_app, name="proxy")

    @app.command("upstream-sim", cls=options.Command)
    def upstream_sim(
        listen: Annotated[
            str, typer.Option("--listen", metavar="HOST:PORT", help="Address to listen on.")
        ] = "127.0.0.1:8081",
        profile: Annotated[
            Literal["healthy", "hosp"] | None,
            typer.Option(
                "--scenario",
                show_default=False,
                help="Traffic scenario: healthy (the default) or hosp (10 % 5XX, 15 % 2-20 s, 2 % resets).",
            ),
        ] = None,
        error_rate: Annotated[
            float | None,
            typer.Option("--error-rate", metavar="FRACTION", help="Share of attempts answered with a 5XX."),
        ] = None,
        error_statuses: Annotated[
            str | None,
            typer.Option("--error-statuses", metavar="CODES", help="Comma list of error statuses, e.g. 502,503."),
        ] = None,
        slow_rate: Annotated[
            float | None,
            typer.Option("--slow-rate", metavar="FRACTION", help="Share of attempts with the slow latency."),
        ] = None,
        latency: Annotated[
            str | None,
            typer.Option(
                "--latency",
                metavar="DIST",
                help="Normal latency: SECONDS, uniform:A,B, lognormal:MEDIAN,SIGMA, exp:MEAN.",
            ),
        ] = None,
        slow_latency: Annotated[
            str | None,
            typer.Option("--slow-latency", metavar="DIST", help="Slow latency distribution (default 2-20 s)."),
        ] = None,
        reset_rate: Annotated[
            float | None,
            typer.Option("--reset-rate", metavar="FRACTION", help="Share of attempts reset before a response."),
        ] = None,
        retry_after: Annotated[
            Seconds, typer.Option("--retry-after", metavar="SECONDS", help="Send Retry-After (seconds) with 503s.")
        ] = None,
        seed: Annotated[int | None, typer.Option("--seed", metavar="N", help="Random seed.")] = None,
    ) -> None:
        """Run a flaky upstream that counts attempts per request (GET /__sim/stats)."""
        from albstats.proxy.server import parse_listen
        from albstats.proxy.upstream_sim import make_config, run

        host, port = parse_listen(listen, 8081)
        statuses = None
        if error_statuses:
            try:
                statuses = tuple(int(s) for s in error_statuses.split(","))
            except ValueError:
                raise UsageError(f"--error-statuses {error_statuses!r}: expected e.g. 502,503") from None
        cfg = make_config(
            profile,
            listen_host=host,
            listen_port=port,
            error_rate=error_rate,
            error_statuses=statuses,
            slow_rate=slow_rate,
            latency=latency,
            slow_latency=slow_latency,
            reset_rate=reset_rate,
            retry_after=retry_after,
            seed=seed,
        )
        run(cfg)

    @app.command("compare", cls=options.Command)
    def compare(
        before: Annotated[
            str, typer.Argument(metavar="BEFORE", help="Logs before the change: file, folder, glob or s3:// prefix.")
        ],
        after: Annotated[
            list[str], typer.Argument(metavar="AFTER...", help="Logs after the change; several: one column each.")
        ],
        format: FormatChoice = "table",
        slo: Annotated[
            str,
            typer.Option("--slo", metavar="PERCENT", help="Availability SLO in percent, for the error-budget burn."),
        ] = "99",
    ) -> None:
        """Success rate, error-budget burn, latency percentiles and upstream load, before vs after, with 95 % CIs."""
        from albstats.compare import compare as run_compare
        from albstats.compare import render_side_by_side, render_table
        from albstats.slo import parse_slo

        results = {path: run_compare([before], [path], slo=parse_slo(slo)) for path in after}
        if len(results) == 1:
            (result,) = results.values()
            typer.echo(result.to_json() if format == "json" else render_table(result))
        else:
            typer.echo(
                json.dumps({k: r.to_dict() for k, r in results.items()}, indent=2, default=float)
                if format == "json"
                else render_side_by_side(results)
            )

    @app.command("whatif", cls=options.Command)
    def whatif(
        logs: Annotated[
            list[str], typer.Argument(metavar="PATH...", help="Observed logs: files, folders, globs or s3:// prefixes.")
        ],
        policy: PolicyChoice = "recommended",
        tries: Annotated[int | None, typer.Option("--tries", metavar="N", help="Most attempts per request.")] = None,
        per_try_timeout: Annotated[
            Seconds, typer.Option("--per-try-timeout", metavar="SECONDS", help="Seconds one attempt may take.")
        ] = None,
        deadline: Annotated[
            Seconds,
            typer.Option("--deadline", metavar="SECONDS", help="Seconds a whole request may take, retries included."),
        ] = None,
        retry_budget: Annotated[
            float | None, typer.Option("--retry-budget", metavar="FRACTION", help="Retries as a share of requests.")
        ] = None,
        backoff: Annotated[
            Seconds, typer.Option("--backoff", metavar="SECONDS", help="Backoff base or fixed interval, seconds.")
        ] = None,
        retry_500: Annotated[bool, typer.Option("--retry-500", help="Also retry 500.")] = False,
        simulations: Annotated[
            int, typer.Option("--simulations", metavar="N", help="Simulated requests (bounded).")
        ] = 20_000,
        seed: Annotated[int, typer.Option("--seed", metavar="N", help="Random seed.")] = 7,
        format: FormatChoice = "table",
        profile: options.Profile = None,
        region: options.Region = None,
    ) -> None:
        """Predict what a retry policy would do to success rate, latency and upstream load (assumes independence)."""
        from albstats.whatif import render
        from albstats.whatif import whatif as run_whatif

        if not 100 <= simulations <= 1_000_000:
            raise UsageError("--simulations must be between 100 and 1,000,000")
        aws = {k: v for k, v in (("profile", profile), ("region", region)) if v is not None}
        if aws and not any(p.startswith("s3://") for p in logs):
            raise UsageError(
                f"--{next(iter(aws))} is the AWS {next(iter(aws))}, for s3:// paths only"
                + ("; the retry policy is --policy" if profile is not None else "")
            )
        pol = _policy(policy, tries, per_try_timeout, deadline, retry_budget, backoff, None, retry_500)
        result = run_whatif(
            logs,
            pol,
            simulations=simulations,
            seed=seed,
            s3_options=aws or None,
        )
        typer.echo(result.to_json() if format == "json" else render(result))
