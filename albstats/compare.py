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

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from albstats.errors import InputError
from albstats.parse import ParseStats, iter_batches

Z95 = 1.959963984540054
COLUMNS = [
    "elb_status_code",
    "request_processing_time",
    "target_processing_time",
    "response_processing_time",
    "time",
    "request_creation_time",
    "target_port_list",
    "request_verb",
]
#: Methods a repeat cannot do twice (RFC 9110 9.2.2), as the proxy's policy defines them.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
PERCENTILES = (50, 90, 99)


# --- interval arithmetic --------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """Difference p2 - p1 with Newcombe's hybrid score interval (his method 10)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p2 - p1
    return d, d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2), d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)


def bootstrap_percentiles(
    a: np.ndarray,
    b: np.ndarray,
    qs: tuple[int, ...] = PERCENTILES,
    *,
    resamples: int = 1000,
    max_n: int = 10_000,
    seed: int = 20240611,
) -> dict[int, dict[str, tuple[float, float, float]]]:
    """For each q: (estimate, lo, hi) for a, for b, and for b - a, by percentile bootstrap."""
    rng = np.random.default_rng(seed)

    def draws(x: np.ndarray) -> np.ndarray:
        m = min(len(x), max_n)
        out = np.empty((resamples, len(qs)))
        step = max(1, 2_000_000 // max(m, 1))  # resample rows per chunk: bounded memory
        for i in range(0, resamples, step):
            k = min(step, resamples - i)
            idx = rng.integers(0, len(x), size=(k, m))
            out[i : i + k] = np.percentile(x[idx], qs, axis=1).T
        return out

    da, db = draws(a), draws(b)
    res: dict[int, dict[str, tuple[float, float, float]]] = {}
    for j, q in enumerate(qs):
        ea, eb = float(np.percentile(a, q)), float(np.percentile(b, q))
        diff = db[:, j] - da[:, j]
        res[q] = {
            "before": (ea, *_pct_ci(da[:, j])),
            "after": (eb, *_pct_ci(db[:, j])),
            "change": (eb - ea, *_pct_ci(diff)),
        }
    return res


def _pct_ci(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(x, [2.5, 97.5])
    return float(lo), float(hi)


def _verdict(lo: float, hi: float, higher_is_better: bool) -> str:
    if lo > 0:
        return "better" if higher_is_better else "worse"
    if hi < 0:
        return "worse" if higher_is_better else "better"
    return "no significant change"


# --- reading one side -----------------------------------------------------------------------------


@dataclass
class Side:
    """What one log set contains, reduced to what the comparison needs."""

    paths: list[str]
    requests: int = 0
    good: int = 0
    attempts: int = 0
    attempts_sq: int = 0
    histogram: dict[int, int] = field(default_factory=dict)
    latencies: np.ndarray = field(default_factory=lambda: np.empty(0))
    latency_count: int = 0
    parse: ParseStats = field(default_factory=ParseStats)
    non_idempotent: int = 0  # requests with a non-idempotent method
    non_idempotent_repeated: int = 0  # ... sent upstream more than once
    non_idempotent_extra: int = 0  # ... extra upstream attempts (each a possible second execution)
    failed: int = 0
    failed_attempts: int = 0
    failed_attempts_sq: int = 0
    wait_sum: float = 0.0  # request_processing_time over successful requests (retries' cost)
    wait_sq: float = 0.0
    waits_retried: list[float] = field(default_factory=list)  # that time, for successes after a retry


def row_latency(batch: pa.RecordBatch) -> np.ndarray:
    """Total seconds per row (NaN where unknown): the three processing times, or time - creation time."""
    t = [
        np.nan_to_num(batch.column(c).to_numpy(zero_copy_only=False).astype(float), nan=-1.0)
        for c in ("request_processing_time", "target_processing_time", "response_processing_time")
    ]
    out = np.full(batch.num_rows, np.nan)
    ok = (t[0] >= 0) & (t[1] >= 0) & (t[2] >= 0)
    out[ok] = (t[0] + t[1] + t[2])[ok]
    if (~ok).any():
        import pandas as pd

        sub = batch.take(pa.array(np.flatnonzero(~ok)))
        end = pd.to_datetime(sub.column("time").to_pandas(), utc=True, errors="coerce", format="ISO8601")
        start = pd.to_datetime(
            sub.column("request_creation_time").to_pandas(), utc=True, errors="coerce", format="ISO8601"
        )
        out[~ok] = (end - start).dt.total_seconds().to_numpy(dtype=float, na_value=np.nan)
    return out


def _latency(batch: pa.RecordBatch) -> np.ndarray:
    total = row_latency(batch)
    return total[np.isfinite(total) & (total >= 0)]


def _attempts(batch: pa.RecordBatch) -> np.ndarray:
    col = batch.column("target_port_list")
    lengths = pc.list_value_length(pc.utf8_split_whitespace(pc.fill_null(col, ""))).to_numpy(zero_copy_only=False)
    lengths = lengths.astype(np.int64)
    dash = pc.equal(col, "-").to_numpy(zero_copy_only=False)
    nulls = pc.is_null(col).to_numpy(zero_copy_only=False)
    lengths[np.asarray(dash, dtype=bool) & ~nulls] = 0
    lengths[nulls] = 1  # pre-2020 log lines have no list: one target, as ALB never retried
    return lengths


def _harm(batch: pa.RecordBatch, status: np.ndarray, att: np.ndarray, side: Side) -> None:
    """Accumulate the harm counts of one batch into ``side``."""
    verbs = pc.utf8_upper(pc.fill_null(batch.column("request_verb"), "-"))
    unsafe = ~np.asarray(
        pc.is_in(verbs, value_set=pa.array(sorted(IDEMPOTENT))).to_numpy(zero_copy_only=False), dtype=bool
    )
    side.non_idempotent += int(unsafe.sum())
    side.non_idempotent_repeated += int((unsafe & (att > 1)).sum())
    side.non_idempotent_extra += int(np.where(unsafe & (att > 1), att - 1, 0).sum())
    bad = status >= 500
    side.failed += int(bad.sum())
    side.failed_attempts += int(att[bad].sum())
    side.failed_attempts_sq += int((att[bad] * att[bad]).sum())
    ok = (status > 0) & (status < 500)
    rpt = np.nan_to_num(batch.column("request_processing_time").to_numpy(zero_copy_only=False).astype(float), nan=-1.0)
    wait = np.where(ok & (rpt >= 0), rpt, 0.0)
    side.wait_sum += float(wait.sum())
    side.wait_sq += float((wait * wait).sum())
    if len(side.waits_retried) < 1_000_000:  # bounded; the count and mean stay exact
        side.waits_retried.extend(rpt[ok & (att > 1) & (rpt >= 0)].tolist())


def load_side(paths: list[str], *, max_samples: int = 200_000, seed: int = 1) -> Side:
    """Stream one log set into counts, a histogram and a bounded latency sample."""
    side = Side(paths=list(paths))
    rng = np.random.default_rng(seed)
    kept = np.empty(0)
    keys = np.empty(0)
    for batch in iter_batches(paths, fields=COLUMNS, stats=side.parse):
        status = batch.column("elb_status_code").to_numpy(zero_copy_only=False)
        status = np.nan_to_num(status.astype(float), nan=0)
        side.requests += len(status)
        side.good += int(((status > 0) & (status < 500)).sum())
        att = _attempts(batch)
        side.attempts += int(att.sum())
        side.attempts_sq += int((att * att).sum())
        vals, counts = np.unique(att, return_counts=True)
        for v, c in zip(vals.tolist(), counts.tolist()):
            side.histogram[v] = side.histogram.get(v, 0) + c
        _harm(batch, status, att, side)
        lat = _latency(batch)
        side.latency_count += len(lat)
        kept = np.concatenate([kept, lat])
        keys = np.concatenate([keys, rng.random(len(lat))])
        if len(kept) > max_samples:  # keep the max_samples smallest random keys: a uniform sample
            sel = np.argpartition(keys, max_samples)[:max_samples]
            kept, keys = kept[sel], keys[sel]
    side.latencies = kept
    return side


# --- the comparison -------------------------------------------------------------------------------


@dataclass
class Metric:
    """One row of the comparison: before and after with intervals, the change, and what it means."""

    name: str
    unit: str
    before: float
    before_ci: tuple[float, float]
    after: float
    after_ci: tuple[float, float]
    change: float
    change_ci: tuple[float, float]
    verdict: str


@dataclass
class CompareResult:
    """Everything ``albstats compare`` prints."""

    slo: float
    before_requests: int
    after_requests: int
    metrics: list[Metric]
    histogram: dict[str, dict[str, Any]]  # attempts -> {"before": [count, share, lo, hi], "after": ...}
    harm: dict[str, dict[str, float]]  # "before"/"after" -> counts behind the harm metrics
    verdict: str
    tradeoffs: list[str]
    malformed_lines: dict[str, int]
    notes: list[str]

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=float)


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
    def share(k1: int, n1: int, k2: int, n2: int) -> tuple[tuple[float, float, float], ...]:
        if n1 and n2:
            d2, l2, h2 = newcombe(k1, n1, k2, n2)
        else:
            d2, l2, h2 = math.nan, math.nan, math.nan
        return (
            (k1 / n1 if n1 else math.nan, *wilson(k1, n1)),
            (k2 / n2 if n2 else math.nan, *wilson(k2, n2)),
            (d2, l2, h2),
        )

    (vb, *cb), (va, *ca), (dv, *cd) = share(
        b.non_idempotent_repeated, b.non_idempotent, a.non_idempotent_repeated, a.non_idempotent
    )
    metrics.append(
        Metric(
            "non_idempotent_repeated",
            "ratio",
            vb,
            tuple(cb),
            va,
            tuple(ca),
            dv,
            tuple(cd),
            _verdict(cd[0], cd[1], False) if b.non_idempotent and a.non_idempotent else "n/a",
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


def _harm_summary(side: Side) -> dict[str, float]:
    w = np.asarray(side.waits_retried)
    return {
        "non_idempotent_requests": side.non_idempotent,
        "non_idempotent_repeated": side.non_idempotent_repeated,
        "non_idempotent_extra_attempts": side.non_idempotent_extra,
        "failed_requests": side.failed,
        "failed_request_attempts": side.failed_attempts,
        "successes_after_retry": len(w),
        "retry_wait_p50": float(np.percentile(w, 50)) if len(w) else math.nan,
        "retry_wait_p90": float(np.percentile(w, 90)) if len(w) else math.nan,
        "retry_wait_max": float(w.max()) if len(w) else math.nan,
    }


# --- rendering ------------------------------------------------------------------------------------


def _fmt(v: float, unit: str, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    s = "+" if signed and v > 0 else ""
    if unit == "ratio":
        return f"{s}{v * 100:.2f}%" if not signed else f"{s}{v * 100:.2f} pp"
    if unit == "s":
        return f"{s}{v * 1000:.1f} ms"
    return f"{s}{v:.3f}{'x' if unit.startswith('x') else ''}"


def _harm_line(h: dict[str, float]) -> str:
    wait = (
        f"waited p50 {h['retry_wait_p50']:.3f} s, p90 {h['retry_wait_p90']:.3f} s, max {h['retry_wait_max']:.3f} s "
        "before the attempt that answered"
        if h["successes_after_retry"]
        else "none"
    )
    return (
        f"{h['non_idempotent_repeated']:.0f} of {h['non_idempotent_requests']:.0f} non-idempotent requests sent "
        f"more than once ({h['non_idempotent_extra_attempts']:.0f} extra attempts, each a possible second "
        f"execution); {h['failed_requests']:.0f} failed requests took {h['failed_request_attempts']:.0f} upstream "
        f"attempts; {h['successes_after_retry']:.0f} successes needed a retry: {wait}"
    )


def render_table(r: CompareResult) -> str:
    """A plain-text table for the terminal."""
    rows = [("metric", "before [95% CI]", "after [95% CI]", "change [95% CI]", "verdict")]
    for m in r.metrics:
        rows.append(
            (
                m.name,
                f"{_fmt(m.before, m.unit)} [{_fmt(m.before_ci[0], m.unit)}, {_fmt(m.before_ci[1], m.unit)}]",
                f"{_fmt(m.after, m.unit)} [{_fmt(m.after_ci[0], m.unit)}, {_fmt(m.after_ci[1], m.unit)}]",
                f"{_fmt(m.change, m.unit, True)} [{_fmt(m.change_ci[0], m.unit, True)}, "
                f"{_fmt(m.change_ci[1], m.unit, True)}]",
                m.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [f"requests: before {r.before_requests}, after {r.after_requests}; SLO {r.slo * 100:g}%", ""]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", "upstream attempts per client request (share of requests [95% CI]):"]
    for k, row in r.histogram.items():
        bc, bs, bl, bh = row["before"]
        ac, as_, al, ah = row["after"]
        lines.append(
            f"  {k:>2}: before {bc:>7} {bs * 100:6.2f}% [{bl * 100:.2f}, {bh * 100:.2f}]   "
            f"after {ac:>7} {as_ * 100:6.2f}% [{al * 100:.2f}, {ah * 100:.2f}]"
        )
    lines += ["", "harm (counted in the logs):"]
    for label in ("before", "after"):
        h = r.harm[label]
        lines.append(f"  {label}: {_harm_line(h)}")
    lines += ["", f"verdict: {r.verdict}"]
    if r.tradeoffs:
        lines.append("trade-offs: " + "; ".join(r.tradeoffs))
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def render_side_by_side(results: dict[str, CompareResult]) -> str:
    """Several "after" log sets (e.g. two retry policies) against the same "before", one column each:
    the help and the harm of each next to the other's."""
    labels = list(results)
    first = results[labels[0]]
    rows = [("metric", "before [95% CI]", *(f"{k} [95% CI]: change, verdict" for k in labels))]
    for m0 in first.metrics:
        row = [
            m0.name,
            f"{_fmt(m0.before, m0.unit)} [{_fmt(m0.before_ci[0], m0.unit)}, {_fmt(m0.before_ci[1], m0.unit)}]",
        ]
        for k in labels:
            m = results[k].metric(m0.name)
            row.append(
                f"{_fmt(m.after, m.unit)} [{_fmt(m.after_ci[0], m.unit)}, {_fmt(m.after_ci[1], m.unit)}]: "
                f"{_fmt(m.change, m.unit, True)}, {m.verdict}"
            )
        rows.append(tuple(row))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"requests: before {first.before_requests}, "
        + ", ".join(f"{k} {results[k].after_requests}" for k in labels)
        + f"; SLO {first.slo * 100:g}%",
        "",
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", "harm (counted in the logs):", f"  before: {_harm_line(first.harm['before'])}"]
    lines += [f"  {k}: {_harm_line(results[k].harm['after'])}" for k in labels]
    lines.append("")
    for k in labels:
        r = results[k]
        lines.append(f"{k}: verdict {r.verdict}" + (f"; trade-offs: {'; '.join(r.tradeoffs)}" if r.tradeoffs else ""))
        lines += [f"  note: {n}" for n in r.notes]
    return "\n".join(lines)
