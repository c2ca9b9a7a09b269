"""The result of :func:`albstats.compare.compare` and its plain-text renderings (one AFTER, or several
side by side).

Kept apart from the computation (library first, rendering separate): the result is plain data
(``to_dict``/``to_json``), and the renderers only format it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Metric:
    """One row of the comparison: before and after with intervals, the change, and what it means."""

    name: str
    unit: str
    before: float
    before_ci: tuple[float, float]
    after: float
    after_ci: tuple[float, float]
    change: float
    change_ci: tuple[float, float]
    verdict: str


@dataclass
class CompareResult:
    """Everything ``albstats compare`` prints."""

    slo: float
    before_requests: int
    after_requests: int
    metrics: list[Metric]
    histogram: dict[str, dict[str, Any]]  # attempts -> {"before": [count, share, lo, hi], "after": ...}
    harm: dict[str, dict[str, float]]  # "before"/"after" -> counts behind the harm metrics
    verdict: str
    tradeoffs: list[str]
    malformed_lines: dict[str, int]
    notes: list[str]

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=float)


# --- rendering ------------------------------------------------------------------------------------


def _fmt(v: float, unit: str, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    s = "+" if signed and v > 0 else ""
    if unit == "ratio":
        return f"{s}{v * 100:.2f}%" if not signed else f"{s}{v * 100:.2f} pp"
    if unit == "s":
        return f"{s}{v * 1000:.1f} ms"
    return f"{s}{v:.3f}{'x' if unit.startswith('x') else ''}"


def _harm_line(h: dict[str, float]) -> str:
    wait = (
        f"waited p50 {h['retry_wait_p50']:.3f} s, p90 {h['retry_wait_p90']:.3f} s, max {h['retry_wait_max']:.3f} s "
        "before the attempt that answered"
        if h["successes_after_retry"]
        else "none"
    )
    return (
        f"{h['non_idempotent_repeated']:.0f} of {h['non_idempotent_requests']:.0f} non-idempotent requests sent "
        f"more than once ({h['non_idempotent_extra_attempts']:.0f} extra attempts, each a possible second "
        f"execution); {h['failed_requests']:.0f} failed requests took {h['failed_request_attempts']:.0f} upstream "
        f"attempts; {h['successes_after_retry']:.0f} successes needed a retry: {wait}"
    )


def render_table(r: CompareResult) -> str:
    """A plain-text table for the terminal."""
    rows = [("metric", "before [95% CI]", "after [95% CI]", "change [95% CI]", "verdict")]
    for m in r.metrics:
        rows.append(
            (
                m.name,
                f"{_fmt(m.before, m.unit)} [{_fmt(m.before_ci[0], m.unit)}, {_fmt(m.before_ci[1], m.unit)}]",
                f"{_fmt(m.after, m.unit)} [{_fmt(m.after_ci[0], m.unit)}, {_fmt(m.after_ci[1], m.unit)}]",
                f"{_fmt(m.change, m.unit, True)} [{_fmt(m.change_ci[0], m.unit, True)}, "
                f"{_fmt(m.change_ci[1], m.unit, True)}]",
                m.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [f"requests: before {r.before_requests}, after {r.after_requests}; SLO {r.slo * 100:g}%", ""]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", "upstream attempts per client request (share of requests [95% CI]):"]
    for k, sides in r.histogram.items():
        bc, bs, bl, bh = sides["before"]
        ac, as_, al, ah = sides["after"]
        lines.append(
            f"  {k:>2}: before {bc:>7} {bs * 100:6.2f}% [{bl * 100:.2f}, {bh * 100:.2f}]   "
            f"after {ac:>7} {as_ * 100:6.2f}% [{al * 100:.2f}, {ah * 100:.2f}]"
        )
    lines += ["", "harm (counted in the logs):"]
    for label in ("before", "after"):
        h = r.harm[label]
        lines.append(f"  {label}: {_harm_line(h)}")
    lines += ["", f"verdict: {r.verdict}"]
    if r.tradeoffs:
        lines.append("trade-offs: " + "; ".join(r.tradeoffs))
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def render_side_by_side(results: dict[str, CompareResult]) -> str:
    """Several "after" log sets (e.g. two retry policies) against the same "before", one column each:
    the help and the harm of each next to the other's."""
    labels = list(results)
    first = results[labels[0]]
    rows = [("metric", "before [95% CI]", *(f"{k} [95% CI]: change, verdict" for k in labels))]
    for m0 in first.metrics:
        cells = [
            m0.name,
            f"{_fmt(m0.before, m0.unit)} [{_fmt(m0.before_ci[0], m0.unit)}, {_fmt(m0.before_ci[1], m0.unit)}]",
        ]
        for k in labels:
            m = results[k].metric(m0.name)
            cells.append(
                f"{_fmt(m.after, m.unit)} [{_fmt(m.after_ci[0], m.unit)}, {_fmt(m.after_ci[1], m.unit)}]: "
                f"{_fmt(m.change, m.unit, True)}, {m.verdict}"
            )
        rows.append(tuple(cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"requests: before {first.before_requests}, "
        + ", ".join(f"{k} {results[k].after_requests}" for k in labels)
        + f"; SLO {first.slo * 100:g}%",
        "",
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", "harm (counted in the logs):", f"  before: {_harm_line(first.harm['before'])}"]
    lines += [f"  {k}: {_harm_line(results[k].harm['after'])}" for k in labels]
    lines.append("")
    for k in labels:
        r = results[k]
        lines.append(f"{k}: verdict {r.verdict}" + (f"; trade-offs: {'; '.join(r.tradeoffs)}" if r.tradeoffs else ""))
        lines += [f"  note: {n}" for n in r.notes]
    return "\n".join(lines)
