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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albstats.errors import AlbstatsError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from albstats.report import Options, Report


class WebhookError(AlbstatsError):
    """The webhook did not accept the summary (after retries)."""


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


def deltas(cur: Report, prev: Report | None) -> dict[str, Any]:
    """This week minus the week before, for the headline numbers (None where either is missing)."""
    def p99(r: Report | None) -> float | None:
        m = r.latency.metrics.get("target_processing_time") if r else None
        return m.p99 if m else None

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    pa, ca = (prev.availability if prev else None), cur.availability
    return {
        "requests": diff(ca.requests, pa.requests if pa else None),
        "bad_requests": diff(ca.bad_requests, pa.bad_requests if pa else None),
        "success_rate": diff(ca.success_rate, pa.success_rate if pa else None),
        "error_budget_remaining_fraction": diff(ca.error_budget.remaining_fraction,
                                                pa.error_budget.remaining_fraction if pa else None),
        "target_processing_time_p99": diff(p99(cur), p99(prev)),
        "incidents": diff(len(cur.failures.incidents), len(prev.failures.incidents) if prev else None),
        "security_findings": diff(len(cur.findings), len(prev.findings) if prev else None),
    }


def summary_text(week: Week, cur: Report, prev_week: Week, prev: Report | None) -> str:
    """The short text posted to the webhook and printed by ``albstats weekly``."""
    a = cur.availability
    pa = prev.availability if prev else None
    verdict = "met" if not cur.breached else "BREACHED"
    sev: dict[str, int] = {}
    for f in cur.findings:
        sev[f.severity] = sev.get(f.severity, 0) + 1
    p99 = cur.latency.metrics.get("target_processing_time")
    pp99 = prev.latency.metrics.get("target_processing_time") if prev else None
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
        "target time p99 " + ("n/a" if not p99 or p99.p99 is None else f"{p99.p99:.3f} s")
        + f" ({_delta_s(p99.p99 if p99 else None, pp99.p99 if pp99 else None)}), latency SLO "
        f"{_pct(cur.latency.slo.share, 2)} under {cur.latency.slo.threshold_seconds:g} s",
        "security findings: " + (", ".join(f"{n} {s}" for s, n in sev.items()) if sev else "none"),
    ]
    if cur.options.slo_file is not None:
        from albstats.render.slos import summary_lines

        lines[0] = lines[0].split(": SLO ")[0] + f": {sum(not s.met for s in cur.slos)} of {len(cur.slos)} SLOs " \
            + ("BREACHED" if cur.breached else "met")
        lines += summary_lines(cur.slos)
    return "\n".join(lines)


# --- the webhook ----------------------------------------------------------------------------------

def post_webhook(url: str, text: str, *, timeout: float = 10.0, attempts: int = 4, backoff: float = 1.0,
                 sleep: Any = time.sleep, payload: dict[str, Any] | None = None,
                 user_agent: str = "albstats-weekly") -> int:
    """POST ``{"text": text}`` as JSON; returns the attempts used.

    Retries (bounded: ``attempts`` in total, waiting ``backoff`` x 1, 2, 4 ... seconds) on 5XX, 429,
    timeouts and connection errors; any other 4XX fails at once (retrying will not fix a bad URL).
    The URL never appears in a message. ``payload`` (with a ``text`` key) replaces ``{"text": text}``.
    """
    if not url.startswith(("https://", "http://")):
        raise WebhookError("--webhook must be an http:// or https:// URL")
    body = json.dumps(payload if payload is not None else {"text": text}).encode("utf-8")
    last = ""
    for i in range(1, attempts + 1):
        try:
            req = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": user_agent})
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
                resp.read()
                return i
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
            if e.code < 500 and e.code != 429:
                raise WebhookError(f"webhook refused the summary: {last} (not retried)") from None
        except (ValueError, http.client.InvalidURL):  # these quote the URL: say nothing about it
            raise WebhookError("--webhook is not a valid URL") from None
        except http.client.HTTPException as e:  # a broken response: retry like a connection error
            last = type(e).__name__
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            last = f"{type(reason).__name__}: {reason}".replace(url, "<webhook>")
        if i < attempts:
            sleep(backoff * 2 ** (i - 1))
    raise WebhookError(f"webhook failed after {attempts} attempt{'' if attempts == 1 else 's'}: {last}")


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


def run(connect: Any, opts: Options, *, now: datetime, out: str | Path | None = None,
        webhook: str | None = None, webhook_attempts: int = 4, webhook_timeout: float = 10.0) -> WeeklyResult:
    """Build last week's report and the week before, write ``out/YYYY-Www/``, post the summary.

    ``connect`` is a zero-argument callable returning an engine. A week without any request is an
    error (exit 1): under cron that means logs are missing, not a perfect week.
    """
    from dataclasses import replace

    from albstats import report as rep

    week = previous_week(now)
    prev_week = week_of(week.start - timedelta(days=1))
    with connect() as eng:
        cur = rep.build(eng, replace(opts, since=week.start, until=week.end), now=now)
        if cur.availability.requests == 0:
            raise InputError(f"no requests in {week.label} ({week.start:%Y-%m-%d} to {week.end:%Y-%m-%d}): "
                             "are the logs for that week there?")
        prev = rep.build(eng, replace(opts, since=prev_week.start, until=prev_week.end), now=now)
    if prev.availability.requests == 0:
        prev_r: Report | None = None
    else:
        prev_r = prev
    text = summary_text(week, cur, prev_week, prev_r)
    d = deltas(cur, prev_r)
    directory = None
    if out is not None:
        from albstats.render import write
        from albstats.render.data import to_dict

        directory = Path(out) / week.label
        write(cur, directory)
        extra = {"week": week.label, "start": week.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "end": week.end.strftime("%Y-%m-%dT%H:%M:%SZ"), "previous_week": prev_week.label,
                 "previous": None if prev_r is None else {k: v for k, v in to_dict(prev_r).items()
                                                         if k in ("requests", "bad_requests", "success_rate",
                                                                  "elb_5xx", "target_5xx", "error_budget")},
                 "deltas": d, "summary": text}
        from albstats.output import atomic_path

        with atomic_path(directory / "weekly.json") as tmp:
            tmp.write_text(json.dumps(extra, indent=2) + "\n", encoding="utf-8")
    if webhook:
        post_webhook(webhook, text, attempts=webhook_attempts, timeout=webhook_timeout)
    return WeeklyResult(week, prev_week, cur, prev_r, directory, text, d)
