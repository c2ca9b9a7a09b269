"""Incidents relative to the service's own baseline: a test on the counts, checked against the generator's truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from albstats import slo

T0 = datetime(2026, 11, 16, tzinfo=UTC)


def frame(req: np.ndarray, bad: np.ndarray) -> pd.DataFrame:
    idx = [T0 + timedelta(minutes=5 * i) for i in range(len(req))]
    return pd.DataFrame(
        {
            "bucket_start": idx,
            "requests": req,
            "errors_5xx": bad,
            "status_460": 0,
            "elb_5xx": bad,
            "target_5xx": 0,
            "latency_requests": req,
            "latency_good": req,
        }
    )


def test_flaky_service_modest_excess_is_found():
    """The issue's case: 8.6 % errors against a 5.4 % baseline for an hour; not 3x the median, but significant."""
    rng = np.random.default_rng(7)
    n = np.full(288, 2000)
    p = np.full(288, 0.054)
    p[162:174] = 0.086  # 13:30 to 14:30
    bad = rng.binomial(n, p)
    incs, _ = slo.find_incidents(frame(n, bad), 0.99)
    assert len(incs) == 1
    i = incs[0]
    assert i.start <= T0 + timedelta(hours=13, minutes=35) and i.end >= T0 + timedelta(hours=14, minutes=25)
    assert i.baseline_rate == pytest.approx(0.054, abs=0.004)
    assert i.max_z > 4.5


@pytest.mark.parametrize("seed", range(5))
def test_binomial_noise_is_quiet(seed):
    rng = np.random.default_rng(seed)
    n = rng.poisson(1500, 288 * 3)
    bad = rng.binomial(n, 0.06)
    incs, _ = slo.find_incidents(frame(n, bad), 0.99)
    assert incs == []


def test_below_the_allowed_rate_is_no_incident():
    """0.1 % -> 0.5 % is a 5x jump but within a 99 % SLO's 1 % allowance."""
    n = np.full(100, 5000)
    bad = np.full(100, 5)
    bad[50:56] = 25
    assert slo.find_incidents(frame(n, bad), 0.99)[0] == []
    assert len(slo.find_incidents(frame(n, bad), 0.999)[0]) == 1


def test_long_incident_does_not_become_its_own_baseline():
    """Three hours at 5 %: every bucket stays hot (hot buckets are left out of the trailing baseline)."""
    rng = np.random.default_rng(3)
    n = np.full(288, 1000)
    p = np.full(288, 0.01)
    p[100:136] = 0.05
    incs, _ = slo.find_incidents(frame(n, rng.binomial(n, p)), 0.99)
    assert [(i.start, i.end) for i in incs] == [(T0 + timedelta(minutes=500), T0 + timedelta(minutes=680))]


def test_adjacent_hot_buckets_merge():
    n = np.full(60, 1000)
    bad = np.full(60, 10)
    bad[[30, 31, 33]] = 80  # one quiet bucket between: one incident
    bad[45] = 80
    incs, _ = slo.find_incidents(frame(n, bad), 0.99)
    assert [(i.start - T0, i.end - T0) for i in incs] == [
        (timedelta(minutes=150), timedelta(minutes=170)),
        (timedelta(minutes=225), timedelta(minutes=230)),
    ]
    assert incs[0].bad_requests == 80 * 3 + 10


@pytest.mark.integration  # slow: generates and reports a day (~8-15 s)
@pytest.mark.parametrize("profile,seed", [("hosp", 2), ("hosp", 6), ("default", 3)])
def test_generated_incidents_are_found(tmp_path, profile, seed):
    """The generator's planted windows (its summary) against what the report finds, one simulated day each."""
    import albstats
    from albstats.generate import generate

    s = generate(tmp_path, start=T0, days=1, rps=5, seed=seed, profile=profile)
    with albstats.connect([str(tmp_path)], cache=False, quiet=True) as eng:
        found, _ = slo.find_incidents(eng.query("slo_buckets", bucket="5m"), 0.99)
    planted = [(i.start, i.end) for i in s.incidents]
    assert planted

    def hit(a, b):
        return a[0] < b[1] and b[0] < a[1]

    missed = [p for p in planted if not any(hit(p, (f.start, f.end)) for f in found)]
    false = [f for f in found if not any(hit(p, (f.start, f.end)) for p in planted)]
    assert not missed, missed
    assert len(false) <= 1, false
