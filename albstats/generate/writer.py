"""Writing the files: S3 key layout, batches of files rendered together, gzip in a writer thread.

Why a module of its own: this is the only part that touches the disk. Files are written
atomically (a ``.part`` name until complete, removed on any error or signal), gzip members carry
``mtime=0`` and no file name so the same arguments give byte-identical files, and compression runs
in one thread while the next batch is built (zlib releases the GIL) with a bounded queue, so
memory stays flat for any size.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from albstats.generate.plan import INTERVAL_S, FileJob, Plan
from albstats.generate.render import Clock, batch_lines
from albstats.generate.scanners import Templates
from albstats.generate.template import line_segments, line_template
from albstats.generate.world import ACCOUNT, REGION, World

#: Lines built per vectorised batch (several files at once): bounds memory, amortises NumPy overhead.
BATCH_ROWS = 20_000
#: Files per batch at most (many tiny files at a low rate).
BATCH_FILES = 1024
#: Compressed files waiting for the writer thread at most.
MAX_PENDING = 16
CONTROL_NAME = "ELBAccessLogTestFile"


@dataclass
class Written:
    """What :func:`write_files` wrote."""

    files: int = 0
    lines: int = 0
    bytes: int = 0
    first_t: float | None = None  # epoch seconds of the first and last line
    last_t: float = 0.0


def write_gz(path: Path, lines: list[str], compresslevel: int) -> int:
    """Compress and write one file atomically (a ``.part`` name until complete); returns its size."""
    data = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=compresslevel, mtime=0)
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(data)


def key(world: World, end: datetime, node_ip: str, rnd: str) -> str:
    """The S3 key ALB gives a file, under the delivery date (the date of the interval's end)."""
    return (
        f"AWSLogs/{ACCOUNT}/elasticloadbalancing/{REGION}/{end:%Y/%m/%d}/{ACCOUNT}_elasticloadbalancing_"
        f"{REGION}_{world.key_lb}_{end:%Y%m%dT%H%MZ}_{node_ip}_{rnd}.log.gz"
    )


def iso(epoch: float) -> str:
    """ISO-8601 UTC with microseconds."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_control_file(out: Path, world: World, plan: Plan) -> None:
    """The ``ELBAccessLogTestFile`` ELB writes when access logging is enabled (a minute before the start)."""
    ctl = out / "AWSLogs" / ACCOUNT / CONTROL_NAME
    ctl.parent.mkdir(parents=True, exist_ok=True)
    ctl.write_text(f"Enable AccessLog for ELB: {world.elb} at {iso(plan.start_s - 60)[:-4]}Z\n")


def write_files(
    world: World,
    plan: Plan,
    jobs: Iterable[FileJob],
    out: Path,
    era: int,
    compresslevel: int,
    on_file: Callable[[int, int], None] | None = None,
) -> Written:
    """Build, compress and write every file of ``jobs`` under ``out``; ``on_file(files, lines)`` after each batch."""
    templates: dict[str, Templates] = {
        ip: (line_template(world.elb, ip, era), line_template(world.elb, ip, era, False)) for ip in world.nodes
    }
    segments = line_segments(world.elb, era)
    clock = Clock()
    done = Written()
    made_dirs: set[Path] = set()
    batch: list[FileJob] = []
    pending: list[Future[int]] = []

    def flush() -> None:
        if not batch:
            return
        for job, body in zip(batch, batch_lines(world, plan, batch, segments, templates, era, clock), strict=True):
            path = out / key(world, job.end, job.ip, job.key_suffix)
            if path.parent not in made_dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(path.parent)
            pending.append(pool.submit(write_gz, path, body, compresslevel))
            while len(pending) > MAX_PENDING:  # bounded memory: wait for the writer
                done.bytes += pending.pop(0).result()
            done.files += 1
            done.lines += len(body)
            t0 = plan.start_s + job.k * INTERVAL_S
            f0, f1 = t0 + int(job.offs[0]) / 1e6, t0 + int(job.offs[-1]) / 1e6
            done.first_t = f0 if done.first_t is None else min(done.first_t, f0)
            done.last_t = max(done.last_t, f1)
        batch.clear()
        if on_file:
            on_file(done.files, done.lines)

    with ThreadPoolExecutor(max_workers=1) as pool:  # gzip releases the GIL: compress while generating
        try:
            batch_rows = 0
            for job in jobs:
                batch.append(job)
                batch_rows += job.n
                if batch_rows >= BATCH_ROWS or len(batch) >= BATCH_FILES:
                    flush()
                    batch_rows = 0
            flush()
        finally:
            for f in pending:
                done.bytes += f.result()
    return done
