"""Benchmark: `albstats report` on a cold, warm and no cache, next to `zcat` of the same files.

Run by hand (not part of the tests), from the repository root:

    .venv/bin/python bench/bench_report.py             # 1M lines, 7 days (2,016 five-minute files)
    .venv/bin/python bench/bench_report.py --scale 10  # 10M lines: cold time and peak RSS at 10x
    .venv/bin/python bench/bench_report.py --runs 3
    .venv/bin/python bench/bench_report.py --tenfold   # also the cold report of 10x the lines, same rounds

It generates the input once with `albstats generate --days 7 --lines N --nodes 1` into bench/data/
(gitignored), reads it once to warm the page cache, then measures side by side, in each of --runs
rounds, every command in its own process (wall time, and peak RSS from ``os.wait4``):

- ``zcat`` of all the files (the yardstick);
- ``albstats report DIR --out OUT`` with an empty cache (cold), then again (warm);
- ``albstats report --no-cache``;
- ``albstats parse DIR --format parquet -o DS`` (the dataset layout);
- one new five-minute file added to the cached week, then the report: the manifest must show that
  only that file was parsed (every other file's entry and parts unchanged);
- the cache's size on disk against the ``.gz`` input;
- two reports started at the same moment on one empty cache: both must exit 0 and write the same
  numbers (report.json without its generation time);
- with ``--tenfold``, the cold report of ten times the lines right after the cold report of the
  input, in the same round, so the "10x the input in at most 11x the time" ratio is measured side by
  side (the machine's load drifts between separate runs).

The machine may be shared: the load average (``uptime``) is printed before and after, and ratios to
zcat of the same round are what to compare. Targets from the issue (must / aim): cold <= 2.5x / 1.5x
zcat, warm <= 1.2x / 0.8x, --no-cache <= 2.5x, parse <= 0.8x, peak RSS <= 400 MB, cache <= 0.8x the
.gz size, 10M lines cold <= 11x the 1M time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def albstats_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("albstats")
    if exe.exists():
        return [str(exe)]
    return [shutil.which("albstats") or sys.exit("bench: the albstats command is not installed")]


#: CPU seconds (user + system, the command and the children it waited for) of the last :func:`timed` run.
LAST_CPU = [0.0]


def timed(cmd: list[str] | str, *, shell: bool = False) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB of the process tree's biggest process, exit code); CPU in LAST_CPU."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    LAST_CPU[0] = ru.ru_utime + ru.ru_stime
    if code != 0:
        print(f"bench: {cmd if isinstance(cmd, str) else ' '.join(cmd)} exited {code}: {err[-600:]}", file=sys.stderr)
    return wall, ru.ru_maxrss / 1024, code


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def gz_files(data: Path) -> list[Path]:
    return sorted(data.rglob("*.log.gz"))


def report_numbers(out: Path) -> dict:
    d = json.loads((out / "report.json").read_text())
    d.pop("generated_at", None)
    return d


def generated(alb: list[str], lines: int) -> Path:
    """The week of ``lines`` lines in bench/data/, generated once."""
    data = ROOT / "bench" / "data" / f"report-{lines}"
    if not data.exists():
        tmp = data.with_name(data.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)  # generate -o wants an existing parent
        subprocess.run(
            [*alb, "generate", "-o", str(tmp), "--days", "7", "--lines", str(lines), "--nodes", "1"], check=True
        )
        tmp.rename(data)
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1, help="Millions of lines (default 1).")
    ap.add_argument("--runs", type=int, default=2, help="Rounds of measurements (default 2).")
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "report"), help="Scratch folder.")
    ap.add_argument("--tenfold", action="store_true", help="Also the cold report of 10x the lines, each round.")
    args = ap.parse_args()
    lines = 1_000_000 * args.scale
    alb = albstats_cmd()
    data = generated(alb, lines)
    data10 = generated(alb, lines * 10) if args.tenfold else None
    files = gz_files(data)
    gz_bytes = sum(f.stat().st_size for f in files)
    print(f"input: {len(files)} files, {lines} lines, {gz_bytes / 1e6:.1f} MB of .gz in {data}")
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    zcat = f"find {data} -name '*.gz' -print0 | xargs -0 cat | zcat > /dev/null"
    timed(zcat, shell=True)  # page cache
    print(f"load before: {load()}")
    rows: dict[str, list[tuple[float, float]]] = {}
    cpus: dict[str, list[float]] = {}

    def rec(name: str, wall: float, rss: float) -> None:
        rows.setdefault(name, []).append((wall, rss))
        cpus.setdefault(name, []).append(LAST_CPU[0])

    failures: list[str] = []
    tenfold: list[float] = []  # cold report of 10x the lines / of the input, per round
    for r in range(args.runs):
        cache = work / f"cache{r}"
        out = work / f"out{r}"
        out.mkdir()  # -o DIR wants an existing parent
        w, m, _ = timed(zcat, shell=True)
        rec("zcat", w, m)
        w, m, c = timed([*alb, "report", str(data), "-o", str(out / "cold"), "--db", str(cache), "-q"])
        rec("report, cold cache", w, m)
        failures += ["cold report failed"] if c else []
        if data10 is not None:
            w10, m, c = timed(
                [*alb, "report", str(data10), "-o", str(out / "cold10"), "--db", str(work / f"c10-{r}"), "-q"]
            )
            rec("report of 10x the lines, cold", w10, m)
            tenfold.append(w10 / w)
            failures += ["cold report of 10x the lines failed"] if c else []
            shutil.rmtree(work / f"c10-{r}", ignore_errors=True)
        w, m, c = timed([*alb, "report", str(data), "-o", str(out / "warm"), "--db", str(cache), "-q"])
        rec("report, warm cache", w, m)
        w, m, c = timed([*alb, "report", str(data), "-o", str(out / "nocache"), "--no-cache", "-q"])
        rec("report --no-cache", w, m)
        failures += ["--no-cache report failed"] if c else []
        ds = work / f"ds{r}"
        w, m, c = timed([*alb, "parse", str(data), "--format", "parquet", "-o", str(ds), "-q"])
        rec("parse --format parquet -o DIR", w, m)
        if c not in (0, 1):
            failures.append("parse failed")
        for a, b in (("cold", "warm"), ("cold", "nocache")):
            if report_numbers(out / a) != report_numbers(out / b):
                failures.append(f"round {r}: report.json of {a} and {b} differ")
        # one new five-minute file in the cached week
        last = files[-1]
        new = last.with_name(last.name.replace(".log.gz", "") + f"x{r}.log.gz")
        before = json.loads((cache / "manifest.json").read_text())["files"]
        shutil.copyfile(last, new)
        try:
            w, m, c = timed([*alb, "report", str(data), "-o", str(out / "plus1"), "--db", str(cache), "-q"])
            rec("report, one new file", w, m)
            after = json.loads((cache / "manifest.json").read_text())["files"]
        finally:
            new.unlink()
        added = set(after) - set(before)
        same = all(after.get(k, {}).get("parts") == v["parts"] for k, v in before.items())
        if not (len(added) == 1 and next(iter(added)).endswith(new.name) and same):
            failures.append(f"round {r}: the new file was not the only one parsed ({len(added)} added, same={same})")
        if r == 0:
            part_bytes = sum(p.stat().st_size for p in (cache / "data").rglob("*.parquet"))
            print(f"cache size: {part_bytes / 1e6:.1f} MB = {part_bytes / gz_bytes:.2f}x the .gz input")
        # two reports at the same moment on one empty cache
        shared = work / f"shared{r}"
        procs = [
            subprocess.Popen(
                [*alb, "report", str(data), "-o", str(out / f"twin{i}"), "--db", str(shared), "-q"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for i in range(2)
        ]
        codes = [p.wait() for p in procs]
        if (
            codes != [0, 0]
            or report_numbers(out / "twin0") != report_numbers(out / "twin1")
            or report_numbers(out / "twin0") != report_numbers(out / "cold")
        ):
            failures.append(f"round {r}: two reports at once: exit codes {codes} or different numbers")
        else:
            print(f"round {r}: two reports started at once on an empty cache: both exit 0, same numbers")
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(ds, ignore_errors=True)
    print(f"load after:  {load()}")
    zc = [w for w, _ in rows["zcat"]]
    print(f"\n{'command':34} {'median s':>9} {'runs s':>22} {'/ zcat':>7} {'peak RSS MB':>12} {'CPU s':>7}")
    for name, got in rows.items():
        walls = [w for w, _ in got]
        ratios = [w / z for w, z in zip(walls, zc)]
        print(
            f"{name:34} {statistics.median(walls):9.2f} {' '.join(f'{w:.2f}' for w in walls):>22} "
            f"{statistics.median(ratios):7.2f} {max(m for _, m in got):12.0f} {statistics.median(cpus[name]):7.2f}"
        )
    if tenfold:
        print(
            f"\n10x the lines, cold report: {statistics.median(tenfold):.2f}x the time of the input's "
            f"(rounds: {' '.join(f'{t:.2f}' for t in tenfold)}; target at most 11x)"
        )
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
