"""The proxy's access log, in the ALB access-log format, and its shutdown summary.

One line per client request, in the layout :func:`albstats.logformat.format_line` writes, so every
albstats command (parse, report, compare, whatif) reads proxy logs exactly like ALB logs. The line is
a ``%`` template rendered once by ``format_line`` (token order, quoting and the constant columns come
from the one writer) and filled per request: the schema-driven writer cost about an eighth of the
proxy's CPU per request, and a test checks the two give the same line for the same record. What differs from a
real ALB is only what ALB cannot do: ``target:port_list`` and ``target_status_code_list`` list every
attempt the proxy made, space separated, ``-`` for an attempt that got no response.

Timings follow ALB's definitions, with the retries counted as the proxy's own time:
``request_processing_time`` runs from receipt to dispatching the *final* attempt (so it includes the
earlier attempts and the backoff waits), ``target_processing_time`` from that dispatch to the
response headers, ``response_processing_time`` from the headers to the first byte to the client. When
no attempt got a response, the latter two are ``-1`` as in ALB; ``time - request_creation_time``
still gives the total.
"""

from __future__ import annotations

import math
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from albstats.logformat import escape, format_line

MAX_USER_AGENT = 8192  # ALB truncates at 8 KB


def iso_time(epoch: float) -> str:
    """ALB's timestamp: ISO-8601 UTC with microseconds."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _IsoClock:
    """:func:`iso_time` with the ``YYYY-MM-DDTHH:MM:SS`` part formatted once per second (the log's
    two timestamps are nearly always within the same second as the previous request's).

    :meth:`split` gives the two parts (second text, microseconds) for a template's ``%s.%06dZ``: the
    writer's fast path inlines the same-second case, this is the general one. Rounding as
    ``datetime.fromtimestamp``: the fraction (``epoch - int(epoch)``, exact, as ``math.modf`` gives it)
    to microseconds, half to even."""

    __slots__ = ("_sec", "_text")

    def __init__(self) -> None:
        self._sec = -1
        self._text = ""

    def split(self, epoch: float) -> tuple[str, int]:
        frac, whole = math.modf(epoch)
        us = round(frac * 1e6)  # datetime.fromtimestamp rounds half to even, as round() does
        sec = int(whole)
        if us >= 1_000_000:
            sec, us = sec + 1, us - 1_000_000
        elif us < 0:  # before 1970: modf keeps the sign
            sec, us = sec - 1, us + 1_000_000
        if sec != self._sec:
            self._sec = sec
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return self._text, us

    def __call__(self, epoch: float) -> str:
        text, us = self.split(epoch)
        return f"{text}.{us:06d}Z"


@dataclass(slots=True)
class RequestRecord:
    """What the proxy knows about one client request when it is done with it."""

    client_ip: str
    client_port: int | None
    method: str
    url: str  # scheme://host:port/path?query as ALB logs it
    proto: str  # HTTP/1.1
    user_agent: str | None
    trace_id: str
    received_at: float  # epoch seconds
    received_bytes: int = 0
    sent_bytes: int = 0
    elb_status: int = 0
    dispatched_at: float | None = None  # epoch seconds of the final attempt's dispatch
    headers_at: float | None = None  # epoch seconds the final attempt's response headers arrived
    first_byte_at: float | None = None  # epoch seconds the response started to the client
    done_at: float = 0.0
    targets: list[str] = field(default_factory=list)  # one "ip:port" per attempt
    statuses: list[str] = field(default_factory=list)  # one status or "-" per attempt
    error_reason: str | None = None


def _span(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return -1.0
    return max(0.0, b - a)


def to_values(rec: RequestRecord, elb: str, node_ip: str) -> dict[str, Any]:
    """Column values (Athena names) for one record."""
    target_ip, target_port = None, None
    if rec.targets:
        target_ip, _, port = rec.targets[-1].rpartition(":")
        target_port = int(port) if port.isdigit() else None
    got_response = rec.headers_at is not None
    ua = rec.user_agent
    return {
        "type": "http",
        "time": iso_time(rec.done_at),
        "elb": elb,
        "client_ip": rec.client_ip,
        "client_port": rec.client_port,
        "target_ip": target_ip,
        "target_port": target_port,
        "request_processing_time": _span(rec.received_at, rec.dispatched_at) if rec.dispatched_at else -1.0,
        "target_processing_time": _span(rec.dispatched_at, rec.headers_at) if got_response else -1.0,
        "response_processing_time": _span(rec.headers_at, rec.first_byte_at) if got_response else -1.0,
        "elb_status_code": rec.elb_status,
        "target_status_code": rec.statuses[-1] if rec.statuses else "-",
        "received_bytes": rec.received_bytes,
        "sent_bytes": rec.sent_bytes,
        "request_verb": escape(rec.method),
        "request_url": escape(rec.url),
        "request_proto": escape(rec.proto),
        "user_agent": escape(ua[:MAX_USER_AGENT]) if ua else "-",
        "ssl_cipher": "-",
        "ssl_protocol": "-",
        "target_group_arn": "-",
        "trace_id": escape(rec.trace_id) if rec.trace_id else "-",
        "domain_name": "-",
        "chosen_cert_arn": "-",
        "matched_rule_priority": "0",
        "request_creation_time": iso_time(rec.received_at),
        "actions_executed": "forward",
        "redirect_url": "-",
        "lambda_error_reason": rec.error_reason or "-",
        "target_port_list": " ".join(rec.targets) if rec.targets else "-",
        "target_status_code_list": " ".join(rec.statuses) if rec.statuses else "-",
        "classification": "-",
        "classification_reason": "-",
        "conn_trace_id": "-",
        "transformed_host": "-",
        "transformed_uri": "-",
        "request_transform_status": "-",
        "ip_address": node_ip,
    }


@dataclass
class ProxyStats:
    """Counters for the shutdown summary (and for tests)."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    budget_refusals: int = 0
    not_retried_unsafe: int = 0  # retryable failure, but the method was not idempotent / body too big
    proxy_errors: int = 0  # 502/504 generated by the proxy itself
    statuses: dict[int, int] = field(default_factory=dict)  # requests completed, by the status logged

    def record(self, rec: RequestRecord) -> None:
        """Count a finished request. One update per request: the totals below are derived from it."""
        statuses = self.statuses
        statuses[rec.elb_status] = statuses.get(rec.elb_status, 0) + 1

    @property
    def completed(self) -> int:
        return sum(self.statuses.values())

    @property
    def successes(self) -> int:
        """Requests answered with a status below 500."""
        return sum(n for code, n in self.statuses.items() if 0 < code < 500)

    @property
    def success_rate(self) -> float:
        return self.successes / self.completed if self.completed else float("nan")

    def summary(self) -> str:
        amp = self.attempts / self.completed if self.completed else 0.0
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.requests} requests, {self.attempts} upstream attempts ({amp:.2f} per request), "
            f"{self.retries} retries, {self.budget_refusals} refused by the retry budget, "
            f"{self.not_retried_unsafe} not retried (unsafe method or large body), "
            f"{self.proxy_errors} proxy 502/504; success rate "
            + (f"{self.success_rate:.2%}" if self.completed else "n/a")
            + (f"; statuses {codes}" if codes else "")
        )


#: The per-request columns of the template, in line order; every other column is constant per log.
_FIELDS = (
    "time",
    "client",
    "target",
    "request_processing_time",
    "target_processing_time",
    "response_processing_time",
    "elb_status_code",
    "target_status_code",
    "received_bytes",
    "sent_bytes",
    "request",
    "user_agent",
    "trace_id",
    "request_creation_time",
    "lambda_error_reason",
    "target_port_list",
    "target_status_code_list",
)
_MARK = re.compile("\x00([a-z_]+)\x00")


def line_template(elb: str, node_ip: str, spans: str = "%s") -> str:
    """A ``%`` template of one log line, rendered by ``format_line`` from marker values: ``%s`` per
    per-request column, ``%s.%06dZ`` for the two timestamps (second text and microseconds), and
    ``spans`` for the three processing times (``%.3f`` when all three are known)."""
    vals: dict[str, Any] = {name: f"\x00{name}\x00" for name in _FIELDS}
    vals.update(
        type="http",
        elb=elb,
        client_ip="\x00client\x00",
        target_ip="\x00target\x00",
        request_verb="\x00request\x00",
        ssl_cipher="-",
        ssl_protocol="-",
        target_group_arn="-",
        domain_name="-",
        chosen_cert_arn="-",
        matched_rule_priority="0",
        actions_executed="forward",
        redirect_url="-",
        classification="-",
        classification_reason="-",
        conn_trace_id="-",
        transformed_host="-",
        transformed_uri="-",
        request_transform_status="-",
        ip_address=node_ip,
    )
    for k in ("client_port", "target_port", "request_url", "request_proto"):
        vals.pop(k, None)
    text = format_line(vals).replace("%", "%%")
    # the host:port tokens and the request token are one value each here
    text = text.replace("\x00client\x00:", "\x00client\x00").replace("\x00target\x00:", "\x00target\x00")
    text = text.replace("\x00request\x00 - -", "\x00request\x00")
    order = tuple(_MARK.findall(text))
    if order != _FIELDS:  # pragma: no cover - guards against a schema reorder
        raise RuntimeError(f"access-log template out of order: {order}")
    return _MARK.sub(lambda m: "%s.%06dZ" if m[1] in _TIMES else spans if m[1] in _SPANS else "%s", text)


_TIMES = frozenset({"time", "request_creation_time"})
_SPANS = frozenset({"request_processing_time", "target_processing_time", "response_processing_time"})


def _span_text(start: float, end: float) -> str:
    """``_num(_span(start, end))`` for two known instants."""
    d = end - start
    return f"{d:.3f}" if d > 0 else "0.000"


class LineWriter:
    """One record -> one log line, the same text as ``format_line(to_values(rec, elb, node_ip))``.

    Everything constant per log is in the template; per request, one ``%`` with values read once
    from the record. The timestamps are the clock's cached second text plus the microseconds
    (``%06d`` in the template), inline while in the clock's second, as nearly every request is.
    """

    def __init__(self, elb: str, node_ip: str) -> None:
        self.template = line_template(elb, node_ip)
        # a forwarded response knows all three spans: they go to the one % as floats
        self.template_spans = line_template(elb, node_ip, "%.3f")
        self.iso = _IsoClock()

    def __call__(self, rec: RequestRecord) -> str:
        clock = self.iso
        csec = clock._sec
        done, received = rec.done_at, rec.received_at
        s = int(done)
        if s == csec and 0 <= (done_us := round((done - s) * 1e6)) < 1_000_000:
            done_text = clock._text
        else:
            done_text, done_us = clock.split(done)
            csec = clock._sec
        s = int(received)
        if s == csec and 0 <= (recv_us := round((received - s) * 1e6)) < 1_000_000:
            recv_text = clock._text
        else:
            recv_text, recv_us = clock.split(received)
        targets = rec.targets
        if len(targets) == 1:  # the common case: one attempt
            tlist = targets[0]
            ip, _, port = tlist.rpartition(":")
            target = tlist if port.isdigit() else f"{ip}:"
        elif targets:
            ip, _, port = targets[-1].rpartition(":")
            target = f"{ip}:{port}" if port.isdigit() else f"{ip}:"
            tlist = " ".join(targets)
        else:
            target = tlist = "-"
        statuses = rec.statuses
        if len(statuses) == 1:
            status = slist = statuses[0]
        elif statuses:
            status, slist = statuses[-1], " ".join(statuses)
        else:
            status = slist = "-"
        # the spans as ``_num(_span(a, b))`` would write them: "%.3f" of a positive span, else 0.000
        disp, head, first = rec.dispatched_at, rec.headers_at, rec.first_byte_at
        rpt: str | float
        tpt: str | float
        rspt: str | float
        if disp and head is not None and first is not None:
            template = self.template_spans
            rpt, tpt, rspt = disp - received, head - disp, first - head
            rpt = rpt if rpt > 0 else 0.0
            tpt = tpt if tpt > 0 else 0.0
            rspt = rspt if rspt > 0 else 0.0
        else:
            template = self.template
            rpt = _span_text(received, disp) if disp else "-1"
            if head is None:
                tpt = rspt = "-1"
            else:
                tpt = "-1" if disp is None else _span_text(disp, head)
                rspt = "-1" if first is None else _span_text(head, first)
        ua = rec.user_agent
        client_ip = rec.client_ip
        if client_ip:
            client_port = rec.client_port
            client = f"{client_ip}:{'' if client_port is None else client_port}"
        else:
            client = "-"
        trace = rec.trace_id
        return (
            template
            % (
                done_text,
                done_us,
                client,
                target,
                rpt,
                tpt,
                rspt,
                rec.elb_status,
                status,
                rec.received_bytes,
                rec.sent_bytes,
                escape(f"{rec.method} {rec.url} {rec.proto}"),  # one call: escaping is per character
                escape(ua[:MAX_USER_AGENT]) if ua else "-",
                escape(trace) if trace else "-",
                recv_text,
                recv_us,
                rec.error_reason or "-",
                tlist,
                slist,
            )
        )


#: Records held before their lines go to the file in one write (about 27 KB of text). The proxy's
#: flush loop drains them every second anyway.
_PENDING = 64


class AccessLog:
    """Appends ALB lines to a file (or stdout for ``-``); buffered, flushed by :meth:`flush` and on close.

    A finished request's record is held, and the lines of a batch of records are formatted together
    and handed to the file in one ``write``. Per line, a text file's ``write`` (encode, buffer
    bookkeeping) cost about as much as formatting the line; and formatted one per request, between
    the server's and the client's work, the line writer ran at a third of its own speed (about 7 µs
    instead of 2.4 µs per line, its code and data fetched anew each time): in a batch it stays in
    the cache. The records are complete when written (the handler is done with them) and hold only
    strings and numbers. Nothing is held longer than before: the proxy flushes every second and on
    shutdown, as it did the lines.
    """

    def __init__(
        self, path: str | None, *, elb: str = "app/albstats-proxy/0000000000000000", node_ip: str = "127.0.0.1"
    ) -> None:
        self.path = path
        self.elb = elb
        self.node_ip = node_ip
        self._fh: IO[str] | None = None
        self._line = LineWriter(elb, node_ip)
        self._pending: list[RequestRecord] = []
        if path == "-":
            self._fh = sys.stdout
        elif path:
            self._fh = open(path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115

    def write(self, rec: RequestRecord) -> None:
        if self._fh is not None:
            pending = self._pending
            pending.append(rec)
            if len(pending) >= _PENDING:
                self._drain()

    def _drain(self) -> None:
        if self._pending and self._fh is not None:
            line = self._line
            lines = [line(rec) for rec in self._pending]
            self._pending.clear()
            lines.append("")  # the last line's newline
            self._fh.write("\n".join(lines))

    def flush(self) -> None:
        if self._fh is not None:
            self._drain()
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._drain()
            self._fh.flush()
            if self._fh is not sys.stdout:
                self._fh.close()
            self._fh = None
