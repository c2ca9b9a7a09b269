"""Charts: each takes an optional Axes, returns the Figure, and saves as a real PNG."""

from __future__ import annotations

import io
import struct

import pandas as pd
import pytest
from matplotlib.figure import Figure

from albstats import plots

T = pd.date_range("2026-03-02", periods=48, freq="5min", tz="UTC")


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    assert 400 <= w <= 2000 and 200 <= h <= 1500
    return data


def buckets() -> pd.DataFrame:
    return pd.DataFrame({"bucket_start": T, "requests": 100, "errors_5xx": [i % 7 for i in range(48)]})


def latency() -> pd.DataFrame:
    rows = []
    for t in T:
        for m in ("total_time", "target_processing_time"):
            rows.append(
                {
                    "bucket_start": t,
                    "metric": m,
                    "requests": 100,
                    "p50": 0.05,
                    "p90": 0.4,
                    "p95": 1.0,
                    "p99": 4.0,
                    "max": 9.0,
                }
            )
    return pd.DataFrame(rows)


def burn() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "bucket_end": T + pd.Timedelta(minutes=5),
            "used": range(48),
            "remaining_fraction": [1 - i / 30 for i in range(48)],
        }
    )


def statuses() -> pd.DataFrame:
    return pd.DataFrame({"elb_status_code": [200, 301, 404, 460, 502, 503], "requests": [9000, 300, 200, 20, 50, 7]})


CHARTS = [
    ("error_rate", lambda ax=None: plots.error_rate(buckets(), 0.99, ax=ax)),
    ("latency", lambda ax=None: plots.latency(latency(), ax=ax, threshold=1.0)),
    ("burn_down", lambda ax=None: plots.burn_down(burn(), ax=ax)),
    ("latency_breakdown", lambda ax=None: plots.latency_breakdown(latency(), ax=ax)),
    ("status_mix", lambda ax=None: plots.status_mix(statuses(), ax=ax)),
]


@pytest.mark.parametrize("name,draw", CHARTS)
def test_returns_figure_and_png(name, draw):
    fig = draw()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title()
    assert ax.lines or ax.patches
    assert len(png(fig)) > 5000


@pytest.mark.parametrize("name,draw", CHARTS)
def test_draws_into_given_axes(name, draw):
    fig = Figure(figsize=(10, 8))
    a1, a2 = fig.subplots(2)
    got = draw(a2)
    assert got is fig
    assert a2.lines or a2.patches
    assert not a1.lines and not a1.patches  # the other axes untouched
    png(fig)


def test_slo_line_and_values():
    fig = plots.error_rate(buckets(), 0.99)
    ax = fig.axes[0]
    ys = [ln.get_ydata() for ln in ax.lines]
    assert any(len(set(y)) == 1 and y[0] == pytest.approx(0.01) for y in ys)  # the SLO line at 1 - 0.99
    rate = next(y for y in ys if len(y) == 48)
    assert rate[6] == pytest.approx(0.06)


def test_latency_threshold_line_and_series():
    ax = plots.latency(latency(), threshold=2.0).axes[0]
    labels = [ln.get_label() for ln in ax.lines]
    assert labels[:3] == ["p50", "p90", "p99"] and any("2 s" in lbl for lbl in labels)
    assert ax.get_yscale() == "log"


@pytest.mark.parametrize(
    "fn,arg",
    [
        (plots.error_rate, pd.DataFrame({"bucket_start": [], "requests": [], "errors_5xx": []})),
        (plots.latency, pd.DataFrame({"bucket_start": [], "metric": [], "p50": [], "p90": [], "p99": []})),
        (plots.burn_down, pd.DataFrame({"bucket_end": [], "used": [], "remaining_fraction": []})),
        (plots.latency_breakdown, pd.DataFrame({"bucket_start": [], "metric": [], "p99": []})),
        (plots.status_mix, pd.DataFrame({"elb_status_code": [], "requests": []})),
    ],
)
def test_empty_inputs_still_draw(fn, arg):
    fig = fn(arg)
    assert "no data" in fig.axes[0].texts[0].get_text()
    png(fig)


def test_single_point_has_sensible_time_range():
    b = buckets().iloc[:1]
    ax = plots.error_rate(b, 0.99).axes[0]
    lo, hi = ax.get_xlim()
    assert hi - lo < 1.0  # days: not matplotlib's default +-2 years
