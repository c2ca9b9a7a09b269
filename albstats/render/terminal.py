"""The terminal summary (rich): the verdict, the numbers an SRE looks at first, and the top findings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table as RichTable

from albstats.render.document import headline, num, pct, secs
from albstats.render.readable import iso
from albstats.report import Report


def render(r: Report, console: Console | None = None, plots_dir: str | None = None) -> None:
    c = console or Console()
    a = r.availability
    b = a.error_budget
    c.print(f"[bold]albstats report[/bold] {iso(r.window.start)} .. {iso(r.window.end)} "
            f"({r.window.source}, engine {r.engine})", highlight=False)
    c.print(("[bold red]" if not a.met else "[bold green]") + headline(r) + "[/]", highlight=False)
    t = RichTable(show_header=False, box=None, pad_edge=False)
    t.add_column(style="dim")
    t.add_column()
    t.add_row("requests", num(a.requests))
    t.add_row("bad requests", f"{num(a.bad_requests)} (ELB 5XX {num(a.elb_5xx)}, target 5XX {num(a.target_5xx)}"
              + (f", 460 {num(a.status_460)}" if a.count_460 else "") + ")")
    t.add_row("error budget", f"allowed {num(b.allowed)}, used {num(b.used)}, "
              f"remaining {pct(b.remaining_fraction, 1)}")
    t.add_row("burn rate", f"window {num(a.burn_rate, 2)}, worst 1 h {num(a.worst_1h.burn_rate, 2)}, "
              f"worst 6 h {num(a.worst_6h.burn_rate, 2)}")
    fired = [p.name for p in a.alerts if p.fired]
    t.add_row("alerts fired", ", ".join(fired) if fired else "none")
    ls = r.latency.slo
    t.add_row("latency SLO", f"{pct(ls.share, 2)} under {ls.threshold_seconds:g} s (target {pct(ls.target, 1)}"
              f"{'' if r.options.latency_slo_given else ', informational'}): {'met' if ls.met else 'missed'}")
    tot = r.latency.metrics.get("total_time")
    tgt = r.latency.metrics.get("target_processing_time")
    if tot:
        t.add_row("total time", f"p50 {secs(tot.p50)}, p90 {secs(tot.p90)}, p99 {secs(tot.p99)}, max {secs(tot.max)}")
    if tgt:
        t.add_row("target time", f"p50 {secs(tgt.p50)}, p90 {secs(tgt.p90)}, p99 {secs(tgt.p99)}")
    t.add_row("incidents", str(len(r.failures.incidents)))
    dq = r.data_quality
    if dq.available:
        t.add_row("data", f"{num(dq.files)} files, {num(dq.lines)} lines, {num(dq.malformed_lines)} malformed, "
                  f"{num(dq.missing_intervals)} 5-minute intervals without a file")
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
