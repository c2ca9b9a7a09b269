"""The local engine: Athena SQL on DuckDB over log files parsed by albstats' own parser.

``alb_logs`` has exactly the Athena table's columns, types and values (:data:`albstats.schema.ACCESS`),
because every line goes through :func:`albstats.parse.iter_batches`; DuckDB's CSV reader is never
used. Saved queries are Trino SQL, translated by sqlglot (see :func:`translate`).

The ingest cache
----------------
Parsed rows are kept in a DuckDB file (``--db FILE``; default :func:`default_db_path`:
``$ALBSTATS_CACHE_DB``, else ``$XDG_CACHE_HOME/albstats/cache.duckdb``, else
``~/.cache/albstats/cache.duckdb``). A manifest table ``files`` records for every file its path,
size, mtime (or ETag for ``s3://`` sources), line, row and malformed-line counts. A query expands its
paths, parses only files that are new or changed (file by file, committed together with their
manifest row, so an interrupted ingest loses nothing already done), and then reads only the rows of
exactly the files it was given, never everything the cache has ever seen.

Without the cache (``cache=False``, ``--no-cache``) rows go to a temporary DuckDB file that is
deleted on close, and only the columns the SQL references are parsed. Either way parsed rows never
pile up in Python memory: DuckDB holds them on disk under a memory limit.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albstats.engines.base import Engine, QueryRows
from albstats.errors import AlbstatsError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import _duckdb as duckdb
    import pandas as pd

    from albstats.parse import FileStats, ParseStats
    from albstats.queries import SavedQuery
    from albstats.sources import Source

#: Bump when the parser's output or the cache tables change: an old cache is then rebuilt.
CACHE_FORMAT = "2"
#: Bump when :func:`translate` changes, so cached translations are not reused.
TRANSLATE_VERSION = "2"
#: The parsed ``time`` kept beside the rows (not part of ``alb_logs``): parsing 1M ISO strings per query
#: would cost more than the rest of a typical query.
TS_COLUMN = "__time_ts"
#: ``alb_logs`` plus :data:`TS_COLUMN`; :func:`translate` points SELECTs that parse ``time`` at it.
TS_VIEW = "alb_logs_ts"
#: Rows or Arrow bytes buffered before they go to DuckDB: small inserts keep DuckDB's and Arrow's memory
#: low during an ingest (measured: peak RSS grows with the insert size, speed hardly changes).
FLUSH_ROWS = 16384
FLUSH_BYTES = 16 << 20
#: Rows per insert into the ``--no-cache`` table, which holds only the columns a query reads.
TEMP_FLUSH_ROWS = 131072
#: Commit after this many Arrow bytes were inserted: DuckDB keeps a transaction's new rows in memory,
#: outside its memory limit, and a commit costs about 10 ms (measured: one transaction for 300k rows
#: doubled the peak RSS).
COMMIT_BYTES = 16 << 20
#: DuckDB's WAL size that triggers a checkpoint while rows go in (its default is 16 MB). Each checkpoint
#: compresses and rewrites the table's last, partly filled row group, so with the default a row group
#: was compressed about six times over (measured on 1M lines: 2x the whole fill time). Committed rows
#: stay durable in the WAL in between; the spill stays under the memory limit.
INGEST_CHECKPOINT = "256MB"



@lru_cache(maxsize=1)
def _schema() -> tuple[list[str], str, str, list[tuple[str, str]]]:
    """(names, quoted name list, DDL, [(name, DuckDB type)]) of ``alb_logs``, from :mod:`albstats.schema`.

    Imported on first use: the schema module loads pyarrow, which a warm cached query never needs.
    """
    from albstats.schema import ACCESS, DUCKDB_TYPES

    typed = [(c.name, DUCKDB_TYPES[c.type]) for c in ACCESS.columns]
    return (ACCESS.names, ", ".join(f'"{n}"' for n, _ in typed), ", ".join(f'"{n}" {t}' for n, t in typed), typed)


def duckdb_engine() -> Any:
    """DuckDB's engine module ``_duckdb``, without the Python layer that ``import duckdb`` builds over it.

    DuckDB 2's ``import duckdb`` executes a pure-Python relation API that costs about 130 ms, a third of a
    warm-cache query, and only adds connection methods albstats never calls (``sql``, ``read_csv``,
    ``from_arrow``, ...). ``connect``, ``execute``, the fetches, ``df``, ``register`` and the exception
    classes are the engine's own objects either way (``duckdb.Error is _duckdb.Error``). Layouts without a
    top-level engine module (DuckDB before 1.4), or a future one whose engine lacks a method used here,
    get the package.
    """
    try:
        import _duckdb

        if all(hasattr(_duckdb.DuckDBPyConnection, m) for m in _ENGINE_METHODS) and hasattr(_duckdb, "Error"):
            return _duckdb
    except ImportError:  # pragma: no cover - older DuckDB
        pass
    import duckdb

    return duckdb


#: The connection methods albstats calls on a connection from :func:`duckdb_engine`.
_ENGINE_METHODS = ("execute", "fetchone", "fetchall", "df", "description", "register", "unregister", "close")


def _enable_arrow_scans() -> None:
    """Import the ``duckdb`` package before Arrow tables are registered: it sets up the engine's scans of
    Python Arrow objects. Only parsing needs them; a query over a warm cache does not."""
    import duckdb  # noqa: F401


def default_db_path() -> Path:
    """Where the ingest cache lives unless ``--db`` says otherwise."""
    env = os.environ.get("ALBSTATS_CACHE_DB")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "albstats" / "cache.duckdb"


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
        if (not isinstance(table, exp.Table) or table.name != "alb_logs" or table.db or select.args.get("joins")
                or any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
                       for e in select.expressions)):
            continue
        alias = table.alias or "alb_logs"
        hits = [f for f in select.find_all(exp.FromISO8601Timestamp)
                if f.find_ancestor(exp.Select) is select and isinstance(f.this, exp.Column)
                and f.this.name == "time" and f.this.table in ("", alias)]
        if not hits:
            continue
        for f in hits:
            f.replace(exp.column(TS_COLUMN, table=alias if f.this.table else None))
        table.set("this", exp.to_identifier(TS_VIEW))
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier("alb_logs")))


def _translate_uncached(sql: str) -> Translated:
    from sqlglot import exp

    from albstats.engines.base import parse_one

    tree = parse_one(sql)
    if not isinstance(tree, exp.Query):
        raise UsageError(f"only SELECT queries run here, not {tree.key.upper()}")
    params: dict[str, None] = {}
    for ph in tree.find_all(exp.Placeholder):
        if not ph.name:
            raise UsageError("use named :name placeholders, not ?")
        params.setdefault(ph.name)
    known = set(_schema()[0])
    star = any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
               for sel in tree.find_all(exp.Select) for e in sel.expressions)
    tree = tree.transform(_fixups)
    _use_parsed_time(tree)
    names = {c.name for c in tree.find_all(exp.Column)}
    cols = None if star else tuple(sorted(names & known))
    return Translated(tree.sql("duckdb", comments=False), tuple(params), cols, TS_COLUMN in names)


def _translation_dir() -> Path:
    return default_db_path().parent / "sql"


@lru_cache(maxsize=64)
def translate(sql: str) -> Translated:
    """Trino SQL -> DuckDB SQL (sqlglot plus :func:`_fixups`), cached on disk beside the default cache.

    sqlglot costs about 0.1 s to import and parse; the on-disk copy lets a warm query skip it.
    """
    return _translate_keyed(sql, f"{_translator_stamp()}\0adhoc\0{sql}")


def _translate_keyed(sql: str, key: str) -> Translated:
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
            return Translated(d["sql"], tuple(d["params"]), None if d["columns"] is None else tuple(d["columns"]),
                              bool(d["uses_ts"]))
    except (OSError, ValueError, KeyError):
        pass
    t = _translate_uncached(sql)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"key": key, "sql": t.sql, "params": list(t.params),
                                       "columns": None if t.columns is None else list(t.columns),
                                       "uses_ts": t.uses_ts}))
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


def translate_saved(query: SavedQuery) -> Translated:
    """Like :func:`translate` for a saved query, keyed without importing sqlglot (the warm path)."""
    return _translate_keyed(query.sql, f"{_translator_stamp()}\0saved\0{query.name}\0{query.sql}")


# --- the engine -------------------------------------------------------------------------------

@dataclass
class IngestStats:
    """What the last query had to do before it could run: for progress messages and tests."""

    files: int = 0  # files the query covers
    parsed: int = 0  # files parsed now
    cached: int = 0  # files served from the cache
    rows: int = 0  # rows added now


def _identity(src: Source, cwd: str | None = None) -> tuple[str, int | None, int | None, str | None]:
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


def _identities(sources: list[Source]) -> list[tuple[str, int | None, int | None, str | None]]:
    cwd = os.getcwd()
    return [_identity(src, cwd) for src in sources]


class LocalEngine(Engine):
    """DuckDB over parsed log files, with the ingest cache described in the module docstring."""

    name = "local"

    def __init__(self, paths: Iterable[str] | None = None, *, db: str | os.PathLike[str] | None = None,
                 cache: bool = True, quiet: bool = True, s3_options: dict[str, Any] | None = None,
                 memory_limit: str = "256MB", ingest_memory_limit: str = "32MB",
                 threads: int | None = None) -> None:
        self.paths = [os.fspath(p) for p in (paths or [])]
        self.cache = cache
        self.quiet = quiet
        self.s3_options = s3_options
        import re

        for what, v in (("memory_limit", memory_limit), ("ingest_memory_limit", ingest_memory_limit)):
            if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)", v):
                raise UsageError(f"{what}: {v!r} is not a size like 256MB")
        self.memory_limit = memory_limit
        self.ingest_memory_limit = ingest_memory_limit
        self.threads = threads or min(os.cpu_count() or 2, 4)
        self.db_path = Path(db) if db is not None else (default_db_path() if cache else None)
        self.last_ingest = IngestStats()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._tmpdir: str | None = None
        self._file_stats: list[FileStats] | None = []
        self._file_rows: list[tuple[Any, ...]] = []  # path, kind, lines, rows, bad_lines, bad_examples, error, skipped
        self._cache_files = 0  # files in the cache's manifest
        self._temp_loaded: tuple[tuple[str, ...], frozenset[str], bool] | None = None  # files, columns, time

    # connection ---------------------------------------------------------------------------
    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._con is not None:
            return self._con
        duckdb = duckdb_engine()
        if self.cache:
            assert self.db_path is not None
            path = str(self.db_path)
            try:
                self.db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"--db {path}: cannot make its folder {self.db_path.parent} ({e.strerror})") from None
        else:
            self._tmpdir = tempfile.mkdtemp(prefix="albstats-")
            path = os.path.join(self._tmpdir, "rows.duckdb")
        try:
            con = duckdb.connect(path, config={"threads": self.threads, "memory_limit": self.memory_limit})
        except duckdb.Error as e:
            reason = str(e).splitlines()[0]
            if self.cache and "lock" in reason.lower():
                # another albstats holds the cache: answer anyway, parsing into a temporary database
                print(f"albstats: warning: the cache {path} is in use by another process; reading the files "
                      "without it this time", file=sys.stderr)
                self.cache = False
                return self._connect()
            raise AlbstatsError(f"--db {path}: not a usable DuckDB cache ({reason}); delete it or choose "
                                "another --db") from None
        con.execute("SET TimeZone = 'UTC'")  # buckets and TIMESTAMPTZ results in UTC
        try:  # DuckDB draws it on stdout: into `query > out.csv`
            con.execute("SET enable_progress_bar = false")
        except duckdb.Error:  # in Jupyter without ipywidgets DuckDB refuses any change to it (and draws nothing)
            pass
        self._con = con
        if self.cache:
            self._init_cache(con)
        return con

    def _init_cache(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        from albstats import __version__

        fmt = f"{CACHE_FORMAT}:{__version__}"  # a new release may parse differently: start again
        row = con.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is not None and row[0] == fmt:
            return
        # a cache written by another albstats version: start again
        con.execute("BEGIN")
        con.execute("DROP TABLE IF EXISTS access_rows")
        con.execute("DROP TABLE IF EXISTS files")
        con.execute(f"CREATE TABLE access_rows (file_id INTEGER, {_schema()[2]}, {TS_COLUMN} TIMESTAMPTZ)")
        con.execute("""CREATE TABLE files (
            file_id INTEGER PRIMARY KEY, path VARCHAR UNIQUE, size BIGINT, mtime_ns BIGINT, etag VARCHAR,
            kind VARCHAR, lines BIGINT, rows BIGINT, bad_lines BIGINT, bad_examples VARCHAR,
            error VARCHAR, skipped VARCHAR, ingested_at TIMESTAMPTZ)""")
        con.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", [fmt])
        con.execute("COMMIT")

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # sources ------------------------------------------------------------------------------
    def _sources(self, window: tuple[datetime | None, datetime | None]) -> list[Source]:
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

    @contextmanager
    def _ingest_settings(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """DuckDB settings while parsed rows go in: DuckDB buffers uncommitted inserts in memory, so a low
        limit keeps the peak RSS (parser + DuckDB) low; queries get more, since exact percentiles hold
        their values. One DuckDB thread: the parser's threads need the cores more (measured)."""
        con.execute(f"SET memory_limit = '{self.ingest_memory_limit}'")
        con.execute("SET threads = 1")
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"SET checkpoint_threshold = '{INGEST_CHECKPOINT}'")
        try:
            yield
        finally:
            con.execute(f"SET memory_limit = '{self.memory_limit}'")
            con.execute(f"SET threads = {int(self.threads)}")
            con.execute("SET preserve_insertion_order = true")
            con.execute("RESET checkpoint_threshold")

    def _progress(self, total: int) -> Any:
        from albstats import progress

        return progress.bar("parsing", total=total, quiet=self.quiet)

    # the cache ----------------------------------------------------------------------------
    #: The manifest columns a query reads: identity first, then the parse statistics kept for the summary.
    _MANIFEST = "file_id, path, size, mtime_ns, etag, kind, lines, rows, bad_lines, bad_examples, error, skipped"

    def _ingest_cached(self, con: duckdb.DuckDBPyConnection, sources: list[Source],
                       identities: list[tuple[str, int | None, int | None, str | None]] | None = None
                       ) -> list[tuple[Any, ...]]:
        """Parse what the cache lacks; return the manifest rows (:attr:`_MANIFEST`) of exactly ``sources``.

        A warm query costs one stat per file (taken by the listing) and one read of the manifest.
        ``identities`` are the sources' :func:`_identity`, if already worked out.
        """
        manifest = {r[1]: r for r in con.execute(f"SELECT {self._MANIFEST} FROM files").fetchall()}
        self._cache_files = len(manifest)
        want: dict[str, tuple[Any, ...] | None] = {}  # key -> manifest row (None: parsed now)
        todo: list[tuple[Source, int, bool]] = []  # (source, file id, replaces an old copy)
        next_id = max((r[0] for r in manifest.values()), default=0) + 1
        if identities is None:
            identities = _identities(sources)
        for src, (key, size, mtime, etag) in zip(sources, identities, strict=True):
            if src.name == "<stdin>":
                raise UsageError("reading stdin (-) needs --no-cache")
            if key in want:
                continue
            old = manifest.get(key)
            if old is not None and old[2:5] == (size, mtime, etag):
                want[key] = old
                continue
            fid = old[0] if old is not None else next_id
            if old is None:
                next_id += 1
            want[key] = None
            todo.append((src, fid, old is not None))
        self.last_ingest = IngestStats(files=len(want), parsed=len(todo), cached=len(want) - len(todo))
        if not todo:
            return list(want.values())  # type: ignore[arg-type]
        try:
            with self._ingest_settings(con):
                self._parse_into_cache(con, todo)
        except duckdb_engine().Error as e:  # a full disk, mostly: one line; the files committed stay cached
            while isinstance(e.__context__, duckdb_engine().Error):  # the first failure, not its aftermath
                e = e.__context__
            raise AlbstatsError(f"the cache {self.db_path} could not be written: {str(e).splitlines()[0]}") from None
        manifest = {r[1]: r for r in con.execute(f"SELECT {self._MANIFEST} FROM files").fetchall()}
        self._cache_files = len(manifest)
        return [row if row is not None else manifest[key] for key, row in want.items()]

    def _parse_into_cache(self, con: duckdb.DuckDBPyConnection, todo: list[tuple[Source, int, bool]]) -> None:
        """Parse ``todo`` in one :func:`~albstats.parse.iter_batches` call (so its worker threads stay busy)
        and label each row with its file id.

        iter_batches yields rows in file order and calls ``on_file`` once per file, in order, with the
        file's row count; the two streams are zipped below, whichever comes first. Rows go to DuckDB
        every :data:`FLUSH_ROWS` rows (memory stays bounded even for one huge file); a file's manifest
        row is written after all its rows, and commits happen every :data:`COMMIT_BYTES`, so an
        interrupted ingest keeps the files it committed and re-reads only the others.
        """
        _enable_arrow_scans()
        from collections import deque

        import numpy as np
        import pyarrow as pa

        from albstats.parse import ParseStats, iter_batches

        by_name = {src.name: (src, fid) for src, fid, _ in todo}
        explicit = self._explicit([s for s, _, _ in todo])
        unlabelled: deque[pa.RecordBatch] = deque()
        owners: deque[list[Any]] = deque()  # [file id, rows still to label, FileStats]
        labelled: list[pa.RecordBatch] = []  # labelled rows not yet inserted
        complete: list[FileStats] = []  # files whose rows are all labelled, manifest row not yet written
        pending = [0, 0]  # bytes, rows in ``labelled``
        stats = ParseStats()
        uncommitted = [0]  # bytes
        done = [0]  # rows parsed so far, for the progress bar
        cwd = os.getcwd()
        manifest_fields = [("file_id", pa.int32()), ("path", pa.string()), ("size", pa.int64()),
                           ("mtime_ns", pa.int64()), ("etag", pa.string()), ("kind", pa.string()),
                           ("lines", pa.int64()), ("rows", pa.int64()), ("bad_lines", pa.int64()),
                           ("bad_examples", pa.string()), ("error", pa.string()), ("skipped", pa.string())]

        def match() -> None:
            while owners and (owners[0][1] == 0 or unlabelled):
                fid, need, fs = owners[0]
                if need == 0:
                    complete.append(fs)
                    owners.popleft()
                    continue
                b = unlabelled[0]
                take = min(need, b.num_rows)
                part = b if take == b.num_rows else b.slice(0, take)
                labelled.append(part.add_column(0, "file_id", pa.array(np.full(take, fid, dtype="int32"))))
                pending[0] += part.nbytes
                pending[1] += take
                if take == b.num_rows:
                    unlabelled.popleft()
                else:
                    unlabelled[0] = b.slice(take)
                owners[0][1] -= take

        def flush(final: bool = False) -> None:
            if labelled:
                con.register("_albstats_batch", pa.Table.from_batches(labelled))
                con.execute(f"INSERT INTO access_rows SELECT file_id, {_schema()[1]}, TRY_CAST(time AS TIMESTAMPTZ) "
                            "FROM _albstats_batch")
                con.unregister("_albstats_batch")
            if complete:
                # one INSERT for all of them: a single-row INSERT into the indexed manifest cost 1.5 ms,
                # 3 s of a 1M-line fill in 2,016 files
                manifest = []
                for fs in complete:
                    src, fid = by_name[fs.name]
                    key, size, mtime, etag = _identity(src, cwd)
                    manifest.append((fid, key, size, mtime, etag, fs.kind, fs.lines, fs.rows, fs.bad_lines,
                                     json.dumps(fs.bad_examples), fs.error, fs.skipped))
                con.register("_albstats_files", pa.table(
                    [pa.array(col, type=t) for col, (_, t) in zip(zip(*manifest), manifest_fields)],
                    names=[n for n, _ in manifest_fields]))
                names = ", ".join(n for n, _ in manifest_fields)
                con.execute(f"INSERT INTO files ({names}, ingested_at) SELECT {names}, now() FROM _albstats_files")
                con.unregister("_albstats_files")
            uncommitted[0] += pending[0]
            labelled.clear()
            complete.clear()
            pending[:] = [0, 0]
            if final or uncommitted[0] >= COMMIT_BYTES:
                con.execute("COMMIT")
                con.execute("BEGIN")
                uncommitted[0] = 0

        def on_file(fs: FileStats) -> None:
            if fs.name not in by_name:
                raise RuntimeError(f"parser reported an unexpected file {fs.name!r}")
            owners.append([by_name[fs.name][1], fs.rows, fs])
            match()
            done[0] += fs.rows  # counted here: ParseStats.rows sums over every file on each call
            tick.advance(1, rows=done[0])

        # Old copies of changed files, and rows of a file an earlier run did not finish (rows without a
        # manifest row), go first: a file counts as cached only once its manifest row is committed.
        con.execute("BEGIN")
        try:
            for _src, fid, replace in todo:
                if replace:
                    con.execute("DELETE FROM files WHERE file_id = ?", [fid])
            con.execute("DELETE FROM access_rows WHERE file_id NOT IN (SELECT file_id FROM files)")
            with self._progress(len(todo)) as tick:
                for b in iter_batches([s for s, _, _ in todo], stats=stats, explicit=explicit, on_file=on_file):
                    if b.num_rows:
                        unlabelled.append(b)
                    match()
                    if pending[0] >= FLUSH_BYTES or pending[1] >= FLUSH_ROWS:
                        flush()
                match()
                if unlabelled or owners:
                    raise RuntimeError("parser rows and per-file row counts disagree; cache not updated")
                flush(final=True)
            con.execute("COMMIT")
        except BaseException:
            with suppress(duckdb_engine().Error):  # a failed COMMIT ended the transaction already
                con.execute("ROLLBACK")
            raise
        # Compress the rows still only in the WAL now, under the ingest memory limit: the query that
        # follows would otherwise read them uncompressed into its larger memory limit.
        con.execute("CHECKPOINT")
        self.last_ingest.rows = stats.rows

    def _select_files(self, con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
        """Point the ``alb_logs`` view at exactly these files (manifest rows) and keep their parse statistics."""
        where = ""
        if len(rows) != self._cache_files:  # not every cached file: filter by file id
            con.execute("CREATE OR REPLACE TEMP TABLE selected_files AS SELECT unnest(?::INTEGER[]) AS file_id",
                        [sorted(r[0] for r in rows)])
            where = " WHERE file_id IN (SELECT file_id FROM selected_files)"
        # the table's own columns (created from the schema), so a warm query need not import the schema
        con.execute(f"CREATE OR REPLACE TEMP VIEW {TS_VIEW} AS SELECT * EXCLUDE (file_id) FROM access_rows{where}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW alb_logs AS SELECT * EXCLUDE ({TS_COLUMN}) FROM {TS_VIEW}")
        # kept as tuples: building FileStats imports the parser (and pyarrow), which a warm query does not need
        self._file_rows = sorted((r[1], *r[5:]) for r in rows)
        self._file_stats = None

    # no cache -----------------------------------------------------------------------------
    def _ingest_temp(self, con: duckdb.DuckDBPyConnection, sources: list[Source],
                     columns: tuple[str, ...] | None, uses_ts: bool = True) -> None:
        """Parse ``sources`` into a temporary table holding only ``columns`` (plus the parsed time when the
        SQL reads it), unless the table already holds them."""
        _enable_arrow_scans()
        import pyarrow as pa

        from albstats.parse import ParseStats, iter_batches

        names = tuple(s.name for s in sources)
        names_all, cols_sql, _, typed = _schema()
        need = frozenset(names_all if columns is None else columns)
        stored = [c for c in names_all if c in need]  # kept in the table
        ts = uses_ts or columns is None
        loaded = self._temp_loaded
        if loaded and loaded[0] == names and need <= loaded[1] and (loaded[2] or not ts):
            self.last_ingest = IngestStats(files=len(names), cached=len(names))
            return
        # parsed: the stored columns, and ``time`` for the parsed time even when its text is not kept
        # (copying 1M timestamps as text into DuckDB costs more than parsing them)
        fields = [c for c in names_all if c in need or (ts and c == "time")] or ["time"]
        # A narrow table with only the parsed columns (inserting dozens of NULL columns costs more than the
        # parse); the views give every schema column, NULL where not parsed.
        con.execute("DROP VIEW IF EXISTS alb_logs")
        con.execute(f"DROP VIEW IF EXISTS {TS_VIEW}")
        con.execute("DROP TABLE IF EXISTS parsed_rows")
        ddl = "".join(f'"{n}" {t}, ' for n, t in typed if n in stored)
        con.execute(f"CREATE TABLE parsed_rows ({ddl}{TS_COLUMN} TIMESTAMPTZ)")
        view_cols = ", ".join(f'"{n}"' if n in stored else f'CAST(NULL AS {t}) AS "{n}"' for n, t in typed)
        con.execute(f"CREATE VIEW {TS_VIEW} AS SELECT {view_cols}, {TS_COLUMN} FROM parsed_rows")
        con.execute(f"CREATE VIEW alb_logs AS SELECT {cols_sql} FROM {TS_VIEW}")
        stats = ParseStats()
        self.last_ingest = IngestStats(files=len(names), parsed=len(names))
        cols = "".join(f'"{c}", ' for c in stored)
        ts_expr = "TRY_CAST(time AS TIMESTAMPTZ)" if ts else "NULL"
        buf: list[pa.RecordBatch] = []
        nbuf = nrows = uncommitted = 0

        def flush() -> None:
            nonlocal buf, nbuf, nrows, uncommitted
            con.register("_albstats_batch", pa.Table.from_batches(buf))
            con.execute(f"INSERT INTO parsed_rows ({cols}{TS_COLUMN}) SELECT {cols}{ts_expr} FROM _albstats_batch")
            con.unregister("_albstats_batch")
            uncommitted += nbuf
            buf, nbuf, nrows = [], 0, 0
            if uncommitted >= COMMIT_BYTES:  # bounds DuckDB's transaction memory (see COMMIT_BYTES)
                con.execute("COMMIT")
                con.execute("BEGIN")
                uncommitted = 0

        done = [0]

        def on_file(fs: FileStats) -> None:
            done[0] += fs.rows  # counted here: ParseStats.rows sums over every file on each call
            tick.advance(1, rows=done[0])

        con.execute("BEGIN")
        try:
            with self._progress(len(sources)) as tick:
                for b in iter_batches(sources, fields=fields, stats=stats, explicit=self._explicit(sources),
                                      on_file=on_file):
                    buf.append(b)
                    nbuf += b.nbytes
                    nrows += b.num_rows
                    # larger inserts than the cache's: DuckDB's cost per INSERT dominates narrow rows
                    if nbuf >= FLUSH_BYTES or nrows >= TEMP_FLUSH_ROWS:
                        flush()
                if buf:
                    flush()
            con.execute("COMMIT")
        except BaseException:
            with suppress(duckdb_engine().Error):  # a failed COMMIT ended the transaction already
                con.execute("ROLLBACK")
            raise
        self.last_ingest.rows = stats.rows
        self._file_stats = list(stats.files)
        self._temp_loaded = (names, frozenset(stored), ts)

    # running ------------------------------------------------------------------------------
    def _prepare(self, sql: str, params: dict[str, Any], query: SavedQuery | None,
                 window: tuple[datetime | None, datetime | None]) -> tuple[duckdb.DuckDBPyConnection, str, dict]:
        t = translate_saved(query) if query is not None else translate(sql)
        missing = [p for p in t.params if p not in params]
        if missing:
            raise UsageError(f"--param {missing[0]}: the SQL uses :{missing[0]} but no value was given")
        con, sources, identities = self._connect_and_list(window)
        if self.cache:
            self._select_files(con, self._ingest_cached(con, sources, identities))
        else:
            with self._ingest_settings(con):
                self._ingest_temp(con, sources, t.columns, t.uses_ts)
        return con, t.sql, {k: params[k] for k in t.params}

    def _connect_and_list(self, window: tuple[datetime | None, datetime | None]
                          ) -> tuple[duckdb.DuckDBPyConnection, list[Source], list[tuple[Any, ...]] | None]:
        """Open the database in a thread while the files are listed (and, for the cache, their
        identities worked out); returns the connection, the sources and the identities.

        Why: starting DuckDB takes about 40 ms with the GIL released, and listing 2,000 files is about
        25 ms of stat calls; side by side a warm query pays the longer, not the sum (20 ms of 0.3 s,
        measured). A listing error (no such path) wins over a database error.
        """
        if self._con is not None:
            sources = self._sources(window)
            return self._con, sources, None
        import threading

        opened: list[Any] = []

        def open_db() -> None:
            try:
                opened.append(self._connect())
            except BaseException as e:  # handed to the caller below
                opened.append(e)

        opener = threading.Thread(target=open_db, name="albstats-open-db", daemon=True)
        opener.start()
        try:
            sources = self._sources(window)
            identities = _identities(sources) if self.cache else None
        finally:
            opener.join()
        if isinstance(opened[0], BaseException):
            raise opened[0]
        return opened[0], sources, identities

    def _run(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> duckdb.DuckDBPyConnection:
        try:
            return con.execute(sql, params)
        except duckdb_engine().Error as e:
            raise UsageError(f"the query failed in DuckDB: {str(e).splitlines()[0]}") from None

    def _execute(self, sql: str, params: dict[str, Any], *, query: SavedQuery | None,
                 window: tuple[datetime | None, datetime | None]) -> pd.DataFrame:
        con, dsql, bound = self._prepare(sql, params, query, window)
        return self._run(con, dsql, bound).df()

    def _execute_rows(self, sql: str, params: dict[str, Any], *, query: SavedQuery | None,
                      window: tuple[datetime | None, datetime | None]) -> QueryRows:
        con, dsql, bound = self._prepare(sql, params, query, window)
        cur = self._run(con, dsql, bound)
        cols = [d[0] for d in cur.description or []]
        return QueryRows(cols, cur.fetchall())

    def parse_stats(self) -> ParseStats:
        """Per-file counts (lines, rows, malformed lines, damage) for the files of the last query."""
        from albstats.parse import FileStats, ParseStats

        if self._file_stats is None:
            self._file_stats = [FileStats(r[0], kind=r[1], lines=r[2], rows=r[3], bad_lines=r[4],
                                          bad_examples=[tuple(x) for x in json.loads(r[5] or "[]")],
                                          error=r[6], skipped=r[7]) for r in self._file_rows]
        return ParseStats(files=list(self._file_stats))

    def summary(self) -> tuple[str, list[str], list[str]]:
        """(one-line summary, first malformed lines as file:line, damaged files) without importing the parser."""
        if self._file_stats is not None:
            st = self.parse_stats()
            text, examples, errors = st.summary(), st.bad_examples(3), st.errors
        else:
            rows = self._file_rows
            read = [r for r in rows if not r[7]]
            text = (f"{len(read)} files, {sum(r[2] for r in rows)} lines, {sum(r[3] for r in rows)} rows, "
                    f"{sum(r[4] for r in rows)} malformed lines")
            if len(read) < len(rows):
                text += f", {len(rows) - len(read)} files skipped"
            errors = [f"{r[0]}: {r[6]}" for r in rows if r[6]]
            if errors:
                text += f", {len(errors)} damaged files"
            examples = [f"{r[0]}:{ln}: {why}" for r in rows if r[4] for ln, why in json.loads(r[5] or "[]")][:3]
        ing = self.last_ingest
        return f"{text} ({ing.parsed} files parsed, {ing.cached} from cache)", examples, errors
