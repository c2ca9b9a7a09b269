"""Charts for the report and for notebooks: one function per chart, each takes an optional Axes and returns the Figure.

Figures are made with :class:`matplotlib.figure.Figure` on an Agg canvas, not pyplot, so they work
headless (cron, CI) and never touch a notebook's global pyplot state. Pass ``ax=`` to draw into your
own layout and restyle the result; the inputs are the DataFrames the saved queries return.

Why fixed margins and plain tick labels: the report draws five charts, and matplotlib's constrained
layout measured every text twice per chart (about half the rendering time), while log-scale ticks
went through mathtext (``$10^{-1}$``, a parser). Every chart has the same size and layout, so the
margins are fixed in inches (the same for all charts, which also lines them up in the report), the
legend sits outside the axes on the right (it can never cover data), and log axes are labelled in
plain units (``10 ms``, ``1 s``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FIGSIZE = (9.0, 3.6)
DPI = 100
#: Margins in inches: left (tick labels and y label), right (the legend), bottom (dates), top (title).
MARGINS = (0.85, 2.05, 0.62, 0.42)
#: Latency values below this are drawn at it (log axes cannot show 0); the charts say so.
FLOOR_SECONDS = 1e-3


def _axes(ax: Axes | None, legend: bool = True) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(), ax  # type: ignore[return-value]
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    w, h = FIGSIZE
    left, right, bottom, top = MARGINS
    right = right if legend else 0.3
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h)
    return fig, fig.add_subplot()


def _title(ax: Axes, title: str) -> None:
    """The title at a fixed height: matplotlib otherwise measures every x tick label to place it."""
    ax.set_title(title, y=1.0, pad=6)


def _legend(ax: Axes) -> None:
    """Legend outside the axes, top right: it never covers a line."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small", frameon=False)


def _percent_label(v: float, _pos: object = None) -> str:
    """Shares as the rest of the report writes them: ``2.5 %``."""
    return f"{v * 100:.3g} %"


def _seconds_label(v: float, _pos: object = None) -> str:
    """Plain tick labels for log-scale seconds: 1 ms, 10 ms, 0.1 s, 1 s, 10 s (no mathtext)."""
    if v <= 0:
        return ""
    return f"{v * 1000:g} ms" if v < 0.1 else f"{v:g} s"


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
    ax.yaxis.set_major_formatter(FuncFormatter(_seconds_label))
    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # 2 and 5 between decades: enough to read, few ticks
    ax.yaxis.set_minor_formatter(NullFormatter())
    _title(ax, title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("time (UTC)")
    _legend(ax)
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.12, which="minor")


def _empty(ax: Axes, title: str) -> None:
    _title(ax, title)
    ax.text(0.5, 0.5, "no data in the window", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def error_rate(
    buckets: pd.DataFrame, slo: float | None = None, *, ax: Axes | None = None, bad_column: str = "errors_5xx"
) -> Figure:
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
    ax.plot(
        df["bucket_start"],
        rate,
        color="#c0392b",
        lw=1.2,
        marker=_marker(len(df)),
        ms=3,
        label="bad requests / requests",
    )
    _time_axis(ax, df["bucket_start"])
    if slo is not None:
        ax.axhline(
            1.0 - slo, color="#2c3e50", ls="--", lw=1, label=f"SLO {slo * 100:g} %\n(allowed {(1 - slo) * 100:g} %)"
        )
    ax.yaxis.set_major_formatter(FuncFormatter(_percent_label))
    ax.set_ylim(bottom=0)
    _title(ax, title)
    ax.set_ylabel("bad requests (%)")
    ax.set_xlabel("time (UTC)")
    _legend(ax)
    ax.grid(alpha=0.3)
    return fig


def latency(
    percentiles: pd.DataFrame, *, metric: str = "total_time", ax: Axes | None = None, threshold: float | None = None
) -> Figure:
    """p50/p90/p99 of one metric per bucket (rows of ``latency_percentiles``), log scale, seconds."""
    fig, ax = _axes(ax)
    title = f"{metric.replace('_', ' ')} percentiles over time"
    df = percentiles[percentiles["metric"] == metric] if percentiles is not None and len(percentiles) else None
    if df is None or not len(df):
        _empty(ax, title)
        return fig
    df = df.sort_values("bucket_start")
    for col, color in (("p50", "#27ae60"), ("p90", "#f39c12"), ("p99", "#c0392b")):
        ax.plot(
            df["bucket_start"],
            df[col].clip(lower=FLOOR_SECONDS),
            label=col,
            color=color,
            lw=1.2,
            marker=_marker(len(df)),
            ms=3,
        )
    _time_axis(ax, df["bucket_start"])
    if threshold is not None:
        ax.axhline(threshold, color="#2c3e50", ls="--", lw=1, label=f"latency SLO {threshold:g} s")
    _floor(ax)
    _seconds_over_time(ax, title, "seconds (log scale)")
    return fig


def burn_down(burn: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Error budget left over the window (rows of :func:`albstats.slo.burn_down`); below 0 = overspent."""
    fig, ax = _axes(ax)
    title = "error budget remaining"
    if burn is None or not len(burn) or burn["remaining_fraction"].isna().all():
        _empty(ax, title)
        return fig
    ax.plot(
        burn["bucket_end"],
        burn["remaining_fraction"],
        color="#2980b9",
        lw=1.5,
        marker=_marker(len(burn)),
        ms=3,
        label="budget remaining",
    )
    _time_axis(ax, burn["bucket_end"])
    ax.axhline(0, color="#c0392b", lw=1, ls="--", label="budget spent")
    ax.fill_between(
        burn["bucket_end"],
        burn["remaining_fraction"],
        0,
        where=burn["remaining_fraction"] < 0,
        color="#c0392b",
        alpha=0.2,
    )
    ax.yaxis.set_major_formatter(FuncFormatter(_percent_label))
    _title(ax, title)
    ax.set_ylabel("budget left (%)")
    ax.set_xlabel("time (UTC)")
    _legend(ax)
    ax.grid(alpha=0.3)
    return fig


STATUS_COLORS = {"2": "#27ae60", "3": "#3498db", "4": "#f39c12", "5": "#c0392b"}


def status_mix(statuses: pd.DataFrame, *, ax: Axes | None = None, top: int = 15) -> Figure:
    """Requests per ``elb_status_code`` (columns ``elb_status_code``, ``requests``), coloured by class."""
    fig, ax = _axes(ax, legend=False)
    title = "status mix (elb_status_code)"
    if statuses is None or not len(statuses) or int(statuses["requests"].sum()) == 0:
        _empty(ax, title)
        return fig
    df = statuses.groupby("elb_status_code")["requests"].sum().reset_index()
    df = df.sort_values("requests", ascending=False).head(top).sort_values("elb_status_code")
    labels = [str(int(c)) if c == c else "-" for c in df["elb_status_code"]]
    colors = [STATUS_COLORS.get(lbl[0], "#7f8c8d") for lbl in labels]
    bars = ax.bar(labels, df["requests"], color=colors)
    total = float(statuses["requests"].sum())
    ax.bar_label(bars, labels=[f"{v / total * 100:.1f} %" for v in df["requests"]], fontsize="x-small")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}" if v >= 1 else ""))
    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.margins(y=0.15)  # room for the share labels above the tallest bar
    _title(ax, title)
    ax.set_ylabel("requests")
    ax.set_xlabel("status")
    ax.grid(alpha=0.3, axis="y")
    return fig


COMPONENT_COLORS = {
    "request_processing_time": "#8e44ad",
    "target_processing_time": "#c0392b",
    "response_processing_time": "#16a085",
    "total_time": "#2c3e50",
}


def latency_breakdown(percentiles: pd.DataFrame, *, stat: str = "p99", ax: Axes | None = None) -> Figure:
    """One percentile (``stat``) of request, target and response processing time per bucket: where time goes."""
    fig, ax = _axes(ax)
    title = f"{stat} of each processing time over time"
    if percentiles is None or not len(percentiles):
        _empty(ax, title)
        return fig
    drawn = 0
    styles = {"request_processing_time": "--", "target_processing_time": "-", "response_processing_time": ":"}
    for m in ("request_processing_time", "target_processing_time", "response_processing_time"):
        df = percentiles[percentiles["metric"] == m].sort_values("bucket_start")
        if not len(df):
            continue
        label = m.replace("_processing_time", "")
        if df[stat].max() <= FLOOR_SECONDS:  # a flat line on the floor: say so instead of hiding it
            label += f" (all under {FLOOR_SECONDS * 1000:g} ms)"
        ax.plot(
            df["bucket_start"],
            df[stat].clip(lower=FLOOR_SECONDS),
            label=label,
            color=COMPONENT_COLORS[m],
            lw=1.6 if styles[m] != "-" else 1.2,
            ls=styles[m],
            marker=_marker(len(df)),
            ms=3,
        )
        _time_axis(ax, df["bucket_start"])
        drawn += 1
    if not drawn:
        _empty(ax, title)
        return fig
    _floor(ax)
    _seconds_over_time(ax, title, "seconds (log scale)")
    return fig


def _floor(ax: Axes) -> None:
    """Show the 1 ms floor as a band, with some room below it so lines on the floor stay visible."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(FLOOR_SECONDS / 2, max(hi, FLOOR_SECONDS * 10))
    ax.axhspan(
        FLOOR_SECONDS / 2,
        FLOOR_SECONDS,
        color="#95a5a6",
        alpha=0.15,
        lw=0,
        label=f"under {FLOOR_SECONDS * 1000:g} ms\n(drawn at {FLOOR_SECONDS * 1000:g} ms)",
    )
