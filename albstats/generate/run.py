"""The generator's entry point: check the arguments, build world and plan, write, summarise.

Why a module of its own: it is the library call behind ``albstats generate`` and the only place
that knows every argument, so bad input is refused here with one line naming the option, before
anything is written.
"""

from __future__ import annotations

import math
import os
import time as _time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from albstats.errors import AlbstatsError, UsageError
from albstats.generate.plan import INTERVAL_S, Plan, file_jobs
from albstats.generate.template import DEFAULT_ERA, ERAS
from albstats.generate.world import PROFILES, Profile, World
from albstats.generate.writer import iso, write_control_file, write_files

#: A fixed, documented default start (a Monday), so runs without --start are reproducible.
DEFAULT_START = "2026-11-16T00:00:00Z"
MAX_LINES = 10_000_000_000  # far beyond any benchmark; keeps numpy sizes in range


@dataclass(frozen=True)
class Incident:
    """A window of 5XX and slowness on one target group."""

    start: datetime
    end: datetime
    target_group: str


@dataclass(frozen=True)
class ScanBurst:
    """A window in which one scanner probed the service (scanners also probe lightly all day)."""

    start: datetime
    end: datetime
    client_ip: str
    user_agent: str


@dataclass
class GenerateSummary:
    """What a run wrote."""

    out_dir: str
    files: int = 0
    lines: int = 0
    bytes: int = 0
    first_time: str | None = None
    last_time: str | None = None
    seconds: float = 0.0
    profile: str = "default"
    seed: int = 1
    format_era: int = DEFAULT_ERA
    incidents: list[Incident] = field(default_factory=list)
    scanners: list[str] = field(default_factory=list)
    scan_bursts: list[ScanBurst] = field(default_factory=list)
    lb: str = ""

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        rate = self.lines / self.seconds if self.seconds > 0 else 0.0
        span = f"{self.first_time} .. {self.last_time}" if self.first_time else "no lines"
        return (
            f"wrote {self.files} files, {self.lines} lines ({self.bytes / 1e6:.1f} MB gz) to {self.out_dir}, "
            f"span {span}, profile {self.profile}, seed {self.seed}, {self.seconds:.1f}s ({rate:,.0f} lines/s)"
        )


def parse_start(value: str | datetime) -> datetime:
    """UTC start on a 5-minute boundary, from ``2026-11-16``, ``2026-11-16T00:00:00Z`` or a datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise UsageError(f"--start: {value!r} is not an ISO-8601 time like {DEFAULT_START}") from None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    if dt.second or dt.microsecond or dt.minute % 5:
        raise UsageError(f"--start: {value} is not on a 5-minute boundary (ALB writes 5-minute files)")
    return dt


def expected_files(days: float, profile: str = "default", nodes: int | None = None) -> int:
    """How many files a run writes at most (one per node per interval), for progress bars."""
    prof = PROFILES.get(profile, PROFILES["default"])
    return max(1, int(round(days * 86400 / INTERVAL_S))) * (nodes or prof.nodes)


def generate(
    out_dir: str | os.PathLike[str],
    start: str | datetime = DEFAULT_START,
    days: float = 1.0,
    rps: float | None = 5.0,
    seed: int = 1,
    profile: str = "default",
    lines: int | None = None,
    format_era: int = DEFAULT_ERA,
    nodes: int | None = None,
    control_file: bool = True,
    compresslevel: int = 6,
    on_file: Callable[[int, int], None] | None = None,
    only_intervals: Collection[int] | None = None,
) -> GenerateSummary:
    """Write synthetic ALB access logs under ``out_dir`` in the S3 key layout; return what was written.

    ``rps`` is the mean request rate (Poisson counts per 5-minute file around a diurnal curve);
    ``lines`` instead fixes the exact total number of lines (for benchmarks), spread the same way.
    ``days`` may be fractional (``days * 288`` intervals, at least one). ``on_file(files, lines)`` is
    called after each file for progress bars. ``only_intervals`` writes just those 5-minute
    intervals (0-based), exactly as a full run would (tests use it to spot-check fixtures).
    Raises :class:`UsageError` naming a bad argument.
    """
    t_begin = _time.perf_counter()
    if profile not in PROFILES:
        raise UsageError(f"--scenario: unknown scenario {profile!r}; choose one of {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    if nodes is not None:
        if not 1 <= nodes <= 8:
            raise UsageError(f"--nodes: {nodes} is out of range (1 to 8 load balancer nodes)")
        prof = Profile(**{**prof.__dict__, "nodes": nodes})
    st = parse_start(start)
    if not (isinstance(days, int | float) and 0 < days <= 3660):
        raise UsageError(f"--days: {days} is out of range (more than 0, at most 3660)")
    if lines is not None:
        if not 0 <= lines <= MAX_LINES:
            raise UsageError(f"--lines: {lines} is out of range (0 to {MAX_LINES:,})")
    elif rps is None or not (0 <= rps <= 100000) or math.isnan(rps):
        raise UsageError(f"--rps: {rps} is out of range (0 to 100000 requests per second)")
    if format_era not in ERAS:
        raise UsageError(f"--format-era: {format_era} is not one of {', '.join(map(str, ERAS))} tokens")
    if not 0 <= seed < 2**63:
        raise UsageError(f"--seed: {seed} must be a non-negative integer below 2**63")
    if not 0 <= compresslevel <= 9:
        raise UsageError(f"--compress-level: {compresslevel} must be 0 to 9")
    intervals = max(1, int(round(days * 86400 / INTERVAL_S)))
    world = World(seed, prof)
    plan = Plan(world, seed, st, intervals, rps, lines)
    out = Path(out_dir)
    summary = GenerateSummary(out_dir=str(out), profile=prof.name, seed=seed, format_era=format_era, lb=world.elb)
    end_s = plan.start_s + intervals * INTERVAL_S
    summary.incidents = [
        Incident(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC), world.tgs[tg].name)
        for a, b, tg in plan.incidents
        if a < end_s
    ]
    summary.scanners = [s[0] for s in world.scanners]
    summary.scan_bursts = [
        ScanBurst(
            datetime.fromtimestamp(a, UTC),
            datetime.fromtimestamp(min(b, end_s), UTC),
            world.scanners[i][0],
            world.scanners[i][1],
        )
        for a, b, i in plan.bursts
        if a < end_s
    ]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"-o: cannot create {out}: {e.strerror or e}") from None
    try:
        if control_file:
            write_control_file(out, world, plan)
        jobs = file_jobs(world, plan, seed, intervals, only_intervals)
        done = write_files(world, plan, jobs, out, format_era, compresslevel, on_file)
    except OSError as e:
        raise AlbstatsError(f"{e.filename or out}: cannot write: {e.strerror or e}") from None
    summary.files, summary.lines, summary.bytes = done.files, done.lines, done.bytes
    if done.first_t is not None:
        summary.first_time, summary.last_time = iso(done.first_t), iso(done.last_t)
    summary.seconds = _time.perf_counter() - t_begin
    return summary
