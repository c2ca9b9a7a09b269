"""Interval arithmetic for :mod:`albstats.compare`: Wilson and Newcombe intervals for rates, percentile
bootstrap for latency percentiles, and the verdict an interval gives.

Separate from the comparison so the proxy's checks (:mod:`albstats.proxy.scenarios`) and ``whatif``
can use the same intervals without the log reading or the rendering.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054
PERCENTILES = (50, 90, 99)


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
