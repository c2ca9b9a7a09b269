"""The one on-disk layout of parsed rows: a Parquet dataset partitioned Hive-style by ``day``.

``albstats parse --format parquet -o DIR``, the local cache (:mod:`albstats.cache`) and the Athena
Parquet table all use it::

    DIR/day=2026%2F11%2F16/<group>-<run>-<uuid>.parquet

``day`` is the Athena table's partition value ``'YYYY/MM/DD'`` (the ``/`` percent-encoded in the folder
name, as Hive, pyarrow and DuckDB encode and decode it). For a file in the S3 key layout it is the
delivery day (the ``yyyy/mm/dd`` folder the file sits in, like the Athena table's ``day``), so all rows
of one log file land in one partition; for other files it is the day of each row's ``time``. Either
way the rows of the window ``[since, until)`` are in the days ``since``'s day .. ``until``'s day + 1,
the rule :mod:`albstats.sources` uses for S3 listings.

Every Parquet file holds exactly the schema's columns (or the ``--fields`` chosen), zstd-compressed,
rows sorted by ``time``, written by ``pyarrow.parquet``. ``<group>`` names the folder of log files the
rows came from (the path above the date folders), so the cache can keep load balancers apart.

Parse workers write the files themselves (:meth:`DatasetSink.write`): encoding is a third of the
CPU of a parse, and there it runs on every core; the parent only learns which parts exist.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from albstats.logsource import DAY_RE

#: The Hive partition column.
PARTITION = "day"
#: Rows per Parquet row group: big enough for good compression, small enough that ``since``/``until``
#: skip row groups of a day by their ``time`` statistics.
ROW_GROUP_ROWS = 65536
#: Columns with mostly distinct values: a Parquet dictionary would only cost time before falling back.
#: ``client_ip`` and ``request_url`` are not among them: a week of a service has thousands of each, the
#: report groups and joins on them, and dictionary pages made its queries 12 % faster, the files 10 %
#: smaller and the writing 14 % cheaper (1M lines); where they are many, the writer falls back to plain
#: pages by itself.
HIGH_CARDINALITY = frozenset(
    {
        "time",
        "request_creation_time",
        "client_port",
        "trace_id",
        "conn_trace_id",
        "received_bytes",
        "sent_bytes",
    }
)
#: Columns that are nearly always one short value ('-' mostly): plain pages of them compress to almost nothing.
MOSTLY_CONSTANT = frozenset(
    {
        "elb",
        "domain_name",
        "redirect_url",
        "lambda_error_reason",
        "classification",
        "classification_reason",
        "transformed_host",
        "transformed_uri",
        "request_transform_status",
        "ip_address",
        "extra_fields",
    }
)
#: String columns with min/max statistics: only the time, which range filters prune on.
STRING_STATS = frozenset({"time"})


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """The one Parquet writer configuration: zstd level 1, dictionaries and statistics only where they pay."""
    names = schema.names
    return {
        "compression": "zstd",
        "compression_level": 1,
        "use_dictionary": [n for n in names if n not in HIGH_CARDINALITY | MOSTLY_CONSTANT],
        "write_statistics": [f.name for f in schema if f.name in STRING_STATS or not pa.types.is_string(f.type)],
    }


def day_dir(day: str) -> str:
    """The partition folder of ``day`` ('YYYY/MM/DD'): ``day=YYYY%2FMM%2FDD``."""
    return f"{PARTITION}={quote(day, safe='')}"


def delivery_day(name: str) -> str | None:
    """'YYYY/MM/DD' of the date folders a log file sits in (S3 key layout), else None."""
    m = DAY_RE.search(name.replace(os.sep, "/"))
    return f"{m[1]}/{m[2]}/{m[3]}" if m else None


def group_of(name: str) -> str:
    """A short id of the folder a log file belongs to: its folder without the date folders, so the files
    of one load balancer (one ``AWSLogs/.../region`` prefix) share it across days."""
    path = name.replace(os.sep, "/")
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    m = DAY_RE.search(folder + "/")
    if m:
        folder = folder[: m.start()]
    return f"{zlib.crc32(folder.encode()):08x}"


@dataclass
class Part:
    """One Parquet file written into a dataset: where, which day and group, how many rows, from which logs."""

    path: str  # relative to the dataset root, with '/' separators
    day: str
    group: str
    rows: int
    files: list[str] = field(default_factory=list)  # source names whose rows it holds


@dataclass
class DatasetSink:
    """Where parse workers write their rows: a dataset root and the columns written.

    ``keep`` (source name -> the (group, day) keys to write) limits what is written of a file whose other
    days are already in the cache; files not in it are written whole. Picklable: it travels to workers.
    """

    root: str
    schema: pa.Schema
    keep: dict[str, frozenset[tuple[str, str]]] | None = None
    prefix: str = "p"  # the writing run's name, so its parts can be told from others' (see albstats.cache)

    def write(self, batches: list[pa.RecordBatch], files: list[tuple[str, int]]) -> list[Part]:
        """Write the rows of consecutive log files (``files``: (name, row count) in the batches' order)
        as one sorted Parquet file per (group, day); return the parts written."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if not batches:
            return []
        table = pa.Table.from_batches(batches, schema=self.schema)
        pieces: dict[tuple[str, str], list[tuple[pa.Table, str]]] = {}
        off = 0
        for name, n in files:
            if n <= 0:
                continue
            t = table.slice(off, n)
            off += n
            group, fixed = group_of(name), delivery_day(name)
            if fixed is not None:
                days = [(fixed, t)]
            else:  # not in the S3 layout: by each row's own day
                d = pc.replace_substring(pc.utf8_slice_codeunits(t["time"], 0, 10), "-", "/")
                days = [(v, t.filter(pc.equal(d, v))) for v in pc.unique(d).to_pylist() if v is not None]
            allowed = self.keep.get(name) if self.keep is not None else None
            for day, sub in days:
                if allowed is None or (group, day) in allowed:
                    pieces.setdefault((group, day), []).append((sub, name))
        if off != table.num_rows:
            raise RuntimeError(f"parser rows ({table.num_rows}) and per-file row counts ({off}) disagree")
        parts = []
        opts = parquet_options(self.schema)
        for (group, day), got in pieces.items():
            t = pa.concat_tables([s for s, _ in got])
            if not is_sorted(t["time"]):
                t = t.sort_by("time")
            rel = f"{day_dir(day)}/{group}-{self.prefix}-{uuid.uuid4().hex}.parquet"
            path = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                pq.write_table(t, path, row_group_size=ROW_GROUP_ROWS, **opts)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
            parts.append(Part(rel, day, group, t.num_rows, sorted({n for _, n in got})))
        return parts


def is_sorted(column: pa.ChunkedArray) -> bool:
    """Whether ``column`` is already in ascending order without nulls, so that sorting by it would keep
    every row where it is (Arrow's sort is stable): true of nearly every log file, whose lines ALB writes
    in time order. The check costs about 2 % of the sort it saves (the ``take`` of every column)."""
    import pyarrow.compute as pc

    if column.null_count:
        return False
    c = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if len(c) < 2:
        return True
    return not pc.any(pc.less(c.slice(1), c.slice(0, len(c) - 1))).as_py()


def required_fields(fields: list[str] | None) -> list[str] | None:
    """``fields`` plus ``time`` (the sort key, and the day of files outside the S3 layout) if missing."""
    if fields is None or "time" in fields:
        return fields
    return [*fields, "time"]


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike[str], option: str = "-o") -> Iterator[str]:
    """Yield a temporary folder beside ``target``; on success it becomes ``target``, on any error (or a
    signal's exception) it is removed, so a dataset is never seen half-written.

    ``target`` may be absent, an empty folder, or an earlier dataset (only ``day=`` folders), which is
    replaced; anything else is refused before any work, as is a ``.parquet`` name (one file per day is
    the layout: the folder form is what to give) and a missing parent folder.
    """
    import shutil
    import tempfile

    from albstats.errors import UsageError

    path = os.path.abspath(os.fspath(target))
    name = os.path.basename(path.rstrip("/"))
    parent = os.path.dirname(path.rstrip("/")) or "/"
    if not name:
        raise UsageError(f"{option} {target}: give a folder for the dataset")
    if os.path.isdir(path):
        other = [e for e in os.listdir(path) if not e.startswith(f"{PARTITION}=")]
        if other:
            raise UsageError(
                f"{option} {target}: the folder holds other files ({other[0]}); give a new or empty "
                "folder (--format parquet writes a folder partitioned by day)"
            )
    elif os.path.exists(path):
        raise UsageError(
            f"{option} {target}: is a file; --format parquet writes a folder partitioned by day, "
            f"e.g. -o {os.path.splitext(os.fspath(target))[0] or 'out'}/"
        )
    elif name.endswith(".parquet"):
        raise UsageError(
            f"{option} {target}: --format parquet writes a folder partitioned by day (one Parquet "
            f"file per day), not one file; give a folder, e.g. -o {os.fspath(target)[:-8] or 'out'}/"
        )
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {target}: the folder {parent} does not exist")
    mine = f".{name}.{os.getpid()}."  # see render.write: made inside the try, removed by this name
    tmp = ""
    try:
        tmp = tempfile.mkdtemp(prefix=mine, suffix=".part", dir=parent)
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if os.path.isdir(path):
            old = tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=parent)
            os.rename(path, os.path.join(old, "d"))
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        remove_staged(parent, mine)
        raise


def remove_staged(folder: str, prefix: str) -> None:
    """Remove every ``<prefix>*.part`` file or folder in ``folder``: what a staged write left behind.

    By name, not by the path ``mkstemp``/``mkdtemp`` returned: a signal landing after the file is made
    but before that path is assigned leaves it unnamed. ``prefix`` holds the process id, so another
    process's staging is left alone. Used by :func:`staged_folder`, :func:`albstats.output.atomic_path`
    and :func:`albstats.render.write`."""
    import glob
    import shutil

    for leftover in glob.glob(os.path.join(glob.escape(folder), f"{glob.escape(prefix)}*.part")):
        if os.path.isdir(leftover) and not os.path.islink(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
