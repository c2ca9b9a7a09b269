"""Lines from requests: each column becomes text, and one join per line puts it in the template.

Why a module of its own: formatting is most of the per-line cost, and it is all table lookups
(``_D3[ms]``, cached ISO seconds, status strings) indexed by NumPy arrays, keyed by the slot names of
:mod:`albstats.generate.template` (the schema's column names). What the values are is decided in
:mod:`albstats.generate.traffic`; which text a value is written as is decided here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import numpy as np

from albstats.generate.plan import HEX_PER_LINE, TRACE_HEX, FileJob, Plan
from albstats.generate.scanners import Templates, fill_scanner_lines
from albstats.generate.template import NODE_SLOT, Segments
from albstats.generate.traffic import (
    E503,
    OK,
    REDIRECT,
    SEVERE,
    T4XX,
    T5XX,
    T_GRPCS,
    T_H2,
    TYPES,
    WAF,
    Requests,
    simulate,
)
from albstats.generate.world import GRPC_UAS, World, obj

_CODE_STR = obj([str(i) for i in range(600)])
_TYPES = obj(TYPES)
_HEX2 = obj([f"{i:02x}" for i in range(256)])
_D3 = obj([f"{i:03d}" for i in range(1000)])
_D2 = obj([f"{i:02d}" for i in range(100)])
_MS_TABLE: list[np.ndarray] = []


class Clock:
    """ISO timestamps by epoch second, cached (a file touches a few hundred distinct seconds)."""

    def __init__(self) -> None:
        self.days: dict[int, str] = {}
        self.cache: dict[int, str] = {}

    def sec(self, s: int) -> str:
        """``2026-11-16T10:00:00`` for an epoch second."""
        v = self.cache.get(s)
        if v is not None:
            return v
        if len(self.cache) > 20000:
            self.cache.clear()
        d, r = divmod(s, 86400)
        day = self.days.get(d)
        if day is None:
            day = self.days[d] = datetime.fromtimestamp(d * 86400, UTC).strftime("%Y-%m-%dT")
        v = self.cache[s] = f"{day}{r // 3600:02d}:{r // 60 % 60:02d}:{r % 60:02d}"
        return v

    def iso(self, secs: np.ndarray) -> list[str]:
        """``sec`` of every epoch second in an array, via one prefix per distinct minute."""
        if not len(secs):
            return []
        mins, inv = np.unique(secs // 60, return_inverse=True)
        prefix = obj([self.sec(m * 60)[:-2] for m in mins.tolist()])
        return (prefix[inv] + _D2[secs % 60]).tolist()


def _hex8(v: np.ndarray) -> list[str]:
    """8-digit hex of epoch seconds (the trace id's time part)."""
    hi = v >> 8
    uniq, inv = np.unique(hi, return_inverse=True)
    return (obj([f"{x:06x}" for x in uniq.tolist()])[inv] + _HEX2[v & 0xFF]).tolist()


def _ints(a: np.ndarray) -> list[str]:
    return list(map(str, a.tolist()))


def _secs3(x: np.ndarray, neg: np.ndarray) -> list[str]:
    """Seconds with millisecond precision as ALB writes them (``0.042``), ``-1`` where ``neg``."""
    if not _MS_TABLE:
        _MS_TABLE.append(obj([f"{i // 1000}.{i % 1000:03d}" for i in range(30_000)]))
    table = _MS_TABLE[0]
    ms = np.rint(x * 1000.0).astype(np.int64)
    big = ms >= len(table)
    out = table[np.where(big, 0, ms)]
    if big.any():
        out[big] = [f"{v // 1000}.{v % 1000:03d}" for v in ms[big].tolist()]
    out[neg] = "-1"
    return out.tolist()


def _columns(world: World, r: Requests, clock: Clock, trand: list[str]) -> dict[str, list[str]]:
    """The text of every slot of every line, keyed by slot name."""
    p = world.profile
    n = r.n
    out, typ, tls_on = r.outcome, r.typ, r.tls_on
    disp = (out == OK) | (out == T4XX) | (out == T5XX)
    no_target = (out == E503) | (out == REDIRECT) | (out == WAF) | (out == SEVERE)
    no_rule = (out == REDIRECT) | (out == WAF) | (out == SEVERE)
    e_code = _CODE_STR[r.code]
    t_code = e_code.copy()
    t_code[~disp] = "-"
    target = world.all_targets[world.tg_target_off[r.tg] + r.target]
    target[no_target] = "-"
    tlist = target.copy()
    slist = t_code.copy()
    slist[no_target] = "-"
    tg_arn = world.tg_arns[r.tg]
    tg_arn[no_rule] = "-"
    rule = world.ep_rule[r.ep]
    rule[(out == REDIRECT) | (out == WAF)] = "0"
    rule[out == SEVERE] = "-"
    actions = np.where(tls_on & (typ != T_GRPCS), "waf,forward", "forward").astype(object)
    actions[out == REDIRECT] = "redirect"
    actions[out == WAF] = "waf"
    actions[out == SEVERE] = "-"
    base = np.where(tls_on, f"https://{p.domain}:443", f"http://{p.domain}:80").astype(object)
    proto = np.where((typ == T_H2) | (typ == T_GRPCS), "HTTP/2.0", "HTTP/1.1").astype(object)
    ua = world.client_uas[r.client]
    grpc = typ == T_GRPCS
    if grpc.any():
        ua[grpc] = obj(GRPC_UAS)[r.client_port[grpc] % len(GRPC_UAS)]
    ssl_p = world.tls_protos[r.tls_suite]
    ssl_c = world.tls_ciphers[r.tls_suite]
    ssl_p[~tls_on] = "-"
    ssl_c[~tls_on] = "-"
    sni = np.where(tls_on, p.domain, "-").astype(object)
    crt = np.where(tls_on, np.where(r.draws.size < 0.75, world.cert, "session-reused"), "-").astype(object)
    neg = ~disp
    rc_us = r.t_us - (r.duration * 1_000_000).astype(np.int64)
    rs = rc_us // 1_000_000
    hexes, step, skip = r.hexes, HEX_PER_LINE, TRACE_HEX  # locals: the comprehension runs per line
    tid = ["TID_" + hexes[step * j + skip : step * (j + 1)] for j in r.sess.tolist()]
    tus = r.t_us % 1_000_000
    return {
        "type": _TYPES[typ].tolist(),
        "time__sec": clock.iso(r.secs),
        "time__us": (_D3[tus // 1000] + _D3[tus % 1000]).tolist(),
        "client_ip": world.client_ips[r.client].tolist(),
        "client_port": _ints(r.client_port),
        "target_ip__port": target.tolist(),
        "request_processing_time": _secs3(r.request_time, neg),
        "target_processing_time": _secs3(r.target_time, neg),
        "response_processing_time": _secs3(np.zeros(n), neg),
        "elb_status_code": e_code.tolist(),
        "target_status_code": t_code.tolist(),
        "received_bytes": _ints(r.received_bytes),
        "sent_bytes": _ints(r.sent_bytes),
        "request_verb": world.ep_method[r.ep].tolist(),
        "request_url__base": base.tolist(),
        "request_url__path": r.path.tolist(),
        "request_proto": proto.tolist(),
        "user_agent": ua.tolist(),
        "ssl_cipher": ssl_c.tolist(),
        "ssl_protocol": ssl_p.tolist(),
        "target_group_arn": tg_arn.tolist(),
        "trace_id__sec": _hex8(rs),
        "trace_id__rand": trand,
        "domain_name": sni.tolist(),
        "chosen_cert_arn": crt.tolist(),
        "matched_rule_priority": rule.tolist(),
        "request_creation_time__sec": clock.iso(rs),
        "request_creation_time__ms": _D3[(rc_us % 1_000_000) // 1000].tolist(),
        "actions_executed": actions.tolist(),
        "redirect_url": r.redirect_url.tolist(),
        "lambda_error_reason": ["-"] * n,
        "target_port_list": tlist.tolist(),
        "target_status_code_list": slist.tolist(),
        "classification": r.classification.tolist(),
        "classification_reason": r.classification_reason.tolist(),
        "conn_trace_id": tid,
    }


def batch_lines(
    world: World,
    plan: Plan,
    jobs: Sequence[FileJob],
    segments: Segments,
    templates: dict[str, Templates],
    era: int,
    clock: Clock,
) -> list[list[str]]:
    """The sorted lines of several files (one list per job), built column-wise in one go.

    Every random choice was drawn per file as arrays (one row of uniforms per line); here each
    column becomes a list by NumPy indexing into tables of strings, and one join per line puts
    the columns between the literal text of the template. Scanner lines (rare) are built one by one.
    """
    r = simulate(world, plan, jobs)
    hexes, width = r.hexes, TRACE_HEX
    trand = [hexes[i : i + width] for i in range(0, HEX_PER_LINE * r.n, HEX_PER_LINE)]
    cols = _columns(world, r, clock, trand)
    if NODE_SLOT in segments.names:
        cols[NODE_SLOT] = obj([j.ip for j in jobs])[np.repeat(np.arange(len(jobs)), r.sizes)].tolist()
    parts: list[Any] = [repeat(segments.lits[0])]
    for name, lit in zip(segments.names, segments.lits[1:], strict=True):
        parts += [cols[name], repeat(lit)]
    lines = list(map("".join, zip(*parts)))
    if r.is_scan.any():
        fill_scanner_lines(lines, world, plan, r, trand, templates, era, clock.sec)
    return [lines[a : a + m] for a, m in zip(r.starts.tolist(), r.sizes)]
