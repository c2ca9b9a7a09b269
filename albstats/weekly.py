"""The weekly summary cron runs: last full ISO week, deltas against the week before, a webhook post.

Exit codes (see :func:`run`): 0 when the SLO was met, 3 (:class:`~albstats.errors.SloBreached`) when
it was breached, 1 on any error, webhook failures included (after the report was written). The
webhook URL is a secret (Slack's URL is the credential): it is never printed, and error messages
are scrubbed of it.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albstats.errors import AlbstatsError

if TYPE_CHECKING:  # pragma: no cover
    from albstats.report import Options, Report


class WebhookError(AlbstatsError):
    """The webhook did not accept the summary (after retries)."""


class WebhookUrlError(WebhookError):
    """The webhook URL (``--webhook`` or ``ALBSTATS_WEBHOOK_URL``) is not one albstats can post to."""

    exit_code = 2


#: Names the webhook URL can come from, for messages: the option, or the variable cron sets.
WEBHOOK_OPTION = "--webhook"
WEBHOOK_ENV = "ALBSTATS_WEBHOOK_URL"
#: Bounds of the webhook options (the CLI's --webhook-retries and --webhook-timeout check the same).
MAX_ATTEMPTS = 11
MAX_TIMEOUT = 300.0
MAX_BACKOFF = 60.0
#: A failure notice is cut to this many characters: a chat message, not a log.
MAX_FAILURE_TEXT = 600


@dataclass(frozen=True)
class Week:
    start: datetime  # Monday 00:00 UTC, inclusive
    end: datetime  # next Monday 00:00 UTC, exclusive
    label: str  # ISO week, e.g. 2026-W09


def week_of(day: datetime) -> Week:
    """The ISO week (Monday 00:00 to Monday 00:00 UTC) containing ``day``."""
    d = day.astimezone(UTC) if day.tzinfo else day.replace(tzinfo=UTC)
    monday = (d - timedelta(days=d.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    y, w, _ = monday.isocalendar()
    return Week(monday, monday + timedelta(days=7), f"{y}-W{w:02d}")


def previous_week(now: datetime) -> Week:
    """The last full ISO week before ``now``: at Monday 00:00:00 exactly, the week that just ended."""
    return week_of(week_of(now).start - timedelta(days=1))


# --- the summary ----------------------------------------------------------------------------------


def _pct(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v * 100:.{digits}f} %"


def _delta_pp(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "n/a"
    return f"{(a - b) * 100:+.3f} pp"


def _delta_rel(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{(a - b) / b * 100:+.1f} %"


def _delta_s(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "n/a"
    return f"{a - b:+.3f} s"


def _p99(r: Report | None) -> float | None:
    """The p99 of the report's headline latency (:data:`albstats.report.HEADLINE_LATENCY`): one definition."""
    m = r.headline_latency if r else None
    return m.p99 if m else None


def deltas(cur: Report, prev: Report | None) -> dict[str, Any]:
    """This week minus the week before, for the headline numbers (None where either is missing)."""
    from albstats.report import HEADLINE_LATENCY

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    pa, ca = (prev.availability if prev else None), cur.availability
    return {
        "requests": diff(ca.requests, pa.requests if pa else None),
        "bad_requests": diff(ca.bad_requests, pa.bad_requests if pa else None),
        "success_rate": diff(ca.success_rate, pa.success_rate if pa else None),
        "error_budget_remaining_fraction": diff(
            ca.error_budget.remaining_fraction, pa.error_budget.remaining_fraction if pa else None
        ),
        f"{HEADLINE_LATENCY}_p99": diff(_p99(cur), _p99(prev)),
        "incidents": diff(len(cur.failures.incidents), len(prev.failures.incidents) if prev else None),
        "security_findings": diff(len(cur.findings), len(prev.findings) if prev else None),
    }


def summary_text(week: Week, cur: Report, prev_week: Week, prev: Report | None) -> str:
    """The short text posted to the webhook and printed by ``albstats weekly``."""
    from albstats.report import HEADLINE_LATENCY

    a = cur.availability
    pa = prev.availability if prev else None
    verdict = {"met": "met", "breached": "BREACHED"}.get(cur.status, "NO DATA")
    sev: dict[str, int] = {}
    for f in cur.findings:
        sev[f.severity] = sev.get(f.severity, 0) + 1
    p99, pp99 = _p99(cur), _p99(prev)
    lines = [
        f"albstats weekly {week.label} ({week.start:%Y-%m-%d} to {week.end - timedelta(days=1):%Y-%m-%d} UTC): "
        f"SLO {a.target * 100:g} % {verdict}",
        f"success rate {_pct(a.success_rate)} ({_delta_pp(a.success_rate, pa.success_rate if pa else None)} "
        f"vs {prev_week.label}), {a.requests:,} requests "
        f"({_delta_rel(a.requests, pa.requests if pa else None)}), {a.bad_requests:,} bad "
        f"(ELB 5XX {a.elb_5xx:,}, target 5XX {a.target_5xx:,})",
        f"error budget left {_pct(a.error_budget.remaining_fraction, 1)}, worst 1 h burn rate "
        + ("n/a" if a.worst_1h.burn_rate is None else f"{a.worst_1h.burn_rate:.2f}")
        + f", incidents {len(cur.failures.incidents)}",
        HEADLINE_LATENCY.replace("_", " ")
        + " p99 "
        + ("n/a" if p99 is None else f"{p99:.3f} s")
        + f" ({_delta_s(p99, pp99)}), latency SLO "
        f"{_pct(cur.latency.slo.share, 2)} under {cur.latency.slo.threshold_seconds:g} s",
        "security findings: " + (", ".join(f"{n} {s}" for s, n in sev.items()) if sev else "none"),
    ]
    if cur.options.slo_file is not None:
        from albstats.render.slos import summary_lines

        lines[0] = (
            lines[0].split(": SLO ")[0]
            + f": {sum(not s.met for s in cur.slos)} of {len(cur.slos)} SLOs "
            + ("BREACHED" if cur.breached else "met")
        )
        lines += summary_lines(cur.slos)
    return "\n".join(lines)


# --- the webhook ----------------------------------------------------------------------------------


def check_webhook_url(url: str, name: str = WEBHOOK_OPTION) -> None:
    """Raise :class:`WebhookUrlError` naming ``name`` (never the URL: it is the credential) unless
    ``url`` is an http(s) URL with a host. Checked before any work, so cron fails at once, not after
    an hour of Athena queries."""
    import urllib.parse

    if not url.startswith(("https://", "http://")):
        raise WebhookUrlError(f"{name} must be an http:// or https:// URL")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise WebhookUrlError(f"{name} is not a valid URL") from None
    if not parts.hostname or any(c.isspace() or ord(c) < 32 for c in url):
        raise WebhookUrlError(f"{name} is not a valid URL (no host, or spaces or control characters in it)")


def check_webhook_options(attempts: object, timeout: object, backoff: object = 1.0, prefix: str = "") -> None:
    """ValueError naming the argument (``prefix`` + name) and its range, for the Python API (the CLI
    checks its options itself, in its own words)."""
    from albstats.checks import number, whole

    whole(f"{prefix}attempts", attempts, 1, MAX_ATTEMPTS)
    number(f"{prefix}timeout", timeout, 0.0, MAX_TIMEOUT, "a number of seconds above {lo:g} and at most {hi:g}")
    b = None if isinstance(backoff, bool) or not isinstance(backoff, Real) else float(backoff)
    if b is None or not 0.0 <= b <= MAX_BACKOFF:
        raise ValueError(f"{prefix}backoff={backoff!r}: expected a number of seconds from 0 to {MAX_BACKOFF:g}")


def post_webhook(
    url: str,
    text: str,
    *,
    timeout: float = 10.0,
    attempts: int = 4,
    backoff: float = 1.0,
    sleep: Any = time.sleep,
    name: str = WEBHOOK_OPTION,
    payload: dict[str, Any] | None = None,
    user_agent: str = "albstats-weekly",
) -> int:
    """POST ``{"text": text}`` as JSON; returns the attempts used.

    Retries (bounded: ``attempts`` in total, waiting ``backoff`` x 1, 2, 4 ... seconds) on 5XX, 429,
    timeouts and connection errors; any other 4XX fails at once (retrying will not fix a bad URL).
    The URL never appears in a message; ``name`` says where it came from (the option or the variable).
    ``payload`` (with a ``text`` key) replaces ``{"text": text}``.
    """
    check_webhook_options(attempts, timeout, backoff)
    check_webhook_url(url, name)
    body = json.dumps(payload if payload is not None else {"text": text}).encode("utf-8")
    last = ""
    for i in range(1, attempts + 1):
        try:
            req = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": user_agent},
            )
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
                resp.read()
                return i
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
            if e.code < 500 and e.code != 429:
                raise WebhookError(f"webhook refused the message: {last}, not retried (URL from {name})") from None
        except (ValueError, http.client.InvalidURL):  # these quote the URL: say nothing about it
            raise WebhookUrlError(f"{name} is not a valid URL") from None
        except http.client.HTTPException as e:  # a broken response: retry like a connection error
            last = type(e).__name__
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            last = f"{type(reason).__name__}: {reason}".replace(url, "<webhook>")
        if i < attempts:
            sleep(backoff * 2 ** (i - 1))
    attempts_text = f"{attempts} attempt{'' if attempts == 1 else 's'}"
    raise WebhookError(f"webhook failed after {attempts_text}: {last} (URL from {name})")


def failure_text(week: Week | None, what: str) -> str:
    """The failure notice: which week, that the run failed, and why (one line, cut to a chat message)."""
    when = f"{week.label} ({week.start:%Y-%m-%d} to {week.end - timedelta(days=1):%Y-%m-%d} UTC)" if week else ""
    what = " ".join(what.split())
    if len(what) > MAX_FAILURE_TEXT:
        what = what[: MAX_FAILURE_TEXT - 1] + "\u2026"
    return f"albstats weekly {when + ' ' if when else ''}FAILED: {what}"


def describe_error(e: BaseException, url: str | None = None) -> str:
    """What failed, in one line: albstats' own message, or the exception's type and text for anything else."""
    text = str(e) if isinstance(e, AlbstatsError) else f"unexpected {type(e).__name__}: {e}"
    return text.replace(url, "<webhook>") if url else text


def post_failure(
    url: str | None,
    week: Week | None,
    error: BaseException,
    *,
    attempts: int = 4,
    timeout: float = 10.0,
    name: str = WEBHOOK_OPTION,
    sleep: Any = time.sleep,
) -> str | None:
    """Post the failure notice for ``error`` when a webhook is set; returns why that failed too, or None.

    Why: a Slack-only cron must hear that the run failed (logs stopped, Athena refused, disk full)
    rather than get nothing, which reads as "nothing to say". Never raises: the original error is
    what the caller reports.
    """
    if not url:
        return None
    try:
        post_webhook(
            url,
            failure_text(week, describe_error(error, url)),
            attempts=attempts,
            timeout=timeout,
            name=name,
            sleep=sleep,
        )
    except (WebhookError, ValueError) as e:
        return str(e)
    return None


class FailureNotice:
    """``with FailureNotice(url, week): ...`` posts the failure notice for any exception in the block.

    The exception is raised again; when the notice could not be posted either, an albstats error
    says so in the same line (keeping its exit code), anything else carries it as a note. ``week``
    may be set inside the block once it is known (the CLI learns it from --now).
    """

    def __init__(
        self,
        url: str | None,
        week: Week | None = None,
        *,
        attempts: int = 4,
        timeout: float = 10.0,
        name: str = WEBHOOK_OPTION,
    ) -> None:
        self.url, self.week, self.attempts, self.timeout, self.name = url, week, attempts, timeout, name

    def __enter__(self) -> FailureNotice:
        return self

    def __exit__(self, typ: type[BaseException] | None, e: BaseException | None, tb: Any) -> None:
        if e is None or not isinstance(e, Exception):  # KeyboardInterrupt, SystemExit: the user stopped it
            return
        failed = post_failure(self.url, self.week, e, attempts=self.attempts, timeout=self.timeout, name=self.name)
        if failed is None:
            return
        if not isinstance(e, AlbstatsError):
            e.add_note(f"albstats: the failure notice was not posted either: {failed}")
            return
        both = AlbstatsError(f"{e}; the failure notice was not posted either: {failed}")
        both.exit_code = e.exit_code  # the original error decides the exit code
        raise both from e


# --- the run --------------------------------------------------------------------------------------


@dataclass
class WeeklyResult:
    week: Week
    previous: Week
    report: Report
    previous_report: Report | None
    directory: Path | None
    text: str
    deltas: dict[str, Any]


def run(
    connect: Any,
    opts: Options,
    *,
    now: datetime,
    out: str | Path | None = None,
    webhook: str | None = None,
    webhook_attempts: int = 4,
    webhook_timeout: float = 10.0,
    webhook_name: str = WEBHOOK_OPTION,
) -> WeeklyResult:
    """Build last week's report and the week before, write ``out/YYYY-Www/``, post the summary.

    ``connect`` is a zero-argument callable returning an engine. A week without any request is an
    error (exit 1): under cron that means logs are missing, not a perfect week. On any error the
    webhook gets a short failure notice (which week, what failed) before the error is raised, so
    silence never means fine; only a failed post of the summary itself is not followed by a notice
    (the webhook is what failed). ``webhook_name`` is where the URL came from, for messages.
    """
    check_webhook_options(webhook_attempts, webhook_timeout, prefix="webhook_")
    if webhook:
        check_webhook_url(webhook, webhook_name)
    week = previous_week(now)
    with FailureNotice(webhook, week, attempts=webhook_attempts, timeout=webhook_timeout, name=webhook_name):
        text, res = _build(connect, opts, now=now, week=week, out=out)
    if webhook:
        post_webhook(webhook, text, attempts=webhook_attempts, timeout=webhook_timeout, name=webhook_name)
    return res


def _build(
    connect: Any, opts: Options, *, now: datetime, week: Week, out: str | Path | None
) -> tuple[str, WeeklyResult]:
    """The reports, the summary text and the written directory (everything but the post)."""
    from dataclasses import replace

    from albstats import report as rep

    prev_week = week_of(week.start - timedelta(days=1))
    with connect() as eng:
        try:
            cur = rep.build(eng, replace(opts, since=week.start, until=week.end, allow_empty=False), now=now)
        except rep.NoData as e:
            raise rep.NoData(
                f"no requests in {week.label} ({week.start:%Y-%m-%d} to "
                f"{week.end - timedelta(days=1):%Y-%m-%d} UTC) in {e.why}: are the logs for that "
                "week there?",
                why=e.why,
            ) from None
        prev = rep.build(eng, replace(opts, since=prev_week.start, until=prev_week.end, allow_empty=True), now=now)
    prev_r: Report | None = None if prev.no_data else prev
    text = summary_text(week, cur, prev_week, prev_r)
    d = deltas(cur, prev_r)
    directory = None
    if out is not None:
        from albstats.render import write
        from albstats.render.data import to_dict

        Path(out).mkdir(exist_ok=True)  # DIR itself, like report's; its parent must exist (no tree of folders)
        directory = Path(out) / week.label
        write(cur, directory)
        extra = {
            "week": week.label,
            "start": week.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": week.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "previous_week": prev_week.label,
            "previous": None
            if prev_r is None
            else {
                k: v
                for k, v in to_dict(prev_r).items()
                if k in ("requests", "bad_requests", "success_rate", "elb_5xx", "target_5xx", "error_budget")
            },
            "deltas": d,
            "summary": text,
        }
        from albstats.output import atomic_path

        with atomic_path(directory / "weekly.json") as tmp:
            tmp.write_text(json.dumps(extra, indent=2) + "\n", encoding="utf-8")
    return text, WeeklyResult(week, prev_week, cur, prev_r, directory, text, d)
