"""The terminal summary (rich): the verdict, the numbers an SRE looks at first, and the top findings."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from albstats.render.document import latency_verdict, num, pct, secs, span_text
from albstats.render.headline import headline_lines
from albstats.report import HEADLINE_LATENCY, Report


def render(r: Report, console: Console | None = None, plots_dir: str | None = None) -> None:
    c = console or Console()
    a = r.availability
    b = a.error_budget
    span = span_text(r.window.start, r.window.end)
    c.print(
        "[bold]albstats report[/bold] "
        + (
            f"{escape(span)} ({r.window.source}, engine {r.engine})"
            if span != "no data"
            else f"(no data, engine {r.engine})"
        ),
        highlight=False,
    )
    style = {"met": "[bold green]", "breached": "[bold red]"}.get(r.status, "[bold yellow]")
    lines = headline_lines(r)
    c.print(style + escape(lines[0]) + "[/]", highlight=False)
    if len(lines) > 1:  # damaged, skipped or malformed input: said before any number
        c.print("[bold yellow]" + escape(lines[1]) + "[/]", highlight=False)
        for x in lines[2:]:
            c.print("  " + escape(x), highlight=False, soft_wrap=True)
    t = RichTable(show_header=False, box=None, pad_edge=False)
    t.add_column(style="dim")
    t.add_column()
    t.add_row("requests", num(a.requests))
    t.add_row(
        "bad requests",
        f"{num(a.bad_requests)} (ELB 5XX {num(a.elb_5xx)}, target 5XX {num(a.target_5xx)}"
        + (f", 460 {num(a.status_460)}" if a.count_460 else "")
        + ")",
    )
    t.add_row("error budget", f"allowed {num(b.allowed)}, used {num(b.used)}, remaining {pct(b.remaining_fraction, 1)}")
    t.add_row(
        "burn rate",
        f"window {num(a.burn_rate, 2)}, worst 1 h {num(a.worst_1h.burn_rate, 2)}, "
        f"worst 6 h {num(a.worst_6h.burn_rate, 2)}",
    )
    fired = [p.name for p in a.alerts if p.fired]
    t.add_row("alerts fired", ", ".join(fired) if fired else "none")
    ls = r.latency.slo
    t.add_row(
        "latency SLO",
        f"{pct(ls.share, 2)} under {ls.threshold_seconds:g} s (target {pct(ls.target, 1)}"
        f"{'' if r.options.latency_slo_given else ', informational'}): {latency_verdict(r)}",
    )
    head = r.headline_latency  # the measure weekly's summary quotes too
    tgt = r.latency.metrics.get("target_processing_time")
    if head:
        t.add_row(
            HEADLINE_LATENCY.replace("_", " ").replace(" processing", ""),
            f"p50 {secs(head.p50)}, p90 {secs(head.p90)}, p99 {secs(head.p99)}, max {secs(head.max)}",
        )
    if tgt and HEADLINE_LATENCY != "target_processing_time":
        t.add_row("target time", f"p50 {secs(tgt.p50)}, p90 {secs(tgt.p90)}, p99 {secs(tgt.p99)}")
    t.add_row("incidents", str(len(r.failures.incidents)))
    dq = r.data_quality
    if dq.available:
        t.add_row(
            "data",
            f"{num(dq.files)} files, {num(dq.lines)} lines, {num(dq.malformed_lines)} malformed, "
            f"{num(dq.missing_intervals)} 5-minute intervals without a file",
        )
    c.print(t)
    if r.options.slo_file is not None:
        from albstats.render.slos import summary_lines

        for line in summary_lines(r.slos):
            c.print(("[red]" if "BREACHED" in line else "[green]") + line + "[/]", highlight=False)
    if r.findings:
        ft = RichTable(title="security findings", title_justify="left")
        for col in ("severity", "finding", "requests", "clients", "top client"):
            ft.add_column(col)
        for f in r.findings:
            top = f.examples[0].client_ip if f.examples else ""
            ft.add_row(f.severity, f.title, num(f.count), num(f.clients), top)
        c.print(ft)
    else:
        c.print("security findings: none")
    if plots_dir:
        c.print(f"written to {plots_dir}", highlight=False)
