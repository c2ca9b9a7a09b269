"""The C engine over many files: groups of small files parsed in worker processes, big ones streamed.

Files are read in groups of about ``reading.BLOCK_BYTES`` of text (``FRAGMENT_BYTES`` when the workers write a
Parquet dataset) by worker processes for local files (threads for S3 and stdin), a bounded number of
groups ahead, so memory does not grow with the input; big or unsized sources stream block by block in
the parent. A worker hands its batches over in an Arrow IPC file in shared memory (``/dev/shm``), which
the parent maps instead of receiving them through a pipe. How workers end with their parent whatever
ends it is :mod:`albstats.parsing.workers`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import pyarrow as pa

from albstats.parsing import reading
from albstats.parsing.lines import check_format
from albstats.parsing.native import Seg, parse_block
from albstats.parsing.reading import first_line, lines_after_first, read_whole, stream_blocks
from albstats.parsing.stats import FileStats, ParseStats
from albstats.schema import LogSchema
from albstats.sources import Source

if TYPE_CHECKING:  # pragma: no cover
    from albstats.dataset import DatasetSink

#: Text per Parquet fragment, estimated from gzip sizes (x7; ALB logs compress 8-10x): 30-40k lines, one row group.
#: Bigger fragments cost less per row (each has its own writer, column chunks and footer) and more memory.
FRAGMENT_BYTES = 24 << 20
#: Rows of one big (streamed) file written per Parquet part.
STREAM_PART_ROWS = 1 << 20

Item = tuple[Source, FileStats]


@dataclass
class Opts:
    """What every group is parsed with."""

    schema: LogSchema
    fields: list[str] | None
    strict: bool
    explicit: set[str]


def parse_group(group: list[Item], o: Opts) -> list[pa.RecordBatch]:
    """Read, check the format of, and parse a group of small sources (in a worker, or in this thread)."""
    out: list[pa.RecordBatch] = []
    parts: list[bytes] = []
    segs: list[Seg] = []
    size = 0
    for src, fs in group:
        data = read_whole(src, fs)
        first = first_line(data)
        if first is None or not check_format(
            first, src.name, o.schema, fs, src.name in o.explicit, lines_after_first(data)
        ):
            continue
        segs.append(Seg(fs, src.name))
        parts.append(data)
        size += len(data)
        if size >= reading.BLOCK_BYTES:
            out.extend(parse_block(parts, segs, o.schema, o.fields, o.strict))
            parts, segs, size = [], [], 0
    if segs:
        out.extend(parse_block(parts, segs, o.schema, o.fields, o.strict))
    return out


def parse_stream(src: Source, fs: FileStats, o: Opts) -> Iterator[pa.RecordBatch]:
    """A big or unsized source (stdin, a large .log), block by block in this thread."""
    checked = False
    for data, line_no in stream_blocks(src, fs):
        if not checked:
            first = first_line(data)
            if first is None:
                continue
            checked = True
            if not check_format(first, src.name, o.schema, fs, src.name in o.explicit, lines_after_first(data)):
                return
        yield from parse_block([data], [Seg(fs, src.name, line_no)], o.schema, o.fields, o.strict)


def plan(sources: list[Item], group_bytes: int) -> Iterator[tuple[str, list[Item]]]:
    """Group consecutive small sources (about ``group_bytes`` of text per group); big ones stream alone."""
    group: list[Item] = []
    est = 0
    for item in sources:
        src = item[0]
        if src.size is None or src.size > reading.STREAM_OVER:
            if group:
                yield "group", group
                group, est = [], 0
            yield "stream", [item]
            continue
        group.append(item)
        est += src.size * (7 if src.is_gzip else 1)
        if est >= group_bytes:
            yield "group", group
            group, est = [], 0
    if group:
        yield "group", group


def tail_split(groups: list[tuple[str, list[Item]]], workers: int) -> list[tuple[str, list[Item]]]:
    """The last ``workers`` groups split in halves: the run ends when the slowest worker does, so smaller
    last groups leave the others less time idle (on 2 cores, about half a group less)."""
    if workers <= 1:
        return groups
    out: list[tuple[str, list[Item]]] = []
    tail = {i for i, (how, _) in enumerate(groups) if how == "group"}
    tail = set(sorted(tail)[-workers:]) if len(tail) > workers else set()
    for i, (how, g) in enumerate(groups):
        if i in tail and len(g) > 1:
            out += [(how, g[: len(g) // 2]), (how, g[len(g) // 2 :])]
        else:
            out.append((how, g))
    return out


def default_workers() -> int:
    """Workers that read and parse files: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def _encoded(batches: Iterable[pa.RecordBatch], encode: DatasetSink | None, live: list[Item]) -> Iterator[Any]:
    """Batches made in this process for the files ``live``, as they are or written to the sink (a
    streamed file in parts of :data:`STREAM_PART_ROWS` rows, so memory stays bounded)."""
    if encode is None:
        yield from batches
        return
    if len(live) == 1:  # one file, maybe huge: in pieces
        name, buf, n = live[0][1].name, [], 0
        for b in batches:
            buf.append(b)
            n += b.num_rows
            if n >= STREAM_PART_ROWS:
                yield encode.write(buf, [(name, n)])
                buf, n = [], 0
        if buf:
            yield encode.write(buf, [(name, n)])
        return
    yield encode.write(list(batches), [(fs.name, fs.rows) for _, fs in live])


def _process_context() -> Any:
    """A fork context where there is one: processes, not threads, because a machine may run the threads
    of one process on one core (seen on the 2-core benchmark VM); fork shares the imported modules."""
    import multiprocessing as mp

    if not sys.platform.startswith("linux"):  # fork is unsafe on macOS and absent on Windows: threads there
        return None
    try:
        return mp.get_context("fork")
    except ValueError:  # pragma: no cover - no fork on this platform
        return None


def tune_malloc() -> None:
    """glibc only: serve multi-MB buffers from the heap and keep freed memory for the next block, instead
    of mapping fresh pages for each one (page faults cost about 10% of the parse on the benchmark VM)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _worker_init(watch_fd: int, spill: str, prefix: str) -> None:
    """Ctrl-C is the parent's to handle (it stops the pool and cleans up); workers do not print tracebacks,
    and exit by themselves when the parent is gone (albstats.parsing.workers)."""
    from albstats.parsing import workers

    workers.start_worker(watch_fd, spill, prefix)
    tune_malloc()


def _worker_task(fn: Callable[..., Any]) -> Callable[..., Any]:
    """albstats.parsing.workers.task, imported when a worker first runs one (not by every command)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        from albstats.parsing.workers import task

        return task(fn)(*args, **kwargs)

    return run


def _open_binary(path: str) -> BinaryIO:
    return open(path, "rb")


def _spill_dir() -> str:
    import tempfile

    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


@_worker_task
def _worker_group(
    items: list[tuple[str, str, int | None]],
    o: Opts,
    spill: str,
    prefix: str = "albstats-",
    encode: DatasetSink | None = None,
) -> tuple[list[FileStats], Any]:
    """In a worker process: parse local files by path; the batches go to an Arrow IPC file in ``spill``
    (shared memory where there is one), which the parent maps instead of receiving them through a pipe.
    With ``encode``, the worker writes them into that dataset instead and returns the parts (encoding is
    a third of the CPU of a Parquet parse; here it runs on every core)."""
    import tempfile

    from albstats.parsing import workers

    kind = o.schema.kind
    group = [
        (Source(name, functools.partial(_open_binary, path), size, local_path=path), FileStats(name, kind=kind))
        for name, path, size in items
    ]
    batches = parse_group(group, o)
    stats = [fs for _, fs in group]
    if not batches:
        return stats, None
    if encode is not None:
        return stats, encode.write(batches, [(fs.name, fs.rows) for fs in stats])
    path = None
    try:
        with workers.handover():  # never deleted half-written by a worker exiting with its parent
            fd, path = tempfile.mkstemp(prefix=prefix, suffix=".arrows", dir=spill)
            os.close(fd)
            with pa.OSFile(path, "wb") as f, pa.ipc.new_stream(f, batches[0].schema) as w:
                for b in batches:
                    w.write_batch(b)
        return stats, path
    except OSError:  # shared memory full or not writable: send the batches through the pipe instead
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batches[0].schema) as w:
            for b in batches:
                w.write_batch(b)
        return stats, sink.getvalue().to_pybytes()


def _thread_group(group: list[Item], o: Opts, encode: DatasetSink | None) -> Any:
    """In a worker thread: the group's batches, or (like a worker process) its statistics and the parts
    written to ``encode``."""
    batches = parse_group(group, o)
    if encode is not None:
        return [fs for _, fs in group], encode.write(batches, [(fs.name, fs.rows) for _, fs in group])
    return batches


def _read_spill(path: str | bytes | None) -> list[pa.RecordBatch]:
    if path is None:
        return []
    if isinstance(path, bytes):
        return list(pa.ipc.open_stream(pa.py_buffer(path)))
    try:
        return list(pa.ipc.open_stream(pa.memory_map(path)))  # batches keep the mapping alive
    finally:
        os.unlink(path)


def iter_pool(
    todo: list[Item],
    o: Opts,
    stats: ParseStats,
    on_file: Callable[[FileStats], None] | None,
    workers: int,
    processes: bool = True,
    encode: DatasetSink | None = None,
) -> Iterator[Any]:
    """The batches of ``todo`` (or with ``encode`` the parts written), in file and line order; ``stats`` and
    ``on_file`` hear of each file once its rows were yielded."""
    from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from albstats.parsing.workers import ParentWatch, remove_handover_files

    def done(group: list[Item]) -> None:
        for _, fs in group:
            stats.files.append(fs)
            if on_file:
                on_file(fs)

    # a Parquet fragment holds one row group: groups of about ROW_GROUP_ROWS lines of text
    groups = tail_split(list(plan(todo, FRAGMENT_BYTES if encode else reading.BLOCK_BYTES)), workers)
    steps = [(how, [it for it in g if not it[1].skipped], g) for how, g in groups]
    if workers <= 1 or sum(1 for how, _, _ in steps if how == "group") <= 1:
        for how, live, group in steps:
            if how == "stream" and live:
                yield from _encoded(parse_stream(*live[0], o), encode, live)
            elif live:
                yield from _encoded(parse_group(live, o), encode, live)
            done(group)
        return
    ctx = _process_context()
    local = (
        processes
        and ctx is not None
        and all(src.local_path for src, _ in todo)
        and os.environ.get("ALBSTATS_WORKERS_KIND", "process") == "process"
    )
    spill = _spill_dir()
    prefix = f"albstats-{os.getpid()}-{os.urandom(4).hex()}-"  # this run's hand-over files
    watch = ParentWatch() if local else None  # workers exit when it closes: the parent stopped or died
    ex: Executor = (
        ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(watch.read_fd, spill, prefix))
        if watch is not None
        else ThreadPoolExecutor(workers, thread_name_prefix="albstats-parse")
    )
    ahead = workers + 1  # groups read ahead: memory stays bounded whatever the input size
    window: deque[tuple[str, list[Item], list[Item], Future[Any] | None]] = deque()
    finished = False
    try:
        for how, live, group in steps:
            fut = None
            if how == "group" and live:
                if local:
                    fut = ex.submit(
                        _worker_group, [(s.name, s.local_path, s.size) for s, _ in live], o, spill, prefix, encode
                    )
                else:
                    fut = ex.submit(_thread_group, live, o, encode)
            window.append((how, live, group, fut))
            while len(window) > ahead or (window and window[0][0] == "stream"):
                yield from _drain(window.popleft(), o, done, encode)
        while window:
            yield from _drain(window.popleft(), o, done, encode)
        finished = True
    except BrokenProcessPool:  # a worker died (the OOM killer, a kill of the worker alone): one line
        from albstats.errors import AlbstatsError

        raise AlbstatsError("a parse worker process ended unexpectedly (killed, or out of memory?)") from None
    finally:
        # Nested so that each step runs even if a signal interrupts the one before (albstats.shutdown
        # raises once): stop the workers, wait for them, then delete what they handed over.
        try:
            # Worker processes are stopped, not their futures cancelled: the pool's manager thread then
            # fails the pending futures itself. Cancelling them as well raced with it (Python 3.11's
            # terminate_broken sets an exception on a cancelled future and prints InvalidStateError).
            stopping = watch is not None and not finished  # an error, a signal or an abandoned generator
            try:
                if stopping:
                    assert watch is not None
                    watch.stop()  # the workers stop now, not after the groups they are parsing
                else:
                    for *_, fut in window:
                        if fut is not None:
                            fut.cancel()
            finally:
                ex.shutdown(wait=True, cancel_futures=not stopping)
        finally:
            if watch is not None:  # hand-over files nobody will read (an error or a signal stopped the run)
                watch.close()
                remove_handover_files(spill, prefix)


def _drain(
    item: tuple[str, list[Item], list[Item], Any],
    o: Opts,
    done: Callable[[list[Item]], None],
    encode: DatasetSink | None,
) -> Iterator[Any]:
    how, live, group, fut = item
    if how == "stream" and live:
        yield from _encoded(parse_stream(*live[0], o), encode, live)
    elif fut is not None:
        res = fut.result()
        if isinstance(res, tuple):  # from a worker process: its statistics, and the batches in a spill file
            got, path = res
            for (_, fs), new in zip(live, got):
                for f in dataclasses.fields(FileStats):
                    setattr(fs, f.name, getattr(new, f.name))
            if encode is not None:
                yield path or []  # the parts the worker wrote
            else:
                yield from _read_spill(path)
        else:
            yield from res
    done(group)
