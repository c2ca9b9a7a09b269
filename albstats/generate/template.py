"""The text of a generated line around its per-line values, rendered once by ``format_line``.

Why: token order, quoting and the ``-`` conventions must come from the one writer
(:func:`albstats.logformat.format_line`, driven by :mod:`albstats.schema`), but calling it per line
is too slow. So it is called once per (node, format era) with marker values; each marker then
becomes a ``%`` conversion (:func:`line_template`, used for the rare one-by-one lines) or a gap
between literal segments (:func:`line_segments`, used by the column-wise builder).

Every per-line value is a *slot* named after the schema column it fills (``elb_status_code``) or,
when a column is written from several values, ``<column>__<part>`` (``time__sec``, ``time__us``).
The names are checked against :data:`albstats.schema.ACCESS` at import, so a renamed column fails
loudly here instead of writing a wrong line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from albstats.logformat import format_line
from albstats.schema import ACCESS

#: Token counts of the format eras ALB has written (36 = 34 fields plus two unnamed ``"-"``).
ERAS = (20, 24, 25, 27, 29, 30, 33, 34, 36)
DEFAULT_ERA = 34

#: Per-line values in the order they appear in a line: (slot, conversion when the request was
#: dispatched, conversion for the ``-1`` timing template, where the three timings come as text).
SLOTS: tuple[tuple[str, str, str], ...] = (
    ("type", "s", "s"),
    ("time__sec", "s", "s"),  # 2026-11-16T10:00:00
    ("time__us", "06d", "06d"),
    ("client_ip", "s", "s"),
    ("client_port", "d", "d"),
    ("target_ip__port", "s", "s"),  # "ip:port", or "-" without a target: the whole token
    ("request_processing_time", ".3f", "s"),
    ("target_processing_time", ".3f", "s"),
    ("response_processing_time", ".3f", "s"),
    ("elb_status_code", "s", "s"),
    ("target_status_code", "s", "s"),
    ("received_bytes", "d", "d"),
    ("sent_bytes", "d", "d"),
    ("request_verb", "s", "s"),
    ("request_url__base", "s", "s"),  # https://host:443
    ("request_url__path", "s", "s"),
    ("request_proto", "s", "s"),
    ("user_agent", "s", "s"),
    ("ssl_cipher", "s", "s"),
    ("ssl_protocol", "s", "s"),
    ("target_group_arn", "s", "s"),
    ("trace_id__sec", "08x", "08x"),  # Root=1-<sec>-<rand>
    ("trace_id__rand", "s", "s"),
    ("domain_name", "s", "s"),
    ("chosen_cert_arn", "s", "s"),
    ("matched_rule_priority", "s", "s"),
    ("request_creation_time__sec", "s", "s"),
    ("request_creation_time__ms", "03d", "03d"),
    ("actions_executed", "s", "s"),
    ("redirect_url", "s", "s"),
    ("lambda_error_reason", "s", "s"),
    ("target_port_list", "s", "s"),
    ("target_status_code_list", "s", "s"),
    ("classification", "s", "s"),
    ("classification_reason", "s", "s"),
    ("conn_trace_id", "s", "s"),
)
SLOT_NAMES: tuple[str, ...] = tuple(name for name, _, _ in SLOTS)
#: The node's IP: the same for every line of a file, so not a slot of :func:`line_template`.
NODE_SLOT = "ip_address"


def _check_slot_names() -> None:
    """Every slot fills a column the schema knows, so the writer and the reader agree on names."""
    known = set(ACCESS.names)
    for name in (*SLOT_NAMES, NODE_SLOT):
        if name.split("__")[0] not in known:  # pragma: no cover - guards against a schema rename
            raise RuntimeError(f"generator slot {name!r} names no column of albstats.schema.ACCESS")


_check_slot_names()
_MARK_RE = re.compile("\x00([a-z_]+)\x00")


def _m(name: str) -> str:
    return f"\x00{name}\x00"


def line_template(elb: str, node_ip: str, era: int = DEFAULT_ERA, dispatched: bool = True) -> tuple[str, int]:
    """A ``%`` template for one line and the number of values it takes, rendered by ``format_line``.

    ``format_line`` gets marker values, so token order, quoting and the fixed columns come from the
    one writer; each marker then becomes a ``%`` conversion. ``dispatched=False`` gives the template
    for lines whose three timings are ``-1`` (passed as text). The values are the first ``n`` of
    :data:`SLOT_NAMES`, in that order (:func:`slot_values` puts a dict of them in order).
    """
    ntok = min(era, len(ACCESS.tokens))
    vals: dict[str, Any] = {name: _m(name) for name in SLOT_NAMES}
    vals.update(
        time=f"{_m('time__sec')}.{_m('time__us')}Z",
        target_ip=_m("target_ip__port"),
        target_port=_m("target_port"),
        request_url=_m("request_url__base") + _m("request_url__path"),
        trace_id=f"Root=1-{_m('trace_id__sec')}-{_m('trace_id__rand')}",
        request_creation_time=f"{_m('request_creation_time__sec')}.{_m('request_creation_time__ms')}000Z",
        elb=elb,
        transformed_host="-",
        transformed_uri="-",
        request_transform_status="-",
        ip_address=node_ip,
    )
    if era > len(ACCESS.tokens):
        vals["extra_fields"] = " ".join(['"-"'] * (era - len(ACCESS.tokens)))
    text = format_line(vals, ntokens=ntok).replace("%", "%%")
    # "ip:port" or "-" as one value
    text = text.replace(f"{_m('target_ip__port')}:{_m('target_port')}", _m("target_ip__port"))
    order = _MARK_RE.findall(text)
    if order != list(SLOT_NAMES[: len(order)]):  # pragma: no cover - guards against a schema reorder
        raise RuntimeError(f"line template out of order: {order}")
    conv = {n: (c if dispatched else c2) for n, c, c2 in SLOTS}
    return _MARK_RE.sub(lambda mm: "%" + conv[mm.group(1)], text), len(order)


def slot_values(values: Mapping[str, Any], n: int) -> tuple[Any, ...]:
    """The first ``n`` slot values of a line, in template order, from a dict keyed by slot name."""
    return tuple(values[name] for name in SLOT_NAMES[:n])


_CONV_RE = re.compile(r"%%|%(?:06d|03d|08x|\.3f|d|s)")
_NODE_MARK = "\x01node\x01"


@dataclass(frozen=True)
class Segments:
    """A line as ``lits[0] + v0 + lits[1] + v1 + ... + lits[-1]``, ``v_i`` being slot ``names[i]``."""

    lits: list[str]
    names: list[str]


def line_segments(elb: str, era: int = DEFAULT_ERA) -> Segments:
    """The literal text around the per-line values of :func:`line_template`, and the slot each gap takes.

    The node IP (``ip_address``, in eras that have it) becomes a slot of its own, so one set of
    segments serves every node. Every value is already text, which is what the column-wise join writes.
    """
    text, n = line_template(elb, _NODE_MARK, era, dispatched=False)
    lits, cur, pos = [], [], 0
    for m in _CONV_RE.finditer(text):
        cur.append(text[pos : m.start()])
        if m.group() == "%%":
            cur.append("%")
        else:
            lits.append("".join(cur))
            cur = []
        pos = m.end()
    cur.append(text[pos:])
    lits.append("".join(cur))
    if len(lits) != n + 1:  # pragma: no cover
        raise RuntimeError("line template does not split into its values")
    names = list(SLOT_NAMES[:n])
    if _NODE_MARK in lits[-1]:
        before, after = lits[-1].split(_NODE_MARK)
        lits[-1:] = [before, after]
        names.append(NODE_SLOT)
    return Segments(lits, names)
