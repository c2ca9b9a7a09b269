"""Writing record batches as JSON Lines, CSV or Parquet, atomically.

A file output is written to a temporary name beside the target and renamed only when complete, so
an error or Ctrl-C never leaves a half-written file behind.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from albstats.errors import UsageError
from albstats.parquet_join import Fragment

FORMATS = ("jsonl", "csv", "parquet")


def check_target(target: str | os.PathLike[str], option: str, *, folder: bool = False) -> Path:
    """Refuse an output path that cannot be written before any work is done: empty, a folder where a
    file is wanted (or a file where a folder is), under a file, or in a folder that does not exist (a
    mistyped path must not become a tree of new folders). Returns it as a Path."""
    if not os.fspath(target).strip():
        raise UsageError(f"{option}: the name is empty")
    path = Path(target)
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is a file; give a folder")
    if not folder and path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {path}: {parent} is a file, not a folder")
            break
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: folder {path.parent} does not exist (create it first)")
    return path


@contextmanager
def atomic_path(target: str | os.PathLike[str], option: str = "-o") -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``target``, on failure it is removed.

    A target that is empty or an existing folder is refused first (``option`` names the argument), so the
    user hears that before any work, not as a failed rename at the end. A target that is not a regular
    file (``/dev/null``, ``/dev/stdout``, a FIFO or ``>(gzip > x)``) gets the finished temporary file
    copied into it: renaming over it would replace the device or link with a file. A symlink to a file
    keeps its link: the file it points at is replaced, with its permissions.
    """
    target = check_target(target, option)
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        yield from _via_temp_copy(target)
        return
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if st is not None:
            mode = stat.S_IMODE(st.st_mode)
        else:  # mkstemp makes the file 0600; give it the mode an ordinary new file would have
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as e:  # an error, Ctrl-C, SIGTERM or SIGHUP (albstats.shutdown): the target as it was
        Path(tmp).unlink(missing_ok=True)
        if _disk_full(e):
            raise _named(e, target, existed=st is not None) from None
        raise


def _via_temp_copy(target: Path) -> Iterator[Path]:
    """For a device or pipe: yield a temporary file, then copy it into ``target`` (opened, never renamed over
    or deleted). Writers such as pyarrow seek, or delete their output on failure; neither is safe on
    ``/dev/stdout``."""
    fd, tmp = tempfile.mkstemp(prefix="albstats-", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except OSError as e:
        if _disk_full(e):  # the temporary file (TMPDIR) or the device itself (/dev/full) is full
            raise _named(e, target, existed=False) from None
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


#: "The disk is full", in its forms: no space, a quota, a file size limit (RLIMIT_FSIZE, a FAT volume).
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _disk_full(e: BaseException) -> bool:
    """An error writing the output because there is no room for it. Python's and pyarrow's write errors carry
    the errno but no file name, so the message would not say which file."""
    return isinstance(e, OSError) and e.errno in _FULL and e.filename is None


def _named(e: OSError, target: Path, *, existed: bool) -> OSError:
    """``e`` naming the output, in the OS's words, and saying what was left (the CLI prints it on one line)."""
    left = f"the previous {target.name} is unchanged" if existed else "nothing was written"
    return OSError(e.errno, f"{os.strerror(e.errno or 0)} ({left})", str(target))


def _json_default(v: Any) -> Any:
    return str(v)


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def _write_jsonl(batches: Iterable[pa.RecordBatch], fh: IO[str]) -> None:
    for b in batches:
        names = b.schema.names
        cols = [c.to_pylist() for c in b.columns]
        for row in zip(*cols):
            fh.write(json.dumps({k: _clean(v) for k, v in zip(names, row)}, default=_json_default,
                                ensure_ascii=False))
            fh.write("\n")


#: Columns with mostly distinct values: a Parquet dictionary would only cost time before falling back.
HIGH_CARDINALITY = frozenset({"time", "request_creation_time", "client_ip", "client_port", "request_url", "trace_id",
                              "conn_trace_id", "received_bytes", "sent_bytes"})
#: Columns that are nearly always one short value ('-' mostly): plain pages of them compress to almost
#: nothing, and skip a hash lookup per value (15% less encoding work, files 0.3% bigger; callgrind).
MOSTLY_CONSTANT = frozenset({"elb", "domain_name", "redirect_url", "lambda_error_reason", "classification",
                             "classification_reason", "transformed_host", "transformed_uri",
                             "request_transform_status", "ip_address", "extra_fields"})
#: String columns with min/max statistics: only the time, which range filters prune on. Statistics on the
#: other strings cost about a tenth of the encoding (a compare per value) and help no saved query.
STRING_STATS = frozenset({"time"})
#: Rows per Parquet row group: big enough for good compression and few groups, small enough for flat memory.
ROW_GROUP_ROWS = 32768


def _row_groups(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.Table]:
    """Regroup batches of any size (the parser yields many zero-copy slices) into row-group-sized tables."""
    buf: list[pa.RecordBatch] = []
    n = 0
    for b in batches:
        buf.append(b)
        n += b.num_rows
        if n >= ROW_GROUP_ROWS:
            yield pa.Table.from_batches(buf, schema=schema)
            buf, n = [], 0
    if buf:
        yield pa.Table.from_batches(buf, schema=schema)


def write_batches(batches: Iterable[pa.RecordBatch], schema: pa.Schema, fmt: str,
                  out: str | None) -> None:
    """Write batches in ``fmt`` to ``out`` (a path) or stdout when ``out`` is None or ``-``."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    to_stdout = out in (None, "-")
    if fmt == "parquet" and to_stdout:
        raise UsageError("--format parquet needs -o FILE")
    if to_stdout:
        if fmt == "jsonl":
            _write_jsonl(batches, sys.stdout)
        else:
            import pyarrow.csv as pcsv

            with pcsv.CSVWriter(sys.stdout.buffer, schema) as w:
                for b in batches:
                    w.write_batch(b)
        sys.stdout.flush()
        return
    assert out is not None
    if fmt == "parquet":  # the one Parquet path: fragments of ROW_GROUP_ROWS, joined
        write_parquet_parts(parquet_fragments(batches, schema), schema, out)
        return
    with atomic_path(out) as tmp:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                _write_jsonl(batches, fh)
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            with pcsv.CSVWriter(str(tmp), schema) as w:
                for b in batches:
                    w.write_batch(b)


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """The one Parquet writer configuration: zstd level 1, dictionaries and statistics only where they pay
    (statistics: numbers and the time).
    No page index: it would hold absolute offsets outside the footer, and fragments could not be joined."""
    names = schema.names
    return {"compression": "zstd", "compression_level": 1,
            "use_dictionary": [n for n in names if n not in HIGH_CARDINALITY | MOSTLY_CONSTANT],
            "write_statistics": [f.name for f in schema if f.name in STRING_STATS or not pa.types.is_string(f.type)],
            "write_page_index": False}


def parquet_fragment(batches: list[pa.RecordBatch], schema: pa.Schema, path: str | None = None) -> Fragment:
    """``batches`` as a complete Parquet file of one row group, written to ``path`` or kept in memory.
    Parse workers call this so that encoding runs on every core; :func:`write_parquet_parts` joins them."""
    import pyarrow.parquet as pq

    table = pa.Table.from_batches(batches, schema=schema)
    sink: Any = path if path is not None else pa.BufferOutputStream()
    with pq.ParquetWriter(sink, schema, **parquet_options(schema)) as w:
        w.write_table(table, row_group_size=max(1, table.num_rows))
    if path is not None:
        return Fragment(path=path)
    return Fragment(data=sink.getvalue().to_pybytes())


def parquet_fragments(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[Fragment]:
    """Batches made in this process, as in-memory fragments of about ROW_GROUP_ROWS rows."""
    for t in _row_groups(batches, schema):
        yield parquet_fragment(t.to_batches(), schema)


def write_parquet_parts(parts: Iterable[Fragment], schema: pa.Schema, out: str) -> None:
    """Join Parquet fragments (each a complete file of the same schema) into ``out``, atomically."""
    import pyarrow.parquet as pq

    from albstats.parquet_join import ParquetJoiner

    with atomic_path(out) as tmp:
        try:
            with open(tmp, "wb") as fh:
                joiner = ParquetJoiner(fh)
                for frag in parts:
                    joiner.append(frag)
                joiner.close()
        finally:  # on an error, the producer removes the fragments nobody will join
            close = getattr(parts, "close", None)
            if close is not None:
                close()
        if joiner.empty:  # no rows at all: a valid file with the schema
            with pq.ParquetWriter(str(tmp), schema, **parquet_options(schema)):
                pass
