"""The local engine: Athena SQL on DuckDB over log files parsed by albstats' own parser.

``alb_logs`` has exactly the Athena table's columns, types and values (:data:`albstats.schema.ACCESS`),
because every line goes through albstats' parser; DuckDB's CSV reader is never used. Saved queries are
Trino SQL, translated by sqlglot (:mod:`albstats.engines.translate`).

Where the rows are
------------------
Parsed rows live in the Parquet dataset of :mod:`albstats.dataset`: by default the cache of
:mod:`albstats.cache` (``--db DIR``; default :func:`albstats.cache.default_dir`), which parses a log
file once and then only new or changed ones. ``alb_logs`` is a DuckDB view over ``read_parquet`` of
exactly the parts holding the rows of the files a query was given (and, with ``since``/``until``,
only the days that can hold rows of that window). Without the cache (``cache=False``,
``--no-cache``) the files are parsed once per engine into a temporary dataset holding only the
columns the saved queries read, deleted on close.

User SQL is sandboxed
---------------------
The DuckDB connection is locked down before any SQL runs: no external access (files, network),
except reading the dataset's own folders; no extensions installed or loaded; the configuration
locked. So ``engine.sql(...)`` and ``albstats sql run`` read ``alb_logs`` and nothing else of the
machine; only a single SELECT is accepted at all (see :func:`translate`).

The module is a little over 500 lines: the sandboxed connection, the two ways to the rows (cache or
temporary dataset) and the snapshot of the input share the engine's state; the SQL translation, the
other job it used to hold, is :mod:`albstats.engines.translate`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albstats.engines.base import Engine, QueryRows
from albstats.engines.translate import (  # noqa: F401  (translate, translate_saved: the public names here too)
    TS_COLUMN,
    TS_VIEW,
    alb_logs_schema,
    saved_columns,
    translate,
    translate_saved,
)
from albstats.errors import AlbstatsError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pandas as pd

    from albstats.cache import Cache, Identity
    from albstats.parse import ParseStats
    from albstats.queries import SavedQuery
    from albstats.sources import Source


def default_db_path() -> Path:
    """Where the cache lives unless ``--db`` says otherwise (see :func:`albstats.cache.default_dir`)."""
    from albstats.cache import default_dir

    return default_dir()


# --- the engine -------------------------------------------------------------------------------


@dataclass
class IngestStats:
    """What the last query had to do before it could run: for progress messages and tests."""

    files: int = 0  # files the query covers
    parsed: int = 0  # files parsed now
    cached: int = 0  # files served from the cache
    rows: int = 0  # rows added now


def _identity(src: Source, cwd: str | None = None) -> Identity:
    """(key, size, mtime_ns, etag): what decides whether a cached copy of a file is still good.

    Local files listed by :func:`albstats.sources.expand` carry their stat from the listing; others are
    stat'ed here. ``cwd`` (the current directory) saves a getcwd per file when called for many.
    """
    etag = src.etag
    if src.name.startswith("s3://") or src.name == "<stdin>":
        return src.name, src.size, None, etag
    key = os.path.normpath(os.path.join(cwd, src.name)) if cwd else os.path.abspath(src.name)
    if src.mtime_ns is not None:
        return key, src.size, src.mtime_ns, etag
    try:
        st = os.stat(src.name)
    except OSError:
        return key, src.size, None, etag
    return key, st.st_size, st.st_mtime_ns, etag


def _identities(sources: list[Source]) -> list[Identity]:
    cwd = os.getcwd()
    return [_identity(src, cwd) for src in sources]


def _literal(text: str) -> str:
    """A SQL string literal (our own paths only; user values are always bound parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _day_range(window: tuple[datetime | None, datetime | None]) -> tuple[str, str]:
    """The ``day`` partitions that can hold rows of the window (see :mod:`albstats.dataset`)."""
    since, until = window
    first = since.astimezone(UTC).date().strftime("%Y/%m/%d") if since else "0000/00/00"
    last = (
        ((until.astimezone(UTC) - timedelta(microseconds=1)).date() + timedelta(days=1)).strftime("%Y/%m/%d")
        if until
        else "9999/99/99"
    )
    return first, last


def _entry_matches(e: dict[str, Any] | None, ident: Identity) -> bool:
    return e is not None and (e["size"], e["mtime_ns"], e["etag"]) == ident[1:] and not e["missing"]


class LocalEngine(Engine):
    """DuckDB over the Parquet dataset of parsed log files, as described in the module docstring."""

    name = "local"

    def __init__(
        self,
        paths: Iterable[str] | None = None,
        *,
        db: str | os.PathLike[str] | None = None,
        cache: bool = True,
        quiet: bool = True,
        s3_options: dict[str, Any] | None = None,
        memory_limit: str = "160MB",
        ingest_memory_limit: str | None = None,
        threads: int | None = None,
    ) -> None:
        """``db`` is the cache folder; ``ingest_memory_limit`` is accepted for compatibility and unused
        (parsing no longer goes through DuckDB)."""
        self.paths = [os.fspath(p) for p in (paths or [])]
        self.cache = cache
        self.quiet = quiet
        self.s3_options = s3_options
        import re

        if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)", memory_limit):
            raise UsageError(f"memory_limit: {memory_limit!r} is not a size like 256MB")
        self.memory_limit = memory_limit
        self.threads = threads or min(os.cpu_count() or 2, 4)
        self.db_path = Path(db) if db is not None else (default_db_path() if cache else None)
        self.last_ingest = IngestStats()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._tmpdir: str | None = None  # this engine's own: DuckDB's spill folder, temporary datasets
        self._store: Cache | None = None
        self._temp: tuple[Cache, tuple[str, ...], frozenset[str] | None] | None = None
        self._temp_count = 0
        self._view_key: tuple[Any, ...] | None = None
        self._listing: dict[tuple[datetime | None, datetime | None], list[Source]] | None = None  # see snapshot()
        self._file_stats: list[Any] | None = []
        self._file_rows: list[tuple[Any, ...]] = []  # name, kind, lines, rows, bad_lines, bad_examples, error, skipped

    # connection ---------------------------------------------------------------------------
    def _connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection, sandboxed before any SQL runs (see the module docstring)."""
        if self._con is not None:
            return self._con
        import duckdb

        from albstats.cache import TMP, Cache, sweep_dead

        if self.cache:
            assert self.db_path is not None
            self._store = Cache(self.db_path)
            self._store._ensure()
            parent, prefix = str(self.db_path / TMP), ""
        else:
            parent, prefix = tempfile.gettempdir(), "albstats-"
        sweep_dead(parent, prefix)  # spill folders of killed processes
        for attempt in range(3):  # another process may remove the empty shared folder in between
            os.makedirs(parent, exist_ok=True)
            try:
                self._tmpdir = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        assert self._tmpdir is not None
        allowed = [os.path.join(self._tmpdir, "")]
        if self._store is not None:
            allowed.append(os.path.join(os.path.abspath(self._store.data), ""))
        try:
            con = duckdb.connect(":memory:", config={"threads": self.threads, "memory_limit": self.memory_limit})
            con.execute("SET TimeZone = 'UTC'")  # buckets and TIMESTAMPTZ results in UTC
            try:  # DuckDB draws it on stdout: into `query > out.csv`
                con.execute("SET enable_progress_bar = false")
            except duckdb.Error:  # in Jupyter without ipywidgets DuckDB refuses any change to it (and draws nothing)
                pass
            try:
                # DuckDB 1.4+ turns a window over an aggregate (a share of a total: status_codes,
                # tls_mix) into a self-join that runs the aggregate, and its scan of every row, twice:
                # status_codes took 2.65 CPU s on 10M lines with it, 1.34 without
                con.execute("SET disabled_optimizers = 'window_self_join'")
            except duckdb.Error:  # an older DuckDB has no such optimizer
                pass
            con.execute(f"SET temp_directory = {_literal(os.path.join(self._tmpdir, 'spill'))}")
            con.execute("SET allowed_directories = ?", [allowed])
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET autoload_known_extensions = false")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except duckdb.Error as e:
            self.close()
            raise AlbstatsError(f"DuckDB could not start: {str(e).splitlines()[0]}") from None
        self._con = con
        return con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._store is not None:
            self._store.close()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            if self.cache:  # the cache's shared spill folder goes too once no process uses it
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.dirname(self._tmpdir))
            self._tmpdir = None
        self._temp = None
        self._view_key = None

    # sources ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Within the block the log files are listed once per window (see :meth:`Engine.snapshot`)."""
        if self._listing is not None:  # nested: the outer block pins
            yield
            return
        self._listing = {}
        try:
            yield
        finally:
            self._listing = None

    def _sources(self, window: tuple[datetime | None, datetime | None]) -> list[Source]:
        if self._listing is not None:
            if window not in self._listing:
                self._listing[window] = self._list_sources(window)
            return self._listing[window]
        return self._list_sources(window)

    def _list_sources(self, window: tuple[datetime | None, datetime | None]) -> list[Source]:
        from albstats.sources import expand

        if not self.paths:
            raise UsageError("no log files given: name files, folders, globs or s3:// prefixes")
        sources = expand(self.paths, s3_options=self.s3_options, since=window[0], until=window[1])
        since, until = window
        if since is None and until is None:
            return sources
        # Local folders in the S3 key layout: skip day folders that cannot hold rows of the window, by
        # the rule s3:// listing uses (a folder is the delivery day, so until's day plus one).
        first = since.astimezone(UTC).date() if since else None
        last = (until.astimezone(UTC) - timedelta(microseconds=1)).date() + timedelta(days=1) if until else None
        named = set(self.paths)

        def needed(src: Source) -> bool:
            day = None if src.name.startswith("s3://") or src.name in named else src.delivery_day
            return day is None or ((first is None or day >= first) and (last is None or day <= last))

        return [s for s in sources if needed(s)]

    def _explicit(self, sources: list[Source]) -> set[str]:
        given = set(self.paths)
        return {s.name for s in sources if s.name in given}

    # views --------------------------------------------------------------------------------
    def _set_view(
        self,
        con: duckdb.DuckDBPyConnection,
        root: Path,
        rels: list[str],
        stored: frozenset[str] | None,
        window: tuple[datetime | None, datetime | None],
    ) -> None:
        """Point ``alb_logs`` (and :data:`TS_VIEW`) at these parts; columns not ``stored`` read as NULL."""
        names, quoted, _, typed = alb_logs_schema()
        cols = ", ".join(f'"{n}"' if stored is None or n in stored else f'CAST(NULL AS {t}) AS "{n}"' for n, t in typed)
        if rels:
            files = ", ".join(_literal(str(root / r)) for r in rels)
            src = f"read_parquet([{files}], hive_partitioning = true)"
            # whole seconds one second wider than the window: rows are filtered exactly by the queries;
            # this only lets DuckDB skip row groups by their time statistics
            conds = []
            if window[0] is not None:
                conds.append(f"time >= '{(window[0] - timedelta(seconds=1)).strftime('%Y-%m-%dT%H:%M:%S')}'")
            if window[1] is not None:
                conds.append(f"time < '{(window[1] + timedelta(seconds=1)).strftime('%Y-%m-%dT%H:%M:%S')}'")
            where = f" WHERE {' AND '.join(conds)}" if conds else ""
        else:
            src = "(SELECT 1) AS no_rows"
            cols = ", ".join(f'CAST(NULL AS {t}) AS "{n}"' for n, t in typed)
            where = " WHERE false"
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {TS_VIEW} AS SELECT {cols}, "
            f"TRY_CAST(time AS TIMESTAMPTZ) AS {TS_COLUMN} FROM {src}{where}"
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW alb_logs AS SELECT {quoted} FROM {TS_VIEW}")

    def _keep_stats(self, pairs: list[tuple[Source, dict[str, Any]]]) -> None:
        # kept as tuples: building FileStats imports the parser (and pyarrow), which a warm query does not need
        self._file_rows = sorted(
            (
                src.name,
                e["kind"],
                e["lines"],
                e["rows"],
                e["bad_lines"],
                json.dumps(e["bad_examples"]),
                e["error"],
                e["skipped"],
            )
            for src, e in pairs
        )
        self._file_stats = None

    def _view_cached(
        self, con: duckdb.DuckDBPyConnection, sources: list[Source], window: tuple[datetime | None, datetime | None]
    ) -> None:
        """Fill the cache with what it lacks, then point the views at the parts of exactly ``sources``."""
        store = self._store
        assert store is not None
        idents = _identities(sources)
        key = (tuple(s.name for s in sources), tuple(idents), _day_range(window), window)
        if key == self._view_key:
            return
        for src in sources:
            if src.name == "<stdin>":
                raise UsageError("reading stdin (-) needs --no-cache")
        for _attempt in range(3):  # a concurrent prune or clear can take files away between fill and read
            m = store.load()
            parsed = rows = 0
            if not all(_entry_matches(m["files"].get(i[0]), i) for i in idents):
                with store.writing(quiet=self.quiet):
                    st = store.fill(sources, idents, explicit=self._explicit(sources), quiet=self.quiet)
                parsed, rows = st.parsed, st.rows
            store.hold_readers()
            m = store.load()
            pairs: dict[str, tuple[Source, dict[str, Any]]] = {}
            for src, ident in zip(sources, idents, strict=True):
                e = m["files"].get(ident[0])
                if not _entry_matches(e, ident):
                    break
                pairs.setdefault(ident[0], (src, e))
            else:
                break
        else:
            raise AlbstatsError(
                f"--db {store.root}: the cache kept changing under this query (another albstats "
                "pruning or clearing it?); try again or use --no-cache"
            )
        first, last = _day_range(window)
        rels = sorted({r for _, e in pairs.values() for r in e["parts"] if first <= m["parts"][r]["day"] <= last})
        wanted = set(pairs)
        if any(k not in wanted for r in rels for k in m["parts"][r]["files"]):
            # those parts also hold rows of files not asked for (a single file of a folder, say): parse
            # exactly the files asked for instead
            self._view_temp(con, sources, window, None, exact=True)
            return
        self._keep_stats(list(pairs.values()))
        self.last_ingest = IngestStats(files=len(pairs), parsed=parsed, cached=len(pairs) - parsed, rows=rows)
        self._set_view(con, store.data, rels, None, window)
        self._view_key = key

    def _view_temp(
        self,
        con: duckdb.DuckDBPyConnection,
        sources: list[Source],
        window: tuple[datetime | None, datetime | None],
        columns: frozenset[str] | None,
        exact: bool = False,
    ) -> None:
        """Parse ``sources`` once into a temporary dataset of ``columns`` (None: all), unless the last one
        has them, and point the views at it."""
        from albstats.cache import Cache

        assert self._tmpdir is not None
        names = tuple(s.name for s in sources)
        t = self._temp
        if t is None or t[1] != names or not (t[2] is None or (columns is not None and columns <= t[2])):
            if t is not None:
                shutil.rmtree(t[0].root, ignore_errors=True)
                self._temp = None
            self._temp_count += 1
            ds = Cache(Path(self._tmpdir) / f"ds{self._temp_count}", locking=False)
            fields = None if columns is None else [n for n in alb_logs_schema()[0] if n in columns]
            with ds.writing():
                st = ds.fill(
                    sources,
                    _identities(sources),
                    explicit=self._explicit(sources),
                    fields=fields,
                    quiet=self.quiet,
                )
            self._temp = t = (ds, names, columns)
            self.last_ingest = IngestStats(files=len(set(names)), parsed=st.parsed, rows=st.rows)
        else:
            self.last_ingest = IngestStats(files=len(set(names)), cached=len(set(names)))
        ds = t[0]
        m = ds.load()
        idents = _identities(sources)
        pairs = {i[0]: (src, m["files"][i[0]]) for src, i in zip(sources, idents, strict=True) if i[0] in m["files"]}
        self._keep_stats(list(pairs.values()))
        first, last = _day_range(window)
        rels = sorted(r for r, p in m["parts"].items() if first <= p["day"] <= last)
        stored = None if t[2] is None else frozenset(t[2] | {"time"})
        self._set_view(con, ds.data, rels, stored, window)
        self._view_key = None

    # running ------------------------------------------------------------------------------
    def _prepare(
        self,
        sql: str,
        params: dict[str, Any],
        query: SavedQuery | None,
        window: tuple[datetime | None, datetime | None],
    ) -> tuple[duckdb.DuckDBPyConnection, str, dict]:
        # a bound the caller left open filters nothing: not reading `time` for it saves half a simple query
        open_bounds = frozenset(n for n, v in zip(("since", "until"), window, strict=True) if v is None)
        t = translate_saved(query, open_bounds) if query is not None else translate(sql, open_bounds)
        missing = [p for p in t.params if p not in params]
        if missing:
            raise UsageError(f"--param {missing[0]}: the SQL uses :{missing[0]} but no value was given")
        sources = self._sources(window)
        con = self._connect()
        if self.cache:
            self._view_cached(con, sources, window)
        else:
            cols = None if t.columns is None else frozenset(t.columns)
            if query is not None and cols is not None:  # a report runs many: parse what they all read, once
                saved = saved_columns()
                cols = None if saved is None else cols | saved
            self._view_temp(con, sources, window, cols)
        return con, t.sql, {k: params[k] for k in t.params}

    def _run(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> duckdb.DuckDBPyConnection:
        import duckdb

        try:
            return con.execute(sql, params)
        except duckdb.PermissionException as e:
            what = str(e).splitlines()[0].removeprefix("Permission Error: ")
            raise UsageError(
                f"not allowed: SQL here reads alb_logs only, without file, network or extension access ({what})"
            ) from None
        except duckdb.Error as e:
            raise UsageError(f"the query failed in DuckDB: {str(e).splitlines()[0]}") from None

    def _execute(
        self,
        sql: str,
        params: dict[str, Any],
        *,
        query: SavedQuery | None,
        window: tuple[datetime | None, datetime | None],
    ) -> pd.DataFrame:
        con, dsql, bound = self._prepare(sql, params, query, window)
        return self._run(con, dsql, bound).df()

    def _execute_rows(
        self,
        sql: str,
        params: dict[str, Any],
        *,
        query: SavedQuery | None,
        window: tuple[datetime | None, datetime | None],
    ) -> QueryRows:
        con, dsql, bound = self._prepare(sql, params, query, window)
        cur = self._run(con, dsql, bound)
        cols = [d[0] for d in cur.description or []]
        return QueryRows(cols, cur.fetchall())

    def parse_stats(self) -> ParseStats:
        """Per-file counts (lines, rows, malformed lines, damage) for the files of the last query."""
        from albstats.parse import FileStats, ParseStats

        if self._file_stats is None:
            self._file_stats = [
                FileStats(
                    r[0],
                    kind=r[1],
                    lines=r[2],
                    rows=r[3],
                    bad_lines=r[4],
                    bad_examples=[tuple(x) for x in json.loads(r[5] or "[]")],
                    error=r[6],
                    skipped=r[7],
                )
                for r in self._file_rows
            ]
        return ParseStats(files=list(self._file_stats))

    def summary(self) -> tuple[str, list[str], list[str]]:
        """(one-line summary, first malformed lines as file:line, damaged files) without importing the parser."""
        rows = self._file_rows
        read = [r for r in rows if not r[7]]
        text = (
            f"{len(read)} files, {sum(r[2] for r in rows)} lines, {sum(r[3] for r in rows)} rows, "
            f"{sum(r[4] for r in rows)} malformed lines"
        )
        if len(read) < len(rows):
            text += f", {len(rows) - len(read)} files skipped"
        errors = [f"{r[0]}: {r[6]}" for r in rows if r[6]]
        if errors:
            text += f", {len(errors)} damaged files"
        examples = [f"{r[0]}:{ln}: {why}" for r in rows if r[4] for ln, why in json.loads(r[5] or "[]")][:3]
        ing = self.last_ingest
        return f"{text} ({ing.parsed} files parsed, {ing.cached} from cache)", examples, errors
