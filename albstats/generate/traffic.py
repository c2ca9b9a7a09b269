"""What happened to each request of a batch of files: route, target, outcome, status, bytes, timings.

Why a module of its own: this is the traffic model (how often the load balancer or a target fails,
which requests are slow, how clients keep connections, what the HTTP listener and WAF do), kept apart
from how a line is written (:mod:`albstats.generate.render`). Every decision is NumPy arithmetic on
the named uniforms of :class:`albstats.generate.plan.Draws`; nothing here draws randomness, so the
same draws give the same requests. Scanner lines get placeholder values here and are rebuilt one by
one by :mod:`albstats.generate.scanners`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from albstats.generate.plan import INTERVAL_S, Draws, FileJob, Plan
from albstats.generate.world import (
    AMBIGUOUS_REASONS,
    KIND_API,
    KIND_GRPC,
    KIND_STATIC,
    KIND_WS,
    SEVERE_REASONS,
    World,
    obj,
)

#: Mean number of requests per client connection (they share client port and conn_trace_id).
SESSION_MEAN = 3.0
#: Outcomes (per line, small ints for NumPy).
OK, T4XX, T5XX, E502, E503, E504, C460, WAF, REDIRECT, SEVERE, MALFORMED = range(11)
#: Listener/protocol of a request: the ``type`` column's values, by index.
TYPES = ("http", "https", "h2", "grpcs", "ws", "wss")
T_HTTP, T_HTTPS, T_H2, T_GRPCS, T_WS, T_WSS = range(len(TYPES))
#: Fixed response sizes of the outcomes the load balancer answers itself.
_ELB_SENT = ((E502, 277), (E503, 326), (E504, 303), (C460, 0), (WAF, 190), (SEVERE, 272))


@dataclass
class Requests:
    """The requests of a batch of files, one array entry per line, in file then time order."""

    jobs: Sequence[FileJob]
    sizes: list[int]  # lines per file
    starts: np.ndarray  # index of each file's first line
    rows: np.ndarray  # (n, NDRAWS) uniforms, named by ``draws``
    draws: Draws
    hexes: str  # HEX_PER_LINE random hex digits per line
    is_scan: np.ndarray
    t_us: np.ndarray  # epoch microseconds of ``time``
    secs: np.ndarray  # epoch seconds of ``time``
    ep: np.ndarray  # route (index into world.endpoints)
    kind: np.ndarray  # route kind (KIND_*)
    tg: np.ndarray  # target group
    target: np.ndarray  # target within the group
    outcome: np.ndarray  # OK, T4XX, ... (the constants above)
    slow: np.ndarray
    typ: np.ndarray  # T_HTTP, ... (index into TYPES)
    tls_on: np.ndarray
    sess: np.ndarray  # index of the line that opened this line's connection
    client: np.ndarray  # index into world.clients
    client_port: np.ndarray
    tls_suite: np.ndarray  # index into world.tls_protos / tls_ciphers
    path: np.ndarray  # object array of paths (a desync test may put a space in one)
    classification: np.ndarray  # object arrays, "-" for none
    classification_reason: np.ndarray
    code: np.ndarray  # elb_status_code
    received_bytes: np.ndarray
    sent_bytes: np.ndarray
    request_time: np.ndarray  # request_processing_time, seconds (when dispatched)
    target_time: np.ndarray  # target_processing_time, seconds (when dispatched)
    duration: np.ndarray  # seconds from request creation to ``time``
    redirect_url: np.ndarray  # object array, "-" unless redirected

    @property
    def n(self) -> int:
        return len(self.outcome)


def _lognormal(u1: np.ndarray, u2: np.ndarray, median: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    z = np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)
    return median * np.exp(sigma * z)


def _choose(u: np.ndarray, table: Sequence[str]) -> np.ndarray:
    """The entries of ``table`` that uniforms in [0, 1) fall on."""
    return obj(table)[np.minimum((u * len(table)).astype(np.int64), len(table) - 1)]


def simulate(world: World, plan: Plan, jobs: Sequence[FileJob]) -> Requests:
    """The requests of several files at once (their draws concatenated)."""
    p = world.profile
    sizes = [j.n for j in jobs]
    n = sum(sizes)
    starts = np.cumsum([0] + sizes)[:-1]
    t0 = np.repeat(np.array([plan.start_s + j.k * INTERVAL_S for j in jobs], dtype=np.int64), sizes)
    offs = np.concatenate([j.offs for j in jobs])
    is_scan = np.concatenate([j.is_scan for j in jobs])
    rows = np.concatenate([j.U for j in jobs])
    d = Draws.of(rows)
    eps = world.endpoints
    ep = np.searchsorted(world.ep_cum, d.endpoint, side="right").clip(0, len(eps) - 1)
    tg = world.ep_tg[ep]
    ntg = world.tg_sizes[tg]
    tgt_i = np.minimum((d.target * ntg).astype(np.int64), ntg - 1)
    bad = world.tg_bad[tg] == tgt_i
    # incidents hit one target group for a while: 5XX and slowness multiply there
    t_us = t0 * 1_000_000 + offs
    secs = t_us // 1_000_000
    inc_tg = np.full(n, -1)
    lo, hi = int(secs[0]) if n else 0, int(secs.max()) if n else 0
    for a, b, g in plan.incidents:
        if a <= hi and b > lo:
            inc_tg[(secs >= a) & (secs < b)] = g
    in_inc = inc_tg == tg
    mult = np.where(in_inc, p.incident_factor, 1.0) * np.where(bad, p.bad_target_factor, 1.0)
    kind = world.ep_kind[ep]
    # outcome: cumulative shares against one uniform
    u = d.outcome
    c1 = p.waf_block
    c2 = c1 + p.elb_5xx * mult
    c3 = c2 + p.target_5xx * mult
    c4 = c3 + world.ep_4xx[ep]
    c5 = c4 + p.client_460 * np.where(in_inc, 3.0, 1.0)
    out = np.full(n, OK, dtype=np.int64)
    out[u < c5] = C460
    out[u < c4] = T4XX
    out[u < c3] = T5XX
    out[u < c2] = E502
    out[u < c1] = WAF
    ek = d.elb_5xx_kind
    out[(out == E502) & (ek >= 0.55)] = E504
    out[(out == E502) & (ek >= 0.40) & (ek < 0.55)] = E503
    p_slow = np.minimum(0.9, p.slow * np.where(in_inc, p.incident_factor, 1.0) * np.where(bad, 1.5, 1.0))
    slow = (d.slow < p_slow) & (kind < KIND_STATIC)
    out[slow & (d.gave_up < p.gave_up_if_slow) & (out == OK)] = C460
    tpt = _lognormal(d.latency_u1, d.latency_u2, world.ep_med[ep], world.ep_sig[ep])
    tpt = np.minimum(tpt, 1.95)
    tpt = np.where(slow, 2.0 * np.power(10.0, d.slow_time), tpt)  # log-uniform 2..20 s
    # a client session is a run of requests on one connection: same client, port, TID, listener, TLS
    new = d.new_session < 1.0 / SESSION_MEAN
    new[starts] = True  # no connection spans two files
    sess = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    su = d.client[sess]
    ncl = len(world.clients)
    cl = np.minimum((su * ncl).astype(np.int64), ncl - 1)
    cport = (1024 + ((su * 7919.0) % 1.0) * 64000).astype(np.int64)
    tls_j = np.searchsorted(world.tls_cum, d.tls[sess] * 0.9999, side="left")
    lis = d.listener[sess]  # < 0.04: plain HTTP listener; else HTTPS (h2 for ~38%)
    # listener and protocol
    typ = np.where(lis < 0.04, T_HTTP, np.where(lis < 0.42, T_H2, T_HTTPS))
    typ = np.where(kind == KIND_GRPC, T_GRPCS, typ)
    typ = np.where(kind == KIND_WS, np.where(lis < 0.2, T_WS, T_WSS), typ)
    tls_on = (typ != T_HTTP) & (typ != T_WS)
    # the HTTP listener redirects to HTTPS (a few old clients hit a forward rule that works)
    out[(typ == T_HTTP) & ((out != OK) | (lis > 0.004))] = REDIRECT
    out[(out == WAF) & ~tls_on] = OK
    # desync mitigation classifications
    des = d.desync
    cls = np.full(n, "-", dtype=object)
    reason = np.full(n, "-", dtype=object)
    amb = des < 0.0004
    if amb.any():
        cls[amb] = "Ambiguous"
        reason[amb] = _choose(des[amb] / 0.0004, AMBIGUOUS_REASONS)
    sev = (des >= 0.0004) & (des < 0.0006) & (out == OK)
    if sev.any():
        out[sev] = SEVERE
        cls[sev] = "Severe"
        reason[sev] = _choose((des[sev] - 0.0004) / 0.0002, SEVERE_REASONS)
    space = (des >= 0.0006) & (des < 0.0008) & (kind == KIND_API) & world.ep_get[ep]
    npaths = world.ep_npaths[ep]
    path = world.all_paths[world.ep_path_off[ep] + np.minimum((d.path * npaths).astype(np.int64), npaths - 1)]
    if space.any():
        cls[space] = "Acceptable"
        reason[space] = "SpaceInUri"
        path[space] = "/api/owners?lastName=van der Berg"
    code, sent, recv, tp, rpt, dur = _status_bytes_times(world, d, ep, kind, out, slow, tpt)
    redirect = np.full(n, "-", dtype=object)
    rd = out == REDIRECT
    if rd.any():
        redirect[rd] = [f"https://{p.domain}:443" + x for x in path[rd].tolist()]
        sent[rd] = 260 + np.fromiter((len(x) for x in redirect[rd].tolist()), dtype=np.int64)
    return Requests(
        jobs=jobs,
        sizes=sizes,
        starts=starts,
        rows=rows,
        draws=d,
        hexes="".join(j.hexes for j in jobs),
        is_scan=is_scan,
        t_us=t_us,
        secs=secs,
        ep=ep,
        kind=kind,
        tg=tg,
        target=tgt_i,
        outcome=out,
        slow=slow,
        typ=typ,
        tls_on=tls_on,
        sess=sess,
        client=cl,
        client_port=cport,
        tls_suite=tls_j,
        path=path,
        classification=cls,
        classification_reason=reason,
        code=code,
        received_bytes=recv,
        sent_bytes=sent,
        request_time=rpt,
        target_time=tp,
        duration=dur,
        redirect_url=redirect,
    )


def _status_bytes_times(
    world: World,
    d: Draws,
    ep: np.ndarray,
    kind: np.ndarray,
    out: np.ndarray,
    slow: np.ndarray,
    tpt: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Status code, sent and received bytes, target and request time and total duration, by outcome."""
    n = len(out)
    cu = d.code
    m = d.size
    mm = d.jitter
    code = np.zeros(n, dtype=np.int64)
    okc = world.ok_codes[world.ok_off[ep] + np.minimum((cu * world.ok_len[ep]).astype(np.int64), world.ok_len[ep] - 1)]
    c4c = world.c4_codes[world.c4_off[ep] + np.minimum((cu * world.c4_len[ep]).astype(np.int64), world.c4_len[ep] - 1)]
    c5c = np.where(cu < 0.7, 500, np.where(cu < 0.9, 503, 502))
    sent = (world.ep_sent[ep] * (1.0 + d.sent)).astype(np.int64)
    recv = (world.ep_recv[ep] * (1.0 + 0.5 * d.received)).astype(np.int64)
    is_ok, is_4, is_5 = out == OK, out == T4XX, out == T5XX
    code[is_ok] = okc[is_ok]
    code[is_4] = c4c[is_4]
    code[is_5] = c5c[is_5]
    for o, c in ((E502, 502), (E503, 503), (E504, 504), (C460, 460), (REDIRECT, 301), (WAF, 403), (SEVERE, 400)):
        code[out == o] = c
    extra = (m * 50000).astype(np.int64)
    sent = np.where(is_ok & slow & world.ep_get[ep], sent + extra, sent)
    sent = np.where(is_ok & (code == 304), 180 + (m * 60).astype(np.int64), sent)
    sent = np.where(is_4, 150 + (m * 400).astype(np.int64), sent)
    sent = np.where(is_5, 200 + (m * 600).astype(np.int64), sent)
    tp = np.where(is_4, np.minimum(tpt, 0.5) * 0.5, tpt)
    rpt = np.where(m < 0.7, 0.0, 0.001)
    dur = tp + rpt
    # a WebSocket line is written when the connection closes: target_processing_time is the upgrade,
    # request_creation_time the open, and the connection lasts seconds to minutes
    ws_open = (kind == KIND_WS) & is_ok
    dur = np.where(ws_open, dur + 40.0 * np.exp(0.8 * (d.received - 0.5) * 4.0), dur)
    dur = np.where(out == E502, 0.001 + mm * 0.8, dur)
    dur = np.where(out == E503, 0.001 + mm * 0.01, dur)
    dur = np.where(out == E504, np.where(m < 0.8, 60.0, 10.0) + mm * 0.01, dur)  # idle or connect timeout
    dur = np.where(out == C460, np.where(slow, np.minimum(tpt, 1.0 + mm * 29.0), 0.05 + mm * 3.0), dur)
    dur = np.where(out == REDIRECT, 0.0005, dur)
    dur = np.where(out == WAF, 0.003, dur)
    dur = np.where(out == SEVERE, 0.001, dur)
    for o, c in _ELB_SENT:
        sent[out == o] = c
    return code, sent, recv, tp, rpt, dur
