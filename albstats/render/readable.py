"""How the human-facing report writes values: times to the second, shares in percent, a unit in every header.

report.json keeps full precision (:mod:`albstats.render.data`); report.md, report.html and the
terminal go through here, so a person never reads ``2026-11-16T00:00:08.267733Z``, ``0.4835`` for a
share, or a column of bare numbers without knowing whether they are seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from albstats.render.blocks import Tbl
    from albstats.report import Table

#: Column names of the saved queries that hold seconds (besides those ending in _time).
SECONDS_COLUMNS = frozenset({"p50", "p90", "p95", "p99", "max"})
MAX_CELL = 100


def iso(dt: datetime | None) -> str | None:
    """UTC to the second, ``2026-11-16T11:45:00Z``."""
    if dt is None:
        return None
    if hasattr(dt, "to_pydatetime"):
        dt = dt.to_pydatetime()
    return (dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def unit(column: str, doc: str = "") -> str:
    """The unit a column's values are shown in: ``%``, ``s``, ``bytes``, ``UTC`` or ``""`` (a count or text)."""
    c = column.lower()
    if c == "share" or c.endswith(("_rate", "_share", "_ratio")) or "fraction" in doc:
        return "%"
    if c in SECONDS_COLUMNS or c.endswith("_time") and c != "time" or "seconds" in doc:
        return "s"
    if c.endswith("_bytes"):
        return "bytes"
    if c in ("time", "bucket_start") or c.endswith(("_seen", "_at")) or doc.endswith(", UTC"):
        return "UTC"
    return ""


def header(column: str, u: str) -> str:
    return f"{column} ({u})" if u else column


def value(v: Any, u: str) -> str:
    """One cell: shares as percent with two decimals, seconds with three, times to the second."""
    if v is None:
        return ""
    if isinstance(v, datetime) or hasattr(v, "to_pydatetime"):
        return iso(v) or ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if u == "%" and isinstance(v, int | float):
        return f"{v * 100:.2f}"
    if u == "s" and isinstance(v, int | float):
        return f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    s = str(v)
    return s if len(s) <= MAX_CELL else s[: MAX_CELL - 1] + "\u2026"


def table_block(t: Table, limit: int = 15) -> Tbl:
    """A saved query's result table with a unit in every header that has one, read from the query's header."""
    from albstats.render.blocks import Tbl

    docs: dict[str, str] = {}
    try:
        from albstats import queries

        docs = {c.name: c.doc for c in queries.get(t.query).columns}
    except Exception:  # noqa: BLE001 - a table not from a saved query: units from names only
        docs = {}
    units = [unit(c, docs.get(c, "")) for c in t.columns]
    return Tbl(
        [header(c, u) for c, u in zip(t.columns, units)],
        [[value(r.get(c), u) for c, u in zip(t.columns, units)] for r in t.rows[:limit]],
        t.title,
    )
