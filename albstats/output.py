"""Writing record batches as JSON Lines, CSV or Parquet, atomically.

A file output is written to a temporary name beside the target and renamed only when complete, so
an error or Ctrl-C never leaves a half-written file behind.
"""

from __future__ import annotations

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
from typing import IO, Any, TypeGuard

import pyarrow as pa

from albstats.dataset import remove_staged
from albstats.errors import DISK_FULL_ERRNOS, UsageError

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
    # made inside the try and removed by this name: a signal landing between mkstemp's return and the
    # try would otherwise leave the .part behind (as dataset.staged_folder and render.write do)
    mine = f".{target.name}.{os.getpid()}."
    try:
        fd, tmp = tempfile.mkstemp(prefix=mine, suffix=".part", dir=target.parent)
        os.close(fd)
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
        remove_staged(str(target.parent), mine)
        if _disk_full(e):
            raise _named(e, target, existed=st is not None) from None
        raise


def _via_temp_copy(target: Path) -> Iterator[Path]:
    """For a device or pipe: yield a temporary file, then copy it into ``target`` (opened, never renamed over
    or deleted). Writers such as pyarrow seek, or delete their output on failure; neither is safe on
    ``/dev/stdout``."""
    mine = f"albstats-{os.getpid()}-"
    try:
        fd, tmp = tempfile.mkstemp(prefix=mine, suffix=".part")  # inside the try: see atomic_path
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except OSError as e:
        if _disk_full(e):  # the temporary file (TMPDIR) or the device itself (/dev/full) is full
            raise _named(e, target, existed=False) from None
        raise
    finally:
        remove_staged(tempfile.gettempdir(), mine)


def _disk_full(e: BaseException) -> TypeGuard[OSError]:
    """An error writing the output because there is no room for it. Python's and pyarrow's write errors carry
    the errno but no file name, so the message would not say which file."""
    return isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS and e.filename is None


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
            fh.write(json.dumps({k: _clean(v) for k, v in zip(names, row)}, default=_json_default, ensure_ascii=False))
            fh.write("\n")


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


def write_batches(batches: Iterable[pa.RecordBatch], schema: pa.Schema, fmt: str, out: str | None) -> None:
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
    if fmt == "parquet":  # one file, for a pipe or a .parquet name (albstats.dataset writes folders)
        import pyarrow.parquet as pq

        from albstats.dataset import parquet_options

        with atomic_path(out) as tmp, pq.ParquetWriter(str(tmp), schema, **parquet_options(schema)) as w:
            for t in _row_groups(batches, schema):
                w.write_table(t)
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
