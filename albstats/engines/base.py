"""The engine interface every query engine implements, and the parameter rules they all share.

An engine runs the saved queries in ``sql/`` (and ad-hoc SQL) over the relation ``alb_logs`` and
returns pandas DataFrames. Two engines exist: :mod:`albstats.engines.local` (DuckDB over parsed
files) and :mod:`albstats.engines.athena` (pyathena). Both look alike from the outside::

    with albstats.connect(["logs/"]) as eng:          # or connect(engine="athena", database=...)
        df = eng.query("error_rate", since="7d", bucket="1h")
        df2 = eng.sql("SELECT count(*) AS n FROM alb_logs WHERE client_ip = :ip", {"ip": "10.0.0.1"})

The SQL dialect
---------------
All SQL handed to an engine (saved queries and :meth:`Engine.sql`) is Athena (Trino) SQL reading
``alb_logs`` whose columns are exactly :data:`albstats.schema.ACCESS` (``time`` is a string as in
Athena; use ``from_iso8601_timestamp(time)``). The local engine translates it to DuckDB with
sqlglot; the Athena engine sends it as is (after placeholder rewriting, below).

How parameters are bound
------------------------
Placeholders are **named, colon-prefixed**: ``:since``, ``:until``, ``:bucket``, ``:limit``,
``:name``. sqlglot parses them in the Trino dialect as ``exp.Placeholder(this="name")``, so every
engine rewrites them for its driver without touching user values:

- DuckDB: sqlglot writes ``$name``; values go to ``con.execute(sql, {"name": value})``.
- pyathena: :func:`to_pyformat` gives ``%(name)s`` (with literal ``%`` doubled) for the default
  ``pyformat`` paramstyle, where pyathena escapes each value into a literal; :func:`to_qmark` gives
  ``?`` plus the ordered parameter names for ``paramstyle="qmark"`` (Athena execution parameters).

User values are never formatted into SQL text by albstats. :meth:`Engine.query` validates and
normalises them first (:func:`bind`), so a driver only ever sees these Python types:

========== ===================================================================================
type       bound as
========== ===================================================================================
timestamp  ``str``, ISO-8601 UTC with milliseconds: ``'2024-05-01T00:00:00.000Z'``. SQL wraps it
           in ``from_iso8601_timestamp(:since)``. ``since`` defaults to :data:`MIN_TIME`, ``until``
           to :data:`MAX_TIME` when not given, so the SQL needs no NULL branches. ``since`` is
           inclusive, ``until`` exclusive. Accepted input: datetime (naive = UTC), ISO strings
           (date only, ``Z`` or offsets), relative ``7d``/``12h``/``30m`` (= now minus that),
           ``now``.
duration   ``int`` seconds. ``bucket`` accepts ``5m``, ``1h``, ``1d`` (any ``<n>s|m|h|d``, or
           plain seconds) and buckets are ``from_unixtime(floor(to_unixtime(ts) / :bucket) *
           :bucket)``, i.e. aligned to the Unix epoch in UTC.
int        ``int`` (``limit``: 1 .. :data:`MAX_LIMIT`; default from the query header).
double     ``float``
string     ``str`` (any text: quotes, semicolons and SQL fragments are just values).
========== ===================================================================================

Engines receive the bound dict (only the parameters the query declares or, for ad-hoc SQL, that
the caller passed) plus the window as datetimes (``window=(since, until)``, ``None`` where the user
gave none) so the Athena engine can add its ``day`` partition predicate.

Results
-------
Saved queries declare their output columns and types in their header (:mod:`albstats.queries`);
:meth:`Engine.query` passes every engine's frame through :func:`conform`, so both engines return
the same column names in the same order with the same dtypes:

- ``timestamp`` -> ``datetime64[ns, UTC]``
- ``bigint``/``int`` -> ``int64`` (``Int64`` if the column holds NULLs)
- ``double`` -> ``float64`` (NULL -> NaN)
- ``string`` -> ``object`` holding ``str`` or ``None``
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

from albstats.athena_sql import parse_one  # noqa: F401  (also offered here: the engines parse Athena SQL)
from albstats.errors import UsageError
from albstats.timeparse import format_time, parse_duration, parse_time

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from albstats.parse import ParseStats
    from albstats.queries import SavedQuery

#: Bound for ``since`` when none is given (inclusive).
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
#: Bound for ``until`` when none is given (exclusive).
MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
#: Largest ``limit`` accepted.
MAX_LIMIT = 1_000_000
#: Names a ``--param``/``**params`` key may have (it is also a placeholder name).
PARAM_NAME_RE = re.compile(r"[a-z_][a-z0-9_]*\Z")


# --- parameter parsing ------------------------------------------------------------------------


def parse_limit(value: Any, *, name: str = "limit") -> int:
    try:
        n = int(str(value).strip()) if not isinstance(value, int) or isinstance(value, bool) else value
    except ValueError:
        raise UsageError(f"--{name}: {value!r} is not a whole number") from None
    if not 1 <= n <= MAX_LIMIT:
        raise UsageError(f"--{name}: {n} must be between 1 and {MAX_LIMIT}")
    return n


def convert_param(name: str, type_: str, value: Any) -> Any:
    """Validate one value against its declared type and return what the driver binds (see the table above)."""
    if value is None:
        return None
    if type_ == "timestamp":
        return format_time(parse_time(value, name=name))
    if type_ == "duration":
        return parse_duration(value, name=name)
    if type_ in ("int", "bigint"):
        if name == "limit":
            return parse_limit(value, name=name)
        try:
            if isinstance(value, bool):
                raise ValueError
            return int(value) if isinstance(value, int) else int(str(value).strip())
        except ValueError:
            raise UsageError(f"--param {name}: {value!r} is not a whole number") from None
    if type_ == "double":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UsageError(f"--param {name}: {value!r} is not a number") from None
    if type_ == "string":
        return str(value)
    raise UsageError(f"parameter {name}: unknown type {type_!r}")


def bind(
    query: SavedQuery,
    *,
    since: Any = None,
    until: Any = None,
    bucket: Any = None,
    limit: Any = None,
    now: datetime | None = None,
    **params: Any,
) -> tuple[dict[str, Any], tuple[datetime | None, datetime | None]]:
    """Validate the caller's values for a saved query; return (bound values, (since, until) as given).

    Unknown parameter names and values that do not fit their type raise a :class:`UsageError` that
    names the parameter. Parameters the query does not declare are rejected, except ``bucket`` and
    ``limit`` (callers pass them generically; they are ignored by queries without buckets or limits).
    """
    declared = {p.name: p for p in query.params}
    for k in params:
        if k not in declared or k in ("since", "until", "bucket", "limit"):
            known = ", ".join(p.name for p in query.params) or "none"
            raise UsageError(f"--param {k}: query {query.name} has no such parameter (parameters: {known})")
    t_since = parse_time(since, name="since", now=now) if since is not None else None
    t_until = parse_time(until, name="until", now=now) if until is not None else None
    if t_since and t_until and t_since >= t_until:
        raise UsageError(f"--since {format_time(t_since)} is not before --until {format_time(t_until)}")
    given = dict(params, since=since, until=until, bucket=bucket, limit=limit)
    out: dict[str, Any] = {}
    for p in query.params:
        v = given.get(p.name)
        if p.name == "since":
            out[p.name] = format_time(t_since or MIN_TIME)
        elif p.name == "until":
            out[p.name] = format_time(t_until or MAX_TIME)
        elif v is None:
            if p.default is None:
                if p.required:
                    raise UsageError(f"--param {p.name}: query {query.name} needs a value ({p.doc})")
                out[p.name] = None
            else:
                out[p.name] = convert_param(p.name, p.type, p.default)
        else:
            out[p.name] = convert_param(p.name, p.type, v)
    return out, (t_since, t_until)


def parse_param_args(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` from ``--param`` into a dict; the value is kept as text (typed later by :func:`bind`)."""
    out: dict[str, str] = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        k = k.strip()
        if not sep or not PARAM_NAME_RE.match(k):
            raise UsageError(f"--param {item!r}: expected NAME=VALUE with NAME like top_n or path_prefix")
        out[k] = v
    return out


# --- placeholder rewriting for drivers -------------------------------------------------------

_MARK = "__albstats_param_{}__"
_MARK_RE = re.compile(r"__albstats_param_([a-z_][a-z0-9_]*)__")


def _marked(sql: str) -> str:
    """Trino SQL with every ``:name`` placeholder replaced by an identifier marker (comments dropped)."""
    from sqlglot import exp

    def repl(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name:
            if not PARAM_NAME_RE.match(node.name):
                raise UsageError(f"placeholder :{node.name} is not a valid parameter name")
            return exp.column(_MARK.format(node.name))
        return node

    return parse_one(sql).transform(repl).sql("trino", comments=False)


def placeholder_names(sql: str) -> list[str]:
    """Names of the ``:name`` placeholders in Trino SQL, in order of first appearance."""
    seen: dict[str, None] = {}
    for m in _MARK_RE.finditer(_marked(sql)):
        seen.setdefault(m[1])
    return list(seen)


def to_pyformat(sql: str) -> str:
    """``:name`` -> ``%(name)s`` for pyathena's default paramstyle; literal ``%`` doubled, comments dropped."""
    return _MARK_RE.sub(lambda m: f"%({m[1]})s", _marked(sql).replace("%", "%%"))


def to_qmark(sql: str) -> tuple[str, list[str]]:
    """``:name`` -> ``?`` for ``paramstyle="qmark"``; returns the SQL and the name bound to each ``?`` in order."""
    marked = _marked(sql)
    names = [m[1] for m in _MARK_RE.finditer(marked)]
    return _MARK_RE.sub("?", marked), names


# --- results ----------------------------------------------------------------------------------


def conform(df: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """Cast a result to the declared output columns (name -> Athena type), in that order.

    Raises :class:`RuntimeError` when a declared column is missing: that is a bug in a query file
    or an engine, not a user error.
    """
    import pandas as pd

    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RuntimeError(f"result lacks declared columns {missing}; it has {list(df.columns)}")
    out = pd.DataFrame(index=range(len(df)))
    for name, type_ in columns.items():
        col = df[name].reset_index(drop=True)
        if type_ == "timestamp":
            s = pd.to_datetime(col, utc=True)
            out[name] = s.astype("datetime64[ns, UTC]")
        elif type_ in ("bigint", "int"):
            s = pd.to_numeric(col)
            out[name] = s.astype("Int64") if s.isna().any() else s.astype("int64")
        elif type_ == "double":
            out[name] = pd.to_numeric(col).astype("float64")
        else:
            out[name] = col.astype(object).where(col.notna(), None)
    return out


# --- the interface ----------------------------------------------------------------------------

#: A point in time as callers give it: a datetime (naive = UTC; a pandas.Timestamp is one), an
#: ISO-8601 string, ``now`` or a relative ``7d``/``12h``/``30m`` (see :func:`parse_time`).
TimeValue = datetime | str
#: A bucket width: a timedelta, seconds, or ``5m``/``1h``/``1d`` (see :func:`parse_duration`).
DurationValue = timedelta | int | float | str
#: A value of a saved query's declared parameter; converted to the declared type by :func:`bind`.
ParamValue = TimeValue | DurationValue | None
#: A value bound to an ad-hoc ``:name`` placeholder of :meth:`Engine.sql`.
SqlValue = str | int | float | None


@dataclass
class QueryRows:
    """A result as plain Python rows: what the CLI prints without importing pandas (a warm query stays fast)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def _declared(params: Mapping[str, ParamValue]) -> dict[str, Any]:
    """A query's own parameters for :func:`bind`, which checks each name and value against the header
    (``now`` is bind's clock, never a query parameter: refused here rather than taken as the clock)."""
    if "now" in params:
        raise UsageError("--param now: not a parameter name (since/until take 'now')")
    return dict(params)


class Engine(ABC):
    """Runs Athena SQL over ``alb_logs`` and returns DataFrames. Use as a context manager, or call close().

    Subclasses implement :meth:`_execute`; the shared :meth:`query` handles names, parameters and
    result types so both engines behave the same.
    """

    #: ``"local"`` or ``"athena"``
    name: str = ""

    def query(
        self,
        name: str,
        *,
        since: TimeValue | None = None,
        until: TimeValue | None = None,
        bucket: DurationValue | None = None,
        limit: int | str | None = None,
        **params: ParamValue,
    ) -> pd.DataFrame:
        """Run the saved query ``name`` (see ``albstats sql list``) and return its declared columns.

        ``since``/``until`` bound the window on ``time`` (UTC; since inclusive, until exclusive);
        ``bucket`` is the bucket width for bucketed queries and ``limit`` caps row-limited queries
        (both default to the query header's); other keywords are the query's own declared parameters.
        """
        from albstats.queries import get

        q = get(name)
        values, window = bind(q, since=since, until=until, bucket=bucket, limit=limit, **_declared(params))
        df = self._execute(q.sql, values, query=q, window=window)
        return conform(df, q.column_types)

    def query_rows(
        self,
        name: str,
        *,
        since: TimeValue | None = None,
        until: TimeValue | None = None,
        bucket: DurationValue | None = None,
        limit: int | str | None = None,
        **params: ParamValue,
    ) -> QueryRows:
        """:meth:`query` as plain rows (same columns and order); engines may answer without pandas."""
        from albstats.queries import get

        q = get(name)
        values, window = bind(q, since=since, until=until, bucket=bucket, limit=limit, **_declared(params))
        res = self._execute_rows(q.sql, values, query=q, window=window)
        if res.columns != q.column_names:
            raise RuntimeError(f"{q.name}: result columns {res.columns} differ from the header's {q.column_names}")
        return res

    def sql(self, text: str, params: Mapping[str, SqlValue] | None = None) -> pd.DataFrame:
        """Run ad-hoc Athena SQL over ``alb_logs``; ``params`` bind ``:name`` placeholders (str/int/float/None).

        Values are passed to the driver, never into the text. Column types are whatever the engine returns.
        Only a single SELECT (or WITH ... SELECT) statement is accepted.
        """
        return self._execute(text, self._adhoc_params(params), query=None, window=(None, None))

    def sql_rows(self, text: str, params: Mapping[str, SqlValue] | None = None) -> QueryRows:
        """:meth:`sql` as plain rows."""
        return self._execute_rows(text, self._adhoc_params(params), query=None, window=(None, None))

    @staticmethod
    def _adhoc_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for k, v in (params or {}).items():
            if not PARAM_NAME_RE.match(k):
                raise UsageError(f"--param {k}: not a valid parameter name")
            if v is not None and (isinstance(v, bool) or not isinstance(v, str | int | float)):
                raise UsageError(f"--param {k}: values must be text or numbers, not {type(v).__name__}")
            values[k] = v
        return values

    def _execute_rows(
        self,
        sql: str,
        params: dict[str, Any],
        *,
        query: SavedQuery | None,
        window: tuple[datetime | None, datetime | None],
    ) -> QueryRows:
        """Default: through :meth:`_execute` and :func:`conform`. The local engine answers without pandas."""
        df = self._execute(sql, params, query=query, window=window)
        if query is not None:
            df = conform(df, query.column_types)
        return QueryRows([str(c) for c in df.columns], list(df.itertuples(index=False, name=None)))

    @abstractmethod
    def _execute(
        self,
        sql: str,
        params: dict[str, Any],
        *,
        query: SavedQuery | None,
        window: tuple[datetime | None, datetime | None],
    ) -> pd.DataFrame:
        """Run one Trino SQL statement with ``:name`` placeholders bound to ``params``; return a DataFrame.

        ``query`` is the saved query being run (None for ad-hoc SQL); ``window`` holds the user's
        since/until (None where not given) for partition pruning. Raise AlbstatsError subclasses
        for user-facing failures (UsageError for bad SQL, AwsError with AWS's reason on Athena).
        """

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Within the block, every query reads the input as it was at the block's first query.

        A report runs a dozen queries; a log file arriving half-way through must not make its tables
        disagree with its headline, and listing a week of files once is cheaper than a dozen times.
        The Athena engine reads a table, which has no listing to pin: there this is a no-op.
        """
        yield

    def parse_stats(self) -> ParseStats | None:
        """Per-file line and malformed-line counts for the data the engine reads, where it knows them (local)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and temporary files."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
