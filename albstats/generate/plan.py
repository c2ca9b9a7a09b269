"""The traffic plan: which files a run writes, how many lines each gets, and the draws they come from.

Why a module of its own: the plan is where determinism lives. The incident windows and scanner
bursts come from ``(seed, 0x1DC)``; every file has its own stream from ``(seed, interval, node)``
with :class:`numpy.random.SeedSequence`, from which only raw PCG64 doubles and bytes are taken
(their bit streams are stable across NumPy versions). :class:`Draws` names the uniform columns a
file draws per line; reordering them, or drawing anything else from a file's stream, changes
every byte written.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

import numpy as np

from albstats.generate.world import SCANNERS, World, random_hex

INTERVAL_S = 300
#: Random hex digits drawn per line: the trace id's random part, then the connection's TID.
TRACE_HEX = 24
TID_HEX = 32
HEX_PER_LINE = TRACE_HEX + TID_HEX
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def diurnal(t_s: np.ndarray) -> np.ndarray:
    """Traffic shape over a UTC day, mean 1: low at 03:00, peak at 15:00."""
    hours = (t_s % 86400) / 3600.0
    return 1.0 + 0.55 * np.sin(2 * np.pi * (hours - 9.0) / 24.0)


def poisson(u: float, lam: float, z: float) -> int:
    """A Poisson draw from uniforms: inversion for small means, the normal approximation above 40."""
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, int(round(lam + math.sqrt(lam) * z)))
    k, p = 0, math.exp(-lam)
    c = p
    while u > c and k < 200:
        k += 1
        p *= lam / k
        c += p
    return k


# --- the plan ----------------------------------------------------------------------------------


class Plan:
    """Which files to write and how many lines each gets."""

    def __init__(
        self, world: World, seed: int, start: datetime, intervals: int, rps: float | None, lines: int | None
    ) -> None:
        p = world.profile
        self.start = start
        self.start_s = int(start.timestamp())
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x1DC])))
        span_s = intervals * INTERVAL_S
        ndays = max(1, math.ceil(span_s / 86400))
        # incidents: per started day, on the api group mostly (where the bad target lives)
        self.incidents: list[tuple[int, int, int]] = []
        self.bursts: list[tuple[int, int, int]] = []  # (start_s, end_s, scanner index)
        for d in range(ndays):
            day0 = self.start_s + d * 86400
            lo, hi = p.incidents_per_day
            u = rng.random(16).tolist()
            for i in range(lo + min(int(u[0] * (hi - lo + 1)), hi - lo)):
                dur = int((20 + u[3 * i + 1] * 40) * 60)
                s0 = day0 + int(u[3 * i + 2] * max(1, min(86400, span_s) - dur))
                s0 -= s0 % 60
                self.incidents.append((s0, s0 + dur, 0 if u[3 * i + 3] < 0.25 else 1))
            lo, hi = p.scan_bursts_per_day
            u = rng.random(20).tolist()
            first = int(u[19] * len(SCANNERS))
            for i in range(lo + min(int(u[0] * (hi - lo + 1)), hi - lo)):
                dur = int((10 + u[3 * i + 1] * 30) * 60)
                s0 = day0 + int(u[3 * i + 2] * max(1, min(86400, span_s) - dur))
                self.bursts.append((s0, s0 + dur, (first + i) % len(SCANNERS)))  # a different scanner each time
        self.incidents.sort()
        self.bursts.sort()
        # expected normal and scanner lines per (interval, node)
        mids = self.start_s + INTERVAL_S * (np.arange(intervals) + 0.5)
        shape = diurnal(mids)
        nn = p.nodes
        if lines is not None:
            base_rps = 1.0
        else:
            base_rps = float(rps or 0.0)
        self.normal = shape * base_rps * INTERVAL_S / nn
        burst_s = sum(min(e, self.start_s + span_s) - max(s, self.start_s) for s, e, _ in self.bursts) or 1
        # scanners add scan_share of all normal traffic: a fifth as background probes all day,
        # the rest concentrated in their bursts
        scan_total = float(self.normal.sum()) * nn * p.scan_share * 0.8
        self.scan = self.normal * (p.scan_share * 0.2)
        for s, e, _ in self.bursts:
            for k in range(
                max(0, (s - self.start_s) // INTERVAL_S), min(intervals, (e - self.start_s) // INTERVAL_S + 1)
            ):
                a, b = self.start_s + k * INTERVAL_S, self.start_s + (k + 1) * INTERVAL_S
                ov = max(0, min(b, e) - max(a, s))
                self.scan[k] += scan_total * ov / burst_s / nn
        self.exact: np.ndarray | None = None
        if lines is not None:  # exact total: largest remainder over every (interval, node)
            w = np.repeat((self.normal + self.scan)[:, None], nn, axis=1).ravel()
            q = w / w.sum() * lines
            base = np.floor(q).astype(np.int64)
            rest = int(lines - base.sum())
            if rest:
                order = np.argsort(-(q - base), kind="stable")[:rest]
                base[order] += 1
            self.exact = base.reshape(intervals, nn)

    def burst_at(self, s: int) -> int:
        """The scanner bursting at epoch second ``s``, or -1."""
        for a, b, sc in self.bursts:
            if a <= s < b:
                return sc
        return -1


@dataclass(frozen=True)
class Draws:
    """The uniforms of a batch of lines, one named column per decision (the columns of the ``(n, 20)``
    draw of :func:`draw_file`, in this order). Session-level columns are read at the session's first line.
    """

    endpoint: np.ndarray  # which route, by weight
    target: np.ndarray  # which target of the route's group
    outcome: np.ndarray  # WAF block, ELB 5XX, target 5XX, 4XX, 460 or success
    elb_5xx_kind: np.ndarray  # 502, 503 or 504
    slow: np.ndarray  # in the slow tail
    gave_up: np.ndarray  # a slow request's client closes first (460)
    latency_u1: np.ndarray  # the target time's lognormal (Box-Muller pair)
    latency_u2: np.ndarray
    slow_time: np.ndarray  # log-uniform 2 to 20 s
    listener: np.ndarray  # session: HTTP, HTTPS or h2 listener
    desync: np.ndarray  # desync mitigation classification
    client: np.ndarray  # session: client (and from it the client port)
    new_session: np.ndarray  # this request opens a new connection
    tls: np.ndarray  # session: TLS protocol and cipher
    path: np.ndarray  # which of the route's paths
    code: np.ndarray  # which of the route's status codes
    received: np.ndarray  # request bytes; a WebSocket's lifetime
    sent: np.ndarray  # response bytes
    size: np.ndarray  # sizes of 304/4XX/5XX/slow responses, request time, cert reuse, 504 kind
    jitter: np.ndarray  # durations of ELB errors and 460s

    @classmethod
    def of(cls, u: np.ndarray) -> Draws:
        """Name the columns of an ``(n, NDRAWS)`` array (views, no copies)."""
        return cls(*u.T)


NDRAWS = len(fields(Draws))


@dataclass(frozen=True)
class ScannerDraws:
    """A scanner line's decisions: the first uniforms of its row of :class:`Draws`, read with their own meanings."""

    attack: float  # which attack path
    target: float  # which target of the group
    fate: float  # malformed probe, WAF block or rejected as Severe
    verb: float  # GET or POST
    variant: float  # a probe's malformed request line; a shell probe's 400 or 404
    host: float  # the domain or the load balancer's DNS name
    latency: float  # target time; a probe's request creation time
    received: float  # request bytes
    sent: float  # response bytes
    tls: float  # the HTTPS listener
    suite: float  # TLS protocol and cipher
    port: float  # client port (a new connection per request)
    probe_scanner: float  # which port scanner, outside any burst

    @classmethod
    def of(cls, row: list[float]) -> ScannerDraws:
        """The named decisions of one line's row of uniforms."""
        return cls(*row[: len(fields(cls))])


@dataclass
class FileJob:
    """One file to write: which interval and node, its key's random part, and the draws of its lines."""

    k: int  # interval index
    node: int
    ip: str
    end: datetime  # the interval's end (the key's timestamp and delivery date)
    key_suffix: str  # the random part of the S3 key
    n: int
    offs: np.ndarray  # microseconds since the interval start, sorted
    is_scan: np.ndarray
    U: np.ndarray  # (n, NDRAWS) uniforms, named by Draws
    hexes: str  # HEX_PER_LINE random hex digits per line


def draw_file(rng: np.random.Generator, n_normal: int, n_scan: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """A file's line times (sorted), which lines are a scanner's, its uniforms and its hex digits."""
    n = n_normal + n_scan
    # time (when the response was sent), in microseconds since the interval start, sorted
    offs = np.floor(rng.random(n) * (INTERVAL_S * 1_000_000)).astype(np.int64)
    is_scan = np.zeros(n, dtype=bool)
    if n_scan:
        # which lines are the scanner's: argsort of uniforms (raw PCG64 doubles are stable across
        # NumPy versions, Generator.permutation's algorithm is not promised to be)
        is_scan[np.argsort(rng.random(n), kind="stable")[:n_scan]] = True
    order = np.argsort(offs, kind="stable")
    return offs[order], is_scan[order], rng.random((n, NDRAWS)), random_hex(rng, HEX_PER_LINE // 2 * n)


def file_jobs(
    world: World, plan: Plan, seed: int, intervals: int, only_intervals: Collection[int] | None = None
) -> Iterator[FileJob]:
    """Every file of the run in key order (interval, then node), drawn lazily; intervals without requests
    give no file (as ALB writes none). ``only_intervals`` draws just those, exactly as a full run would."""
    for k in range(intervals):
        if only_intervals is not None and k not in only_intervals:
            continue
        end = plan.start + timedelta(seconds=(k + 1) * INTERVAL_S)
        for j, ip in enumerate(world.nodes):
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, k, j])))
            cu = rng.random(4).tolist()
            rnd = "".join(_ALNUM[b % 36] for b in rng.bytes(8))
            if plan.exact is not None:
                total = int(plan.exact[k, j])
                lam_s = plan.scan[k]
                lam_n = plan.normal[k]
                share = lam_s / (lam_s + lam_n) if lam_s + lam_n > 0 else 0.0
                n_scan = min(total, int(total * share + cu[2]))
                n_norm = total - n_scan
            else:
                z = math.sqrt(-2.0 * math.log(1.0 - cu[0])) * math.cos(2.0 * math.pi * cu[1])
                n_norm = poisson(cu[0], float(plan.normal[k]), z)
                n_scan = poisson(cu[2], float(plan.scan[k]), -z)
            if n_norm + n_scan == 0:
                continue  # ALB writes no file for an interval without requests
            offs, is_scan, U, hexes = draw_file(rng, n_norm, n_scan)
            yield FileJob(k, j, ip, end, rnd, n_norm + n_scan, offs, is_scan, U, hexes)
