"""Benchmark: what the albstats retry proxy costs, against a bare aiohttp forwarder (Python's floor).

Run by hand (needs wrk: `apt-get install wrk`; nginx is an optional extra row):

    .venv/bin/python bench/bench_proxy.py [--seconds 5] [--rounds 3] [--no-nginx]

Why a bare forwarder: the proxy is a measuring instrument, so what matters is what it adds on top of
the least any aiohttp proxy must do. The bare forwarder (in this file, ``--serve bare``) reads the
request, sends it upstream through an aiohttp client configured exactly as the proxy's, and returns
the response: no retries, no budget, no access log, no trace header. The upstream is a minimal
aiohttp server answering 200 with a short body (``--serve upstream``), so the upstream itself takes
as little of the shared CPU as possible.

Load: wrk with one thread, for a fixed time per run (bounded), on 127.0.0.1, at concurrency 1 and 32.
Every round runs every target at both concurrencies, alternating, so drift on a loaded machine hits
all targets alike. Per target: requests/s, p50/p99 latency, the latency it adds over going direct,
and the CPU the target process spent per request (from /proc: user+system of the process and its
children). The verdict lines check the issue's targets, measured side by side in this run:

- proxy CPU per request at most 1.2x the bare forwarder's (concurrency 32, where CPU dominates);
- added p50 at concurrency 1 at most 0.5 ms over the bare forwarder's added p50;
- throughput at concurrency 32 at least 80 % of the bare forwarder's.

Afterwards the proxy's access log is parsed back with albstats: its lines must equal the requests
wrk completed through the proxy (the log stays complete and in ALB format).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "albstats"
HERE = Path(__file__).resolve()

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99)))
end
"""


# --- the two helper servers (run as subprocesses of this file) -------------------------------------

HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "content-length",
    }
)


async def _serve(kind: str, upstream: str | None) -> None:
    import aiohttp
    from aiohttp import web
    from multidict import CIMultiDict

    if kind == "upstream":

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            await request.read()
            return web.Response(body=b'{"ok": true}\n', content_type="application/json")

        session = None
    else:
        # the same client settings as albstats.proxy.server.RetryProxy.start
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000, ttl_dns_cache=60),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=25.0),
        )
        base = upstream.rstrip("/") if upstream else ""

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            body = await request.read() if request.body_exists else None
            headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP)
            async with session.request(
                request.method, base + request.raw_path, headers=headers, data=body, allow_redirects=False
            ) as r:
                data = await r.read()
                out = CIMultiDict((k, v) for k, v in r.headers.items() if k.lower() not in HOP)
                return web.Response(status=r.status, reason=r.reason, body=data, headers=out)

    server = web.Server(handler, access_log=None)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"{kind}: listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    if session is not None:
        await session.close()


# --- measuring -------------------------------------------------------------------------------------


def start(cmd: list[str]) -> tuple[subprocess.Popen, int]:
    """A server in a session of its own (the kernel's autogroup scheduling shares CPU between sessions
    first, so every target gets the same kind of slice), and the port it prints when listening."""
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = p.stderr.readline()  # type: ignore[union-attr]
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not m:
        p.kill()
        raise SystemExit(f"could not start {cmd}: {line}")
    # keep reading its stderr: a full pipe would block the server on its next log line
    threading.Thread(target=p.stderr.read, daemon=True).start()  # type: ignore[union-attr]
    return p, int(m.group(1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its direct children (nginx workers), from /proc (Linux)."""
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


def wrk(url: str, conc: int, seconds: float, script: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{conc}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"{url}/owners/7/pets?page=2",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    m = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if not m:
        raise SystemExit(f"wrk failed: {out.stdout}{out.stderr}")
    return json.loads(m.group(1))


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (what `uptime` shows)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="wrk run length per target and concurrency")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-nginx", action="store_true", help="leave out the nginx row")
    ap.add_argument("--serve", choices=("upstream", "bare"), help=argparse.SUPPRESS)
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        asyncio.run(_serve(a.serve, a.upstream))
        return
    if not 1 <= a.seconds <= 60 or not 1 <= a.rounds <= 20:
        raise SystemExit("--seconds 1..60, --rounds 1..20")
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    use_nginx = not a.no_nginx and os.access(nginx, os.X_OK)
    tmp = Path(tempfile.mkdtemp(prefix="albstats-bench-"))
    os.chmod(tmp, 0o777)
    script = tmp / "report.lua"
    script.write_text(WRK_SCRIPT)
    procs: list[subprocess.Popen] = []
    load_before = load_average()
    try:
        up, uport = start([sys.executable, str(HERE), "--serve", "upstream"])
        procs.append(up)
        upstream = f"http://127.0.0.1:{uport}"
        bare, bport = start([sys.executable, str(HERE), "--serve", "bare", "--upstream", upstream])
        procs.append(bare)
        prox, pport = start(
            [
                str(BIN),
                "proxy",
                "--upstream",
                upstream,
                "--listen",
                "127.0.0.1:0",
                "--access-log",
                str(tmp / "proxy.log"),
            ]
        )
        procs.append(prox)
        targets = {
            "direct": (upstream, None),
            "bare forwarder": (f"http://127.0.0.1:{bport}", bare.pid),
            "albstats proxy": (f"http://127.0.0.1:{pport}", prox.pid),
        }
        if use_nginx:
            nport = free_port()
            conf = subprocess.run(
                [
                    str(BIN),
                    "proxy",
                    "nginx-config",
                    "--upstream",
                    f"127.0.0.1:{uport}",
                    "--listen",
                    f"127.0.0.1:{nport}",
                    "--prefix",
                    str(tmp),
                    "--workers",
                    "1",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            (tmp / "nginx.conf").write_text(conf)
            ng = subprocess.Popen(
                [
                    nginx,
                    "-p",
                    str(tmp),
                    "-e",
                    str(tmp / "error.log"),
                    "-c",
                    str(tmp / "nginx.conf"),
                    "-g",
                    "daemon off;",
                ],
                env={**os.environ, "TZ": "UTC"},
                start_new_session=True,
            )
            procs.append(ng)
            time.sleep(0.5)
            targets["nginx (1 worker)"] = (f"http://127.0.0.1:{nport}", ng.pid)
        concs = (1, 32)
        runs: dict[tuple[str, int], list[dict[str, float]]] = {(t, c): [] for t in targets for c in concs}
        proxy_requests = 0
        in_flight_bound = 0  # requests wrk abandons when a run ends: logged by the proxy, not counted by wrk
        for name, (url, _) in targets.items():
            r = wrk(url, 8, 1, script)  # warm-up: connections, caches, first-call paths
            if name == "albstats proxy":
                proxy_requests += int(r["requests"])
                in_flight_bound += 8
        for _ in range(a.rounds):
            for c in concs:
                for name, (url, pid) in targets.items():
                    c0 = cpu_seconds(pid) if pid else 0.0
                    r = wrk(url, c, a.seconds, script)
                    r["cpu_s"] = (cpu_seconds(pid) - c0) if pid else float("nan")
                    runs[(name, c)].append(r)
                    if name == "albstats proxy":
                        proxy_requests += int(r["requests"])
                        in_flight_bound += c
        load_after = load_average()
        print(
            f"wrk -t1, {a.seconds:g} s per run, {a.rounds} rounds alternating targets; 127.0.0.1, "
            f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}; load average {load_before} (start), "
            f"{load_after} (end)"
        )
        print(
            f"{'target':18}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'+p50 ms':>9}{'+p99 ms':>9}"
            f"{'CPU ms/req':>12}{'errors':>8}"
        )
        summary: dict[tuple[str, int], dict[str, float]] = {}
        for c in concs:
            for name in targets:
                rs = runs[(name, c)]
                req = sum(r["requests"] for r in rs)
                summary[(name, c)] = {
                    "rps": statistics.median(r["requests"] / (r["duration_us"] / 1e6) for r in rs),
                    "p50": statistics.median(r["p50_us"] for r in rs) / 1000,
                    "p99": statistics.median(r["p99_us"] for r in rs) / 1000,
                    "cpu": sum(r["cpu_s"] for r in rs) * 1000 / req if req else float("nan"),
                    "errors": sum(r["errors"] + r["non2xx"] for r in rs),
                }
            d = summary[("direct", c)]
            for name in targets:
                s = summary[(name, c)]
                cpu = "-" if name == "direct" else f"{s['cpu']:.3f}"
                print(
                    f"{name:18}{c:5}{s['rps']:9.0f}{s['p50']:9.3f}{s['p99']:9.3f}{s['p50'] - d['p50']:9.3f}"
                    f"{s['p99'] - d['p99']:9.3f}{cpu:>12}{int(s['errors']):8}"
                )
        p32, b32 = summary[("albstats proxy", 32)], summary[("bare forwarder", 32)]
        p1, b1 = summary[("albstats proxy", 1)], summary[("bare forwarder", 1)]
        # CPU per request over all runs at both concurrencies, as well as at 32 alone
        cpu_ratio = p32["cpu"] / b32["cpu"]
        added = p1["p50"] - b1["p50"]
        thr = p32["rps"] / b32["rps"]
        print()
        print(
            f"proxy CPU/request vs bare forwarder (conc 32): {cpu_ratio:.2f}x (target <= 1.2x): "
            f"{'MET' if cpu_ratio <= 1.2 else 'MISSED'}"
        )
        # each round's own ratio (the two runs were next to each other): how far one run's verdict can swing
        per_round = [
            (px["cpu_s"] / px["requests"]) / (bx["cpu_s"] / bx["requests"])
            for px, bx in zip(runs[("albstats proxy", 32)], runs[("bare forwarder", 32)], strict=True)
        ]
        print(f"  by round: {' '.join(f'{r:.2f}x' for r in per_round)}")
        print(
            f"proxy added p50 over bare forwarder (conc 1): {added:+.3f} ms (target <= 0.5 ms): "
            f"{'MET' if added <= 0.5 else 'MISSED'}"
        )
        print(
            f"proxy throughput vs bare forwarder (conc 32): {thr:.0%} (target >= 80 %): "
            f"{'MET' if thr >= 0.8 else 'MISSED'}"
        )
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGQUIT if p.args[0] == nginx else signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    try:
        from albstats.parse import ParseStats, iter_batches

        stats = ParseStats()
        codes: dict[int, int] = {}
        for b in iter_batches([str(tmp / "proxy.log")], fields=["elb_status_code"], stats=stats):
            for code in b.column("elb_status_code").to_pylist():
                codes[code] = codes.get(code, 0) + 1
        lines = sum(codes.values())
        extra = lines - proxy_requests
        ok = stats.bad_lines == 0 and 0 <= extra <= in_flight_bound
        print(
            f"access log: {lines} lines parsed by albstats ({stats.bad_lines} malformed), statuses {codes}; "
            f"wrk completed {proxy_requests} requests through the proxy; {extra} more lines, at most "
            f"{in_flight_bound} allowed (in flight when a wrk run stopped): {'COMPLETE' if ok else 'INCOMPLETE'}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
