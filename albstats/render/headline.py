"""The report's headline: the verdict, then damaged, skipped and malformed input.

One definition for the terminal, report.md/html and report.json, so what a cron mail shows and what
a script reads from report.json never disagree (a module of its own so that both
:mod:`albstats.render.data` and :mod:`albstats.render.document` can use it without importing each other).
"""

from __future__ import annotations

from albstats.inputs import first_few, window_text
from albstats.report import Report


def pct(v: float | None, digits: int = 3) -> str:
    """A fraction as a percentage, ``n/a`` when it cannot be computed."""
    if v is None:
        return "n/a"
    return f"{v * 100:.{digits}f} %"


def headline(r: Report) -> str:
    """The verdict in one line: met, BREACHED, or NO DATA (which never reads as met)."""
    a = r.availability
    if r.no_data:
        when = window_text(r.window.start, r.window.end)
        return (
            f"NO DATA: no requests{' ' + when if when else ''} in {first_few(r.sources) or 'the input'}: "
            "the SLO was neither met nor missed"
        )
    if r.options.slo_file is not None:
        from albstats.render.slos import headline as slo_headline

        return slo_headline(r.slos)
    verdict = "SLO met" if a.met else "SLO BREACHED"
    return (
        f"{verdict}: {pct(a.success_rate)} of {a.requests:,} requests succeeded "
        f"(target {pct(a.target, 2)}); error budget {pct(a.error_budget.remaining_fraction, 1)} left"
    )


def headline_lines(r: Report) -> list[str]:
    """The verdict, then (when there was any) the input problems: counts, then the first few files per kind."""
    p = r.data_quality.problems
    return [headline(r), *([f"Input problems: {p.counts()}", *p.lines()] if p else [])]
