"""Sources in, Arrow record batches out: the library's way to read logs (:func:`iter_batches`).

It picks the engine (:mod:`albstats.parsing.native`), the log kind, which files to skip, and hands the
files to the C engine's pool (:mod:`albstats.parsing.pool`) or reads them line by line with the reference
parser (:func:`iter_file_rows`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from albstats.parsing.lines import LOOKAHEAD_LINES, check_format, detect_format, python_line, rows_to_batch
from albstats.parsing.native import resolve_engine
from albstats.parsing.pool import Opts, default_workers, iter_pool
from albstats.parsing.reading import iter_lines
from albstats.parsing.stats import FileStats, ParseStats
from albstats.schema import ACCESS, CONNECTION, LogSchema
from albstats.sources import Source, expand

if TYPE_CHECKING:  # pragma: no cover
    from albstats.dataset import DatasetSink


def iter_file_rows(
    src: Source, schema: LogSchema, fs: FileStats, *, strict: bool = False, explicit: bool = True
) -> Iterator[list[Any]]:
    """Rows of one file, line by line in Python (the reference engine). Rejects another format if named."""
    lines: Iterator[tuple[int, str]] = iter_lines(src, fs)
    for n, line in lines:
        if line.strip():
            ahead = (
                list(itertools.islice(lines, LOOKAHEAD_LINES)) if explicit and detect_format(line) == "unknown" else []
            )
            if not check_format(line, src.name, schema, fs, explicit, [x for _, x in ahead]):
                return
            lines = itertools.chain([(n, line)], ahead, lines)
            break
    for n, line in lines:
        row = python_line(n, line, schema, fs, strict, src.name)
        if row is not None:
            yield row


def _iter_python(
    todo: list[tuple[Source, FileStats]],
    schema: LogSchema,
    fields: list[str] | None,
    strict: bool,
    stats: ParseStats,
    batch_size: int,
    on_file: Callable[[FileStats], None] | None,
    explicit: set[str],
) -> Iterator[pa.RecordBatch]:
    rows: list[list[Any]] = []
    for src, fs in todo:
        stats.files.append(fs)
        if not fs.skipped:
            for row in iter_file_rows(src, schema, fs, strict=strict, explicit=src.name in explicit):
                rows.append(row)
                if len(rows) >= batch_size:
                    yield rows_to_batch(rows, schema, fields)
                    rows = []
        if on_file:
            on_file(fs)
    if rows:
        yield rows_to_batch(rows, schema, fields)


def iter_batches(
    paths: Iterable[str] | Iterable[Source],
    *,
    kind: str = "access",
    fields: list[str] | None = None,
    strict: bool = False,
    stats: ParseStats | None = None,
    batch_size: int = 65536,
    on_file: Callable[[FileStats], None] | None = None,
    explicit: set[str] | None = None,
    workers: int | None = None,
    engine: str | None = None,
    processes: bool | None = None,
    **expand_kw: Any,
) -> Generator[pa.RecordBatch, None, None]:
    """Stream Arrow record batches from files, folders, globs, ``-`` or ``s3://`` prefixes.

    ``kind`` is ``access``, ``connection`` or ``auto`` (the kind of the first file decides).
    ``stats`` (if given) is filled in as files are read; ``on_file`` is called after each file, in
    order, for progress bars. A file named directly (or listed in ``explicit``) in another format is
    an error; files of another kind found inside folders are skipped and noted in ``stats``.

    ``engine="c"`` parses blocks of about 4 MB of text with the compiled tokenizer (albstats/_albparse.c),
    in ``workers`` processes for local files (threads for S3 and stdin; the environment variable
    ``ALBSTATS_WORKERS_KIND=thread`` forces threads: with the C engine, which releases the GIL, they
    use about 1 CPU second less per million lines but reach about 300 MB peak RSS on ten million
    lines, against 190 MB for the parent of worker processes), default one per core. ``processes=None`` forks
    worker processes only when no other thread is running (forking a threaded process, a notebook
    kernel say, risks a deadlock); ``True`` always forks (the CLI), ``False`` never. It reads at most
    ``workers + 1`` groups of files ahead so memory stays bounded whatever the input size.
    ``engine="python"`` is the line-by-line reference engine. Both give identical rows and stats, in
    file and line order. ``engine=None`` (default) takes the environment variable ``ALBSTATS_PARSER``
    (``c`` or ``python``) if set, else ``fast``: ``c`` where the extension was built, else ``python`` (said
    once on stderr). ``batch_size`` bounds batches of the python engine only.
    """
    yield from iter_parsed(
        paths,
        kind=kind,
        fields=fields,
        strict=strict,
        stats=stats,
        batch_size=batch_size,
        on_file=on_file,
        explicit=explicit,
        workers=workers,
        engine=engine,
        processes=processes,
        encode=None,
        **expand_kw,
    )


def iter_parsed(
    paths: Iterable[str] | Iterable[Source],
    *,
    kind: str,
    fields: list[str] | None,
    strict: bool,
    stats: ParseStats | None,
    batch_size: int,
    on_file: Callable[[FileStats], None] | None,
    explicit: set[str] | None,
    workers: int | None,
    engine: str | None,
    processes: bool | None,
    encode: DatasetSink | None,
    **expand_kw: Any,
) -> Generator[Any, None, None]:
    """iter_batches, or with ``encode`` (a :class:`~albstats.dataset.DatasetSink`) the same rows written
    as Parquet parts of that dataset where they are parsed (in the worker processes): then it yields lists
    of the :class:`~albstats.dataset.Part` written, each before the ``on_file`` calls of its files."""
    engine = resolve_engine(engine)
    stats = stats if stats is not None else ParseStats()
    items = list(paths)
    names = [str(p) for p in items if not isinstance(p, Source)]
    explicit = set(explicit or ()) | set(names)
    sources = [p for p in items if isinstance(p, Source)]
    if names:
        sources = expand(names, **expand_kw) + sources
    schema: LogSchema | None = {"access": ACCESS, "connection": CONNECTION}.get(kind)
    if schema is None:
        schema = CONNECTION if sources and sources[0].is_connection_log else ACCESS
    if fields is not None:
        from albstats.schema import validate_fields

        validate_fields(fields, schema)
    todo: list[tuple[Source, FileStats]] = []
    for src in sources:
        fs = FileStats(src.name, kind=schema.kind)
        if src.is_connection_log != (schema is CONNECTION) and src.name not in explicit:
            fs.skipped = f"an ALB {'connection' if src.is_connection_log else 'access'} log"
        todo.append((src, fs))
    if engine == "python":
        if encode is not None:  # file by file: the sink needs each file's rows together
            for item in todo:
                got = list(_iter_python([item], schema, fields, strict, ParseStats(), batch_size, None, explicit))
                yield encode.write(got, [(item[1].name, item[1].rows)])
                stats.files.append(item[1])
                if on_file:
                    on_file(item[1])
            return
        yield from _iter_python(todo, schema, fields, strict, stats, batch_size, on_file, explicit)
    else:
        if processes is None:
            processes = threading.active_count() == 1
        yield from iter_pool(
            todo,
            Opts(schema, fields, strict, explicit),
            stats,
            on_file,
            default_workers() if workers is None else workers,
            processes,
            encode,
        )


def read_table(paths: Iterable[str], **kw: Any) -> pa.Table:
    """All rows as one Arrow table, in the Athena-equal representation (times as strings)."""
    kind = kw.get("kind", "access")
    schema = CONNECTION if kind == "connection" else ACCESS
    batches = list(iter_batches(paths, **kw))
    if batches:
        return pa.Table.from_batches(batches)
    return schema.arrow_schema(kw.get("fields")).empty_table()
