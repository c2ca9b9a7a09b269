"""Benchmark `albstats query` against `zcat` on the same files (run by hand; not part of the test suite).

Targets (issue 3), one million lines in about 2,000 five-minute gz files:

- ``albstats query error_rate DIR --bucket 1h --no-cache``: wall time <= zcat of the same files;
- the same query with the ingest cache warm: wall time <= 0.1 x zcat;
- peak RSS <= 400 MB.

Usage::

    .venv/bin/python bench/bench_query.py [--data bench/data/1m] [--runs 3]

Missing data is generated first (``albstats generate --lines 1000000 --days 3.5 --nodes 2``: 2,016
files). Each command runs in a fresh process, interpreter start included; the median of ``--runs``
is reported, and peak RSS is the child's ``ru_maxrss`` (``os.wait4``). Absolute times drift with
machine load: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALBSTATS = str(Path(sys.executable).with_name("albstats"))


def timed(
    cmd: list[str] | str, *, shell: bool = False, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MB) of one command run to completion; its output is discarded."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode() if p.stderr else ""
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {cmd}\n{err}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def median_of(runs: int, cmd: list[str] | str, **kw: object) -> tuple[float, float, float, list[float]]:
    """Medians of wall and CPU seconds, the highest peak RSS, and every run's wall seconds."""
    results = [timed(cmd, **kw) for _ in range(runs)]  # type: ignore[arg-type]
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
        max(r[2] for r in results),
        [r[0] for r in results],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "bench" / "data" / "1m"))
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    data = Path(args.data)
    if not data.exists():
        print(f"generating {args.lines} lines into {data} ...", file=sys.stderr)
        data.parent.mkdir(parents=True, exist_ok=True)  # generate -o wants an existing parent
        subprocess.run(
            [ALBSTATS, "generate", "-o", str(data), "--lines", str(args.lines), "--days", "3.5", "--nodes", "2", "-q"],
            check=True,
        )
    files = sorted(str(p) for p in data.rglob("*.log.gz"))
    size = sum(os.path.getsize(f) for f in files)
    print(f"data: {data} ({len(files)} gz files, {size / 1e6:.0f} MB compressed)")

    zcat = f"find {data} -name '*.log.gz' -print0 | sort -z | xargs -0 zcat > /dev/null"
    tmp = tempfile.mkdtemp(prefix="albstats-bench-")
    try:
        # byte-compiled albstats, as installed (see the module docstring); translated SQL cached in tmp
        env = dict(os.environ, XDG_CACHE_HOME=tmp, PYTHONPYCACHEPREFIX=os.path.join(tmp, "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "albstats")], env=env, check=True)
        load0 = os.getloadavg()[0]
        z_wall, z_cpu, _, z_runs = median_of(args.runs, zcat, shell=True)

        query = [ALBSTATS, "query", "error_rate", str(data), "--bucket", "1h"]
        cold = median_of(args.runs, query + ["--no-cache", "-q"], env=env)
        db = os.path.join(tmp, "cache.duckdb")
        fill = timed(query + ["--db", db, "-q"], env=env)
        warm = median_of(args.runs, query + ["--db", db], env=env)
        db_mb = os.path.getsize(db) / 1e6
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [
        ("zcat (the yardstick)", (z_wall, z_cpu, None), None),
        ("query error_rate --no-cache", cold[:3], 1.0),
        ("query error_rate, cache empty (fills it)", fill, None),
        ("query error_rate, cache warm", warm[:3], 0.1),
    ]
    import typer

    print(
        f"median of {args.runs} runs; cache file {db_mb:.0f} MB; typer {typer.__version__}; machine load "
        f"{load0:.1f} before, {os.getloadavg()[0]:.1f} after ({os.cpu_count()} CPUs)"
    )
    print(f"| {'command':<42} | wall s |  CPU s | peak RSS MB | / zcat | target |")
    print(f"|{'-' * 44}|-------:|-------:|------------:|-------:|-------:|")
    for name, (wall, cpu, rss), target in rows:
        ratio = wall / z_wall
        ok = "" if target is None else (" ok" if ratio <= target else " MISSED")
        print(
            f"| {name:<42} | {wall:6.2f} | {cpu:6.2f} | {'' if rss is None else f'{rss:11.0f}':>11} | "
            f"{ratio:6.2f} | {'' if target is None else f'<= {target:g}'}{ok} |"
        )
    for name, runs_s in (("zcat", z_runs), ("--no-cache", cold[3]), ("cache warm", warm[3])):
        print(
            f"{name} runs, s: "
            + " ".join(f"{w:.2f}" for w in sorted(runs_s))
            + f" (slowest {max(runs_s) / z_wall:.2f} x the zcat median)"
        )
    worst = max(r[1][2] for r in rows if r[1][2] is not None)
    print(f"peak RSS {worst:.0f} MB: {'ok' if worst <= 400 else 'MISSED'} (target <= 400 MB)")


if __name__ == "__main__":
    main()
