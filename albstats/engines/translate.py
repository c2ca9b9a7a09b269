"""Saved and ad-hoc Athena (Trino) SQL turned into DuckDB SQL for the local engine.

sqlglot does the translation; :func:`_fixups` adds what it leaves as it is (exact percentiles, Java's
``$1`` group references), and :func:`_use_parsed_time` points SELECTs that parse ``time`` at a view
where DuckDB parses it once per row. Translations are kept on disk beside the cache, keyed by
everything they depend on, because importing sqlglot and parsing costs about 0.1 s that a warm
query should not pay. Only a single SELECT is accepted: this is also where user SQL is refused.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albstats.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from albstats.queries import SavedQuery

#: Bump when :func:`translate` changes, so cached translations are not reused.
TRANSLATE_VERSION = "6"
#: The parsed ``time`` beside the rows (not part of ``alb_logs``), computed by DuckDB from ``time``.
TS_COLUMN = "__time_ts"
#: ``alb_logs`` plus :data:`TS_COLUMN`; :func:`translate` points SELECTs that parse ``time`` at it.
TS_VIEW = "alb_logs_ts"


@lru_cache(maxsize=1)
def alb_logs_schema() -> tuple[list[str], str, str, list[tuple[str, str]]]:
    """(names, quoted name list, DDL, [(name, DuckDB type)]) of ``alb_logs``, from :mod:`albstats.schema`.

    Imported on first use: the schema module loads pyarrow, which a warm cached query never needs.
    """
    from albstats.schema import ACCESS, DUCKDB_TYPES

    typed = [(c.name, DUCKDB_TYPES[c.type]) for c in ACCESS.columns]
    return (ACCESS.names, ", ".join(f'"{n}"' for n, _ in typed), ", ".join(f'"{n}" {t}' for n, t in typed), typed)


# --- SQL translation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Translated:
    """Trino SQL turned into DuckDB SQL, with what the engine needs to know about it."""

    sql: str
    params: tuple[str, ...]  # placeholder names used
    columns: tuple[str, ...] | None  # alb_logs columns the DuckDB SQL reads; None = all (a * somewhere)
    uses_ts: bool = True  # reads the precomputed parsed time (so ``time`` must be parsed, not stored)


def _fixups(node: Any) -> Any:
    """Trino -> DuckDB details sqlglot leaves as they are."""
    from sqlglot import exp

    if isinstance(node, exp.ApproxQuantile):
        # exact percentiles locally (linear interpolation, like pandas' default); Athena's are approximate
        return exp.Anonymous(this="quantile_cont", expressions=[node.this, node.args["quantile"]])
    if isinstance(node, exp.RegexpReplace):
        rep = node.args.get("replacement")
        if isinstance(rep, exp.Literal) and rep.is_string and "$" in rep.this:
            import re

            # Java's $1 group references are RE2's \1
            node.set("replacement", exp.Literal.string(re.sub(r"\$(\d)", r"\\\1", rep.this)))
    return node


def _use_parsed_time(tree: Any) -> None:
    """In each SELECT reading ``alb_logs`` directly (no join, no ``*``), read ``from_iso8601_timestamp(time)``
    from the precomputed :data:`TS_COLUMN` of :data:`TS_VIEW` instead of parsing the string again."""
    from sqlglot import exp

    for select in list(tree.find_all(exp.Select)):
        src = select.args.get("from_")
        table = src.this if src is not None else None
        if (
            not isinstance(table, exp.Table)
            or table.name != "alb_logs"
            or table.db
            or select.args.get("joins")
            or any(
                isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
                for e in select.expressions
            )
        ):
            continue
        alias = table.alias or "alb_logs"
        hits = [
            f
            for f in select.find_all(exp.FromISO8601Timestamp)
            if f.find_ancestor(exp.Select) is select
            and isinstance(f.this, exp.Column)
            and f.this.name == "time"
            and f.this.table in ("", alias)
        ]
        if not hits:
            continue
        for f in hits:
            f.replace(exp.column(TS_COLUMN, table=alias if f.this.table else None))
        table.set("this", exp.to_identifier(TS_VIEW))
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier("alb_logs")))


def _time_bounds(node: Any) -> list[Any]:
    """The comparisons under ``node`` of the parsed time with a value that reads no column
    (``__time_ts >= E``, ``__time_ts < E``): the window's bounds."""
    from sqlglot import exp

    return [
        cmp
        for cmp in node.find_all(exp.GTE, exp.GT, exp.LT, exp.LTE)
        if isinstance(cmp.this, exp.Column) and cmp.this.name == TS_COLUMN and not cmp.expression.find(exp.Column)
    ]


def _drop_open_bounds(tree: Any, open_bounds: frozenset[str]) -> None:
    """Drop ``__time_ts >= :since`` (``< :until``) where the caller gave no such bound.

    An open bound is bound to the earliest (latest) time there is, so the comparison holds for every
    row, yet DuckDB still reads and compares the whole ``time`` column for it: about half the CPU of a
    simple query. A report over all the data (no --since/--until, the usual case) drops both.
    Kept where the SELECT reads the parsed time anyway (buckets, first and last request): there it
    costs little, and rows whose time does not parse stay out of those queries as before.
    """
    from sqlglot import exp

    if not open_bounds:
        return
    for select in list(tree.find_all(exp.Select)):
        where = select.args.get("where")
        if where is None:
            continue
        drop = []
        for cmp in _time_bounds(where):
            names = {p.name for p in cmp.expression.find_all(exp.Placeholder)}
            want = "since" if isinstance(cmp, exp.GTE | exp.GT) else "until"
            if names == {want} and want in open_bounds:
                drop.append(cmp)
        inside = {id(n) for d in drop for n in d.walk()}  # by identity: sqlglot's == compares structure
        others = [c for c in select.find_all(exp.Column) if c.name == TS_COLUMN and id(c) not in inside]
        if drop and not others:
            for cmp in drop:
                cmp.replace(exp.true())


def _cheap_time_bounds(tree: Any) -> None:
    """Let DuckDB decide most rows of a window by comparing the ``time`` text, parsing only the rest.

    ``__time_ts >= E`` becomes ``(time >= S OR __time_ts >= E)`` with ``S`` the first whole second after
    ``E`` as text, and ``__time_ts < E`` becomes ``(time < U OR __time_ts < E)`` with ``U`` the whole
    second of ``E``. The parser only keeps ``time`` values that start with ``YYYY-MM-DDTHH:MM:SS``, so a
    text comparison that is true implies the exact one, whatever the fraction or zone suffix; DuckDB
    evaluates the right of an OR only where the left is false, so the parse (about half of a simple
    query's CPU) runs for the rows near the window's edges only.
    """
    from sqlglot import exp

    fmt = exp.Literal.string("%Y-%m-%dT%H:%M:%S")

    def whole_second(e: Any, plus: bool) -> Any:
        t: Any = exp.Anonymous(this="date_trunc", expressions=[exp.Literal.string("second"), e.copy()])
        if plus:
            t = exp.Add(this=t, expression=exp.Interval(this=exp.Literal.string("1"), unit=exp.var("SECOND")))
        return exp.Anonymous(this="strftime", expressions=[t, fmt])

    for cmp in _time_bounds(tree):
        left, right = cmp.this, cmp.expression
        text = exp.column("time", table=left.table or None)
        if isinstance(cmp, exp.GTE | exp.GT):
            fast: Any = exp.GTE(this=text, expression=whole_second(right, plus=True))
        else:
            fast = exp.LT(this=text, expression=whole_second(right, plus=False))
        cmp.replace(exp.Paren(this=exp.Or(this=fast, expression=cmp.copy())))


def _translate_uncached(sql: str, open_bounds: frozenset[str] = frozenset()) -> Translated:
    import re

    from sqlglot import exp

    from albstats.athena_sql import parse_one

    m = re.match(r"(?:\s+|--[^\n]*\n?|/\*.*?\*/)*([A-Za-z]+)", sql, re.DOTALL)
    if m and m[1].upper() not in ("SELECT", "WITH", "VALUES", "TABLE", "FROM"):
        raise UsageError(f"{m[1].upper()} is not allowed: SQL here is one SELECT reading alb_logs")
    tree = parse_one(sql)
    if not isinstance(tree, exp.Query):
        raise UsageError(f"{tree.key.upper()} is not allowed: SQL here is one SELECT reading alb_logs")
    params: dict[str, None] = {}
    for ph in tree.find_all(exp.Placeholder):
        if not ph.name:
            raise UsageError("use named :name placeholders, not ?")
        params.setdefault(ph.name)
    known = set(alb_logs_schema()[0])

    def reads_logs(sel: Any) -> bool:  # a * here could mean every alb_logs column
        tables = [sel.args.get("from_")] + list(sel.args.get("joins") or [])
        return any(
            t is not None and isinstance(t.this, exp.Table) and t.this.name == "alb_logs" for t in tables
        ) or any(not isinstance(t.this, exp.Table) for t in tables if t is not None)

    star = any(
        isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
        for sel in tree.find_all(exp.Select)
        if reads_logs(sel)
        for e in sel.expressions
    )
    tree = tree.transform(_fixups)
    _use_parsed_time(tree)
    _drop_open_bounds(tree, open_bounds)
    _cheap_time_bounds(tree)
    names = {c.name for c in tree.find_all(exp.Column)}
    cols = None if star else tuple(sorted(names & known))
    used = tuple(p for p in params if any(ph.name == p for ph in tree.find_all(exp.Placeholder)))
    return Translated(tree.sql("duckdb", comments=False), used, cols, TS_COLUMN in names)


def _translation_dir() -> Path:
    from albstats.cache import default_dir

    return default_dir().parent / "sql"


@lru_cache(maxsize=64)
def translate(sql: str, open_bounds: frozenset[str] = frozenset()) -> Translated:
    """Trino SQL -> DuckDB SQL (sqlglot plus :func:`_fixups`), cached on disk beside the default cache.

    sqlglot costs about 0.1 s to import and parse; the on-disk copy lets a warm query skip it.
    ``open_bounds``: which of ``since``/``until`` the caller left open (see :func:`_drop_open_bounds`).
    """
    return _translate_keyed(sql, f"{_translator_stamp()}\0adhoc\0{_bounds_key(open_bounds)}\0{sql}", open_bounds)


def _bounds_key(open_bounds: frozenset[str]) -> str:
    return ",".join(sorted(open_bounds))


def _translate_keyed(sql: str, key: str, open_bounds: frozenset[str] = frozenset()) -> Translated:
    """The cached translation stored under ``key`` (everything the result depends on), else a fresh one.

    The file is named by a checksum of ``key`` and holds ``key`` itself, which must match: a checksum
    collision is a cache miss, never a wrong answer. (zlib is loaded already; hashlib would load
    OpenSSL, 4 ms of a warm query.)
    """
    data = key.encode()
    path = _translation_dir() / f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}.json"
    try:
        d = json.loads(path.read_text())
        if d["key"] == key:
            return Translated(
                d["sql"], tuple(d["params"]), None if d["columns"] is None else tuple(d["columns"]), bool(d["uses_ts"])
            )
    except (OSError, ValueError, KeyError):
        pass
    t = _translate_uncached(sql, open_bounds)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(
                json.dumps(
                    {
                        "key": key,
                        "sql": t.sql,
                        "params": list(t.params),
                        "columns": None if t.columns is None else list(t.columns),
                        "uses_ts": t.uses_ts,
                    }
                )
            )
            os.replace(tmp, path)
        except BaseException:  # a full disk, or a signal (albstats.shutdown): no .tmp left in the cache
            tmp.unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a read-only home is fine: translate again next time
    return t


@lru_cache(maxsize=1)
def _translator_stamp() -> str:
    """What the translation depends on besides the SQL: this module and the installed sqlglot (by file
    stamps, so the warm path need not import sqlglot to know its version)."""
    import importlib.util

    parts = [TRANSLATE_VERSION]
    spec = importlib.util.find_spec("sqlglot")
    for f in (__file__, spec.origin if spec else None):
        try:
            st = os.stat(f) if f else None
            parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}" if st else "")
        except OSError:
            parts.append("")
    return "\0".join(parts)


def translate_saved(query: SavedQuery, open_bounds: frozenset[str] = frozenset()) -> Translated:
    """Like :func:`translate` for a saved query, keyed without importing sqlglot (the warm path)."""
    key = f"{_translator_stamp()}\0saved\0{query.name}\0{_bounds_key(open_bounds)}\0{query.sql}"
    return _translate_keyed(query.sql, key, open_bounds)


@lru_cache(maxsize=1)
def saved_columns() -> frozenset[str] | None:
    """The ``alb_logs`` columns the saved queries read (None: all): what ``--no-cache`` parses."""
    from albstats.queries import all_queries

    cols: set[str] = set()
    for q in all_queries().values():
        t = translate_saved(q)
        if t.columns is None:
            return None
        cols.update(t.columns)
    return frozenset(cols)
