"""One side of :func:`albstats.compare.compare`: a log set streamed into counts, an attempts histogram,
the harm counts and a bounded latency sample.

The reading half of the comparison: what a row means (latency, upstream attempts, non-idempotent
repeats, retry waits) is defined here once; ``whatif`` reads the "before" logs with the same
definitions (:func:`row_latency`, :func:`_attempts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from albstats.parse import ParseStats, iter_batches

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

        sub = batch.take(np.flatnonzero(~ok))
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
    lengths = pc.list_value_length(pc.utf8_split_whitespace(col.fill_null(""))).to_numpy(zero_copy_only=False)
    lengths = lengths.astype(np.int64)
    dash = pc.equal(col, pa.scalar("-")).to_numpy(zero_copy_only=False)
    nulls = pc.is_null(col).to_numpy(zero_copy_only=False)
    lengths[np.asarray(dash, dtype=bool) & ~nulls] = 0
    lengths[nulls] = 1  # pre-2020 log lines have no list: one target, as ALB never retried
    return lengths


def _harm(batch: pa.RecordBatch, status: np.ndarray, att: np.ndarray, side: Side) -> None:
    """Accumulate the harm counts of one batch into ``side``."""
    # a string column (albstats.schema), which the stubs cannot know from a column name
    verbs = pc.utf8_upper(cast(pa.StringArray, batch.column("request_verb").fill_null("-")))
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
