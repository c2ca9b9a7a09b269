"""Readable charts: legends never over the data, plain unit labels, the 1 ms floor said, fixed fast layout."""

from __future__ import annotations

import pandas as pd
import pytest

from albstats import plots

T = pd.date_range("2026-03-02", periods=100, freq="5min", tz="UTC")


def lat(request: float = 0.0, response: float = 0.0) -> pd.DataFrame:
    rows = []
    for t in T:
        for m, v in (
            ("total_time", 0.3),
            ("target_processing_time", 0.3),
            ("request_processing_time", request),
            ("response_processing_time", response),
        ):
            rows.append(
                {"bucket_start": t, "metric": m, "requests": 10, "p50": v, "p90": v, "p95": v, "p99": v, "max": v}
            )
    return pd.DataFrame(rows)


CHARTS = {
    "error_rate": lambda: plots.error_rate(
        pd.DataFrame({"bucket_start": T, "requests": 100, "errors_5xx": [i % 9 for i in range(100)]}), 0.99
    ),
    "latency": lambda: plots.latency(lat(), threshold=1.0),
    "latency_breakdown": lambda: plots.latency_breakdown(lat()),
    "burn_down": lambda: plots.burn_down(
        pd.DataFrame({"bucket_end": T, "used": range(100), "remaining_fraction": [1 - i / 80 for i in range(100)]})
    ),
}


@pytest.mark.parametrize("name", CHARTS)
def test_legend_outside_the_axes(name):
    fig = CHARTS[name]()
    fig.canvas.draw()
    ax = fig.axes[0]
    leg = ax.get_legend().get_window_extent()
    box = ax.get_window_extent()
    assert leg.x0 >= box.x1  # right of the plotting area: never over a line
    assert leg.x1 <= fig.bbox.x1 + 1  # and inside the image
    assert fig.get_layout_engine() is None  # fixed margins, not the (slow) constrained layout


def test_log_axes_have_plain_unit_labels():
    fig = CHARTS["latency"]()
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert "1 s" in labels and "1 ms" in labels
    assert not any("$" in x for x in labels)  # no mathtext


def test_floor_is_named():
    fig = plots.latency_breakdown(lat(request=0.0, response=0.0004))
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "request (all under 1 ms)" in texts and "response (all under 1 ms)" in texts
    assert any(t.startswith("under 1 ms") for t in texts)
    lo, _ = fig.axes[0].get_ylim()
    assert lo < 1e-3  # room below the floor: the floor lines are not on the frame
    fig = plots.latency_breakdown(lat(request=0.004, response=0.0))
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "request" in texts


def test_shares_in_percent():
    fig = CHARTS["error_rate"]()
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert labels and all(x.endswith(" %") for x in labels)
    assert any("allowed 1 %" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
