"""The report as a list of simple blocks (headings, paragraphs, tables, images), shared by Markdown and HTML.

Keeping the wording in one place means report.md and report.html say the same thing; each renderer
only decides how a block looks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from albstats.render.blocks import Bullets, Document, Heading, Image, Para, Tbl
from albstats.render.headline import headline, pct
from albstats.render.readable import iso, value  # to the second: a report is read by people
from albstats.report import Report, Table

PLOT_TITLES = {
    "error_rate": "5XX rate over time, with the SLO's allowed error rate",
    "latency": "Total-time percentiles over time",
    "latency_breakdown": "p99 of request, target and response processing time over time",
    "burn_down": "Error budget remaining over the window",
    "status_mix": "Status mix",
}
MAX_CELL = 100


def secs(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f} s"


def num(v: float | int | None, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def cell(v: Any) -> str:
    if v is None:
        return ""
    if hasattr(v, "tzinfo") and hasattr(v, "strftime"):
        return iso(v) or ""
    if isinstance(v, float):
        return f"{v:.4g}"
    s = str(v)
    return s if len(s) <= MAX_CELL else s[: MAX_CELL - 1] + "\u2026"


def table_block(t: Table, limit: int = 15) -> Tbl:
    from albstats.render.readable import table_block as readable_table

    return readable_table(t, limit)


def span_text(start: datetime | None, end: datetime | None) -> str:
    """``A to B`` for a window, ``no data`` when it has no bounds (an empty read without --since/--until)."""
    if start is None and end is None:
        return "no data"
    return f"{iso(start) or 'the first request'} to {iso(end) or 'the last request'}"


def latency_verdict(r: Report) -> str:
    """``met``, ``missed``, or ``no data`` when no request had valid times (never ``met`` then)."""
    ls = r.latency.slo
    return "no data" if not ls.requests else "met" if ls.met else "missed"


def build(r: Report, plots: dict[str, str] | None = None) -> Document:
    """The document for a report; ``plots`` maps chart names to files (only those get an image block)."""
    plots = plots or {}
    a = r.availability
    b = a.error_budget
    doc = Document(f"albstats report: {span_text(r.window.start, r.window.end)}")
    add = doc.blocks.append
    add(Para(headline(r), "ok" if r.status == "met" else "bad"))
    p = r.data_quality.problems
    if p:
        add(Para(f"Input problems: {p.counts()}", "bad"))
        add(Bullets(p.lines()))
    add(
        Para(
            f"Window {span_text(r.window.start, r.window.end)} ({r.window.source}), engine {r.engine}, "
            f"sources {', '.join(r.sources) or 'n/a'}, generated {iso(r.generated_at)}."
        )
    )
    if r.options.slo_file is not None:
        from albstats.render import slos

        doc.blocks += slos.blocks(r.slos)

    add(Heading("Availability"))
    add(
        Tbl(
            ["measure", "value"],
            [
                ["requests", num(a.requests)],
                ["bad requests" + (" (5XX and 460)" if a.count_460 else " (5XX)"), num(a.bad_requests)],
                ["success rate", pct(a.success_rate)],
                ["SLO target", pct(a.target, 2)],
                ["SLO met", "n/a (no data)" if r.slo_met is None else "yes" if r.slo_met else "NO"],
                ["error budget allowed (bad requests)", num(b.allowed)],
                ["error budget used (bad requests)", num(b.used)],
                ["error budget remaining (bad requests)", f"{num(b.remaining)} ({pct(b.remaining_fraction, 1)})"],
                ["burn rate over the window (x budget rate)", num(a.burn_rate, 2)],
                ["worst 1 h burn rate (x)", f"{num(a.worst_1h.burn_rate, 2)} from {iso(a.worst_1h.start) or 'n/a'}"],
                ["worst 6 h burn rate (x)", f"{num(a.worst_6h.burn_rate, 2)} from {iso(a.worst_6h.start) or 'n/a'}"],
                ["460 (client closed)", num(a.status_460)],
            ],
        )
    )
    add(
        Tbl(
            [
                "alert (long/short)",
                "threshold (x)",
                "severity",
                "fired",
                "first fired (UTC)",
                "firing (min)",
                "max long-window burn (x)",
            ],
            [
                [
                    p.name,
                    f"{p.threshold:g}",
                    p.severity,
                    "n/a (window too short)" if not p.evaluated else ("YES" if p.fired else "no"),
                    iso(p.first_fired) or "",
                    str(p.minutes_firing),
                    num(p.max_long_burn_rate, 2),
                ]
                for p in a.alerts
            ],
            "Multiwindow burn-rate alerts (Google SRE workbook, 'Alerting on SLOs')",
        )
    )
    for name in ("error_rate", "burn_down"):
        if name in plots:
            add(Image(name, PLOT_TITLES[name]))

    add(Heading("Latency"))
    ls = r.latency.slo
    add(
        Para(
            f"{pct(ls.share, 2)} of {ls.requests:,} dispatched requests took under {ls.threshold_seconds:g} s "
            f"in total (target {pct(ls.target, 1)}): {latency_verdict(r)}"
            + ("" if r.options.latency_slo_given else " (informational; pass --latency-slo to make it an SLO)")
            + ".",
            "ok" if ls.met and ls.requests else "bad",
        )
    )
    add(
        Tbl(
            ["metric", "requests", "p50 (s)", "p90 (s)", "p95 (s)", "p99 (s)", "max (s)"],
            [
                [m, num(p.requests), *(value(v, "s") or "n/a" for v in (p.p50, p.p90, p.p95, p.p99, p.max))]
                for m, p in r.latency.metrics.items()
            ],
            "Percentiles over the window (seconds)",
        )
    )
    for name in ("latency", "latency_breakdown"):
        if name in plots:
            add(Image(name, PLOT_TITLES[name]))
    if r.latency.slowest_paths is not None:
        add(table_block(r.latency.slowest_paths))

    add(Heading("Where failures come from"))
    add(
        Para(
            f"{a.errors_5xx:,} 5XX: {a.elb_5xx:,} generated by the load balancer, {a.target_5xx:,} returned by targets."
        )
    )
    for t in r.failures.tables.values():
        add(table_block(t))
    inc = r.failures.incidents
    if inc:
        add(
            Tbl(
                [
                    "start (UTC)",
                    "end (UTC)",
                    "duration (min)",
                    "requests",
                    "bad",
                    "error rate",
                    "peak rate",
                    "ELB 5XX",
                    "target 5XX",
                    "budget spent",
                ],
                [
                    [
                        iso(i.start) or "",
                        iso(i.end) or "",
                        str(i.duration_seconds // 60),
                        num(i.requests),
                        num(i.bad_requests),
                        pct(i.error_rate, 1),
                        pct(i.peak_rate, 1),
                        num(i.elb_5xx),
                        num(i.target_5xx),
                        pct(i.budget_fraction, 1),
                    ]
                    for i in inc
                ],
                f"Incidents: 5-minute buckets above {pct(r.failures.incident_threshold_rate, 2)} bad requests",
            )
        )
    else:
        add(Para("No incidents: no run of 5-minute buckets far above the baseline error rate."))

    add(Heading("Security findings"))
    if not r.findings:
        add(Para("No findings."))
    else:
        add(
            Tbl(
                ["severity", "finding", "requests", "clients", "answered 2XX", "first seen (UTC)", "last seen (UTC)"],
                [
                    [
                        f.severity,
                        f.title,
                        num(f.count),
                        num(f.clients),
                        num(f.ok_responses),
                        iso(f.first_seen) or "",
                        iso(f.last_seen) or "",
                    ]
                    for f in r.findings
                ],
            )
        )
        for f in r.findings:
            add(
                Tbl(
                    ["client", "requests", "first time (UTC)", "status", "request", "user agent"],
                    [
                        [
                            e.client_ip,
                            num(e.requests),
                            iso(e.time) or "",
                            "" if e.status is None else str(e.status),
                            f"{e.verb} {e.url}",
                            e.user_agent,
                        ]
                        for e in f.examples
                    ],
                    f"{f.title} ({f.severity}): {f.rule}",
                )
            )

    add(Heading("Traffic"))
    if "status_mix" in plots:
        add(Image("status_mix", PLOT_TITLES["status_mix"]))
    for t in r.context.values():
        add(table_block(t))

    add(Heading("Data quality"))
    dq = r.data_quality
    if not dq.available:
        add(
            Para(
                "Files are read by Athena, so albstats has no per-file counts; "
                + (
                    f"requests from {iso(dq.first_request)} to {iso(dq.last_request)}."
                    if dq.first_request is not None and dq.last_request is not None
                    else "no request in the window."
                )
            )
        )
    else:
        add(
            Tbl(
                ["measure", "value"],
                [
                    ["files read", num(dq.files)],
                    ["lines", num(dq.lines)],
                    ["rows", num(dq.rows)],
                    ["malformed lines", num(dq.malformed_lines)],
                    ["first request", iso(dq.first_request) or "n/a"],
                    ["last request", iso(dq.last_request) or "n/a"],
                    ["5-minute intervals without a file", num(dq.missing_intervals)],
                ],
            )
        )
        if dq.malformed_examples:
            add(Bullets([f"malformed: {x}" for x in dq.malformed_examples]))
        if dq.damaged_files or dq.skipped_files or dq.malformed_files:
            add(
                Bullets(
                    [f"damaged: {x}" for x in dq.damaged_files]
                    + [f"skipped: {x}" for x in dq.skipped_files]
                    + [f"malformed lines in: {x}" for x in dq.malformed_files]
                )
            )
        if dq.delivery:
            add(
                Tbl(
                    [
                        "load balancer",
                        "node",
                        "files",
                        "first interval end (UTC)",
                        "last interval end (UTC)",
                        "missing (intervals)",
                        "first missing (UTC)",
                    ],
                    [
                        [
                            d.load_balancer,
                            d.node_ip,
                            num(d.files),
                            iso(d.first_interval_end) or "",
                            iso(d.last_interval_end) or "",
                            num(d.missing),
                            ", ".join(iso(x) or "" for x in d.missing_examples),
                        ]
                        for d in dq.delivery
                    ],
                    "Delivery per load-balancer node (a missing interval is a delivery gap or a node with no traffic)",
                )
            )
        else:
            add(Para("File names do not follow the S3 key layout, so delivery gaps cannot be checked."))
    return doc
