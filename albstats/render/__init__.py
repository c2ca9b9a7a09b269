"""Rendering a :class:`~albstats.report.Report`: terminal (rich), Markdown, HTML, JSON and PNG charts.

:func:`write` puts every output into a directory atomically: files are written into a temporary
directory beside the target and moved into place only when all of them are complete, so an error
never leaves a half-written report behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from albstats.report import Report

#: chart name -> PNG file name
PLOT_FILES = {
    "error_rate": "error_rate.png",
    "latency": "latency.png",
    "latency_breakdown": "latency_breakdown.png",
    "burn_down": "burn_down.png",
    "status_mix": "status_mix.png",
}
FORMATS = ("terminal", "md", "html", "json")


def figures(r: Report) -> dict[str, Any]:
    """The report's charts as matplotlib Figures (chart name -> Figure)."""
    import pandas as pd

    from albstats import plots

    fr = r.frames
    buckets = fr.get("buckets")
    out: dict[str, Any] = {}
    if buckets is not None:
        b = buckets.copy()
        b["bad"] = b["errors_5xx"] + (b["status_460"] if r.options.count_460 else 0)
        if len(b) and fr.get("plot_bucket", "5m") != "5m":
            freq = {"1h": "1h", "1d": "1D"}[fr["plot_bucket"]]
            b = b.set_index(pd.to_datetime(b["bucket_start"], utc=True)).drop(columns="bucket_start")
            b = b.resample(freq).sum().reset_index()
        out["error_rate"] = plots.error_rate(b, r.availability.target, bad_column="bad")
    if fr.get("latency_over_time") is not None:
        out["latency"] = plots.latency(
            fr["latency_over_time"], metric="total_time", threshold=r.latency.slo.threshold_seconds
        )
        out["latency_breakdown"] = plots.latency_breakdown(fr["latency_over_time"], stat="p99")
    if fr.get("burn_down") is not None:
        out["burn_down"] = plots.burn_down(fr["burn_down"])
    if fr.get("status_mix") is not None:
        out["status_mix"] = plots.status_mix(fr["status_mix"])
    return out


def _png(fig: Any) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def render_text(r: Report, fmt: str) -> str:
    """Markdown, HTML (charts embedded) or JSON as a string."""
    from albstats.render import document, html, markdown
    from albstats.render.data import to_dict

    if fmt == "json":
        return json.dumps(to_dict(r), indent=2, sort_keys=False) + "\n"
    if fmt == "md":
        return markdown.render(document.build(r))
    if fmt == "html":
        pngs = {k: _png(f) for k, f in figures(r).items()}
        return html.render(document.build(r, {k: PLOT_FILES[k] for k in pngs}), pngs)
    raise ValueError(fmt)


def write(r: Report, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write report.md, report.html, report.json and the PNGs into ``out_dir``; returns name -> final path."""
    from albstats.dataset import remove_staged
    from albstats.output import check_target
    from albstats.render import document, html, markdown
    from albstats.render.data import to_dict

    target = check_target(out_dir, "-o", folder=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # named by this process, and made inside the try: a signal landing in mkdtemp (after its mkdir) or
    # right after it still has the folder removed below
    mine = f".{target.name}.{os.getpid()}."
    try:
        tmp = Path(tempfile.mkdtemp(prefix=mine, suffix=".part", dir=target.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the final directory gets normal permissions
        pngs = {k: _png(f) for k, f in figures(r).items()}
        for k, data in pngs.items():
            (tmp / PLOT_FILES[k]).write_bytes(data)
        plots = {k: PLOT_FILES[k] for k in pngs}
        doc = document.build(r, plots)
        (tmp / "report.md").write_text(markdown.render(doc, plots), encoding="utf-8")
        (tmp / "report.html").write_text(html.render(doc, pngs), encoding="utf-8")
        (tmp / "report.json").write_text(json.dumps(to_dict(r, plots), indent=2) + "\n", encoding="utf-8")
        names = sorted(p.name for p in tmp.iterdir())
        if not target.exists():
            os.replace(tmp, target)  # the whole directory appears at once
        else:
            for n in names:  # an existing directory: each file replaced atomically
                os.replace(tmp / n, target / n)
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        remove_staged(str(target.parent), mine)
        raise
    return {n: target / n for n in names}
