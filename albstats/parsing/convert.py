"""What ``albstats parse`` does: every source into one output (JSON Lines, CSV, one Parquet file or the
Parquet dataset folder), with a progress bar; the command line only parses its arguments and calls
:func:`parse_files`."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pyarrow as pa

from albstats.parsing.pool import tune_malloc
from albstats.parsing.read import iter_batches, iter_parsed
from albstats.parsing.stats import FileStats, ParseStats
from albstats.schema import ACCESS, CONNECTION
from albstats.sources import expand


def _lean_memory_pool() -> None:
    """For the command line (not done for library callers): Arrow's jemalloc pool keeps the peak RSS of a
    long parse about 60 MB lower than the default mimalloc one (measured with bench/bench_parse.py), and
    glibc keeps freed buffers for reuse."""
    tune_malloc()
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, pa.ArrowNotImplementedError):  # pragma: no cover - builds without jemalloc
        pass


def _dataset_target(output: str | None) -> bool:
    """Whether ``--format parquet -o output`` means the dataset folder: yes unless the target is stdout, a
    ``.parquet`` name, or an existing file, pipe or device (then one Parquet file, written by pyarrow's
    ParquetWriter in this process: unsorted, unpartitioned, for a pipe or a quick look)."""
    if output in (None, "-"):
        return False
    assert output is not None
    if os.path.isdir(output) or output.endswith(("/", os.sep)):
        return True
    return not (os.path.exists(output) or output.endswith(".parquet"))


def parse_files(
    paths: list[str],
    *,
    fmt: str = "jsonl",
    output: str | None = None,
    fields: list[str] | None = None,
    kind: str = "auto",
    strict: bool = False,
    quiet: bool = False,
    s3_options: dict[str, Any] | None = None,
) -> ParseStats:
    """What `albstats parse` does: stream every file into one output, returning the statistics.
    ``s3_options`` (``profile``, ``region``) are for ``s3://`` paths."""
    from albstats import progress
    from albstats.output import write_batches

    stats = ParseStats()
    _lean_memory_pool()
    sources = expand(paths, s3_options=s3_options)
    if kind == "auto":
        kind = "connection" if sources and all(s.is_connection_log for s in sources) else "access"
    schema = CONNECTION if kind == "connection" else ACCESS
    if fields:
        from albstats.schema import validate_fields

        validate_fields(fields, schema)
    names = {s.name for s in sources if s.name in {str(p) for p in paths}}
    lines = 0

    def on_file(fs: FileStats) -> None:  # a running total: stats.lines sums over all files read so far
        nonlocal lines
        lines += fs.lines
        tick.advance(1, lines=lines)

    with progress.bar("parsing", total=len(sources), quiet=quiet) as tick:
        if fmt == "parquet" and _dataset_target(output):  # the workers write the dataset (albstats.dataset)
            import pyarrow.parquet  # noqa: F401  (once, before the workers fork, not once in each)

            from albstats.dataset import DatasetSink, required_fields, staged_folder

            fields = required_fields(fields)
            assert output is not None  # _dataset_target said so
            with staged_folder(output) as tmp:
                sink = DatasetSink(tmp, schema.arrow_schema(fields))
                parts = iter_parsed(
                    sources,
                    kind=kind,
                    fields=fields,
                    strict=strict,
                    stats=stats,
                    batch_size=65536,
                    on_file=on_file,
                    explicit=names,
                    workers=None,
                    engine=None,
                    processes=True,
                    encode=sink,
                )
                with contextlib.closing(parts):  # workers stopped before the staged folder is removed
                    for _ in parts:
                        pass
        else:
            batches = iter_batches(
                sources,
                kind=kind,
                fields=fields,
                strict=strict,
                stats=stats,
                processes=True,
                on_file=on_file,
                explicit=names,
            )
            with contextlib.closing(batches):  # on an error, the workers stop now, not when the process exits
                write_batches(batches, schema.arrow_schema(fields), fmt, output)
    return stats
