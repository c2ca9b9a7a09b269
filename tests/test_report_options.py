"""The Python API rejects nonsense (issue 12 item 8): every numeric option names itself and its range.

``build(engine, Options(slo=99.0))`` used to return an error budget of -4,278,190.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

import albstats
from albstats import weekly
from albstats.report import Options, build

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "fixtures" / "security" / "security-log.txt"

BAD: list[tuple[str, object, str]] = [
    ("slo", 99.0, "slo=99.0: expected a fraction between 0 and 1, exclusive (99 % is 0.99)"),
    ("slo", 1.0, "slo=1.0: expected a fraction between 0 and 1"),
    ("slo", 0, "slo=0: expected a fraction between 0 and 1"),
    ("slo", -0.5, "slo=-0.5: expected a fraction"),
    ("slo", math.nan, "slo=nan: expected a fraction"),
    ("slo", "0.99", "slo='0.99': expected a fraction"),
    ("slo", True, "slo=True: expected a fraction"),
    ("latency_target", 95, "latency_target=95: expected a fraction between 0 and 1, exclusive (95 % is 0.95)"),
    ("latency_target", 1.5, "latency_target=1.5: expected a fraction"),
    ("latency_threshold", 0, "latency_threshold=0: expected a number of seconds above 0 and at most 3600"),
    ("latency_threshold", -1.0, "latency_threshold=-1.0: expected a number of seconds"),
    ("latency_threshold", math.inf, "latency_threshold=inf: expected a number of seconds"),
    ("latency_threshold", math.nan, "latency_threshold=nan: expected a number of seconds"),
    ("latency_threshold", 1e9, "latency_threshold=1000000000.0: expected a number of seconds"),
    ("examples", 0, "examples=0: expected a whole number from 1 to 1,000,000"),
    ("examples", 2.5, "examples=2.5: expected a whole number"),
    ("top", -3, "top=-3: expected a whole number from 1 to 1,000,000"),
    ("top", 10**9, "top=1000000000: expected a whole number"),
    ("min_client_4xx", 0, "min_client_4xx=0: expected a whole number from 1"),
    ("count_460", 1, "count_460=1: expected True or False"),
    ("allow_empty", "yes", "allow_empty='yes': expected True or False"),
    ("since", datetime(2026, 3, 2), "since=datetime.datetime(2026, 3, 2, 0, 0): expected a timezone-aware"),
    ("until", "2026-03-02", "until='2026-03-02': expected a timezone-aware datetime"),
]


@pytest.mark.parametrize("name,value,msg", BAD)
def test_options_reject_nonsense(name, value, msg):
    with pytest.raises(ValueError) as e:
        Options(**{name: value})
    assert str(e.value).startswith(msg), str(e.value)


def test_every_numeric_option_is_checked():
    numeric = [f for f, v in Options().__dict__.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    assert sorted(numeric) == sorted(
        {name for name, value, _ in BAD if not isinstance(value, bool)} - {"count_460", "allow_empty", "since", "until"}
    )


def test_good_values_accepted():
    o = Options(
        slo=0.999,
        latency_target=0.5,
        latency_threshold=0.25,
        examples=1,
        top=1_000_000,
        min_client_4xx=1,
        since=datetime(2026, 3, 2, tzinfo=UTC),
    )
    assert o.slo == 0.999


def test_build_checks_options_changed_after_making(tmp_path):
    o = Options()
    o.slo = 99.0
    with albstats.connect([str(SMALL)], db=str(tmp_path / "c.duckdb")) as eng:
        with pytest.raises(ValueError, match=r"^slo=99.0: expected a fraction between 0 and 1"):
            build(eng, o)
        r = build(eng, Options(slo=0.99))
    assert r.availability.error_budget.allowed == pytest.approx(0.7)


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"attempts": 0}, "attempts=0: expected a whole number from 1 to 11"),
        ({"attempts": 2.0}, "attempts=2.0: expected a whole number"),
        ({"timeout": 0}, "timeout=0: expected a number of seconds above 0 and at most 300"),
        ({"timeout": math.nan}, "timeout=nan: expected a number of seconds"),
        ({"backoff": -1}, "backoff=-1: expected a number of seconds from 0 to 60"),
    ],
)
def test_post_webhook_rejects_nonsense(kw, msg):
    with pytest.raises(ValueError) as e:
        weekly.post_webhook("http://127.0.0.1:9/x", "hi", **kw)
    assert str(e.value).startswith(msg)


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"webhook_attempts": 0}, "webhook_attempts=0: expected a whole number from 1 to 11"),
        ({"webhook_timeout": -5.0}, "webhook_timeout=-5.0: expected a number of seconds above 0"),
    ],
)
def test_weekly_run_rejects_nonsense(kw, msg):
    def connect():  # never reached: the options are checked first
        raise AssertionError("connected")

    with pytest.raises(ValueError) as e:
        weekly.run(connect, Options(), now=datetime(2026, 3, 9, tzinfo=UTC), **kw)
    assert str(e.value).startswith(msg)


def test_numpy_numbers_are_numbers():
    import numpy as np

    o = Options(slo=np.float64(0.995), top=np.int64(20))
    assert o.top == 20
    with pytest.raises(ValueError, match=r"^slo=.*99\.5.*expected a fraction"):
        Options(slo=np.float64(99.5))
