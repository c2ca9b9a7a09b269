"""Charts for the report and for notebooks: one function per chart, each takes an optional Axes and returns the Figure.

Figures are made with :class:`matplotlib.figure.Figure` on an Agg canvas, not pyplot, so they work
headless (cron, CI) and never touch a notebook's global pyplot state. Pass ``ax=`` to draw into your
own layout and restyle the result; the inputs are the DataFrames the saved queries return.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FIGSIZE = (9.0, 3.6)
DPI = 100


def _axes(ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(), ax  # type: ignore[return-value]
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _time_axis(ax: Axes, times: pd.Series) -> None:
    """Concise UTC date labels; a sensible span around a single point instead of matplotlib's +-2 years."""
    loc = mdates.AutoDateLocator(tz="UTC")
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz="UTC"))
    t = times.dropna()
    if len(t) and t.min() == t.max():
        import pandas as pd

        ax.set_xlim(t.min() - pd.Timedelta(minutes=30), t.max() + pd.Timedelta(minutes=30))


def _marker(n: int) -> str:
    return "o" if n <= 30 else ""


def _seconds_over_time(ax: Axes, title: str, ylabel: str) -> None:
    """The shared look of the latency charts: log seconds against UTC time, legend top right."""
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("time (UTC)")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(alpha=0.3, which="both")


def _empty(ax: Axes, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data in the window", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def error_rate(buckets: pd.DataFrame, slo: float | None = None, *, ax: Axes | None = None,
               bad_column: str = "errors_5xx") -> Figure:
    """Share of bad requests per bucket, with the SLO's allowed error rate (1 - SLO) as a dashed line.

    ``buckets``: ``bucket_start``, ``requests`` and ``bad_column`` (``error_rate`` or ``slo_buckets`` rows).
    """
    fig, ax = _axes(ax)
    title = "5XX rate over time"
    if buckets is None or not len(buckets) or int(buckets["requests"].sum()) == 0:
        _empty(ax, title)
        return fig
    df = buckets[buckets["requests"] > 0]
    rate = df[bad_column] / df["requests"]
    ax.plot(df["bucket_start"], rate, color="#c0392b", lw=1.2, marker=_marker(len(df)), ms=3,
            label="bad requests / requests")
    _time_axis(ax, df["bucket_start"])
    if slo is not None:
        ax.axhline(1.0 - slo, color="#2c3e50", ls="--", lw=1, label=f"SLO {slo * 100:g} % (allowed {1 - slo:.2%})")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.set_ylabel("error rate")
    ax.set_xlabel("time (UTC)")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def latency(percentiles: pd.DataFrame, *, metric: str = "total_time", ax: Axes | None = None,
            threshold: float | None = None) -> Figure:
    """p50/p90/p99 of one metric per bucket (rows of ``latency_percentiles``), log scale, seconds."""
    fig, ax = _axes(ax)
    title = f"{metric.replace('_', ' ')} percentiles over time"
    df = percentiles[percentiles["metric"] == metric] if percentiles is not None and len(percentiles) else None
    if df is None or not len(df):
        _empty(ax, title)
        return fig
    df = df.sort_values("bucket_start")
    for col, color in (("p50", "#27ae60"), ("p90", "#f39c12"), ("p99", "#c0392b")):
        ax.plot(df["bucket_start"], df[col].clip(lower=1e-3), label=col, color=color, lw=1.2,
                marker=_marker(len(df)), ms=3)
    _time_axis(ax, df["bucket_start"])
    if threshold is not None:
        ax.axhline(threshold, color="#2c3e50", ls="--", lw=1, label=f"latency SLO {threshold:g} s")
    _seconds_over_time(ax, title, "seconds")
    return fig


def burn_down(burn: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Error budget left over the window (rows of :func:`albstats.slo.burn_down`); below 0 = overspent."""
    fig, ax = _axes(ax)
    title = "error budget remaining"
    if burn is None or not len(burn) or burn["remaining_fraction"].isna().all():
        _empty(ax, title)
        return fig
    ax.plot(burn["bucket_end"], burn["remaining_fraction"], color="#2980b9", lw=1.5, marker=_marker(len(burn)),
            ms=3, label="budget remaining")
    _time_axis(ax, burn["bucket_end"])
    ax.axhline(0, color="#c0392b", lw=1, ls="--", label="budget spent")
    ax.fill_between(burn["bucket_end"], burn["remaining_fraction"], 0,
                    where=burn["remaining_fraction"] < 0, color="#c0392b", alpha=0.2)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(title)
    ax.set_ylabel("of the window's budget")
    ax.set_xlabel("time (UTC)")
    ax.legend(loc="lower left", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


STATUS_COLORS = {"2": "#27ae60", "3": "#3498db", "4": "#f39c12", "5": "#c0392b"}


def status_mix(statuses: pd.DataFrame, *, ax: Axes | None = None, top: int = 15) -> Figure:
    """Requests per ``elb_status_code`` (columns ``elb_status_code``, ``requests``), coloured by class."""
    fig, ax = _axes(ax)
    title = "status mix (elb_status_code)"
    if statuses is None or not len(statuses) or int(statuses["requests"].sum()) == 0:
        _empty(ax, title)
        return fig
    df = statuses.groupby("elb_status_code", as_index=False)["requests"].sum()
    df = df.sort_values("requests", ascending=False).head(top).sort_values("elb_status_code")
    labels = [str(int(c)) if c == c else "-" for c in df["elb_status_code"]]
    colors = [STATUS_COLORS.get(lbl[0], "#7f8c8d") for lbl in labels]
    bars = ax.bar(labels, df["requests"], color=colors)
    total = float(statuses["requests"].sum())
    ax.bar_label(bars, labels=[f"{v / total:.1%}" for v in df["requests"]], fontsize="x-small")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel("requests")
    ax.set_xlabel("status")
    ax.grid(alpha=0.3, axis="y")
    return fig


COMPONENT_COLORS = {"request_processing_time": "#8e44ad", "target_processing_time": "#c0392b",
                    "response_processing_time": "#16a085", "total_time": "#2c3e50"}


def latency_breakdown(percentiles: pd.DataFrame, *, stat: str = "p99", ax: Axes | None = None) -> Figure:
    """One percentile (``stat``) of request, target and response processing time per bucket: where time goes."""
    fig, ax = _axes(ax)
    title = f"{stat} of each processing time over time"
    if percentiles is None or not len(percentiles):
        _empty(ax, title)
        return fig
    drawn = 0
    for m in ("request_processing_time", "target_processing_time", "response_processing_time"):
        df = percentiles[percentiles["metric"] == m].sort_values("bucket_start")
        if not len(df):
            continue
        ax.plot(df["bucket_start"], df[stat].clip(lower=1e-3), label=m.replace("_processing_time", ""),
                color=COMPONENT_COLORS[m], lw=1.2, marker=_marker(len(df)), ms=3)
        _time_axis(ax, df["bucket_start"])
        drawn += 1
    if not drawn:
        _empty(ax, title)
        return fig
    _seconds_over_time(ax, title, "seconds (values under 1 ms drawn at 1 ms)")
    return fig
