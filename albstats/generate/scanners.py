"""Scanner requests: attack URLs, WAF blocks, 404s and malformed probes, built one line at a time.

Why apart from the column-wise builder: scanner lines are about 1% of all lines and differ in almost
every column (a new connection per request, attack paths, WAF and desync rejections, requests that
are not HTTP at all), so they are cheaper and clearer as one ``%`` format each. Their decisions come
from the same row of uniforms as any line, read with the names of
:class:`albstats.generate.plan.ScannerDraws`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from albstats.generate.plan import HEX_PER_LINE, TRACE_HEX, Plan, ScannerDraws
from albstats.generate.template import slot_values
from albstats.generate.traffic import Requests
from albstats.generate.world import ATTACKS, PROBE_SCANNERS, TLS_SUITES, World, pick
from albstats.logformat import format_line
from albstats.schema import ACCESS

#: A node's two line templates from :func:`albstats.generate.template.line_template`:
#: (dispatched, timings ``-1``), each with its value count.
Templates = tuple[tuple[str, int], tuple[str, int]]


def fill_scanner_lines(
    lines: list[str],
    world: World,
    plan: Plan,
    r: Requests,
    trand: list[str],
    templates: dict[str, Templates],
    era: int,
    sec: Callable[[int], str],
) -> None:
    """Replace the scanner lines of a batch (``r.is_scan``) in ``lines``, in place.

    Inside a burst the bursting scanner sends the request; outside, the background noise of the
    internet: port scanners probing all day. Scanners open a connection per request (own port and TID).
    """
    file_of = np.repeat(np.arange(len(r.jobs)), r.sizes)
    hexes = r.hexes
    for i in np.flatnonzero(r.is_scan).tolist():
        d = ScannerDraws.of(r.rows[i].tolist())
        t_us = int(r.t_us[i])
        sc_idx = plan.burst_at(t_us // 1_000_000)
        if sc_idx < 0:
            sc_idx = PROBE_SCANNERS[int(d.probe_scanner * len(PROBE_SCANNERS))]
        ip = r.jobs[int(file_of[i])].ip
        tid = "TID_" + hexes[HEX_PER_LINE * i + TRACE_HEX : HEX_PER_LINE * (i + 1)]
        lines[i] = scanner_line(
            world, sc_idx, d, t_us, 1024 + int(d.port * 64000), trand[i], tid, templates[ip], ip, era, sec
        )


def scanner_line(
    world: World,
    sc_idx: int,
    d: ScannerDraws,
    t_us: int,
    cport: int,
    trand: str,
    tid: str,
    templates: Templates,
    node_ip: str,
    era: int,
    sec: Callable[[int], str],
) -> str:
    """One request of the scanner active now: attack URLs, WAF blocks, 404s, malformed probes."""
    dom = world.profile.domain
    s_ip, ua, style = world.scanners[sc_idx]
    if style == "sqli":
        cat, path = "sqli", pick(d.attack, ATTACKS["sqli"])
    else:
        cat, path = pick(d.attack, world.attacks)
    tls_on = d.tls >= 0.3
    typ = "https" if tls_on else "http"
    host = dom if d.host < 0.6 else world.dns
    tg = 1 if path.startswith("/api") else 0
    t = world.tgs[tg]
    target = t.targets[min(int(d.target * len(t.targets)), len(t.targets) - 1)]
    classification = reason = "-"
    tg_arn, rule = t.arn, ("10" if tg == 1 else "20")
    actions = "waf,forward" if tls_on else "forward"
    recv = 180 + int(d.received * 400)
    tp: float | str = 0.002 + d.latency * 0.03
    dur = float(tp)
    if style == "probe" and d.fate < 0.5:
        return _malformed_probe(world, s_ip, d, t_us, cport, recv, tid, node_ip, era, sec)
    dispatched = True
    if tls_on and cat in ("sqli", "traversal", "shell") and d.fate < 0.6:  # blocked by AWS WAF
        dispatched = False
        e_code, t_code, sent = "403", "-", 190
        actions, rule, tg_arn = "waf", "0", "-"
    elif cat == "traversal" and d.fate < 0.8:  # rejected by desync mitigation
        dispatched = False
        e_code, t_code, sent = "400", "-", 272
        actions, rule, tg_arn = "-", "-", "-"
        classification, reason = "Severe", "BadUri"
    else:
        code = "404" if cat != "shell" else ("400" if d.variant < 0.5 else "404")
        if path == "/api/owners?id=1%20OR%201=1":
            code = "200"  # an injection that got through
        e_code = t_code = code
        sent = 120 + int(d.sent * 800)
    rpt: float | str
    rsp: float | str
    if dispatched:
        tmpl, nv = templates[0]
        rpt, rsp = 0.0, 0.0
        tlist, slist = target, t_code
    else:
        tmpl, nv = templates[1]
        rpt = tp = rsp = "-1"
        target = tlist = slist = "-"
    if tls_on:
        ssl_p, ssl_c = TLS_SUITES[min(int(d.suite * 4), 3)][:2]
        sni, crt = (dom if host == dom else "-"), world.cert
    else:
        ssl_p = ssl_c = sni = crt = "-"
    rc_us = t_us - int(dur * 1_000_000) - 1000
    rs = rc_us // 1_000_000
    values = {
        "type": typ,
        "time__sec": sec(t_us // 1_000_000),
        "time__us": t_us % 1_000_000,
        "client_ip": s_ip,
        "client_port": cport,
        "target_ip__port": target,
        "request_processing_time": rpt,
        "target_processing_time": tp,
        "response_processing_time": rsp,
        "elb_status_code": e_code,
        "target_status_code": t_code,
        "received_bytes": recv,
        "sent_bytes": sent,
        "request_verb": "GET" if d.verb < 0.85 else "POST",
        "request_url__base": f"{typ}://{host}:{443 if tls_on else 80}",
        "request_url__path": path,
        "request_proto": "HTTP/1.1",
        "user_agent": ua,
        "ssl_cipher": ssl_c,
        "ssl_protocol": ssl_p,
        "target_group_arn": tg_arn,
        "trace_id__sec": rs,
        "trace_id__rand": trand,
        "domain_name": sni,
        "chosen_cert_arn": crt,
        "matched_rule_priority": rule,
        "request_creation_time__sec": sec(rs),
        "request_creation_time__ms": (rc_us % 1_000_000) // 1000,
        "actions_executed": actions,
        "redirect_url": "-",
        "lambda_error_reason": "-",
        "target_port_list": tlist,
        "target_status_code_list": slist,
        "classification": classification,
        "classification_reason": reason,
        "conn_trace_id": tid,
    }
    return tmpl % slot_values(values, nv)


def _malformed_probe(
    world: World,
    s_ip: str,
    d: ScannerDraws,
    t_us: int,
    cport: int,
    recv: int,
    tid: str,
    node_ip: str,
    era: int,
    sec: Callable[[int], str],
) -> str:
    """masscan/zgrab speak no HTTP: a malformed request that never reaches a rule (rare: ``format_line``)."""
    t_s = t_us // 1_000_000
    rc_us = t_us - 1000 - int(d.latency * 5000)
    plain = d.variant < 0.6
    return format_line(
        {
            "type": "http",
            "time": f"{sec(t_s)}.{t_us % 1_000_000:06d}Z",
            "elb": world.elb,
            "client_ip": s_ip,
            "client_port": cport,
            "target_ip": None,
            "request_processing_time": -1.0,
            "target_processing_time": -1.0,
            "response_processing_time": -1.0,
            "elb_status_code": 400,
            "target_status_code": "-",
            "received_bytes": 0 if plain else recv,
            "sent_bytes": 272,
            "request_verb": "-",
            "request_url": f"http://{world.dns}:80-" if plain else "-",
            "request_proto": "-",
            "user_agent": "-",
            "ssl_cipher": "-",
            "ssl_protocol": "-",
            "target_group_arn": "-",
            "trace_id": "-",
            "domain_name": "-",
            "chosen_cert_arn": "-",
            "matched_rule_priority": "-",
            "request_creation_time": f"{sec(rc_us // 1_000_000)}.{(rc_us % 1_000_000) // 1000:03d}000Z",
            "actions_executed": "-",
            "redirect_url": "-",
            "lambda_error_reason": "-",
            "target_port_list": "-",
            "target_status_code_list": "-",
            "classification": "-",
            "classification_reason": "-",
            "conn_trace_id": tid,
            "transformed_host": "-",
            "transformed_uri": "-",
            "request_transform_status": "-",
            "ip_address": node_ip,
            "extra_fields": " ".join(['"-"'] * (era - len(ACCESS.tokens))) or None,
        },
        ntokens=min(era, len(ACCESS.tokens)),
    )
