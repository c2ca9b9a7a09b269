"""SLIs, SLOs, error budgets, burn rates and incidents, computed from per-bucket counts.

Everything here works on small DataFrames of per-bucket counts (one row per 5-minute bucket, as the
saved query ``slo_buckets`` returns them), never on raw log rows, so the same code serves the local
and the Athena engine and an analyst's notebook.

Definitions (documented in docs/guide/report.md):

- A request is *good* when ``elb_status_code`` is below 500: 4XX answers are the client's problem.
  With ``count_460`` the ELB code 460 (the client gave up, usually on a slow target) is bad as well.
- Success rate = good / requests. The SLO is met when success rate >= target.
- Error budget: ``allowed = (1 - target) x requests`` bad requests; ``used`` = bad requests;
  ``remaining = allowed - used`` (negative when overspent); ``remaining_fraction = remaining / allowed``.
- Burn rate of a window = (bad / requests in the window) / (1 - target): 1.0 spends the budget exactly
  over the SLO period, 14.4 spends 2 % of a 30-day budget in one hour.
- Multiwindow alerts, as in the Google SRE workbook ("Alerting on SLOs", table 5-8): a pair fires at
  time t when the burn rate over both the long and the short window ending at t exceeds the threshold.
  Pairs used: 1 h / 5 min at 14.4 (page), 6 h / 30 min at 6 (page), 3 d / 6 h at 1 (ticket).
- Latency SLI: among requests that reached a target (none of the three processing times is -1), the
  share whose total time (the sum of the three) is strictly under the threshold.
- Incidents: runs of 5-minute buckets whose bad-request rate is far above the baseline (see
  :func:`find_incidents`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from albstats.errors import UsageError

BUCKET = timedelta(minutes=5)

#: (name, long window, short window, burn-rate threshold, severity): SRE workbook table 5-8.
ALERT_PAIRS: tuple[tuple[str, timedelta, timedelta, float, str], ...] = (
    ("1h/5m", timedelta(hours=1), timedelta(minutes=5), 14.4, "page"),
    ("6h/30m", timedelta(hours=6), timedelta(minutes=30), 6.0, "page"),
    ("3d/6h", timedelta(days=3), timedelta(hours=6), 1.0, "ticket"),
)


# --- option parsing -------------------------------------------------------------------------------

def parse_slo(text: str | float) -> float:
    """``"99.0"``, ``"99.9%"`` -> 0.99, 0.999. Percent only, so ``0.99`` is refused rather than guessed."""
    s = str(text).strip().rstrip("%")
    try:
        v = float(s)
    except ValueError:
        raise UsageError(f"--slo {text!r}: expected a percentage such as 99.0 or 99.9") from None
    if not 1.0 <= v < 100.0 or math.isnan(v):
        raise UsageError(f"--slo {text!r}: expected a percentage between 1 and 100 (exclusive), such as 99.0")
    return round(v / 100.0, 12)


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration_seconds(text: str) -> float:
    """``"1s"``, ``"250ms"``, ``"1.5"`` (seconds), ``"2m"`` -> seconds."""
    m = _DURATION_RE.match(text)
    if not m:
        raise UsageError(f"{text!r}: expected a duration such as 1s, 250ms or 1.5")
    v = float(m[1])
    return v / 1000.0 if m[2] == "ms" else v * 60.0 if m[2] == "m" else v


def parse_latency_slo(text: str) -> tuple[float, float]:
    """``"1s@95"`` -> (1.0 seconds, 0.95): 95 % of requests must take under 1 s in total."""
    if "@" not in text:
        raise UsageError(f"--latency-slo {text!r}: expected THRESHOLD@PERCENT, such as 1s@95 or 500ms@99")
    thr, pct = text.split("@", 1)
    try:
        seconds = parse_duration_seconds(thr)
    except UsageError as e:
        raise UsageError(f"--latency-slo {text!r}: {e}") from None
    if seconds <= 0:
        raise UsageError(f"--latency-slo {text!r}: the threshold must be above zero")
    try:
        target = parse_slo(pct)
    except UsageError:
        raise UsageError(f"--latency-slo {text!r}: the percentage must be between 1 and 100, e.g. 1s@95") from None
    return seconds, target


# --- results --------------------------------------------------------------------------------------

@dataclass
class ErrorBudget:
    """Bad requests the SLO allows over the window, and how many were spent."""

    allowed: float
    used: int
    remaining: float
    remaining_fraction: float | None  # None when nothing is allowed (no requests)
    consumed_fraction: float | None


@dataclass
class BurnWindow:
    """The worst window of a given length: where it starts and its burn rate."""

    length_seconds: int
    burn_rate: float | None
    start: datetime | None
    end: datetime | None
    requests: int
    bad_requests: int


@dataclass
class AlertPair:
    """One SRE-workbook multiwindow burn-rate alert evaluated over the report window."""

    name: str
    long_seconds: int
    short_seconds: int
    threshold: float
    severity: str
    evaluated: bool  # False when the data window is shorter than the long window
    fired: bool
    first_fired: datetime | None
    minutes_firing: int
    max_long_burn_rate: float | None


@dataclass
class Availability:
    """The availability SLI against its SLO."""

    requests: int
    bad_requests: int
    success_rate: float | None
    target: float
    met: bool
    count_460: bool
    errors_5xx: int
    elb_5xx: int
    target_5xx: int
    status_460: int
    error_budget: ErrorBudget
    burn_rate: float | None
    worst_1h: BurnWindow
    worst_6h: BurnWindow
    alerts: list[AlertPair] = field(default_factory=list)


@dataclass
class LatencySlo:
    """Share of dispatched requests faster than the threshold, against its target."""

    threshold_seconds: float
    target: float
    requests: int  # requests with all three processing times valid
    good: int
    share: float | None
    met: bool


@dataclass
class Incident:
    """A run of buckets with a bad-request rate far above the baseline."""

    start: datetime
    end: datetime
    duration_seconds: int
    requests: int
    bad_requests: int
    error_rate: float
    peak_rate: float
    elb_5xx: int
    target_5xx: int
    budget_fraction: float | None  # share of the window's error budget this incident spent


# --- computing ------------------------------------------------------------------------------------

COUNT_COLUMNS = ("requests", "errors_5xx", "status_460", "elb_5xx", "target_5xx", "latency_requests",
                 "latency_good")


def bad_column(buckets: pd.DataFrame, count_460: bool) -> pd.Series:
    """Bad requests per bucket: 5XX, plus 460 when asked."""
    bad = buckets["errors_5xx"].astype("int64")
    if count_460:
        bad = bad + buckets["status_460"].astype("int64")
    return bad


def regular(buckets: pd.DataFrame, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Buckets on a complete 5-minute grid (empty buckets as zero rows), indexed by bucket_start (UTC).

    ``start``/``end`` (the report window) extend the grid so that quiet time counts as quiet.
    """
    df = buckets.copy()
    df["bucket_start"] = pd.to_datetime(df["bucket_start"], utc=True)
    df = df.groupby("bucket_start")[[c for c in COUNT_COLUMNS if c in df.columns]].sum()
    for c in COUNT_COLUMNS:
        if c not in df.columns:
            df[c] = 0
    df = df.astype("int64")
    lo = df.index.min() if len(df) else None
    hi = df.index.max() if len(df) else None
    if start is not None:
        s = pd.Timestamp(start).tz_convert("UTC").floor("5min") if pd.Timestamp(start).tzinfo else \
            pd.Timestamp(start, tz="UTC").floor("5min")
        lo = s if lo is None else min(lo, s)
    if end is not None:
        e = pd.Timestamp(end)
        e = e.tz_convert("UTC") if e.tzinfo else e.tz_localize("UTC")
        last = (e - pd.Timedelta(microseconds=1)).floor("5min")
        hi = last if hi is None else max(hi, last)
    if lo is None or hi is None:
        return df
    grid = pd.date_range(lo, hi, freq="5min", tz="UTC", name="bucket_start")
    return df.reindex(grid, fill_value=0)


def _burn(bad: float, requests: float, target: float) -> float | None:
    if requests <= 0:
        return None
    return (bad / requests) / (1.0 - target)


def worst_window(grid: pd.DataFrame, bad: pd.Series, length: timedelta, target: float) -> BurnWindow:
    """The window of ``length`` (aligned to buckets) with the highest burn rate, among windows inside the data."""
    n = int(length / BUCKET)
    secs = int(length.total_seconds())
    if len(grid) < n or n <= 0:
        return BurnWindow(secs, None, None, None, 0, 0)
    req = grid["requests"].rolling(n).sum()
    b = bad.rolling(n).sum()
    rate = (b / req.where(req > 0)) / (1.0 - target)
    if rate.notna().sum() == 0:
        return BurnWindow(secs, None, None, None, 0, 0)
    # highest burn; ties broken by more bad requests, then the earliest
    order = pd.DataFrame({"rate": rate, "bad": b}).dropna().sort_values(["rate", "bad"], ascending=[False, False],
                                                                         kind="stable")
    end_label = order.index[0]
    end = (end_label + BUCKET).to_pydatetime()
    return BurnWindow(secs, float(order["rate"].iloc[0]), end - length, end, int(req[end_label]), int(b[end_label]))


def evaluate_alerts(grid: pd.DataFrame, bad: pd.Series, target: float) -> list[AlertPair]:
    """Evaluate each multiwindow pair at every 5-minute step where its long window lies inside the data."""
    out: list[AlertPair] = []
    for name, long, short, thr, sev in ALERT_PAIRS:
        nl, ns = int(long / BUCKET), int(short / BUCKET)
        if len(grid) < nl:
            out.append(AlertPair(name, int(long.total_seconds()), int(short.total_seconds()), thr, sev,
                                 False, False, None, 0, None))
            continue
        err = 1.0 - target
        lr = grid["requests"].rolling(nl).sum()
        sr = grid["requests"].rolling(ns).sum()
        lb = (bad.rolling(nl).sum() / lr.where(lr > 0)) / err
        sb = (bad.rolling(ns).sum() / sr.where(sr > 0)) / err
        firing = (lb > thr) & (sb > thr)
        first = firing[firing].index.min() if firing.any() else None
        out.append(AlertPair(
            name, int(long.total_seconds()), int(short.total_seconds()), thr, sev, True, bool(firing.any()),
            None if first is None else (first + BUCKET).to_pydatetime(), int(firing.sum()) * 5,
            None if lb.notna().sum() == 0 else float(lb.max())))
    return out


def availability(buckets: pd.DataFrame, target: float, *, count_460: bool = False,
                 start: datetime | None = None, end: datetime | None = None) -> Availability:
    """The availability SLI, error budget, burn rates and alerts from per-bucket counts."""
    grid = regular(buckets, start, end)
    bad = bad_column(grid, count_460) if len(grid) else pd.Series(dtype="int64")
    requests = int(grid["requests"].sum()) if len(grid) else 0
    bad_total = int(bad.sum()) if len(grid) else 0
    success = None if requests == 0 else (requests - bad_total) / requests
    allowed = (1.0 - target) * requests
    remaining = allowed - bad_total
    budget = ErrorBudget(
        allowed=allowed, used=bad_total, remaining=remaining,
        remaining_fraction=None if allowed <= 0 else remaining / allowed,
        consumed_fraction=None if allowed <= 0 else bad_total / allowed)

    def total(col: str) -> int:
        return int(grid[col].sum()) if len(grid) else 0

    return Availability(
        requests=requests, bad_requests=bad_total, success_rate=success, target=target,
        met=requests == 0 or (success is not None and success >= target), count_460=count_460,
        errors_5xx=total("errors_5xx"), elb_5xx=total("elb_5xx"), target_5xx=total("target_5xx"),
        status_460=total("status_460"), error_budget=budget, burn_rate=_burn(bad_total, requests, target),
        worst_1h=worst_window(grid, bad, timedelta(hours=1), target),
        worst_6h=worst_window(grid, bad, timedelta(hours=6), target),
        alerts=evaluate_alerts(grid, bad, target) if len(grid) else [])


def latency_slo(buckets: pd.DataFrame, threshold_seconds: float, target: float) -> LatencySlo:
    """Latency SLI from the ``latency_requests``/``latency_good`` bucket counts."""
    n = int(buckets["latency_requests"].sum()) if len(buckets) else 0
    good = int(buckets["latency_good"].sum()) if len(buckets) else 0
    share = None if n == 0 else good / n
    return LatencySlo(threshold_seconds, target, n, good, share, n == 0 or (share is not None and share >= target))


def burn_down(buckets: pd.DataFrame, target: float, *, count_460: bool = False,
              start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Error budget left over time: columns bucket_end, used (cumulative), remaining_fraction.

    The budget is that of the whole window (``(1 - target) x all requests``), spent bucket by bucket.
    """
    grid = regular(buckets, start, end)
    if not len(grid):
        return pd.DataFrame({"bucket_end": pd.Series([], dtype="datetime64[ns, UTC]"), "used": [],
                             "remaining_fraction": []})
    bad = bad_column(grid, count_460)
    allowed = (1.0 - target) * float(grid["requests"].sum())
    used = bad.cumsum()
    return pd.DataFrame({
        "bucket_end": grid.index + BUCKET,
        "used": used.to_numpy(),
        "remaining_fraction": ((allowed - used) / allowed).to_numpy() if allowed > 0 else float("nan"),
    })


def find_incidents(buckets: pd.DataFrame, target: float, *, count_460: bool = False, k: float = 5.0,
                   min_bad: int = 5, merge_gap: int = 1, start: datetime | None = None,
                   end: datetime | None = None) -> tuple[list[Incident], float]:
    """Runs of 5-minute buckets far above the baseline; returns (incidents, threshold rate).

    A bucket is *hot* when its bad-request rate exceeds all of: 3 x the median bucket rate,
    the median + ``k`` x the scaled MAD (1.4826 x median absolute deviation, a robust standard deviation),
    and the SLO's allowed error rate (1 - target), and it has at least ``min_bad`` bad requests (so a
    quiet bucket with one failure is not an incident). Hot buckets separated by at most ``merge_gap``
    quiet buckets form one incident. The median and MAD are over buckets that have requests, so one
    long outage cannot hide itself by raising the baseline unless it covers half the window.
    """
    grid = regular(buckets, start, end)
    if not len(grid):
        return [], float("nan")
    bad = bad_column(grid, count_460)
    req = grid["requests"]
    rate = (bad / req.where(req > 0)).fillna(0.0)
    live = rate[req > 0]
    med = float(live.median()) if len(live) else 0.0
    mad = float((live - med).abs().median()) if len(live) else 0.0
    threshold = max(3.0 * med, med + k * 1.4826 * mad, 1.0 - target)
    hot = (rate > threshold) & (bad >= min_bad)
    incidents: list[Incident] = []
    idx = list(grid.index)
    i = 0
    allowed = (1.0 - target) * float(req.sum())
    while i < len(idx):
        if not hot.iloc[i]:
            i += 1
            continue
        j = i
        gap = 0
        k_ = i + 1
        while k_ < len(idx):
            if hot.iloc[k_]:
                j, gap = k_, 0
            else:
                gap += 1
                if gap > merge_gap:
                    break
            k_ += 1
        sl = slice(i, j + 1)
        r, b = int(req.iloc[sl].sum()), int(bad.iloc[sl].sum())
        s = idx[i].to_pydatetime()
        e = (idx[j] + BUCKET).to_pydatetime()
        incidents.append(Incident(
            start=s, end=e, duration_seconds=int((e - s).total_seconds()), requests=r, bad_requests=b,
            error_rate=b / r if r else 0.0, peak_rate=float(rate.iloc[sl].max()),
            elb_5xx=int(grid["elb_5xx"].iloc[sl].sum()), target_5xx=int(grid["target_5xx"].iloc[sl].sum()),
            budget_fraction=None if allowed <= 0 else b / allowed))
        i = j + 1
    return incidents, threshold
