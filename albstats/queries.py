"""The saved-query library: ``sql/*.sql``, one Athena (Trino) query per file, with a header comment.

A file looks like this (the header is what ``albstats sql list`` and the engines read)::

    -- error_rate: requests, 5XX and success rate per time bucket.
    --
    -- Free text: what the query answers and how to read it.
    --
    -- Parameters:
    --   since   timestamp  start of the window, UTC, inclusive (default: all data)
    --   bucket  duration   bucket width, 5m, 1h or 1d, bound as seconds (default: 1h)
    --   limit   int        rows returned (default: 20)
    --   path    string     only this path (required)
    --
    -- Columns:
    --   bucket_start  timestamp  start of the bucket, UTC
    --   requests      bigint     requests in the bucket
    SELECT ...

The first line is ``-- NAME: summary`` and NAME must equal the file name. Parameter types are those
of :data:`PARAM_TYPES`; column types are Athena types (``timestamp``,
``bigint``, ``double``, ``string``). Parsing is plain text so the CLI does not import sqlglot.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from albstats.errors import UsageError

#: The parameter types a query header may declare (``-- param: name type``); :mod:`albstats.engines.base`
#: binds each (the table in its docstring).
PARAM_TYPES = ("timestamp", "duration", "int", "bigint", "double", "string")

#: Where the saved queries live: $ALBSTATS_SQL_DIR, else ``albstats/sql`` in an installed wheel, else
#: ``sql/`` at the top of the repository (a checkout or an editable install).
_HERE = Path(__file__).resolve().parent
SQL_DIR = Path(
    os.environ.get("ALBSTATS_SQL_DIR") or (_HERE / "sql" if (_HERE / "sql").is_dir() else _HERE.parent / "sql")
)

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_TITLE_RE = re.compile(r"--\s*([a-z][a-z0-9_]*)\s*:\s*(.+)")
_ITEM_RE = re.compile(r"-- {2,4}([a-z_][a-z0-9_]*)\s+([a-z]+)\s+(.*)")
_DEFAULT_RE = re.compile(r"\((?:default:\s*([^)]*)|(required))\)\s*$")
_COLUMN_TYPES = ("timestamp", "bigint", "int", "double", "string", "boolean")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    doc: str
    default: str | None = None  # text as in the header ("1h", "20"); None = no default
    required: bool = False


@dataclass(frozen=True)
class OutputColumn:
    name: str
    type: str
    doc: str


@dataclass(frozen=True)
class SavedQuery:
    """One file of ``sql/``: its name, header and the full text (header included, as pasted into Athena)."""

    name: str
    summary: str
    description: str
    params: tuple[Param, ...]
    columns: tuple[OutputColumn, ...]
    sql: str
    path: Path
    param_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_names", frozenset(p.name for p in self.params))

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def column_types(self) -> dict[str, str]:
        return {c.name: c.type for c in self.columns}

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def parse_query(text: str, name: str, path: Path | None = None) -> SavedQuery:
    """Read a query file's header; raises ValueError naming the file on a malformed header."""
    where = str(path or name)
    lines = text.splitlines()
    header: list[str] = []
    for line in lines:
        if not line.startswith("--"):
            break
        header.append(line.rstrip())
    if not header:
        raise ValueError(f"{where}: no header comment")
    m = _TITLE_RE.match(header[0])
    if not m or m[1] != name:
        raise ValueError(f"{where}: first line must be '-- {name}: summary'")
    summary = m[2].strip()
    section = "description"
    desc: list[str] = []
    params: list[Param] = []
    cols: list[OutputColumn] = []
    for line in header[1:]:
        body = line[2:].strip()
        if body == "Parameters:":
            section = "params"
            continue
        if body == "Columns:":
            section = "columns"
            continue
        if section == "description":
            desc.append(body)
            continue
        if not body:
            continue
        im = _ITEM_RE.match(line)
        if not im:
            if section == "columns" and cols and line.startswith("--" + " " * 6):  # continuation line
                c = cols[-1]
                cols[-1] = OutputColumn(c.name, c.type, f"{c.doc} {body}")
                continue
            if section == "params" and params and line.startswith("--" + " " * 6):
                p = params[-1]
                params[-1] = Param(p.name, p.type, f"{p.doc} {body}", p.default, p.required)
                continue
            raise ValueError(f"{where}: cannot read header line {line!r}")
        iname, itype, doc = im[1], im[2], im[3].strip()
        if section == "params":
            if itype not in PARAM_TYPES:
                raise ValueError(f"{where}: parameter {iname} has unknown type {itype!r}")
            dm = _DEFAULT_RE.search(doc)
            default = dm[1].strip() if dm and dm[1] is not None else None
            if default in ("all data", "none"):
                default = None
            elif default == "empty":
                default = ""
            params.append(Param(iname, itype, doc, default, bool(dm and dm[2])))
        else:
            if itype not in _COLUMN_TYPES:
                raise ValueError(f"{where}: column {iname} has unknown type {itype!r}")
            cols.append(OutputColumn(iname, itype, doc))
    if not cols:
        raise ValueError(f"{where}: header has no 'Columns:' list")
    description = "\n".join(desc).strip()
    return SavedQuery(name, summary, description, tuple(params), tuple(cols), text, path or Path(name))


@cache
def _load_all(sql_dir: str) -> dict[str, SavedQuery]:
    out: dict[str, SavedQuery] = {}
    for p in sorted(Path(sql_dir).glob("*.sql")):
        out[p.stem] = parse_query(p.read_text(encoding="utf-8"), p.stem, p)
    return out


def all_queries() -> dict[str, SavedQuery]:
    """Every saved query by name, in name order."""
    return _load_all(str(SQL_DIR))


def names() -> list[str]:
    return list(all_queries())


@cache
def _load_one(sql_dir: str, name: str) -> SavedQuery | None:
    p = Path(sql_dir) / f"{name}.sql"
    if not _NAME_RE.fullmatch(name) or not p.is_file():
        return None
    return parse_query(p.read_text(encoding="utf-8"), name, p)


def get(name: str) -> SavedQuery:
    """A saved query by name; an unknown name is a UsageError listing the known ones.

    Reads only that query's file: `albstats query NAME` need not parse the whole library.
    """
    q = _load_one(str(SQL_DIR), name)
    if q is None:
        qs = all_queries()
        raise UsageError(f"unknown query {name!r}; saved queries: {', '.join(qs) or '(none)'}")
    return q


def _literal(value: object) -> str:
    """A bound value as a Trino literal, for display only (``sql show``); strings escaped by sqlglot."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    from sqlglot import exp

    return exp.Literal.string(str(value)).sql("trino")


def console_sql(query: SavedQuery, values: dict[str, object] | None = None) -> str:
    """The query as text for the Athena console: comments and layout kept, ``:name`` placeholders
    replaced by ``?`` (order noted in a first comment line) or, given validated ``values``, by literals."""
    from sqlglot.dialects.trino import Trino

    text = query.sql
    toks = Trino().tokenize(text)
    edits: list[tuple[int, int, str]] = []
    order: list[str] = []
    for a, b in zip(toks, toks[1:]):
        if a.text == ":" and b.start == a.end + 1 and b.text in query.param_names:
            order.append(b.text)
            edits.append((a.start, b.end + 1, "?" if values is None else _literal(values.get(b.text))))
    for start, end, rep in reversed(edits):
        text = text[:start] + rep + text[end:]
    if values is None and order:
        text = f"-- Athena console parameters, in order: {', '.join(order)}\n" + text
    return text if text.endswith("\n") else text + "\n"
