"""The public Python API (``albstats.read_logs``, ``iter_batches``, ``connect``), precisely typed.

Why a layer of its own: the functions underneath (:func:`albstats.parse.iter_batches`,
:func:`albstats.engines.connect`) take ``**kwargs`` that they pass on, which a type checker and an
editor cannot see through. Here every option is a named, typed keyword, so a notebook's typo is an
error where it is written, and ``albstats`` keeps no ``Any`` in its public signatures
(tests/test_api_types.py).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Literal, TypedDict, overload

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from albstats.errors import UsageError
from albstats.parse import ParseStats, read_table
from albstats.schema import TIMESTAMP_COLUMNS

if TYPE_CHECKING:  # pragma: no cover
    from albstats.engines.athena import AthenaEngine
    from albstats.engines.base import Engine
    from albstats.engines.local import LocalEngine
    from albstats.parse import FileStats

#: One path: a file, a folder, a glob, ``-`` (stdin) or an ``s3://bucket/prefix``.
PathLike = str | os.PathLike[str]
#: One path or several.
Paths = PathLike | Iterable[PathLike]
#: Which logs to read: ALB access logs, connection logs, or whichever kind the first file is.
LogKind = Literal["access", "connection", "auto"]
#: A bound of the S3 listing window: a datetime (naive = UTC), a date, an ISO-8601 string, ``now`` or ``7d``.
TimeBound = date | str | None


class S3Options(TypedDict, total=False):
    """How ``s3://`` paths are read (see :func:`albstats.s3.list_sources`)."""

    profile: str
    region: str
    endpoint_url: str
    max_workers: int
    prefetch: int
    quiet: bool


#: Low-cardinality string columns that read_logs returns as pandas categoricals (a few distinct
#: values over millions of rows: a tenth of the memory, and fast groupby).
CATEGORICAL_COLUMNS = (
    "type",
    "elb",
    "request_verb",
    "request_proto",
    "ssl_cipher",
    "ssl_protocol",
    "target_group_arn",
    "actions_executed",
    "lambda_error_reason",
    "classification",
    "classification_reason",
    "tls_protocol",
    "tls_cipher",
    "tls_verify_status",
)


def to_analyst_table(table: pa.Table) -> pa.Table:
    """Turn Athena's string timestamps into UTC timestamps: the one documented difference from Athena's row."""
    for name in TIMESTAMP_COLUMNS:
        if name in table.column_names:
            col = table[name]
            # '-' and other non-timestamps become NULL rather than failing the whole read
            valid = pc.match_substring_regex(col, r"^\d{4}-\d\d-\d\dT")
            clean = pc.if_else(valid, col, pa.scalar(None, pa.string()))
            ts = pc.strptime(
                pc.utf8_slice_codeunits(clean, 0, 19), format="%Y-%m-%dT%H:%M:%S", unit="us", error_is_null=True
            )
            # strptime's %S takes no fraction: add the microseconds (".123456") separately
            frac = pc.struct_field(pc.extract_regex(clean, r"^.{19}\.(?P<f>\d{1,6})"), [0])
            micros = pc.fill_null(pc.utf8_rpad(frac, width=6, padding="0").cast(pa.int64()), 0)
            ts = pc.add(ts, micros.cast(pa.duration("us"))).cast(pa.timestamp("us", tz="UTC"))
            table = table.set_column(table.column_names.index(name), name, ts)
    return table


def _types_mapper(t: pa.DataType) -> pd.ArrowDtype | None:
    return None if pa.types.is_dictionary(t) else pd.ArrowDtype(t)


def _check_kind(kind: str) -> None:
    """A wrong ``kind`` is an error here: the parser would read it as ``auto``, silently."""
    if kind not in typing.get_args(LogKind):
        raise UsageError(f"kind={kind!r}: expected one of {', '.join(typing.get_args(LogKind))}")


def _path_list(paths: Paths) -> list[str]:
    """One path or several, as a list of strings (a single ``Path`` is one path, not its characters)."""
    if isinstance(paths, str | os.PathLike):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def read_logs(
    paths: Paths,
    *,
    fields: Sequence[str] | None = None,
    kind: LogKind = "access",
    strict: bool = False,
    stats: ParseStats | None = None,
    categorical: bool = True,
    workers: int | None = None,
    since: TimeBound = None,
    until: TimeBound = None,
    s3_options: S3Options | None = None,
) -> pd.DataFrame:
    """Parse log files, folders, globs or ``s3://`` prefixes into a DataFrame.

    Columns follow the Athena table (see :mod:`albstats.schema`) with Arrow-backed dtypes;
    ``time`` and ``request_creation_time`` are UTC timestamps. Malformed lines are counted in
    ``stats`` (a :class:`~albstats.parse.ParseStats`) rather than dropped silently; ``strict=True``
    makes the first one an error. ``workers`` parse in parallel (default one per core, at most 4);
    ``since``/``until`` limit which day folders of an ``s3://`` prefix are listed, ``s3_options``
    say how to reach S3. See :func:`iter_batches` for the rest.

    The low-cardinality strings in :data:`CATEGORICAL_COLUMNS` are pandas categoricals (their
    values are the same strings; mind that ``groupby`` on a categorical lists unobserved
    categories unless ``observed=True``). ``categorical=False`` keeps every string column
    ``string[pyarrow]``, closest to Athena's row.
    """
    _check_kind(kind)
    table = to_analyst_table(
        read_table(
            _path_list(paths),
            fields=None if fields is None else list(fields),
            kind=kind,
            strict=strict,
            stats=stats,
            workers=workers,
            since=since,
            until=until,
            s3_options=s3_options,
        )
    )
    if categorical:
        for name in CATEGORICAL_COLUMNS:
            if name in table.column_names:
                i = table.column_names.index(name)
                table = table.set_column(i, name, pc.dictionary_encode(table[name]))
    return table.to_pandas(types_mapper=_types_mapper)


def iter_batches(
    paths: Paths,
    *,
    fields: Sequence[str] | None = None,
    kind: LogKind = "access",
    strict: bool = False,
    stats: ParseStats | None = None,
    on_file: Callable[[FileStats], None] | None = None,
    workers: int | None = None,
    since: TimeBound = None,
    until: TimeBound = None,
    s3_options: S3Options | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream Arrow record batches of parsed rows, in file and line order, in bounded memory.

    Values are Athena's (times as ISO strings, see :func:`to_analyst_table`). ``stats`` is filled in
    as files are read and ``on_file`` called after each file (progress bars). ``kind="auto"`` reads
    the kind of the first file. The other options are those of :func:`read_logs`; the parser is
    :func:`albstats.parse.iter_batches`.
    """
    from albstats.parse import iter_batches as _iter

    _check_kind(kind)
    return _iter(
        _path_list(paths),
        kind=kind,
        fields=None if fields is None else list(fields),
        strict=strict,
        stats=stats,
        on_file=on_file,
        workers=workers,
        since=since,
        until=until,
        s3_options=s3_options,
    )


#: Options only the local engine takes, and only the Athena engine takes (for a clear error on a mix-up).
_LOCAL_ONLY = ("db", "s3_options", "memory_limit", "threads")
_ATHENA_ONLY = (
    "database",
    "table",
    "workgroup",
    "output_location",
    "region",
    "profile",
    "endpoint_url",
    "timeout",
    "scan_all",
)


@overload
def connect(
    paths: Paths | None = None,
    *,
    engine: Literal["local"] = "local",
    db: PathLike | None = None,
    cache: bool = True,
    quiet: bool | None = None,
    s3_options: S3Options | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> LocalEngine: ...


@overload
def connect(
    paths: None = None,
    *,
    engine: Literal["athena"],
    quiet: bool | None = None,
    database: str | None = None,
    table: str | None = None,
    workgroup: str | None = None,
    output_location: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    timeout: float | None = None,
    scan_all: bool | None = None,
) -> AthenaEngine: ...


def connect(
    paths: Paths | None = None,
    *,
    engine: Literal["local", "athena"] = "local",
    db: PathLike | None = None,
    cache: bool = True,
    quiet: bool | None = None,
    s3_options: S3Options | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    database: str | None = None,
    table: str | None = None,
    workgroup: str | None = None,
    output_location: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    timeout: float | None = None,
    scan_all: bool | None = None,
) -> Engine:
    """Open an engine that runs the saved queries in ``sql/``; use it as a context manager (or ``close()``).

    ``engine="local"`` (DuckDB): ``paths`` are log files, folders, globs or ``s3://`` prefixes; ``db`` is the
    cache folder (default under ``XDG_CACHE_HOME``), ``cache=False`` keeps nothing on disk, ``quiet`` (default
    True) hides the progress bar, ``memory_limit`` (``"160MB"``) and ``threads`` bound DuckDB.

    ``engine="athena"``: no ``paths`` (the table is read); the options, and the ``ALBSTATS_ATHENA_*``
    environment variables they override, are described in :mod:`albstats.engines.athena`. ``quiet``
    (default False) hides the query's progress line.

    An option of the other engine is a :class:`~albstats.errors.UsageError` naming it.
    """
    from albstats.engines import connect as _connect

    given = {
        "db": db, "s3_options": s3_options, "memory_limit": memory_limit, "threads": threads,
        "database": database, "table": table, "workgroup": workgroup, "output_location": output_location,
        "region": region, "profile": profile, "endpoint_url": endpoint_url, "timeout": timeout,
        "scan_all": scan_all, "quiet": quiet,
    }  # fmt: skip
    options = {k: v for k, v in given.items() if v is not None}
    foreign = _ATHENA_ONLY if engine == "local" else _LOCAL_ONLY if engine == "athena" else ()
    wrong = [k for k in foreign if k in options] + (["cache"] if engine == "athena" and not cache else [])
    if wrong:
        raise UsageError(f"connect(engine={engine!r}): {', '.join(wrong)} is not an option of that engine")
    if engine == "local":
        options["cache"] = cache
    return _connect(None if paths is None else _path_list(paths), engine=engine, **options)
