"""The proxy's access log, in the ALB access-log format, and its shutdown summary.

One line per client request, written with :func:`albstats.logformat.format_line`, so every albstats
command (parse, report, compare, whatif) reads proxy logs exactly like ALB logs. What differs from a
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

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from albstats.logformat import escape, format_line

MAX_USER_AGENT = 8192  # ALB truncates at 8 KB


def iso_time(epoch: float) -> str:
    """ALB's timestamp: ISO-8601 UTC with microseconds."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
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
    completed: int = 0
    successes: int = 0  # response status below 500
    attempts: int = 0
    retries: int = 0
    budget_refusals: int = 0
    not_retried_unsafe: int = 0  # retryable failure, but the method was not idempotent / body too big
    proxy_errors: int = 0  # 502/504 generated by the proxy itself
    statuses: dict[int, int] = field(default_factory=dict)

    def record(self, rec: RequestRecord) -> None:
        self.completed += 1
        if 0 < rec.elb_status < 500:
            self.successes += 1
        self.statuses[rec.elb_status] = self.statuses.get(rec.elb_status, 0) + 1

    @property
    def success_rate(self) -> float:
        return self.successes / self.completed if self.completed else float("nan")

    def summary(self) -> str:
        amp = self.attempts / self.completed if self.completed else 0.0
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (f"{self.requests} requests, {self.attempts} upstream attempts ({amp:.2f} per request), "
                f"{self.retries} retries, {self.budget_refusals} refused by the retry budget, "
                f"{self.not_retried_unsafe} not retried (unsafe method or large body), "
                f"{self.proxy_errors} proxy 502/504; success rate "
                + (f"{self.success_rate:.2%}" if self.completed else "n/a")
                + (f"; statuses {codes}" if codes else ""))


class AccessLog:
    """Appends ALB lines to a file (or stdout for ``-``); buffered, flushed by :meth:`flush` and on close."""

    def __init__(self, path: str | None, *, elb: str = "app/albstats-proxy/0000000000000000",
                 node_ip: str = "127.0.0.1") -> None:
        self.path = path
        self.elb = elb
        self.node_ip = node_ip
        self._fh: IO[str] | None = None
        if path == "-":
            self._fh = sys.stdout
        elif path:
            self._fh = open(path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115

    def write(self, rec: RequestRecord) -> None:
        if self._fh is not None:
            self._fh.write(format_line(to_values(rec, self.elb, self.node_ip)) + "\n")

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            if self._fh is not sys.stdout:
                self._fh.close()
            self._fh = None
