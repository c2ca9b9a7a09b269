"""Benchmark: `albstats parse --format parquet` next to `zcat` of the same ALB-style .gz files.

Run by hand (not part of the tests), from the repository root:

    .venv/bin/python bench/bench_parse.py            # 1M lines in ~2,000 five-minute files
    .venv/bin/python bench/bench_parse.py --runs 2 --tenfold --engines c,python

It generates the input once with `albstats generate` into bench/data/ (gitignored), warms the page
cache, then measures in one run, each command in its own process under /usr/bin/time: wall time,
CPU time and peak RSS of `zcat` over all the files and of `albstats parse DIR --format parquet -o OUT/`
(the dataset layout of issue 13: day= folders of sorted, zstd Parquet parts written by the workers; `--single`
measures the one-file `-o x.parquet` form instead) with each parser engine (ALBSTATS_PARSER), checking that
the engines write the same rows. Memory of
the whole process tree (PSS, workers included) is sampled in a separate run per engine: sampling
/proc costs CPU on the same two cores, so the timed runs are left alone.
`--tenfold` also parses the same files ten times over (the folder named ten times) to show that peak
memory does not grow with the input. Targets from the issue: albstats/zcat wall-time ratio <= 0.8
(aim 0.6), peak RSS <= 300 MB, memory flat at ten times the input.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"


def albstats_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("albstats")
    if exe.exists():
        return [str(exe)]
    return [shutil.which("albstats") or sys.exit("bench: the albstats command is not installed")]


def _tree(root: int) -> list[int]:
    """The process and all its descendants (from /proc)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _pss_kb(pids: list[int]) -> int:
    """Proportional set size of the processes: shared (forked) pages counted once in total."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def measure(
    cmd: list[str] | str, shell: bool = False, env: dict[str, str] | None = None, pss: bool = False
) -> dict[str, float]:
    """Wall, CPU (user+sys, children included) and peak RSS of the biggest process, from GNU time; with
    ``pss``, also the peak total PSS of the whole process tree (worker processes included), sampled every
    50 ms. Sampling reads /proc/PID/smaps_rollup, which costs kernel time on the cores the command runs
    on, so timed runs do not sample and memory is measured in a run of its own."""
    fmt = "%e %U %S %M"
    full = f"{TIME} -f '{fmt}' sh -c {shlex_quote(cmd)}" if shell else [TIME, "-f", fmt, *cmd]
    p = subprocess.Popen(
        full,
        shell=shell,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )
    peak = 0
    if pss:
        while p.poll() is None:
            peak = max(peak, _pss_kb(_tree(p.pid)))
            time.sleep(0.05)
    else:
        p.wait()
    err = p.stderr.read() if p.stderr else ""
    if p.returncode != 0:
        sys.exit(f"bench: command failed ({p.returncode}): {full}\n{err[-2000:]}")
    wall, user, sys_, rss = err.strip().splitlines()[-1].split()
    return {"wall": float(wall), "cpu": float(user) + float(sys_), "rss_mb": int(rss) / 1024, "tree_mb": peak / 1024}


def shlex_quote(s: str | list[str]) -> str:
    import shlex

    return shlex.quote(s if isinstance(s, str) else " ".join(map(shlex.quote, s)))


def _written(out: Path) -> object:
    """What a run wrote, comparable across runs: the table of a single file; for a dataset folder each part
    file's table keyed by its day folder, rows and first and last time (part names are random)."""
    import pyarrow.parquet as pq

    if out.is_file():
        return pq.read_table(out)
    got = {}
    for f in out.rglob("*.parquet"):
        t = pq.read_table(f)
        times = t.column("time")
        got[(f.parent.name, t.num_rows, times[0].as_py(), times[-1].as_py())] = t
    return got


def ensure_data(data: Path, lines: int, days: float) -> list[Path]:
    files = sorted(data.rglob("*.log.gz"))
    if not files:
        print(f"generating {lines:,} lines into {data} ...", flush=True)
        t = time.perf_counter()
        data.parent.mkdir(parents=True, exist_ok=True)  # generate -o wants an existing parent
        subprocess.run(
            [
                *albstats_cmd(),
                "generate",
                "-o",
                str(data),
                "--lines",
                str(lines),
                "--days",
                str(days),
                "--seed",
                "1",
                "-q",
            ],
            check=True,
        )
        print(f"  generated in {time.perf_counter() - t:.1f} s", flush=True)
        files = sorted(data.rglob("*.log.gz"))
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=3.5, help="3.5 days x 288 intervals x 2 nodes = 2,016 files")
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "data" / "parse-1m")
    ap.add_argument("--runs", type=int, default=1, help="measure this many times (to see the noise)")
    ap.add_argument("--tenfold", action="store_true", help="also parse the input ten times over (memory check)")
    ap.add_argument(
        "--engines", default="c", help="parser engines to measure, comma separated (ALBSTATS_PARSER: c, python)"
    )
    ap.add_argument("--single", action="store_true", help="measure -o x.parquet (one file), not the dataset folder")
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e]

    files = ensure_data(args.data, args.lines, args.days)
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / ("parse.parquet" if args.single else "parse-dataset")
    listing = out_dir / "files.txt"
    listing.write_text("\0".join(map(str, files)))
    raw = sum(f.stat().st_size for f in files)
    zcat = f"xargs -0 zcat < {listing} > /dev/null"
    parse = [*albstats_cmd(), "parse", str(args.data), "--format", "parquet", "-o", str(out), "-q"]

    # albstats byte-compiled, as a pip install leaves it (this sandbox sets PYTHONDONTWRITEBYTECODE, which
    # would make every run compile albstats from source); the .pyc files go to a scratch folder
    import tempfile

    pycache = tempfile.mkdtemp(prefix="albstats-bench-pycache-")
    compiled = {"PYTHONPYCACHEPREFIX": pycache, "PYTHONDONTWRITEBYTECODE": ""}
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "albstats")], check=True, env={**os.environ, **compiled}
    )

    load = os.getloadavg()[0]
    print(
        f"input: {len(files):,} files, {raw / 1e6:.0f} MB gzip, {args.lines:,} lines; "
        f"{os.cpu_count()} cores, load average {load:.2f} before the run"
    )
    measure(zcat, shell=True)  # warm the page cache
    for engine in engines:  # and write the .pyc files of the libraries into the scratch pycache
        measure(parse, env={"ALBSTATS_PARSER": engine, **compiled})
    import pyarrow.parquet as pq

    rows: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {e: [] for e in engines}
    first = None
    for i in range(args.runs):
        for engine in engines:  # zcat right before each measurement: the load on a shared box drifts
            z = measure(zcat, shell=True)
            a = measure(parse, env={"ALBSTATS_PARSER": engine, **compiled})
            rows[engine].append((z, a))
            print(
                f"run {i + 1}, engine {engine}: zcat {z['wall']:.2f} s wall, {z['cpu']:.2f} s cpu, "
                f"{z['rss_mb']:.0f} MB | albstats parse --format parquet {a['wall']:.2f} s wall, {a['cpu']:.2f} s "
                f"cpu, peak RSS {a['rss_mb']:.0f} MB (biggest process) | ratio {a['wall'] / z['wall']:.2f}",
                flush=True,
            )
            got = _written(out)
            if first is None:
                first = got
            elif got != first:
                sys.exit(f"bench: engine {engine} wrote different rows")
    for engine in engines:
        ratios = sorted(a["wall"] / z["wall"] for z, a in rows[engine])
        cpu = sorted(a["cpu"] / z["cpu"] for z, a in rows[engine])
        print(
            f"engine {engine}: wall ratio median {statistics.median(ratios):.2f}, best {ratios[0]:.2f}, worst "
            f"{ratios[-1]:.2f}; CPU seconds albstats/zcat median {statistics.median(cpu):.2f} (with two free "
            f"cores the wall ratio approaches half of that)"
        )
    for engine in engines:
        m = measure(parse, env={"ALBSTATS_PARSER": engine, **compiled}, pss=True)
        print(
            f"memory run, engine {engine}: peak RSS {m['rss_mb']:.0f} MB (biggest process), {m['tree_mb']:.0f} MB "
            f"(all processes, PSS sampled every 50 ms)"
        )
    files_out = [out] if out.is_file() else sorted(out.rglob("*.parquet"))
    n = sum(pq.ParquetFile(f).metadata.num_rows for f in files_out)
    size = sum(f.stat().st_size for f in files_out)
    print(
        f"parquet rows: {n:,} in {len(files_out)} file(s), {size / 1e6:.0f} MB = {size / raw:.2f}x the .gz; "
        f"identical for engines {', '.join(engines)}"
    )
    if args.tenfold:
        big = [
            *albstats_cmd(),
            "parse",
            *([str(args.data)] * 10),
            "--format",
            "parquet",
            "-o",
            str(out_dir / ("parse10.parquet" if args.single else "parse10-dataset")),
            "-q",
        ]
        t = measure(big, env={"ALBSTATS_PARSER": engines[0], **compiled}, pss=True)
        one = measure(parse, env={"ALBSTATS_PARSER": engines[0], **compiled}, pss=True)
        print(
            f"10x input ({10 * args.lines:,} lines, engine {engines[0]}): {t['wall']:.2f} s wall, "
            f"{t['cpu']:.2f} s cpu, peak RSS "
            f"{t['rss_mb']:.0f} MB biggest process, {t['tree_mb']:.0f} MB all processes "
            f"(1x: {one['rss_mb']:.0f} MB, {one['tree_mb']:.0f} MB)"
        )
        (out_dir / "parse10.parquet").unlink(missing_ok=True)
        shutil.rmtree(out_dir / "parse10-dataset", ignore_errors=True)
    shutil.rmtree(pycache, ignore_errors=True)
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
