"""The local cache: parsed rows in the dataset layout of :mod:`albstats.dataset`, plus a manifest.

Layout of the cache folder (``--db DIR``; default :func:`default_dir`)::

    manifest.json   the log files in the cache and the Parquet parts holding their rows
    data/day=YYYY%2FMM%2FDD/<group>-<run>-<uuid>.parquet
    writer.lock     held (flock, exclusive) by the one process adding, compacting or pruning
    readers.lock    held (flock, shared) by every process reading parts
    tmp/            DuckDB's spill folders, one per process

The manifest records for each log file its identity (absolute path, size, mtime, or the ETag of an
``s3://`` object), its parse statistics (lines, rows, malformed lines and the first of them, damage,
why it was skipped) and the parts holding its rows; for each part its day, group, rows and the log
files it holds. It is replaced atomically (write, fsync, rename), so a reader sees the state before or
after a commit, never between.

Why this is safe with two processes and with SIGKILL:

- Writers take ``writer.lock``: a second writer waits, then sees what the first committed and parses
  only what is still missing, so nothing is parsed twice and no row is added twice.
- Readers never take ``writer.lock``. They hold ``readers.lock`` shared while they may read parts. A
  writer deletes a part that a commit retired (compacted, pruned, replaced) only while it can take
  ``readers.lock`` exclusively without waiting; otherwise the file stays listed as retired and a later
  writer deletes it.
- Parts are written before the manifest names them. A file under ``data/`` that no manifest ever named
  is debris of an interrupted fill: the next writer (holding ``writer.lock``, so no other fill runs)
  deletes it, and a fill that fails deletes its own at once.

A log file whose identity changed has its old rows removed by dropping every part holding them (one
day of one group); the other log files that had rows there are marked ``missing`` those days and are
parsed again, for those days only, when next asked for.

The module is about 600 lines, over the project's 500, on purpose: it is one class whose fill,
compaction, prune and clear share the locking and commit rules above; split, each half would have
to re-state them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albstats.errors import DISK_FULL_ERRNOS, AlbstatsError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from albstats.dataset import Part
    from albstats.parse import FileStats
    from albstats.sources import Source

#: Bump when the parser's output or the manifest changes: an older cache is then started again.
FORMAT = "albstats-dataset-cache-1"
MANIFEST = "manifest.json"
DATA = "data"
TMP = "tmp"
#: A (group, day) with more parts than this has its small parts merged after a fill.
COMPACT_PARTS = 8
#: Parts below this many rows count as small: what runs every few minutes leave (a few five-minute
#: files each). A part a fill wrote from a whole fragment of files (30-40k lines) is not small:
#: merging those rewrote every row of a big fill (18 of 84 CPU s of a ten-million-line report) to
#: halve the number of files, and made the fill cost grow faster than its input.
SMALL_PART_ROWS = 16384
#: Small parts are merged in batches of about this many rows (under twice it): a batch is in memory
#: while it is sorted, about 30 MB per 100,000 rows (and the allocator keeps some), so this bounds a
#: fill's peak memory.
MERGE_ROWS = 65536
#: Seconds of parsing between two commits of a long fill: a kill loses at most this much work.
COMMIT_SECONDS = 5.0

Identity = tuple[str, int | None, int | None, str | None]  # key, size, mtime_ns, etag


def default_dir() -> Path:
    """Where the cache lives unless ``--db`` says otherwise: ``$ALBSTATS_CACHE_DIR`` (or the older
    ``$ALBSTATS_CACHE_DB``), else ``$XDG_CACHE_HOME/albstats/dataset``, else ``~/.cache/albstats/dataset``."""
    env = os.environ.get("ALBSTATS_CACHE_DIR") or os.environ.get("ALBSTATS_CACHE_DB")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "albstats" / "dataset"


def _empty() -> dict[str, Any]:
    from albstats import __version__

    return {"format": FORMAT, "version": __version__, "files": {}, "parts": {}, "retired": []}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead(folder: str | os.PathLike[str], prefix: str = "") -> None:
    """Remove ``<prefix><pid>-*`` entries of ``folder`` whose process no longer runs (left by a kill)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            p = os.path.join(folder, name)
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(p)


def _disk_full(e: OSError) -> bool:
    """A full disk or a file-size limit; pyarrow's writer errors carry the errno only in their text."""
    return e.errno in DISK_FULL_ERRNOS or any(os.strerror(n) in str(e) for n in DISK_FULL_ERRNOS)


@dataclass
class FillStats:
    """What a fill did: for progress messages, summaries and tests."""

    parsed: int = 0  # log files parsed
    cached: int = 0  # log files already there
    rows: int = 0  # rows added
    parts: int = 0  # Parquet parts written (before compaction)


@dataclass
class Info:
    """What ``albstats cache info`` prints."""

    root: str
    files: int = 0
    rows: int = 0
    parts: int = 0
    days: int = 0
    first_day: str | None = None
    last_day: str | None = None
    bytes: int = 0  # Parquet parts named by the manifest
    source_bytes: int = 0  # the log files they came from
    debris: int = 0  # files under data/ the manifest does not name (retired or interrupted)
    lines: int = 0
    bad_lines: int = 0
    damaged: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Cache:
    """One cache folder. Methods that change it take ``writer.lock`` themselves."""

    def __init__(self, root: str | os.PathLike[str], *, locking: bool = True) -> None:
        self.root = Path(root)
        self.data = self.root / DATA
        self.locking = locking  # False: a private temporary dataset (``--no-cache``)
        self.run = f"{os.getpid()}x{uuid.uuid4().hex[:8]}"  # names this process's new parts
        self._readers_fd: int | None = None

    # files and locks ---------------------------------------------------------------------
    def _ensure(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(
                f"--db {self.root}: is a file; the cache is a folder (delete the file or choose another --db)"
            )
        try:
            self.data.mkdir(parents=True, exist_ok=True)
            (self.root / TMP).mkdir(exist_ok=True)
        except OSError as e:
            raise UsageError(f"--db {self.root}: cannot make its folder {self.root.parent} ({e.strerror})") from None

    def load(self) -> dict[str, Any]:
        """The committed manifest (an empty one if there is none, or one of another format)."""
        try:
            with open(self.root / MANIFEST, encoding="utf-8") as fh:
                m = json.load(fh)
        except FileNotFoundError:
            return _empty()
        except (OSError, ValueError) as e:
            raise UsageError(
                f"--db {self.root}: the cache manifest is unreadable ({e}); run `albstats cache "
                "clear --db ...` or choose another --db"
            ) from None
        from albstats import __version__

        if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("version") != __version__:
            fresh = _empty()  # another albstats wrote it: start again; its parts become debris
            return fresh
        return m

    def _commit(self, m: dict[str, Any]) -> None:
        tmp = self.root / f"{MANIFEST}.{self.run}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(m, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.root / MANIFEST)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def writing(self, *, quiet: bool = True) -> Iterator[None]:
        """Hold ``writer.lock`` (waiting, with a message, while another process holds it)."""
        self._ensure()
        if not self.locking:
            yield
            return
        fd = os.open(self.root / "writer.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not quiet:
                    print(f"albstats: waiting for another albstats adding to the cache {self.root}", file=sys.stderr)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def hold_readers(self) -> None:
        """Take ``readers.lock`` shared (until :meth:`close`): parts named by the manifest read from now on
        stay on disk while this process may read them."""
        if self._readers_fd is not None or not self.locking:
            return
        self._ensure()
        fd = os.open(self.root / "readers.lock", os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._readers_fd = fd

    def close(self) -> None:
        if self._readers_fd is not None:
            os.close(self._readers_fd)
            self._readers_fd = None

    @contextlib.contextmanager
    def _no_readers(self) -> Iterator[bool]:
        """Yield True while no process holds ``readers.lock`` (taken exclusively, without waiting)."""
        if not self.locking:
            yield True
            return
        fd = os.open(self.root / "readers.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    # filling ------------------------------------------------------------------------------
    def fill(
        self,
        sources: list[Source],
        identities: list[Identity],
        *,
        explicit: set[str] | None = None,
        fields: list[str] | None = None,
        quiet: bool = True,
    ) -> FillStats:
        """Parse the ``sources`` the cache lacks (new, changed, or missing days) and commit them.

        Call under :meth:`writing`. Commits every :data:`COMMIT_SECONDS` and at the end; on any error
        or signal the parts of this run that no commit names are deleted before the error goes on.
        """
        m = self.load()
        files, parts = m["files"], m["parts"]
        # 1. changed files: drop every part holding their old rows; other files there miss those days
        dirty: set[tuple[str, str]] = set()
        for key, size, mtime, etag in identities:
            e = files.get(key)
            if e is not None and (e["size"], e["mtime_ns"], e["etag"]) != (size, mtime, etag):
                dirty.update((parts[r]["group"], parts[r]["day"]) for r in e["parts"] if r in parts)
                del files[key]
        if dirty:
            for rel, p in list(parts.items()):
                if (p["group"], p["day"]) in dirty:
                    del parts[rel]
                    m["retired"].append(rel)
                    for fk in p["files"]:
                        e = files.get(fk)
                        if e is not None:
                            e["parts"] = [r for r in e["parts"] if r != rel]
                            if [p["group"], p["day"]] not in e["missing"]:
                                e["missing"].append([p["group"], p["day"]])
        # 2. what to parse: new and changed files whole, incomplete ones for their missing days
        todo: list[tuple[Source, str, Identity]] = []
        keep: dict[str, frozenset[tuple[str, str]]] = {}
        seen: set[str] = set()
        stats = FillStats()
        for src, ident in zip(sources, identities, strict=True):
            key = ident[0]
            if key in seen:
                continue
            seen.add(key)
            if src.name == "<stdin>" and self.locking:
                raise UsageError("reading stdin (-) needs --no-cache")
            e = files.get(key)
            if e is not None and not e["missing"]:
                stats.cached += 1
                continue
            if e is not None:
                keep[src.name] = frozenset((g, d) for g, d in e["missing"])
            todo.append((src, key, ident))
        if dirty:
            self._commit(m)
        if not todo:
            self._sweep(m)
            return stats
        try:
            self._parse(m, todo, keep, explicit or set(), fields, quiet, stats)
            if self.locking:  # a temporary dataset (--no-cache) is read once: merging its parts only costs
                self._compact(m)
        except OSError as e:
            if not _disk_full(e):
                raise
            # one line naming the cache; what was committed stays usable (the parts of this run are gone)
            raise AlbstatsError(f"the cache {self.root} could not be written: {e}") from None
        self._sweep(m)
        return stats

    def _parse(
        self,
        m: dict[str, Any],
        todo: list[tuple[Source, str, Identity]],
        keep: dict[str, frozenset[tuple[str, str]]],
        explicit: set[str],
        fields: list[str] | None,
        quiet: bool,
        stats: FillStats,
    ) -> None:
        import pyarrow.parquet  # noqa: F401  (once, before the workers fork, not once in each)

        from albstats import progress
        from albstats.dataset import DatasetSink, required_fields
        from albstats.parse import ParseStats, _iter
        from albstats.schema import ACCESS

        fields = required_fields(fields)
        sink = DatasetSink(str(self.data), ACCESS.arrow_schema(fields), keep or None, prefix=self.run)
        by_name = {src.name: (key, ident) for src, key, ident in todo}
        received: list[Part] = []  # parts written, not yet committed
        finished: list[FileStats] = []  # files whose rows are all in ``received``, not yet committed
        rows = [0]
        last = [time.monotonic()]

        def commit() -> None:
            self._apply(m, received, finished, by_name)
            self._commit(m)
            received.clear()
            finished.clear()
            last[0] = time.monotonic()

        def on_file(fs: FileStats) -> None:
            finished.append(fs)
            rows[0] += fs.rows
            tick.advance(1, rows=rows[0])

        parts = _iter(
            [s for s, _, _ in todo],
            kind="access",
            fields=fields,
            strict=False,
            stats=ParseStats(),
            batch_size=65536,
            on_file=on_file,
            explicit=explicit,
            workers=None,
            engine=None,
            processes=None,
            encode=sink,
        )
        try:
            # closing: on an error here the workers are stopped (and finish their writes) before the
            # parts of this run are removed
            with progress.bar("parsing", total=len(todo), quiet=quiet) as tick, contextlib.closing(parts):
                for got in parts:
                    # the files of earlier batches are finished: their parts can be committed
                    if finished and time.monotonic() - last[0] >= COMMIT_SECONDS:
                        done = {fs.name for fs in finished}
                        ready = [p for p in received if set(p.files) <= done]
                        later = [p for p in received if not set(p.files) <= done]
                        received[:] = ready
                        commit()
                        received.extend(later)
                    received.extend(got)
                    stats.parts += len(got)
            commit()
        except BaseException:
            self._remove_uncommitted(m)
            raise
        stats.parsed = len(todo)
        stats.rows = rows[0]

    def _apply(
        self,
        m: dict[str, Any],
        received: list[Part],
        finished: list[FileStats],
        by_name: dict[str, tuple[str, Identity]],
    ) -> None:
        files, parts = m["files"], m["parts"]
        of_file: dict[str, list[str]] = {}
        for p in received:
            keys = [by_name[n][0] for n in p.files]
            try:
                nbytes = os.path.getsize(self.data / p.path)
            except OSError:
                nbytes = 0
            parts[p.path] = {"day": p.day, "group": p.group, "rows": p.rows, "bytes": nbytes, "files": keys}
            for n in p.files:
                of_file.setdefault(n, []).append(p.path)
        for fs in finished:
            key, (_, size, mtime, etag) = by_name[fs.name]
            e = m["files"].get(key)
            if e is not None:  # parsed again for its missing days
                e["parts"] += of_file.get(fs.name, [])
                e["missing"] = []
                continue
            files[key] = {
                "name": fs.name,
                "size": size,
                "mtime_ns": mtime,
                "etag": etag,
                "kind": fs.kind,
                "lines": fs.lines,
                "rows": fs.rows,
                "bad_lines": fs.bad_lines,
                "bad_examples": [list(x) for x in fs.bad_examples],
                "error": fs.error,
                "skipped": fs.skipped,
                "parts": of_file.get(fs.name, []),
                "missing": [],
                "added": datetime.now(UTC).isoformat(timespec="seconds"),
            }

    def _named(self, m: dict[str, Any]) -> set[str]:
        return set(m["parts"]) | set(m["retired"])

    def _walk(self) -> Iterator[str]:
        """Every file under ``data/``, relative, with '/' separators."""
        for dirpath, _dirs, names in os.walk(self.data):
            rel = os.path.relpath(dirpath, self.data).replace(os.sep, "/")
            for n in names:
                yield n if rel == "." else f"{rel}/{n}"

    def _remove_uncommitted(self, m: dict[str, Any]) -> None:
        """Delete the parts this run wrote that no commit names (also parts a worker finished after the
        error): nobody else can ever read them."""
        named = self._named(m)
        for rel in self._walk():
            if f"-{self.run}-" in rel and rel not in named:
                with contextlib.suppress(OSError):
                    os.unlink(self.data / rel)

    def _sweep(self, m: dict[str, Any]) -> None:
        """Under writer.lock: delete debris of interrupted runs (files no manifest named) and, when no
        process is reading, the parts commits retired; clean dead processes' spill folders."""
        named = self._named(m)
        for rel in self._walk():
            if rel not in named and not rel.endswith(".lock"):
                with contextlib.suppress(OSError):
                    os.unlink(self.data / rel)
        sweep_dead(self.root, f"{MANIFEST}.")  # manifest.json.<pid>x...tmp of a killed commit
        sweep_dead(self.root / TMP)
        if m["retired"]:
            with self._no_readers() as free:
                if free:
                    for rel in m["retired"]:
                        with contextlib.suppress(OSError):
                            os.unlink(self.data / rel)
                    m["retired"] = []
                    self._commit(m)
        for dirpath, dirs, names in os.walk(self.data, topdown=False):
            if not dirs and not names and dirpath != str(self.data):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    def _compact(self, m: dict[str, Any]) -> None:
        """Merge the small parts of each (group, day) holding more than :data:`COMPACT_PARTS` parts."""
        from albstats.dataset import day_dir

        by_key: dict[tuple[str, str], list[str]] = {}
        for rel, p in m["parts"].items():
            by_key.setdefault((p["group"], p["day"]), []).append(rel)
        changed = False
        for (group, day), rels in sorted(by_key.items()):
            if len(rels) <= COMPACT_PARTS:
                continue
            small = sorted((r for r in rels if m["parts"][r]["rows"] < SMALL_PART_ROWS), key=lambda r: r)
            batch: list[str] = []
            total = 0
            batches: list[list[str]] = []
            for r in small:
                batch.append(r)
                total += m["parts"][r]["rows"]
                if total >= MERGE_ROWS:
                    batches.append(batch)
                    batch, total = [], 0
            if len(batch) > 1:
                batches.append(batch)
            for group_parts in batches:
                if len(group_parts) < 2:
                    continue
                rel = f"{day_dir(day)}/{group}-{self.run}-{uuid.uuid4().hex}.parquet"
                rows = self._merge([self.data / r for r in group_parts], self.data / rel)
                keys = sorted({k for r in group_parts for k in m["parts"][r]["files"]})
                old = set(group_parts)
                for r in group_parts:
                    del m["parts"][r]
                    m["retired"].append(r)
                m["parts"][rel] = {
                    "day": day,
                    "group": group,
                    "rows": rows,
                    "bytes": os.path.getsize(self.data / rel),
                    "files": keys,
                }
                for k in keys:
                    e = m["files"].get(k)
                    if e is not None:
                        e["parts"] = [r for r in e["parts"] if r not in old] + [rel]
                changed = True
        if changed:
            self._commit(m)
            import pyarrow as pa

            pa.default_memory_pool().release_unused()  # the queries that follow need it more than Arrow

    def _merge(self, parts: list[Path], target: Path) -> int:
        """Write the rows of ``parts`` sorted by time into ``target``; return the row count.

        Columns with few distinct values are read as Arrow dictionaries (a third of the memory, and
        written back as dictionary pages without encoding them again), and the sorted copy is made one
        column at a time while the source columns are dropped: merging plain columns held the parts
        and a whole sorted copy at once, 300 MB of a ten-million-line fill.
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from albstats.dataset import HIGH_CARDINALITY, ROW_GROUP_ROWS, parquet_options

        first = pq.read_schema(parts[0])
        few = [f.name for f in first if pa.types.is_string(f.type) and f.name not in HIGH_CARDINALITY]
        # ParquetFile.read, one thread, no pre-buffering: read_table's dataset path held about 60 % more
        t = pa.concat_tables(
            [pq.ParquetFile(p, read_dictionary=few, pre_buffer=False).read(use_threads=False) for p in parts],
            promote_options="permissive",
        )
        order = pc.sort_indices(t["time"])  # stable, as Table.sort_by
        schema, columns = t.schema, []
        while t.num_columns:
            columns.append(pc.take(t.column(0), order))
            t = t.remove_column(0)
        del t
        out = pa.Table.from_arrays(columns, schema=schema)
        del columns
        try:
            # store_schema=False: readers see the columns' own types (strings), not Arrow dictionaries
            pq.write_table(out, target, row_group_size=ROW_GROUP_ROWS, store_schema=False, **parquet_options(first))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise
        return out.num_rows

    # maintenance --------------------------------------------------------------------------
    def prune(self, older_than: timedelta, *, now: datetime | None = None) -> tuple[int, int]:
        """Drop the days before ``now - older_than``; returns (parts, log files) dropped."""
        cutoff = ((now or datetime.now(UTC)) - older_than).strftime("%Y/%m/%d")
        with self.writing():
            m = self.load()
            gone = {rel for rel, p in m["parts"].items() if p["day"] < cutoff}
            dropped = 0
            for key, e in list(m["files"].items()):
                if any(r in gone for r in e["parts"]):
                    e["parts"] = [r for r in e["parts"] if r not in gone]
                    if not e["parts"]:
                        del m["files"][key]
                        dropped += 1
            for rel in gone:
                del m["parts"][rel]
                m["retired"].append(rel)
            self._commit(m)
            self._sweep(m)
        return len(gone), dropped

    def clear(self) -> tuple[int, int]:
        """Forget every log file; returns (parts retired, parts still in use by a reading process)."""
        if not (self.root / MANIFEST).exists() and not self.data.exists():
            return 0, 0
        with self.writing():
            m = self.load()
            n = len(m["parts"])
            fresh = _empty()
            fresh["retired"] = sorted(self._named(m))
            self._commit(fresh)
            self._sweep(fresh)
            return n, len(fresh["retired"])

    def info(self) -> Info:
        m = self.load() if (self.root / MANIFEST).exists() else _empty()
        out = Info(str(self.root))
        out.files = len(m["files"])
        out.parts = len(m["parts"])
        out.rows = sum(p["rows"] for p in m["parts"].values())
        days = sorted({p["day"] for p in m["parts"].values()})
        out.days = len(days)
        out.first_day, out.last_day = (days[0], days[-1]) if days else (None, None)
        out.bytes = sum(p["bytes"] for p in m["parts"].values())
        out.source_bytes = sum(e["size"] or 0 for e in m["files"].values())
        out.lines = sum(e["lines"] for e in m["files"].values())
        out.bad_lines = sum(e["bad_lines"] for e in m["files"].values())
        out.damaged = sum(1 for e in m["files"].values() if e["error"])
        named = set(m["parts"])
        out.debris = sum(1 for rel in self._walk() if rel not in named) if self.data.exists() else 0
        return out
