"""The per-service SLO parts of the report: the overview table, a section per service, report.json's ``slos``.

Kept apart from :mod:`albstats.render.document` and :mod:`albstats.render.data` so the SLO-file
feature hooks into them with a line each. Wording follows the rest of the report: shares in percent,
timestamps to the second in UTC, a unit in every column header.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from albstats.service_slo import SloResult

#: report.json keys of ``slos`` (merged into :data:`albstats.render.data.KEYS`).
KEYS: dict[str, str] = {
    "slos": "one object per SLO of the --slo-file (or the one-service file --slo/--latency-slo make), in file order",
    "slos[].service": "service name from the SLO file",
    "slos[].objective": "objective name within the service",
    "slos[].sli": "availability (bad = 5XX, plus 460 when count460) or latency (bad = not under the threshold)",
    "slos[].description": "the objective in words",
    "slos[].selector": "which requests belong to the service, in words",
    "slos[].window": "compliance window: rolling Nd, calendar week or calendar month",
    "slos[].start": "start of the compliance window, clipped to the report window, UTC",
    "slos[].end": "end of the compliance window (the report window's end), UTC",
    "slos[].target": "objective as a fraction (99.9 % -> 0.999)",
    "slos[].requests": "events the SLI counts (latency: requests with all three processing times valid)",
    "slos[].bad": "events that spent the error budget",
    "slos[].achieved": "1 - bad / requests (fraction); null without requests",
    "slos[].met": "achieved >= target (true without requests)",
    "slos[].error_budget_allowed": "bad events the objective allows: (1 - target) x requests",
    "slos[].error_budget_remaining_fraction": "(allowed - bad) / allowed: 1 untouched, 0 spent, < 0 overspent",
    "slos[].burn_rate": "(bad / requests) / (1 - target) over the window",
    "slos[].worst_burn_rate": "highest burn rate of any window as long as the shortest page alert's long window",
    "slos[].worst_burn_window_seconds": "length of that window, seconds (3600 with the default policy)",
    "slos[].worst_burn_start": "start of the worst window, UTC",
    "slos[].alerts": "the SLO's burn-rate alerts evaluated every 5 minutes over the window",
    "slos[].alerts[].name": "long window / short window, e.g. 1h/5m",
    "slos[].alerts[].severity": "page or ticket",
    "slos[].alerts[].threshold": "burn rate both windows must exceed",
    "slos[].alerts[].evaluated": "false when the window holds less data than the long window",
    "slos[].alerts[].fired": "the alert condition held at some 5-minute step",
    "slos[].alerts[].first_fired": "first time it held, UTC",
    "slos[].alerts[].minutes_firing": "minutes during which it held",
    "slos[].alerts[].max_long_burn_rate": "highest burn rate over the long window",
    "slos[].incidents": "runs of 5-minute buckets significantly above the service's own baseline (as "
    "failures.incidents, for this SLI)",
    "slos[].incidents[].start": "start, UTC",
    "slos[].incidents[].end": "end, UTC",
    "slos[].incidents[].requests": "events during the incident",
    "slos[].incidents[].bad": "bad events during the incident",
    "slos[].incidents[].error_rate": "bad / requests (fraction)",
    "slos[].incidents[].baseline_rate": "the service's own recent rate it was tested against (fraction)",
    "failures.incidents[].baseline_rate": "the service's own trailing 6 h rate the buckets were tested against",
    "failures.incidents[].max_z": "the highest z score among its buckets (evidence; > 4.5 for every hot bucket)",
}


def iso(dt: datetime | None) -> str | None:
    """UTC to the second: the report never shows microseconds."""
    if dt is None:
        return None
    return (dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pct(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v * 100:.{digits}f} %"


def _num(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}"


def to_json(results: list[SloResult]) -> list[dict[str, Any]]:
    """report.json's ``slos``."""
    out = []
    for r in results:
        out.append(
            {
                "service": r.service,
                "objective": r.objective,
                "sli": r.kind,
                "description": r.description,
                "selector": r.selector,
                "window": r.window,
                "start": iso(r.start),
                "end": iso(r.end),
                "target": r.target,
                "requests": r.requests,
                "bad": r.bad,
                "achieved": r.achieved,
                "met": r.met,
                "error_budget_allowed": r.budget_allowed,
                "error_budget_remaining_fraction": r.budget_remaining_fraction,
                "burn_rate": r.burn_rate,
                "worst_burn_rate": r.worst_burn,
                "worst_burn_window_seconds": r.worst_burn_window_seconds,
                "worst_burn_start": iso(r.worst_burn_start),
                "alerts": [
                    {
                        "name": a.name,
                        "severity": a.severity,
                        "threshold": a.threshold,
                        "evaluated": a.evaluated,
                        "fired": a.fired,
                        "first_fired": iso(a.first_fired),
                        "minutes_firing": a.minutes_firing,
                        "max_long_burn_rate": a.long_burn,
                    }
                    for a in r.alerts
                ],
                "incidents": [
                    {
                        "start": iso(i.start),
                        "end": iso(i.end),
                        "requests": i.requests,
                        "bad": i.bad_requests,
                        "error_rate": i.error_rate,
                        "baseline_rate": i.baseline_rate,
                    }
                    for i in r.incidents
                ],
            }
        )
    return out


OVERVIEW_COLUMNS = [
    "service",
    "objective",
    "window",
    "target (%)",
    "achieved (%)",
    "budget left (%)",
    "worst burn (x budget rate)",
    "alerts fired",
]


def overview_rows(results: list[SloResult]) -> list[list[str]]:
    rows = []
    for r in results:
        fired = ", ".join(r.alerts_fired) or "none"
        rows.append(
            [
                r.service,
                f"{r.objective}: {r.description}",
                r.window,
                f"{r.target * 100:g}",
                "n/a" if r.achieved is None else f"{r.achieved * 100:.3f}" + ("" if r.met else " (missed)"),
                "n/a" if r.budget_remaining_fraction is None else f"{r.budget_remaining_fraction * 100:.1f}",
                _num(r.worst_burn, 2) + (f" from {iso(r.worst_burn_start)}" if r.worst_burn_start else ""),
                fired,
            ]
        )
    return rows


def blocks(results: list[SloResult]) -> list[Any]:
    """Document blocks: the overview table, then one section per service."""
    from albstats.render.blocks import Heading, Para, Tbl

    if not results:
        return []
    out: list[Any] = [
        Heading("Service level objectives"),
        Tbl(
            OVERVIEW_COLUMNS,
            overview_rows(results),
            "One row per SLO; burn rate 1 spends the budget exactly over the window",
        ),
    ]
    by_service: dict[str, list[SloResult]] = {}
    for r in results:
        by_service.setdefault(r.service, []).append(r)
    if len(by_service) == 1 and next(iter(by_service)) == "all":
        return out  # the --slo one-service file: the sections below already cover it
    for name, rs in by_service.items():
        out.append(Heading(f"Service {name}", 3))
        first = rs[0]
        out.append(Para(f"Requests: {first.selector}. Window: {first.window}, {iso(first.start)} to {iso(first.end)}."))
        for r in rs:
            out.append(
                Para(
                    f"{r.objective}: {_pct(r.achieved, 3)} of {r.requests:,} events good "
                    f"(objective {r.target * 100:g} %): {'met' if r.met else 'MISSED'}; error budget "
                    f"{_pct(r.budget_remaining_fraction, 1)} left.",
                    "ok" if r.met else "bad",
                )
            )
            out.append(
                Tbl(
                    [
                        "alert (long/short)",
                        "severity",
                        "threshold (x)",
                        "fired",
                        "first fired (UTC)",
                        "firing (min)",
                        "max long-window burn (x)",
                    ],
                    [
                        [
                            a.name,
                            a.severity,
                            f"{a.threshold:g}",
                            "n/a (window too short)" if not a.evaluated else ("YES" if a.fired else "no"),
                            iso(a.first_fired) or "",
                            str(a.minutes_firing),
                            _num(a.long_burn, 2),
                        ]
                        for a in r.alerts
                    ],
                    f"{name} {r.objective}: burn-rate alerts",
                )
            )
            if r.incidents:
                out.append(
                    Tbl(
                        ["start (UTC)", "end (UTC)", "events", "bad", "bad rate (%)", "baseline rate (%)"],
                        [
                            [
                                iso(i.start) or "",
                                iso(i.end) or "",
                                f"{i.requests:,}",
                                f"{i.bad_requests:,}",
                                _pct(i.error_rate)[:-2],
                                _pct(i.baseline_rate)[:-2],
                            ]
                            for i in r.incidents
                        ],
                        f"{name} {r.objective}: incidents above the service's own baseline",
                    )
                )
    return out


def summary_lines(results: list[SloResult]) -> list[str]:
    """One line per SLO for the weekly webhook text and the terminal."""
    lines = []
    for r in results:
        verdict = "met" if r.met else "BREACHED"
        fired = ", ".join(r.alerts_fired) or "no alerts"
        lines.append(
            f"{r.service}/{r.objective} {r.target * 100:g} % {verdict}: {_pct(r.achieved, 3)} achieved, "
            f"budget left {_pct(r.budget_remaining_fraction, 1)}, worst burn {_num(r.worst_burn, 2)}, "
            f"{fired}"
        )
    return lines


def headline(results: list[SloResult]) -> str:
    """The report's first line under --slo-file: how many SLOs were missed, and which."""
    missed = [r for r in results if not r.met]
    if not missed:
        return f"All {len(results)} SLOs met"
    names = ", ".join(f"{r.service}/{r.objective} ({_pct(r.achieved, 3)} < {r.target * 100:g} %)" for r in missed)
    return f"SLO BREACHED: {len(missed)} of {len(results)} SLOs missed: {names}"
