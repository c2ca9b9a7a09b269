"""Benchmark: latency added by the albstats retry proxy, with nginx (the generated config) as the anchor.

Run by hand (needs nginx on the PATH):

    .venv/bin/python bench/bench_proxy.py [--requests 5000] [--concurrency 20] [--rounds 2]

A healthy simulator (no errors, no latency) is the upstream. The same bounded load (aiohttp client,
fixed request count and concurrency, 127.0.0.1 only) goes direct, through `albstats proxy`
(recommended profile, access log on) and through nginx (1 worker, ALB-format access log on). Each
target gets a warm-up, then the rounds alternate between targets so drift hits all of them alike.
Prints the median and p99 latency per request, requests per second, the added latency against
direct, and the CPU the proxy (or nginx, master and workers) spent per request: on a shared machine
the CPU figure is the steadier one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

BIN = Path(sys.executable).parent / "albstats"


def start(args: list[str]) -> tuple[subprocess.Popen, int]:
    p = subprocess.Popen([str(BIN), *args], stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not m:
        p.kill()
        raise SystemExit(f"could not start {args[0]}: {line}")
    return p, int(m.group(1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_load(url: str, n: int, conc: int) -> tuple[list[float], float, int]:
    lat: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(conc)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as cs:
        async def one(i: int) -> None:
            nonlocal errors
            async with sem:
                t = time.perf_counter()
                async with cs.get(f"{url}/bench?i={i}") as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                lat.append(time.perf_counter() - t)
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return lat, time.perf_counter() - t0, errors


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its children (nginx workers), from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    if not 100 <= a.requests <= 100_000 or not 1 <= a.concurrency <= 500:
        raise SystemExit("--requests 100..100000, --concurrency 1..500")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        raise SystemExit("nginx not found: apt-get install nginx")
    tmp = Path(tempfile.mkdtemp(prefix="albstats-bench-"))
    os.chmod(tmp, 0o777)
    procs: list[subprocess.Popen] = []
    try:
        sim, sport = start(["upstream-sim", "--listen", "127.0.0.1:0", "--scenario", "healthy"])
        procs.append(sim)
        prox, pport = start(["proxy", "--upstream", f"http://127.0.0.1:{sport}", "--listen", "127.0.0.1:0",
                             "--access-log", str(tmp / "proxy.log")])
        procs.append(prox)
        nport = free_port()
        conf = subprocess.run([str(BIN), "proxy", "nginx-config", "--upstream", f"127.0.0.1:{sport}", "--listen",
                               f"127.0.0.1:{nport}", "--prefix", str(tmp), "--workers", "1"],
                              capture_output=True, text=True, check=True).stdout
        (tmp / "nginx.conf").write_text(conf)
        ng = subprocess.Popen([nginx, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf"),
                               "-g", "daemon off;"], env={**os.environ, "TZ": "UTC"})
        procs.append(ng)
        time.sleep(0.5)
        targets = {"direct": f"http://127.0.0.1:{sport}", "albstats proxy": f"http://127.0.0.1:{pport}",
                   "nginx": f"http://127.0.0.1:{nport}"}
        results: dict[str, list[tuple[list[float], float, int]]] = {k: [] for k in targets}
        pid_of = {"direct": None, "albstats proxy": prox.pid, "nginx": ng.pid}
        cpu: dict[str, float] = {k: 0.0 for k in targets}
        for url in targets.values():
            asyncio.run(run_load(url, 300, a.concurrency))  # warm-up
        for _ in range(a.rounds):
            for name, url in targets.items():
                pid = pid_of[name]
                c0 = cpu_seconds(pid) if pid else 0.0
                results[name].append(asyncio.run(run_load(url, a.requests, a.concurrency)))
                cpu[name] += (cpu_seconds(pid) - c0) if pid else 0.0
        print(f"{a.requests} GETs x {a.rounds} rounds at concurrency {a.concurrency}, 127.0.0.1, "
              f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}; "
              f"{subprocess.run([nginx, '-v'], capture_output=True, text=True).stderr.strip()}")
        print(f"{'target':16}{'median ms':>10}{'p99 ms':>9}{'req/s':>9}{'+median ms':>12}{'+p99 ms':>9}"
              f"{'errors':>8}{'proxy CPU ms/req':>18}")
        base_med = base_p99 = 0.0
        for name, runs in results.items():
            lat = [x for r in runs for x in r[0]]
            rps = statistics.mean(len(r[0]) / r[1] for r in runs)
            med, p99 = pct(lat, 50) * 1000, pct(lat, 99) * 1000
            if name == "direct":
                base_med, base_p99 = med, p99
            err = sum(r[2] for r in runs)
            per = f"{cpu[name] * 1000 / len(lat):.3f}" if pid_of[name] else "-"
            print(f"{name:16}{med:10.2f}{p99:9.2f}{rps:9.0f}{med - base_med:12.2f}{p99 - base_p99:9.2f}{err:8}"
                  f"{per:>18}")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGQUIT if p.args[0] == nginx else signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
