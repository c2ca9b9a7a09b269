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
- Incidents: runs of 5-minute buckets whose bad-request counts are significantly above the service's
  own recent baseline and above the allowed rate (see :func:`hot_buckets`).

The module is about 580 lines: the four answers above share the bucket frame and the error-budget
arithmetic, and each is a few functions; split, they would import one another.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import numpy as np
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
    baseline_rate: float | None = None  # the service's own recent rate the buckets were tested against
    max_z: float | None = None  # strongest evidence: the highest z score of its buckets


# --- computing ------------------------------------------------------------------------------------

COUNT_COLUMNS = ("requests", "errors_5xx", "status_460", "elb_5xx", "target_5xx", "latency_requests", "latency_good")


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
        s = (
            pd.Timestamp(start).tz_convert("UTC").floor("5min")
            if pd.Timestamp(start).tzinfo
            else pd.Timestamp(start, tz="UTC").floor("5min")
        )
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
    order = (
        pd.DataFrame({"rate": rate, "bad": b})
        .dropna()
        .sort_values(["rate", "bad"], ascending=[False, False], kind="stable")
    )
    end_label = order.index[0]
    end = (end_label + BUCKET).to_pydatetime()
    return BurnWindow(secs, float(order["rate"].iloc[0]), end - length, end, int(req[end_label]), int(b[end_label]))


def evaluate_alerts(grid: pd.DataFrame, bad: pd.Series, target: float) -> list[AlertPair]:
    """Evaluate each multiwindow pair at every 5-minute step where its long window lies inside the data."""
    out: list[AlertPair] = []
    for name, long, short, thr, sev in ALERT_PAIRS:
        nl, ns = int(long / BUCKET), int(short / BUCKET)
        if len(grid) < nl:
            out.append(
                AlertPair(
                    name, int(long.total_seconds()), int(short.total_seconds()), thr, sev, False, False, None, 0, None
                )
            )
            continue
        err = 1.0 - target
        lr = grid["requests"].rolling(nl).sum()
        sr = grid["requests"].rolling(ns).sum()
        lb = (bad.rolling(nl).sum() / lr.where(lr > 0)) / err
        sb = (bad.rolling(ns).sum() / sr.where(sr > 0)) / err
        firing = (lb > thr) & (sb > thr)
        first = firing[firing].index.min() if firing.any() else None
        out.append(
            AlertPair(
                name,
                int(long.total_seconds()),
                int(short.total_seconds()),
                thr,
                sev,
                True,
                bool(firing.any()),
                None if first is None else (first + BUCKET).to_pydatetime(),
                int(firing.sum()) * 5,
                None if lb.notna().sum() == 0 else float(lb.max()),
            )
        )
    return out


def availability(
    buckets: pd.DataFrame,
    target: float,
    *,
    count_460: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Availability:
    """The availability SLI, error budget, burn rates and alerts from per-bucket counts."""
    grid = regular(buckets, start, end)
    bad = bad_column(grid, count_460) if len(grid) else pd.Series(dtype="int64")
    requests = int(grid["requests"].sum()) if len(grid) else 0
    bad_total = int(bad.sum()) if len(grid) else 0
    success = None if requests == 0 else (requests - bad_total) / requests
    allowed = (1.0 - target) * requests
    remaining = allowed - bad_total
    budget = ErrorBudget(
        allowed=allowed,
        used=bad_total,
        remaining=remaining,
        remaining_fraction=None if allowed <= 0 else remaining / allowed,
        consumed_fraction=None if allowed <= 0 else bad_total / allowed,
    )

    def total(col: str) -> int:
        return int(grid[col].sum()) if len(grid) else 0

    return Availability(
        requests=requests,
        bad_requests=bad_total,
        success_rate=success,
        target=target,
        met=requests == 0 or (success is not None and success >= target),
        count_460=count_460,
        errors_5xx=total("errors_5xx"),
        elb_5xx=total("elb_5xx"),
        target_5xx=total("target_5xx"),
        status_460=total("status_460"),
        error_budget=budget,
        burn_rate=_burn(bad_total, requests, target),
        worst_1h=worst_window(grid, bad, timedelta(hours=1), target),
        worst_6h=worst_window(grid, bad, timedelta(hours=6), target),
        alerts=evaluate_alerts(grid, bad, target) if len(grid) else [],
    )


def latency_slo(buckets: pd.DataFrame, threshold_seconds: float, target: float) -> LatencySlo:
    """Latency SLI from the ``latency_requests``/``latency_good`` bucket counts."""
    n = int(buckets["latency_requests"].sum()) if len(buckets) else 0
    good = int(buckets["latency_good"].sum()) if len(buckets) else 0
    share = None if n == 0 else good / n
    return LatencySlo(threshold_seconds, target, n, good, share, n == 0 or (share is not None and share >= target))


def burn_down(
    buckets: pd.DataFrame,
    target: float,
    *,
    count_460: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Error budget left over time: columns bucket_end, used (cumulative), remaining_fraction.

    The budget is that of the whole window (``(1 - target) x all requests``), spent bucket by bucket.
    """
    grid = regular(buckets, start, end)
    if not len(grid):
        return pd.DataFrame(
            {"bucket_end": pd.Series([], dtype="datetime64[ns, UTC]"), "used": [], "remaining_fraction": []}
        )
    bad = bad_column(grid, count_460)
    allowed = (1.0 - target) * float(grid["requests"].sum())
    used = bad.cumsum()
    return pd.DataFrame(
        {
            "bucket_end": cast("pd.DatetimeIndex", grid.index) + BUCKET,
            "used": used.to_numpy(),
            "remaining_fraction": ((allowed - used) / allowed).to_numpy() if allowed > 0 else float("nan"),
        }
    )


def _window_sums(values: np.ndarray, half: int, trailing: bool) -> np.ndarray:
    """Sum of the ``half`` buckets before each bucket (trailing) or on both sides (centred), the bucket excluded."""
    c = np.concatenate(([0.0], np.cumsum(values)))
    idx = np.arange(len(values))
    lo = np.clip(idx - half, 0, len(values))
    hi = idx if trailing else np.clip(idx + half + 1, 0, len(values))
    return c[hi] - c[lo] - (0.0 if trailing else values)


def _run_sums(values: np.ndarray, k: int) -> np.ndarray:
    """Sum of the ``k`` buckets ending at each bucket (0 where fewer than ``k`` precede)."""
    c = np.concatenate(([0.0], np.cumsum(values)))
    out = np.zeros(len(values))
    out[k - 1 :] = c[k:] - c[: len(values) - k + 1]
    return out


def hot_buckets(
    requests: np.ndarray,
    bad: np.ndarray,
    allowed_rate: float,
    *,
    z_crit: float = 4.5,
    half_window: int = 72,
    min_bad: int = 5,
    min_baseline_requests: float = 200.0,
    iterations: int = 4,
    scales: tuple[int, ...] = (3, 6, 12),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which buckets fail significantly more often than the service's own recent baseline.

    Returns (hot, baseline rate, z score, rate a bucket of that size must exceed), one value per bucket.

    The test: a bucket with ``n`` requests and ``x`` bad ones, against a baseline rate ``p`` from the
    ``half_window`` buckets before it (6 h), is hot when its quasi-binomial z score
    ``(x - n p) / sqrt(phi n p (1 - p))`` exceeds ``z_crit`` (4.5: one chance in 300,000 per bucket under
    the baseline, about one false bucket a decade of 5-minute buckets), its rate is above the SLO's
    allowed rate, and it has at least ``min_bad`` bad requests. ``phi`` (at least 1) is the dispersion
    the baseline buckets show beyond binomial noise, estimated from their median Pearson residual, so a
    service whose error rate wanders by itself (a flaky target) needs a larger excess. Hot buckets
    are left out of every baseline and the test repeats until nothing changes, so an incident neither
    raises its own baseline nor hides a neighbour. Where the trailing window holds too few requests
    (the start of the data) the baseline is the whole series' rate without the hot buckets.

    A long moderate excess (a failing target group behind a busy load balancer: every 5-minute bucket
    a little high, none alone significant) is caught by testing runs of 3, 6 and 12 buckets (15 min
    to 1 h) the same way on their summed counts; in a significant run, the buckets that are above
    both the baseline (z > 1) and the allowed rate are hot.
    """
    n = requests.astype("float64")
    x = bad.astype("float64")
    hot = np.zeros(len(n), dtype=bool)
    p = np.zeros(len(n))
    z = np.zeros(len(n))
    need = np.full(len(n), np.nan)
    for _ in range(iterations):
        xn, nn = np.where(hot, 0.0, x), np.where(hot, 0.0, n)
        cx, cn = _window_sums(xn, half_window, True), _window_sums(nn, half_window, True)
        pooled = xn.sum() / nn.sum() if nn.sum() > 0 else 0.0
        p = np.where(cn >= min_baseline_requests, cx / np.maximum(cn, 1.0), pooled)
        p = np.clip(p, 1e-6, 1 - 1e-6)
        var = n * p * (1 - p)
        with np.errstate(divide="ignore", invalid="ignore"):
            resid = np.where(var > 0, (x - n * p) ** 2 / var, np.nan)
        use = (~hot) & (n * p >= 5)
        # the median Pearson residual of a binomial count is 0.455 (chi-square, 1 degree of freedom):
        # a median, not a mean, so buckets of an incident not yet flagged cannot inflate it
        phi = float(np.clip(np.nanmedian(resid[use]) / 0.455, 1.0, 50.0)) if use.any() else 1.0
        sd = np.sqrt(phi * var)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sd > 0, (x - n * p) / sd, 0.0)
            rate = np.where(n > 0, x / n, 0.0)
            need = np.where(n > 0, np.maximum(p + z_crit * sd / n, allowed_rate), np.nan)
        single = (z > z_crit) & (rate > allowed_rate) & (x >= min_bad)
        new = single.copy()
        # a sustained moderate excess: runs of `k` buckets tested as one (same z_crit on the summed
        # counts); inside a significant run, the buckets that are themselves above baseline and allowed rate
        for k in scales:
            if k > len(n):
                break
            # only the evidence single buckets did not already give: an incident's hot buckets must
            # not make a window of ordinary neighbours look significant
            keep = ~single
            sx, se = _run_sums(np.where(keep, x, 0.0), k), _run_sums(np.where(keep, n * p, 0.0), k)
            sv, sn = _run_sums(np.where(keep, var, 0.0), k), _run_sums(np.where(keep, n, 0.0), k)
            # dispersion at this scale: a baseline that drifts (the traffic mix changing over the day)
            # shows as extra variance of k-bucket sums that single buckets do not reveal
            blocks = np.arange(k - 1, len(n), k)
            clean = blocks[(_run_sums((hot | single).astype("float64"), k)[blocks] == 0) & (se[blocks] >= 5)]
            phi_k = phi
            if len(clean) >= 8:
                with np.errstate(divide="ignore", invalid="ignore"):
                    rk = (sx[clean] - se[clean]) ** 2 / sv[clean]
                phi_k = float(np.clip(np.nanmedian(rk) / 0.455, phi, 50.0))
            sv = phi_k * sv
            with np.errstate(divide="ignore", invalid="ignore"):
                zk = np.where(sv > 0, (sx - se) / np.sqrt(sv), 0.0)
                run_ok = (zk > z_crit) & (sx >= min_bad) & (sx > allowed_rate * sn)
            ends = np.flatnonzero(run_ok)
            if len(ends):
                member = np.zeros(len(n), dtype=bool)
                for e in ends:
                    member[e - k + 1 : e + 1] = True
                new |= member & (z > 1.0) & (rate > allowed_rate)
        if (new == hot).all():
            break
        hot = new
    return hot, p, z, need


def find_incidents(
    buckets: pd.DataFrame,
    target: float,
    *,
    count_460: bool = False,
    z_crit: float = 4.5,
    min_bad: int = 5,
    merge_gap: int = 1,
    start: datetime | None = None,
    end: datetime | None = None,
) -> tuple[list[Incident], float]:
    """Runs of 5-minute buckets significantly above the service's own baseline; returns (incidents, threshold).

    A bucket is hot per :func:`hot_buckets` (a test on its counts against the trailing 6 h baseline,
    and above the SLO's allowed rate 1 - target). Hot buckets separated by at most ``merge_gap`` quiet
    buckets form one incident. ``threshold`` is the median over buckets of the rate a bucket had to
    exceed to be hot (it depends on the bucket's size and baseline; reported as a guide).
    """
    grid = regular(buckets, start, end)
    if not len(grid):
        return [], float("nan")
    bad = bad_column(grid, count_460)
    return incidents_from(
        grid["requests"],
        bad,
        grid["elb_5xx"],
        grid["target_5xx"],
        1.0 - target,
        z_crit=z_crit,
        min_bad=min_bad,
        merge_gap=merge_gap,
    )


def incidents_from(
    req: pd.Series,
    bad: pd.Series,
    elb_5xx: pd.Series,
    target_5xx: pd.Series,
    allowed_rate: float,
    *,
    z_crit: float = 4.5,
    min_bad: int = 5,
    merge_gap: int = 1,
) -> tuple[list[Incident], float]:
    """:func:`find_incidents` on per-bucket series indexed by bucket start (a complete 5-minute grid)."""
    hot, base, z, need = hot_buckets(req.to_numpy(), bad.to_numpy(), allowed_rate, z_crit=z_crit, min_bad=min_bad)
    rate = (bad / req.where(req > 0)).fillna(0.0)
    incidents: list[Incident] = []
    idx = list(req.index)
    total_allowed = allowed_rate * float(req.sum())
    i = 0
    while i < len(idx):
        if not hot[i]:
            i += 1
            continue
        j, gap, k = i, 0, i + 1
        while k < len(idx):
            if hot[k]:
                j, gap = k, 0
            else:
                gap += 1
                if gap > merge_gap:
                    break
            k += 1
        sl = slice(i, j + 1)
        r, b = int(req.iloc[sl].sum()), int(bad.iloc[sl].sum())
        s = idx[i].to_pydatetime()
        e = (idx[j] + BUCKET).to_pydatetime()
        nsl = req.to_numpy()[sl].astype("float64")
        if b < min_bad:  # a run of quiet buckets with a failure or two is not an incident
            i = j + 1
            continue
        incidents.append(
            Incident(
                start=s,
                end=e,
                duration_seconds=int((e - s).total_seconds()),
                requests=r,
                bad_requests=b,
                error_rate=b / r if r else 0.0,
                peak_rate=float(rate.iloc[sl].max()),
                elb_5xx=int(elb_5xx.iloc[sl].sum()),
                target_5xx=int(target_5xx.iloc[sl].sum()),
                budget_fraction=None if total_allowed <= 0 else b / total_allowed,
                baseline_rate=float((base[sl] * nsl).sum() / nsl.sum()) if nsl.sum() > 0 else None,
                max_z=float(np.max(z[sl])),
            )
        )
        i = j + 1
    finite = need[np.isfinite(need)]
    return incidents, float(np.median(finite)) if len(finite) else float("nan")
