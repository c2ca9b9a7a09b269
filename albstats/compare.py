"""Did a change help? Two log sets (before, after) -> rates, latency and load, each with a 95 % interval.

Definitions (the same as :mod:`albstats.slo`):

- A request is good when ``elb_status_code`` is below 500. Success rate = good / requests, with a
  Wilson score interval; the change in success rate gets Newcombe's hybrid score interval (method 10),
  which behaves at rates near 100 % where the normal approximation does not.
- Error-budget burn = (1 - success rate) / (1 - SLO): 1.0 spends the budget exactly; its interval is
  the success-rate interval mapped through the same formula.
- Latency: the total time of a request, the sum of the three processing times; when a target never
  answered (a -1 among them) it is ``time - request_creation_time`` instead, so failed requests keep
  their real duration. Percentiles get percentile-bootstrap intervals (fixed seed, 1,000 resamples of
  at most 10,000 values: above that the interval is wider than it needs to be, never narrower).
- Upstream requests per client request (load amplification): the number of entries in
  ``target:port_list`` (proxy logs list every attempt; ALB logs have one, or ``-`` for none; logs from
  before 2020 without the field count 1). Mean with a normal-approximation interval.

Harm, next to the help (a retry policy that raises the success rate can still do damage):

- Non-idempotent requests repeated: the share of requests whose method is not idempotent (POST,
  PATCH, ... -- anything but GET, HEAD, OPTIONS, PUT, DELETE) that were sent upstream more than once;
  each repeat may have done its side effect again (a second booking, a second charge). Wilson interval.
- Upstream requests per failed request: the mean attempts behind each request that failed anyway. With
  the upstream down this is the retry storm: a policy of 5 tries multiplies the load on a dead service
  by 5, a retry budget keeps it near 1.
- Retry wait per success: the mean ``request_processing_time`` of successful requests -- the time spent
  on earlier attempts and the waits between them before the attempt that answered (about zero without
  retries). Normal-approximation interval. The harm section lists, per side, the successes that needed
  a retry and their wait (p50, p90, max): what a fixed 3 s spacing costs the requests it rescues.

Verdict: the success rate decides when its change is significant; otherwise latency does (better when
some percentile improved and none got worse). Significant changes in the other direction are listed
as trade-offs, so a retry policy that buys success with load or tail latency says so.

Memory is bounded: rows stream in batches, and at most ``max_samples`` latencies per side are kept
(a uniform random sample beyond that).
"""

from __future__ import annotations

import math
from typing import Any

from albstats.compare_intervals import PERCENTILES, Z95, _verdict, bootstrap_percentiles, newcombe, wilson
from albstats.compare_result import CompareResult, Metric, _fmt, _harm_line, render_side_by_side, render_table
from albstats.compare_sides import (
    COLUMNS,
    IDEMPOTENT,
    Side,
    _attempts,
    _harm,
    _harm_summary,
    _latency,
    load_side,
    row_latency,
)
from albstats.errors import InputError

#: A value and its 95% interval: (value, low, high).
Estimate = tuple[float, float, float]

# The comparison is split along its seams: intervals (compare_intervals), reading a side
# (compare_sides), the result and its rendering (compare_result). The names stay importable from here.
__all__ = [
    "COLUMNS",
    "IDEMPOTENT",
    "PERCENTILES",
    "Z95",
    "CompareResult",
    "Metric",
    "Side",
    "_attempts",
    "_fmt",
    "_harm",
    "_harm_line",
    "_harm_summary",
    "_latency",
    "bootstrap_percentiles",
    "compare",
    "load_side",
    "newcombe",
    "render_side_by_side",
    "render_table",
    "row_latency",
    "wilson",
]


def compare(
    before_paths: list[str] | str,
    after_paths: list[str] | str,
    *,
    slo: float = 0.99,
    resamples: int = 1000,
    seed: int = 20240611,
) -> CompareResult:
    """Compare two log sets (files, folders, globs, s3:// prefixes; ALB or albstats proxy logs)."""
    bp = [before_paths] if isinstance(before_paths, str) else list(before_paths)
    ap = [after_paths] if isinstance(after_paths, str) else list(after_paths)
    b, a = load_side(bp), load_side(ap)
    for side, label in ((b, "BEFORE"), (a, "AFTER")):
        if side.requests == 0:
            raise InputError(
                f"{label} ({', '.join(side.paths)}): no ALB access-log lines found ({side.parse.summary()})"
            )
    metrics: list[Metric] = []
    # success rate
    d, lo, hi = newcombe(b.good, b.requests, a.good, a.requests)
    sb, sa = b.good / b.requests, a.good / a.requests
    metrics.append(
        Metric(
            "success_rate",
            "ratio",
            sb,
            wilson(b.good, b.requests),
            sa,
            wilson(a.good, a.requests),
            d,
            (lo, hi),
            _verdict(lo, hi, True),
        )
    )
    # error-budget burn: (1 - success) / (1 - slo)
    budget = 1.0 - slo

    def burn(ci: tuple[float, float]) -> tuple[float, float]:
        return ((1 - ci[1]) / budget, (1 - ci[0]) / budget)

    metrics.append(
        Metric(
            "error_budget_burn",
            "x budget",
            (1 - sb) / budget,
            burn(metrics[0].before_ci),
            (1 - sa) / budget,
            burn(metrics[0].after_ci),
            -d / budget,
            (-hi / budget, -lo / budget),
            _verdict(-hi, -lo, False),
        )
    )
    # latency percentiles
    notes: list[str] = []
    if len(b.latencies) and len(a.latencies):
        boot = bootstrap_percentiles(b.latencies, a.latencies, resamples=resamples, seed=seed)
        for q, r in boot.items():
            ch = r["change"]
            metrics.append(
                Metric(
                    f"latency_p{q}",
                    "s",
                    r["before"][0],
                    r["before"][1:],
                    r["after"][0],
                    r["after"][1:],
                    ch[0],
                    ch[1:],
                    _verdict(ch[1], ch[2], False),
                )
            )
    else:
        notes.append("no latency: one side has no request with known timings")
    # load amplification
    mb, ma = b.attempts / b.requests, a.attempts / a.requests

    def se(side: Side, mean: float) -> float:
        var = max(0.0, side.attempts_sq / side.requests - mean * mean) * side.requests / max(1, side.requests - 1)
        return math.sqrt(var / side.requests)

    seb, sea = se(b, mb), se(a, ma)
    sed = math.hypot(seb, sea)
    dm = ma - mb
    metrics.append(
        Metric(
            "upstream_requests_per_request",
            "x",
            mb,
            (mb - Z95 * seb, mb + Z95 * seb),
            ma,
            (ma - Z95 * sea, ma + Z95 * sea),
            dm,
            (dm - Z95 * sed, dm + Z95 * sed),
            _verdict(dm - Z95 * sed, dm + Z95 * sed, False),
        )
    )

    # harm: repeats of non-idempotent requests, attempts behind failures (storms), retry waits of successes
    def share(k1: int, n1: int, k2: int, n2: int) -> tuple[Estimate, Estimate, Estimate]:
        """(value, low, high) of the before share, the after share and their difference."""
        if n1 and n2:
            d2, l2, h2 = newcombe(k1, n1, k2, n2)
        else:
            d2, l2, h2 = math.nan, math.nan, math.nan
        return (
            (k1 / n1 if n1 else math.nan, *wilson(k1, n1)),
            (k2 / n2 if n2 else math.nan, *wilson(k2, n2)),
            (d2, l2, h2),
        )

    (vb, bl, bh), (va, al, ah), (dv, dl, dh) = share(
        b.non_idempotent_repeated, b.non_idempotent, a.non_idempotent_repeated, a.non_idempotent
    )
    metrics.append(
        Metric(
            "non_idempotent_repeated",
            "ratio",
            vb,
            (bl, bh),
            va,
            (al, ah),
            dv,
            (dl, dh),
            _verdict(dl, dh, False) if b.non_idempotent and a.non_idempotent else "n/a",
        )
    )
    metrics.append(
        _mean_metric(
            "upstream_requests_per_failed_request",
            "x",
            b.failed_attempts,
            b.failed_attempts_sq,
            b.failed,
            a.failed_attempts,
            a.failed_attempts_sq,
            a.failed,
        )
    )
    metrics.append(
        _mean_metric("retry_wait_per_success", "s", b.wait_sum, b.wait_sq, b.good, a.wait_sum, a.wait_sq, a.good)
    )
    harm = {label: _harm_summary(side) for side, label in ((b, "before"), (a, "after"))}
    # attempts histogram with Wilson intervals per share
    hist: dict[str, dict[str, Any]] = {}
    for k in sorted(set(b.histogram) | set(a.histogram)):
        row: dict[str, Any] = {}
        for side, label in ((b, "before"), (a, "after")):
            c = side.histogram.get(k, 0)
            row[label] = [c, c / side.requests, *wilson(c, side.requests)]
        hist[str(k)] = row
    # verdict
    sr = metrics[0].verdict
    lat = [m.verdict for m in metrics if m.name.startswith("latency_")]
    if sr != "no significant change":
        verdict = sr
    elif "worse" in lat and "better" not in lat:
        verdict = "worse"
    elif "better" in lat and "worse" not in lat:
        verdict = "better"
    else:
        verdict = "no significant change"
    opposite = {"better": "worse", "worse": "better"}.get(verdict)
    if verdict == "no significant change":  # harm with no gain to show for it is still harm
        opposite = "worse"
    tradeoffs = [
        f"{m.name} {m.verdict} ({_fmt(m.change, m.unit, signed=True)})"
        for m in metrics
        if opposite and m.verdict == opposite
    ]
    if b.latency_count > len(b.latencies) or a.latency_count > len(a.latencies):
        notes.append("latency percentiles from a uniform random sample of each side")
    for side, label in ((b, "before"), (a, "after")):
        if side.parse.bad_lines:
            notes.append(
                f"{label}: {side.parse.bad_lines} malformed lines not counted: " + "; ".join(side.parse.bad_examples(3))
            )
    return CompareResult(
        slo=slo,
        before_requests=b.requests,
        after_requests=a.requests,
        metrics=metrics,
        histogram=hist,
        harm=harm,
        verdict=verdict,
        tradeoffs=tradeoffs,
        malformed_lines={"before": b.parse.bad_lines, "after": a.parse.bad_lines},
        notes=notes,
    )


def _mean_metric(name: str, unit: str, s1: float, sq1: float, n1: int, s2: float, sq2: float, n2: int) -> Metric:
    """A mean on each side (sum, sum of squares, count) with normal-approximation intervals."""

    def stats(total: float, sq: float, n: int) -> tuple[float, float]:
        if n == 0:
            return math.nan, math.nan
        mean = total / n
        var = max(0.0, sq / n - mean * mean) * n / max(1, n - 1)
        return mean, math.sqrt(var / n)

    mb, seb = stats(s1, sq1, n1)
    ma, sea = stats(s2, sq2, n2)
    d, sed = ma - mb, math.hypot(seb, sea)
    lo, hi = d - Z95 * sed, d + Z95 * sed
    verdict = _verdict(lo, hi, False) if n1 and n2 else "n/a"
    return Metric(
        name, unit, mb, (mb - Z95 * seb, mb + Z95 * seb), ma, (ma - Z95 * sea, ma + Z95 * sea), d, (lo, hi), verdict
    )
