"""Soak run: the proxy under steady load for a long time, and whether it stays steady.

A proxy that measures a retry policy has to run for hours without drifting: memory that grows with
requests served, file descriptors that leak on resets or timeouts, log lines that go missing, or a
POST that reaches the upstream twice would each make its numbers (or the service) wrong. One run:

- the flaky upstream simulator, as a child process: 10 % 5XX (500/502/503/504), 1 % connection
  resets, a slow tail (5 % of answers take 0.2 to 2 s), every attempt counted per request id;
- `albstats proxy` (recommended policy, access log on) as a child process, so its RSS and open file
  descriptors are its own (read from /proc every few seconds);
- an open-loop client: request *i* starts at ``i / rate`` seconds whatever happened before (a
  closed loop would slow down exactly when the proxy does, hiding the problem), 20 % POSTs with a
  body, the rest GETs, each with a unique ``X-Request-Id``.

Checks (:meth:`SoakResult.checks`): RSS after the warm-up stays within 10 % (max over min); open fds
stay bounded by the connections in flight (at most two per request in flight, client side and
upstream side, at the peak so far: a leak grows with requests served instead) and come back to the
idle count once the load stops; access-log lines == requests sent, all parsed by albstats; every
POST reached the upstream exactly once. Used by ``bench/bench_proxy_soak.py`` (10 minutes) and by a
30 s test.

The client must keep its schedule for any of that to mean something: on an overloaded machine it
falls behind, requests pile up in flight, and memory and descriptors grow for reasons that are not
the proxy's. A run whose client falls more than 2 s behind is stopped and reported as *inconclusive*
(:attr:`SoakResult.fell_behind`), never as a pass or a leak.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from albstats.proxy.upstream_sim import make_config


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (Linux /proc)."""
    m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    """Open file descriptors of a process (Linux /proc)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class SoakResult:
    """What a soak run measured; :meth:`checks` turns it into pass/fail per promise."""

    duration: float
    rate: float
    warmup: float
    sent: int = 0
    posts: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # client-side outcome per request
    # (seconds, RSS KiB, fds, peak requests in flight so far) under load
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    drained_fds: int = 0  # after the load stopped and idle connections were closed
    baseline_fds: int = 0  # before any load
    max_in_flight: int = 0
    log_lines: int = 0
    log_bad_lines: int = 0
    upstream_attempts: int = 0
    upstream_resets: int = 0
    post_attempts: dict[int, int] = field(default_factory=dict)  # attempts at the upstream -> POSTs
    proxy_summary: str = ""
    elapsed: float = 0.0
    max_lag: float = 0.0  # how late the client started a request, worst case (seconds)
    proxy_cpu: float = 0.0  # CPU seconds the proxy process used under load
    stderr_lines: int = 0  # lines the proxy wrote to stderr besides its start and summary lines
    sim_stderr_lines: int = 0  # the same for the simulator
    fell_behind: bool = False  # the client could not keep the rate: the run says nothing about the proxy

    def _steady(self) -> list[tuple[float, int, int, int]]:
        return [s for s in self.samples if s[0] >= self.warmup] or self.samples[-1:]

    def rss_spread(self) -> float:
        """(max - min) / min of RSS after the warm-up."""
        rss = [s[1] for s in self._steady()]
        if not rss or not min(rss):
            return float("nan")
        lo, hi = min(rss), max(rss)
        return (hi - lo) / lo

    def checks(self) -> dict[str, bool]:
        return {
            "client kept the rate (else inconclusive)": not self.fell_behind,
            "rss flat within 10 %": self.rss_spread() <= 0.10,
            "open fds bounded by requests in flight": bool(self.samples)
            and all(fds <= self.baseline_fds + 2 * peak + 8 for _, _, fds, peak in self.samples),
            "open fds back down after the load": self.drained_fds <= self.baseline_fds + 2,
            "access-log lines == requests": self.log_lines == self.sent and self.log_bad_lines == 0,
            "every POST reached the upstream exactly once": self.posts > 0 and self.post_attempts == {1: self.posts},
        }

    def render(self) -> str:
        steady = self._steady()
        rss = [s[1] for s in steady]
        fds = [s[2] for s in steady]
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        lines = [
            f"soak: {self.duration:g} s at {self.rate:g} req/s (warm-up {self.warmup:g} s), "
            f"{self.sent} requests ({self.posts} POSTs) in {self.elapsed:.1f} s; "
            f"at most {self.max_in_flight} in flight; client at most {self.max_lag * 1000:.0f} ms behind schedule"
            + (" -- FELL BEHIND, run stopped: INCONCLUSIVE (machine too loaded)" if self.fell_behind else ""),
            f"client saw: {codes}",
            f"upstream: {self.upstream_attempts} attempts, {self.upstream_resets} connection resets; "
            f"POSTs by attempts at the upstream: {dict(sorted(self.post_attempts.items()))}",
            f"proxy: {self.proxy_summary} ({self.stderr_lines} other lines on stderr; the simulator "
            f"{self.sim_stderr_lines})",
            f"proxy CPU: {self.proxy_cpu:.1f} s for {self.sent} requests "
            f"({self.proxy_cpu * 1000 / max(1, self.sent):.3f} ms per request)",
            f"RSS after warm-up: first {rss[0] / 1024:.1f} MiB, last {rss[-1] / 1024:.1f} MiB, "
            f"min {min(rss) / 1024:.1f}, max {max(rss) / 1024:.1f}, median {statistics.median(rss) / 1024:.1f} MiB "
            f"(spread {self.rss_spread():.1%}, {len(rss)} samples)",
            f"open fds: before load {self.baseline_fds}; after warm-up first {fds[0]}, last {fds[-1]}, "
            f"min {min(fds)}, max {max(fds)}; after the load drained {self.drained_fds}",
            f"access log: {self.log_lines} lines for {self.sent} requests, {self.log_bad_lines} malformed",
        ]
        lines += [f"{'PASS' if ok else 'FAIL'}: {name}" for name, ok in self.checks().items()]
        return "\n".join(lines)


def _sim_config(seed: int) -> Any:
    return make_config(
        listen_port=0,
        error_rate=0.10,
        error_statuses=(500, 502, 503, 504),
        reset_rate=0.01,
        slow_rate=0.05,
        slow_latency="uniform:0.2,2",
        latency="lognormal:0.003,0.5",
        seed=seed,
        max_tracked=50_000_000,
    )


def serve_sim(seed: int) -> None:
    """The soak's simulator, in its own process (``python -c``): on a shared machine a process of its
    own gets its own share of the CPU, so the client and the simulator do not starve each other."""
    from albstats.proxy.upstream_sim import run as run_sim

    run_sim(_sim_config(seed))


@dataclass
class _Child:
    """A child server whose stderr is read all the time: a pipe nobody reads fills up (64 KiB) and then
    blocks the child on its next log line, which would look exactly like a proxy that stalls."""

    proc: asyncio.subprocess.Process
    port: int
    tail: deque[str]
    lines: int = 0
    drain: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines += 1
            self.tail.append(line.decode(errors="replace").rstrip())


async def _start(cmd: list[str]) -> _Child:
    # A session of its own: with the kernel's autogroup scheduling, CPU is shared fairly between
    # sessions first, so children left in the caller's session would share one slice with the client.
    proc = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    assert proc.stderr is not None
    first = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", first)
    if not m:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{cmd[3] if len(cmd) > 3 else cmd}: did not start: {first.strip()}")
    child = _Child(proc, int(m.group(1)), deque(maxlen=20))
    child.drain = asyncio.ensure_future(child._read())
    return child


async def _stop(child: _Child) -> str:
    """SIGINT, then the last line of its stderr (the shutdown summary)."""
    proc = child.proc
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
    if child.drain is not None:
        await asyncio.wait([child.drain], timeout=5)
    return child.tail[-1] if child.tail else ""


def _proxy_cmd(upstream_port: int, log: Path) -> list[str]:
    code = "from albstats.cli import main; main()"
    return [
        sys.executable,
        "-c",
        code,
        "proxy",
        "--upstream",
        f"http://127.0.0.1:{upstream_port}",
        "--listen",
        "127.0.0.1:0",
        "--access-log",
        str(log),
    ]


async def soak(
    duration: float,
    rate: float,
    workdir: Path,
    *,
    warmup: float | None = None,
    sample_every: float = 2.0,
    post_share: float = 0.2,
    seed: int = 11,
    progress: bool = False,
) -> SoakResult:
    """Run one soak (bounded: ``duration * rate`` requests, then at most 60 s to drain)."""
    if not 1 <= duration <= 24 * 3600 or not 1 <= rate <= 5000:
        raise ValueError("duration 1 s .. 24 h, rate 1 .. 5000 req/s")
    warmup = min(60.0, duration / 3) if warmup is None else warmup
    res = SoakResult(duration=duration, rate=rate, warmup=warmup)
    sim_code = f"from albstats.proxy.soak import serve_sim; serve_sim({int(seed)})"
    sim = await _start([sys.executable, "-c", sim_code])
    sport = sim.port
    log = workdir / "soak-proxy.log"
    try:
        child = await _start(_proxy_cmd(sport, log))
        proc, pport = child.proc, child.port
    except BaseException:
        await _stop(sim)
        raise
    snapshot: dict[str, Any] = {}
    try:
        url = f"http://127.0.0.1:{pport}"
        res.baseline_fds = open_fds(proc.pid)
        cpu0 = cpu_seconds(proc.pid)
        in_flight = 0
        body = b'{"visit": "vaccination", "pet": 7}'

        async def one(client: aiohttp.ClientSession, i: int, post: bool) -> None:
            nonlocal in_flight
            in_flight += 1
            res.max_in_flight = max(res.max_in_flight, in_flight)
            try:
                hdrs = {"X-Request-Id": f"soak-{i}"}
                if post:
                    req = client.post(f"{url}/owners/{i % 97}/visits", data=body, headers=hdrs)
                else:
                    req = client.get(f"{url}/owners/{i % 97}/pets", headers=hdrs)
                async with req as r:
                    await r.read()
                    key = str(r.status)
            except (aiohttp.ClientError, TimeoutError) as e:
                key = type(e).__name__
            finally:
                in_flight -= 1
            res.statuses[key] = res.statuses.get(key, 0) + 1

        total = int(duration * rate)
        timeout = aiohttp.ClientTimeout(total=120)
        tasks: set[asyncio.Task[None]] = set()
        post_every = round(1 / post_share) if post_share > 0 else 0
        t0 = time.monotonic()
        next_sample = 0.0
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=512)) as client:
            for i in range(total):
                due = t0 + i / rate
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                else:
                    res.max_lag = max(res.max_lag, now - due)
                    if res.max_lag > 2.0:
                        res.fell_behind = True
                        break
                post = bool(post_every) and i % post_every == 0
                res.posts += post
                res.sent += 1
                task = asyncio.ensure_future(one(client, i, post))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                elapsed = time.monotonic() - t0
                if elapsed >= next_sample:
                    res.samples.append((elapsed, rss_kib(proc.pid), open_fds(proc.pid), res.max_in_flight))
                    next_sample += sample_every
                    if progress:
                        print(
                            f"\r{elapsed:6.0f}/{duration:g} s  {res.sent} sent  RSS "
                            f"{res.samples[-1][1] / 1024:.1f} MiB  fds {res.samples[-1][2]}  in flight {in_flight}",
                            end="",
                            file=sys.stderr,
                            flush=True,
                        )
            if tasks:
                await asyncio.wait(tasks, timeout=60)
            res.samples.append((time.monotonic() - t0, rss_kib(proc.pid), open_fds(proc.pid), res.max_in_flight))
            res.proxy_cpu = cpu_seconds(proc.pid) - cpu0
            async with client.get(f"http://127.0.0.1:{sport}/__sim/stats?detail=1") as r:
                snapshot = await r.json()
        res.elapsed = time.monotonic() - t0
        if progress:
            print(file=sys.stderr)
        # the client's connections are closed: the proxy's client-side sockets go; its pooled upstream
        # connections stay until their keep-alive expires (aiohttp: 15 s), so wait for that (at most 60 s)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and open_fds(proc.pid) > res.baseline_fds + 2:
            await asyncio.sleep(0.5)
        res.drained_fds = open_fds(proc.pid)
    finally:
        res.proxy_summary = await _stop(child)
        res.stderr_lines = child.lines - 1  # less the summary
        await _stop(sim)
        res.sim_stderr_lines = max(0, sim.lines - 2)  # less its start and summary lines
    res.upstream_attempts, res.upstream_resets = snapshot.get("attempts", 0), snapshot.get("resets", 0)
    for key, entry in snapshot.get("by_request", {}).items():
        if entry["method"] == "POST" and key.startswith("soak-"):
            res.post_attempts[entry["attempts"]] = res.post_attempts.get(entry["attempts"], 0) + 1
    missing = res.posts - sum(res.post_attempts.values())
    if missing:
        res.post_attempts[0] = missing
    _count_log(log, res)
    return res


def _count_log(path: Path, res: SoakResult) -> None:
    from albstats.parse import ParseStats, iter_batches

    stats = ParseStats()
    res.log_lines = sum(b.num_rows for b in iter_batches([str(path)], fields=["elb_status_code"], stats=stats))
    res.log_bad_lines = stats.bad_lines


def run(duration: float, rate: float, workdir: Path, **kw: Any) -> SoakResult:
    """Blocking entry point."""
    return asyncio.run(soak(duration, rate, workdir, **kw))
