"""A flaky upstream for demos, tests and benchmarks, modelled on the vet-hospital system.

Each request draws, independently: a connection reset before any response (``reset_rate``), a 5XX
(``error_rate``, statuses from ``error_statuses``), and a latency (``slow_rate`` of requests take
``slow_latency``, the rest ``latency``). Profile ``hosp`` is the original system: about 10 % 5XX,
15 % of responses taking 2 to 20 s, 2 % connection resets.

It counts attempts per request, keyed by the ``X-Request-Id`` header (or the ``X-Amzn-Trace-Id``
Root), and serves the counts at ``GET /__sim/stats`` (``?detail=1`` adds per-request attempt times
and statuses). Every other path answers with JSON describing what arrived: method, path, headers
(as received, in order) and the SHA-256 and length of the body, so tests can check byte identity
and header handling at the upstream. Control headers, for tests: ``X-Sim-Status`` (force a status),
``X-Sim-Fail-Attempts: N`` (the first N attempts of this request fail with ``X-Sim-Status`` or 503),
``X-Sim-Delay`` (seconds; with ``X-Sim-Slow-Attempts: N`` only the first N attempts), ``X-Sim-Retry-After``
(sent with a failure), ``X-Sim-Reset-Attempts: N`` (the first N attempts are reset), ``X-Sim-Break-Body``
(send the headers and half the body, then reset), ``X-Sim-Hop-Headers`` (add hop-by-hop response headers).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from albstats.errors import UsageError

_ROOT_RE = re.compile(r"Root=([0-9A-Za-z-]+)")


@dataclass(frozen=True)
class Latency:
    """A latency distribution: ``0.05`` / ``fixed:S``, ``uniform:A,B``, ``lognormal:MEDIAN,SIGMA``, ``exp:MEAN``."""

    kind: str
    a: float = 0.0
    b: float = 0.0

    @classmethod
    def parse(cls, spec: str | float) -> Latency:
        text = str(spec).strip()
        kind, _, args = text.partition(":") if ":" in text else ("fixed", "", text)
        try:
            nums = [float(x) for x in args.split(",") if x.strip()] if args else []
        except ValueError:
            raise UsageError(f"latency {text!r}: numbers expected, e.g. uniform:2,20") from None
        need = {"fixed": 1, "uniform": 2, "lognormal": 2, "exp": 1}
        if kind not in need or len(nums) != need[kind] or any(n < 0 for n in nums):
            raise UsageError(f"latency {text!r}: use SECONDS, fixed:S, uniform:A,B, lognormal:MEDIAN,SIGMA or exp:MEAN")
        return cls(kind, nums[0], nums[1] if len(nums) > 1 else 0.0)

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "lognormal":
            return self.a * rng.lognormvariate(0.0, self.b) if self.a > 0 else 0.0
        return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"{self.a:g}"
        if self.kind == "exp":
            return f"exp:{self.a:g}"
        return f"{self.kind}:{self.a:g},{self.b:g}"


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the simulator (see the module docstring)."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 8081
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (503,)
    slow_rate: float = 0.0
    latency: Latency = field(default_factory=lambda: Latency("fixed", 0.0))
    slow_latency: Latency = field(default_factory=lambda: Latency("uniform", 2.0, 20.0))
    reset_rate: float = 0.0
    retry_after: float | None = None  # seconds, sent with 503s when set
    seed: int | None = None
    max_tracked: int = 100_000  # per-request counters kept; beyond this only totals grow

    def describe(self) -> str:
        return (
            f"error-rate {self.error_rate:g} ({','.join(map(str, self.error_statuses))}), slow-rate "
            f"{self.slow_rate:g} ({self.slow_latency}), latency {self.latency}, reset-rate {self.reset_rate:g}, "
            f"seed {self.seed}"
        )


PROFILES: dict[str, dict[str, Any]] = {
    "hosp": dict(
        error_rate=0.10,
        error_statuses=(500, 502, 503, 504),
        slow_rate=0.15,
        latency=Latency("lognormal", 0.15, 0.6),
        slow_latency=Latency("uniform", 2.0, 20.0),
        reset_rate=0.02,
    ),
    "healthy": dict(error_rate=0.0, slow_rate=0.0, latency=Latency("fixed", 0.0), reset_rate=0.0),
}


def make_config(profile: str | None = None, **overrides: Any) -> SimConfig:
    """A profile (or the healthy default) with some fields changed; None values are ignored."""
    base: dict[str, Any] = {}
    if profile:
        if profile not in PROFILES:
            raise UsageError(f"unknown simulator profile {profile!r}; choose one of: {', '.join(PROFILES)}")
        base.update(PROFILES[profile])
    base.update({k: v for k, v in overrides.items() if v is not None})
    for k in ("latency", "slow_latency"):
        if k in base and not isinstance(base[k], Latency):
            base[k] = Latency.parse(base[k])
    if "error_statuses" in base:
        base["error_statuses"] = tuple(int(s) for s in base["error_statuses"])
        if not base["error_statuses"] or any(not 100 <= s <= 599 for s in base["error_statuses"]):
            raise UsageError("--error-statuses: HTTP status codes expected, e.g. 502,503")
    cfg = replace(SimConfig(), **base)
    for name in ("error_rate", "slow_rate", "reset_rate"):
        v = getattr(cfg, name)
        if not 0.0 <= v <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 1, got {v}")
    return cfg


@dataclass
class _Entry:
    method: str
    attempts: int = 0
    times: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    body_hashes: list[str] = field(default_factory=list)


class UpstreamSim:
    """The simulator server; ``await start()`` returns the bound port."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.port = config.listen_port
        self._runner: web.AppRunner | None = None
        self.reset()

    def reset(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.attempts = 0
        self.resets = 0
        self.untracked = 0
        self.statuses: dict[str, int] = {}
        self.methods: dict[str, int] = {}
        self._anon = 0

    async def start(self) -> int:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_get("/__sim/stats", self._stats)
        app.router.add_post("/__sim/reset", self._reset)
        app.router.add_get("/__sim/health", self._health)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.listen_host, self.config.listen_port, backlog=1024)
        await site.start()
        addresses = self._runner.addresses  # getsockname() of the site's sockets: the port the OS picked for 0
        if addresses:
            self.port = addresses[0][1]
        return self.port

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def snapshot(self, detail: bool = False) -> dict[str, Any]:
        """Counts so far; ``detail`` adds per-request attempt times (epoch seconds) and statuses."""
        hist: dict[str, int] = {}
        for e in self.entries.values():
            hist[str(e.attempts)] = hist.get(str(e.attempts), 0) + 1
        out: dict[str, Any] = {
            "attempts": self.attempts,
            "requests": len(self.entries) + self.untracked,
            "resets": self.resets,
            "statuses": self.statuses,
            "methods": self.methods,
            "attempts_histogram": hist,
            "untracked": self.untracked,
        }
        if detail:
            out["by_request"] = {
                k: {
                    "method": e.method,
                    "attempts": e.attempts,
                    "times": e.times,
                    "statuses": e.statuses,
                    "body_hashes": e.body_hashes,
                }
                for k, e in self.entries.items()
            }
        return out

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot(detail=request.query.get("detail") in ("1", "true")))

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    def _key(self, request: web.Request) -> str | None:
        rid = request.headers.get("X-Request-Id")
        if rid:
            return rid
        m = _ROOT_RE.search(request.headers.get("X-Amzn-Trace-Id", ""))
        return m.group(1) if m else None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        cfg, rng = self.config, self.rng
        now = time.time()
        body = await request.read()
        key = self._key(request)
        if key is None:
            self._anon += 1
            key = f"anon-{self._anon}"
        entry = self.entries.get(key)
        if entry is None and len(self.entries) < cfg.max_tracked:
            entry = self.entries[key] = _Entry(request.method)
        elif entry is None:
            self.untracked += 1
        attempt = 1
        digest = hashlib.sha256(body).hexdigest()
        if entry is not None:
            entry.attempts += 1
            entry.times.append(now)
            entry.body_hashes.append(digest)
            attempt = entry.attempts
        self.attempts += 1
        self.methods[request.method] = self.methods.get(request.method, 0) + 1

        h = request.headers
        forced = int(h["X-Sim-Status"]) if h.get("X-Sim-Status", "").isdigit() else None
        fail_n = int(h.get("X-Sim-Fail-Attempts", "0") or 0) if h.get("X-Sim-Fail-Attempts", "").isdigit() else None
        reset_n = int(h["X-Sim-Reset-Attempts"]) if h.get("X-Sim-Reset-Attempts", "").isdigit() else None
        # draw all three every time so one request's fate does not shift the others' with the knobs
        r_reset, r_err, r_slow = rng.random(), rng.random(), rng.random()
        err_status = rng.choice(cfg.error_statuses)
        delay = (cfg.slow_latency if r_slow < cfg.slow_rate else cfg.latency).sample(rng)
        slow_n = h.get("X-Sim-Slow-Attempts", "")
        if "X-Sim-Delay" in h and (not slow_n.isdigit() or attempt <= int(slow_n)):
            try:
                delay = float(h["X-Sim-Delay"])
            except ValueError:
                pass
        reset = (attempt <= reset_n) if reset_n is not None else r_reset < cfg.reset_rate
        if fail_n is not None:
            status = (forced or 503) if attempt <= fail_n else 200
        elif forced is not None:
            status = forced
        else:
            status = err_status if r_err < cfg.error_rate else 200
        if delay > 0:
            await asyncio.sleep(delay)
        if reset:
            self.resets += 1
            if entry is not None:
                entry.statuses.append("reset")
            self._count("reset")
            _reset_connection(request)
            raise asyncio.CancelledError  # nothing more to write; the transport is gone
        if entry is not None:
            entry.statuses.append(str(status))
        self._count(str(status))
        payload = {
            "key": key,
            "attempt": attempt,
            "method": request.method,
            "path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_sha256": digest,
            "body_len": len(body),
        }
        if "X-Sim-Break-Body" in h:
            data = json.dumps(payload).encode() + b" " * 200_000  # above the proxy's one-write size: streamed
            sr = web.StreamResponse(status=status, headers={"Content-Length": str(len(data))})
            await sr.prepare(request)
            await sr.write(data[: len(data) // 2])
            await asyncio.sleep(0.05)
            _reset_connection(request)
            raise asyncio.CancelledError
        resp = web.json_response(payload, status=status, dumps=json.dumps)
        if "X-Sim-Hop-Headers" in h:
            for k, v in (
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authenticate", "Basic"),
                ("Trailer", "X-Checksum"),
                ("X-Hop", "1"),
                ("Connection", "X-Hop"),
            ):
                resp.headers[k] = v
        if status >= 500:
            ra = h.get("X-Sim-Retry-After") or (
                f"{cfg.retry_after:g}" if cfg.retry_after is not None and status == 503 else None
            )
            if ra:
                resp.headers["Retry-After"] = ra
        return resp

    def _count(self, what: str) -> None:
        self.statuses[what] = self.statuses.get(what, 0) + 1


def _reset_connection(request: web.Request) -> None:
    """Close the connection with a TCP RST, before any response byte (what a crashing backend does)."""
    tr = request.transport
    if tr is None:
        return
    sock = tr.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    tr.abort()


async def serve(config: SimConfig, stop: asyncio.Event | None = None) -> dict[str, Any]:
    """Run until ``stop`` is set (or SIGINT/SIGTERM); returns the final counts."""
    sim = UpstreamSim(config)
    await sim.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    print(
        f"albstats upstream-sim: listening on http://{config.listen_host}:{sim.port}; {config.describe()}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await sim.close()
    snap = sim.snapshot()
    print(
        f"albstats upstream-sim: {snap['attempts']} attempts for {snap['requests']} requests, "
        f"{snap['resets']} resets, statuses {snap['statuses']}",
        file=sys.stderr,
        flush=True,
    )
    return snap


def run(config: SimConfig) -> dict[str, Any]:
    return asyncio.run(serve(config))
