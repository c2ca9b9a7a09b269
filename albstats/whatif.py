"""What would a retry policy do? A Monte Carlo replay of the observed outcomes under a policy.

Each logged request is one observed *attempt*: its outcome (success, a failure the policy retries,
a failure it does not) and its total time. A simulated request starts as a logged request (so the
method mix and the first outcome are the observed ones); each retry draws a fresh, independent attempt
from all logged requests. Per-try timeouts, backoff waits, the overall deadline, which methods may be
retried and the retry budget are applied as the proxy applies them.

The model's assumption is stated in every result: **attempts fail independently**, at the observed
per-attempt rate. Real failures cluster (a deploy, a dead database): then a retry fails more often
than the model says, the success gain is smaller, and the retry budget is what bounds the extra
load. Extra load is also assumed not to raise the failure rate.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import pyarrow.compute as pc

from albstats.compare import _attempts, row_latency
from albstats.errors import InputError, UsageError
from albstats.parse import ParseStats, iter_batches
from albstats.proxy.policy import RetryPolicy

COLUMNS = [
    "elb_status_code",
    "target_status_code",
    "target_status_code_list",
    "target_port_list",
    "request_verb",
    "request_processing_time",
    "target_processing_time",
    "response_processing_time",
    "time",
    "request_creation_time",
]

ASSUMPTIONS = [
    "attempts fail independently, each with the observed per-attempt failure rate; correlated failures "
    "(outages) make retries help less than predicted",
    "retries do not raise the upstream's failure rate or latency (no overload feedback)",
    "logs do not carry Idempotency-Key, so non-idempotent methods are counted as not retryable",
    "the retry budget's floor is spread over the logged period (one floor per budget window it spans) "
    "instead of a sliding window; Retry-After is not modelled",
]

OK, RETRY, FATAL = 0, 1, 2


@dataclass
class WhatIfResult:
    """Observed vs predicted figures for one policy."""

    policy: str
    requests_observed: int
    simulated: int
    observed: dict[str, float]
    predicted: dict[str, float]
    attempts_histogram: dict[str, float]  # attempts -> share of requests
    assumptions: list[str] = field(default_factory=lambda: list(ASSUMPTIONS))
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _outcomes(batch: Any, policy: RetryPolicy) -> np.ndarray:
    """One observed attempt per row: its outcome class. For proxy logs (several attempts listed) the
    first attempt is used, as it is an unbiased draw of one attempt; otherwise the row's final status."""
    elb = np.nan_to_num(batch.column("elb_status_code").to_numpy(zero_copy_only=False).astype(float), nan=0)
    tgt = pc.fill_null(batch.column("target_status_code"), "-").to_pylist()
    lists = pc.fill_null(batch.column("target_status_code_list"), "-").to_pylist()
    out = np.full(len(elb), OK, dtype=np.int8)
    for i, (e, t, lst) in enumerate(zip(elb.tolist(), tgt, lists)):
        parts = lst.split()
        if len(parts) > 1:
            first = parts[0]
            if first == "-":
                out[i] = RETRY if policy.retry_connect_errors else FATAL
            elif first.isdigit() and int(first) >= 500:
                out[i] = RETRY if policy.status_retryable(int(first)) else FATAL
            continue
        if e < 500:
            continue
        if t == "-":  # no answer from the target: connection error (502) or timeout (504)
            retry = policy.retry_connect_errors if e != 504 else policy.retry_timeouts
        else:
            retry = policy.status_retryable(int(t)) if t.isdigit() else e in (502, 503, 504)
        out[i] = RETRY if retry else FATAL
    return out


def whatif(
    paths: list[str] | str,
    policy: RetryPolicy,
    *,
    simulations: int = 20_000,
    seed: int = 7,
    max_rows: int = 500_000,
    s3_options: dict[str, Any] | None = None,
) -> WhatIfResult:
    """Predict success rate, latency and upstream load under ``policy`` from the logged outcomes.

    ``s3_options`` (``profile``, ``region``) are for ``s3://`` paths, as in :func:`albstats.sources.expand`."""
    if not 0 <= seed < 2**63:
        raise UsageError(f"--seed: {seed} must be a non-negative integer below 2**63")
    paths = [paths] if isinstance(paths, str) else list(paths)
    stats = ParseStats()
    # a bounded uniform sample of rows (outcome, latency, retryable method): memory does not grow with the input
    out = np.empty(0, dtype=np.int8)
    lat = np.empty(0)
    eligible = np.empty(0, dtype=bool)
    keys = np.empty(0)
    krng = np.random.default_rng(seed + 1)
    n = 0
    first_seen: str | None = None  # earliest request_creation_time / latest time (ISO strings sort as times)
    last_seen: str | None = None
    observed_attempts = 0
    observed_good = 0
    for batch in iter_batches(paths, fields=COLUMNS, stats=stats, s3_options=s3_options):
        n += batch.num_rows
        for col, pick in (("request_creation_time", "min"), ("time", "max")):
            v = pc.min_max(batch.column(col))[pick].as_py()
            if v and v != "-":
                if pick == "min":
                    first_seen = v if first_seen is None else min(first_seen, v)
                else:
                    last_seen = v if last_seen is None else max(last_seen, v)
        observed_attempts += int(_attempts(batch).sum())
        elb = np.nan_to_num(batch.column("elb_status_code").to_numpy(zero_copy_only=False).astype(float), nan=0)
        observed_good += int(((elb > 0) & (elb < 500)).sum())
        verbs = cast("list[str]", batch.column("request_verb").fill_null("-").to_pylist())
        out = np.concatenate([out, _outcomes(batch, policy)])
        lat = np.concatenate([lat, row_latency(batch)])
        eligible = np.concatenate([eligible, np.array([policy.method_retryable(v, {}) for v in verbs], dtype=np.bool_)])
        keys = np.concatenate([keys, krng.random(batch.num_rows)])
        if len(out) > max_rows:
            sel = np.argpartition(keys, max_rows)[:max_rows]
            out, lat, eligible, keys = out[sel], lat[sel], eligible[sel], keys[sel]
    if n == 0:
        raise InputError(f"{', '.join(paths)}: no ALB access-log lines found ({stats.summary()})")
    known = np.isfinite(lat)
    med = float(np.median(lat[known])) if known.any() else 0.0
    lat = np.where(known, lat, med)

    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    sims = max(1, simulations)
    # The proxy allows floor + ratio * requests retries per budget window. Over a logged period spanning
    # W windows that is ratio * n + floor * W retries for n requests. Scaled to the simulated requests:
    # one window's floor is there from the start, the rest accrues as the period goes on.
    windows = 1.0
    if first_seen and last_seen and policy.budget_window > 0:
        try:
            span = (datetime.fromisoformat(last_seen) - datetime.fromisoformat(first_seen)).total_seconds()
            windows = max(1.0, span / policy.budget_window)
        except ValueError:
            pass
    floor_total = policy.budget_floor * windows * sims / n
    m = len(out)  # rows in the sample (all rows unless there were more than max_rows)
    starts = nprng.integers(0, m, size=sims)
    budget_used = 0
    total_attempts = 0
    good = 0
    times = np.empty(sims)
    hist: dict[int, int] = {}
    pt = policy.per_try_timeout
    for s, i in enumerate(starts.tolist()):
        elapsed, attempts = 0.0, 0
        idx = i
        result = FATAL
        while True:
            attempts += 1
            o, t = int(out[idx]), float(lat[idx])
            remaining = policy.deadline - elapsed
            limit = min(pt, remaining) if pt else remaining
            if t > limit:  # the proxy gives up on this try
                elapsed += limit
                o = RETRY if policy.retry_timeouts else FATAL
                result = FATAL
            else:
                elapsed += t
                result = o
            if o != RETRY or attempts >= policy.max_attempts or not eligible[i]:
                break
            wait = policy.backoff(attempts, rng)
            if elapsed + wait >= policy.deadline:
                break
            if policy.budget_ratio is not None and budget_used + 1 > policy.budget_ratio * (s + 1) + floor_total * max(
                1 / windows, (s + 1) / sims
            ):
                break
            budget_used += 1
            elapsed += wait
            idx = int(nprng.integers(0, m))
        total_attempts += attempts
        hist[attempts] = hist.get(attempts, 0) + 1
        good += result == OK
        times[s] = elapsed
    obs_ok = float((out == OK).mean())
    observed = {
        "success_rate": observed_good / n,
        "attempt_success_rate": obs_ok,
        "retryable_failure_rate": float((out == RETRY).mean()),
        "other_failure_rate": float((out == FATAL).mean()),
        "retryable_method_share": float(eligible.mean()),
        "upstream_requests_per_request": observed_attempts / n,
    }
    predicted = {"success_rate": good / sims, "upstream_requests_per_request": total_attempts / sims}
    for q in (50, 90, 99):
        observed[f"latency_p{q}"] = float(np.percentile(lat, q))
        predicted[f"latency_p{q}"] = float(np.percentile(times, q))
    notes = []
    if m < n:
        notes.append(f"outcomes and latencies from a uniform sample of {m} of the {n} requests")
    if stats.bad_lines:
        notes.append(f"{stats.bad_lines} malformed lines not counted")
    if (~known).any():
        notes.append(f"{int((~known).sum())} requests without timings took the median latency")
    return WhatIfResult(
        policy=policy.describe(),
        requests_observed=n,
        simulated=sims,
        observed=observed,
        predicted=predicted,
        attempts_histogram={str(k): v / sims for k, v in sorted(hist.items())},
        notes=notes,
    )


def render(r: WhatIfResult) -> str:
    """Plain text for the terminal."""
    lines = [
        f"policy: {r.policy}",
        f"observed requests: {r.requests_observed}; simulated: {r.simulated}",
        "",
        f"{'':32}{'observed':>12}{'predicted':>12}",
    ]
    for key, label, unit in (
        ("success_rate", "success rate", "%"),
        ("latency_p50", "latency p50", "s"),
        ("latency_p90", "latency p90", "s"),
        ("latency_p99", "latency p99", "s"),
        ("upstream_requests_per_request", "upstream requests / request", "x"),
    ):
        o, p = r.observed[key], r.predicted[key]
        f = (
            (lambda v: f"{v * 100:.2f}%")
            if unit == "%"
            else (lambda v: f"{v:.3f} s")
            if unit == "s"
            else (lambda v: f"{v:.2f}x")
        )
        lines.append(f"{label:32}{f(o):>12}{f(p):>12}")
    lines.append(f"{'one attempt succeeds':32}{r.observed['attempt_success_rate'] * 100:>11.2f}%")
    lines += [
        "",
        "attempts per request (predicted share): "
        + ", ".join(f"{k}: {v * 100:.1f}%" for k, v in r.attempts_histogram.items()),
        "",
        "assumptions:",
    ]
    lines += [f"  - {a}" for a in r.assumptions]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)
