"""The one list of ALB log fields.

Everything that knows about columns derives from this module: the local parser, the Arrow schema,
the Athena DDL and the field reference in the docs. Names and types follow AWS's Athena table for ALB
access logs, so a row parsed locally equals the row Athena returns for the same line.

A log line is a sequence of *tokens* (space separated, some quoted). Most tokens give one column;
``client:port`` and ``target:port`` give two, ``request`` gives three. Fields AWS appends later land
in ``extra_fields`` as raw text until this list learns their names.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: Athena type -> the pyarrow function that makes its Arrow type. Named, not called here: pyarrow is
#: imported only when an Arrow type is asked for, so a process that only writes log lines (the retry
#: proxy) does not load it (175 ms at startup, and 12,000 more objects for every full collection).
ARROW_TYPES: dict[str, str] = {
    "string": "string",
    "int": "int32",
    "bigint": "int64",
    "double": "float64",
}

#: Athena type -> DuckDB type.
DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE",
}


@dataclass(frozen=True)
class Column:
    """One Athena column."""

    name: str
    type: str  # Athena type: string, int, bigint, double
    doc: str

    @property
    def arrow_type(self) -> pa.DataType:
        import pyarrow as pa

        return getattr(pa, ARROW_TYPES[self.type])()


@dataclass(frozen=True)
class Token:
    """One space-separated token of a log line, as AWS documents it.

    ``kind`` tells the parser how the token becomes columns:
    ``plain`` (one column), ``hostport`` (``ip:port`` split on the last colon), ``request``
    (``VERB URL PROTO`` split at the first and last space).
    """

    log_name: str
    columns: tuple[Column, ...]
    quoted: bool = False
    kind: str = "plain"
    since: str = "2016"
    regex: str = ""  # Athena RegexSerDe fragment for this token (see athena DDL)
    doc: str = ""
    validate: str = ""  # "" or a name in VALIDATORS: a value that fails makes the line malformed


def _c(name: str, type_: str, doc: str) -> tuple[Column, ...]:
    return (Column(name, type_, doc),)


ACCESS_TOKENS: tuple[Token, ...] = (
    Token("type", _c("type", "string", "http, https, h2, grpcs, ws or wss"), validate="type"),
    Token(
        "time",
        _c("time", "string", "when the load balancer generated the response, ISO-8601 UTC"),
        validate="timestamp",
    ),
    Token("elb", _c("elb", "string", "load balancer resource id, e.g. app/my-lb/50dc6c495c0c9188")),
    Token(
        "client:port",
        (
            Column("client_ip", "string", "client (or fronting proxy) IP, IPv4 or IPv6"),
            Column("client_port", "int", "client port"),
        ),
        kind="hostport",
        validate="hostport",
    ),
    Token(
        "target:port",
        (
            Column("target_ip", "string", "target IP; '' when the token is '-' (as Athena's regex gives)"),
            Column("target_port", "int", "target port; NULL when there was no target"),
        ),
        kind="hostport",
        validate="hostport",
    ),
    Token(
        "request_processing_time",
        _c("request_processing_time", "double", "seconds from receipt to dispatch; -1 if not dispatched"),
        validate="number",
    ),
    Token(
        "target_processing_time",
        _c(
            "target_processing_time",
            "double",
            "seconds from dispatch to the target's response headers; -1 if not dispatched",
        ),
        validate="number",
    ),
    Token(
        "response_processing_time",
        _c(
            "response_processing_time",
            "double",
            "seconds from the target's headers to the response start; -1 if not dispatched",
        ),
        validate="number",
    ),
    Token("elb_status_code", _c("elb_status_code", "int", "status the load balancer returned"), validate="status"),
    Token(
        "target_status_code",
        _c("target_status_code", "string", "status the target returned, '-' if none"),
        validate="status",
    ),
    Token("received_bytes", _c("received_bytes", "bigint", "request bytes, headers included"), validate="integer"),
    Token("sent_bytes", _c("sent_bytes", "bigint", "response bytes, headers included"), validate="integer"),
    Token(
        "request",
        (
            Column("request_verb", "string", "HTTP method, '-' for a malformed request"),
            Column("request_url", "string", "URL as sent by the client (may contain spaces)"),
            Column("request_proto", "string", "HTTP version, '-' for a malformed request"),
        ),
        quoted=True,
        kind="request",
    ),
    Token(
        "user_agent", _c("user_agent", "string", "User-Agent, truncated at 8 KB; escapes kept as logged"), quoted=True
    ),
    Token("ssl_cipher", _c("ssl_cipher", "string", "OpenSSL cipher name, '-' without TLS")),
    Token("ssl_protocol", _c("ssl_protocol", "string", "TLS version, '-' without TLS")),
    Token("target_group_arn", _c("target_group_arn", "string", "target group ARN")),
    Token("trace_id", _c("trace_id", "string", "X-Amzn-Trace-Id contents"), quoted=True),
    Token("domain_name", _c("domain_name", "string", "SNI domain"), quoted=True),
    Token("chosen_cert_arn", _c("chosen_cert_arn", "string", "certificate ARN or session-reused"), quoted=True),
    Token("matched_rule_priority", _c("matched_rule_priority", "string", "priority of the matched rule"), since="2018"),
    Token(
        "request_creation_time",
        _c("request_creation_time", "string", "when the request arrived, ISO-8601 UTC"),
        since="2018",
        validate="timestamp_or_dash",
    ),
    Token(
        "actions_executed",
        _c("actions_executed", "string", "comma list: forward, redirect, waf, ..."),
        quoted=True,
        since="2018",
    ),
    Token("redirect_url", _c("redirect_url", "string", "Location of a redirect action"), quoted=True, since="2018"),
    Token(
        "error_reason",
        _c("lambda_error_reason", "string", "error reason code (Athena: lambda_error_reason)"),
        quoted=True,
        since="2018",
    ),
    Token(
        "target:port_list",
        _c("target_port_list", "string", "every target tried, space separated"),
        quoted=True,
        since="2020",
    ),
    Token(
        "target_status_code_list",
        _c("target_status_code_list", "string", "status of every target tried"),
        quoted=True,
        since="2020",
    ),
    Token(
        "classification",
        _c("classification", "string", "desync classification: Acceptable, Ambiguous, Severe"),
        quoted=True,
        since="2020",
    ),
    Token(
        "classification_reason",
        _c("classification_reason", "string", "desync classification reason code"),
        quoted=True,
        since="2020",
    ),
    Token("conn_trace_id", _c("conn_trace_id", "string", "traceability id, joins the connection log"), since="2024"),
    Token(
        "transformed_host",
        _c("transformed_host", "string", "Host after a host-header-rewrite transform"),
        quoted=True,
        since="2025",
    ),
    Token(
        "transformed_uri",
        _c("transformed_uri", "string", "URI after a url-rewrite transform"),
        quoted=True,
        since="2025",
    ),
    Token(
        "request_transform_status",
        _c("request_transform_status", "string", "status of the rewrite transform"),
        quoted=True,
        since="2025",
    ),
    Token(
        "ip_address", _c("ip_address", "string", "IP of the load balancer node that served the request"), since="2026"
    ),
)

#: Raw text of tokens after the last known one; NULL when there are none.
EXTRA_COLUMN = Column("extra_fields", "string", "unknown trailing tokens, raw, space separated")

#: The fewest tokens an ALB access line has ever had (2016 format, ends at chosen_cert_arn).
MIN_ACCESS_TOKENS = 20

#: Number of tokens AWS's own (29-field-era) Athena regex needs at least.
ATHENA_MIN_TOKENS = 29

CONNECTION_TOKENS: tuple[Token, ...] = (
    Token(
        "timestamp",
        _c("time", "string", "when the connection was established or failed, ISO-8601 UTC"),
        validate="timestamp",
    ),
    Token("client_ip", _c("client_ip", "string", "client IP"), validate="ip"),
    Token("client_port", _c("client_port", "int", "client port"), validate="integer"),
    Token("listener_port", _c("listener_port", "int", "listener port"), validate="integer"),
    Token("tls_protocol", _c("tls_protocol", "string", "TLS version, '-' if not TLS")),
    Token("tls_cipher", _c("tls_cipher", "string", "cipher, '-' if not TLS")),
    Token("tls_handshake_latency", _c("tls_handshake_latency", "double", "seconds; NULL if not TLS or failed")),
    Token(
        "leaf_client_cert_subject", _c("leaf_client_cert_subject", "string", "client certificate subject"), quoted=True
    ),
    Token("leaf_client_cert_validity", _c("leaf_client_cert_validity", "string", "NotBefore=..;NotAfter=..")),
    Token("leaf_client_cert_serial_number", _c("leaf_client_cert_serial_number", "string", "serial, hex")),
    Token("tls_verify_status", _c("tls_verify_status", "string", "Success or Failed:<code>")),
    Token("conn_trace_id", _c("conn_trace_id", "string", "traceability id, joins the access log"), since="2024"),
    Token("tls_keyexchange", _c("tls_keyexchange", "string", "key exchange, '-' if not TLS"), since="2025"),
    Token("elb", _c("elb", "string", "load balancer resource id"), since="2025"),
    Token("ip_address", _c("ip_address", "string", "IP of the load balancer node"), since="2025"),
)

MIN_CONNECTION_TOKENS = 11


@dataclass(frozen=True)
class LogSchema:
    """A log kind: its tokens in order and the columns they give."""

    kind: str  # "access" or "connection"
    tokens: tuple[Token, ...]
    min_tokens: int
    athena_table: str
    columns: tuple[Column, ...] = field(init=False)

    def __post_init__(self) -> None:
        cols = tuple(c for t in self.tokens for c in t.columns) + (EXTRA_COLUMN,)
        object.__setattr__(self, "columns", cols)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def arrow_schema(self, fields: list[str] | None = None) -> pa.Schema:
        import pyarrow as pa

        cols = self.columns if fields is None else [self.column(n) for n in fields]
        return pa.schema([pa.field(c.name, c.arrow_type) for c in cols])


ACCESS = LogSchema("access", ACCESS_TOKENS, MIN_ACCESS_TOKENS, "alb_logs")
CONNECTION = LogSchema("connection", CONNECTION_TOKENS, MIN_CONNECTION_TOKENS, "alb_connection_logs")

#: Columns analysts get as timestamps from read_logs (Athena keeps them as strings).
TIMESTAMP_COLUMNS = ("time", "request_creation_time")

ALB_TYPES = frozenset({"http", "https", "h2", "grpcs", "ws", "wss"})

#: An ISO-8601 UTC time with each field in its range (month 01-12, day 01-31, hour 00-23, minute and
#: second 00-59). A regex cannot know the calendar: a day past its month's end (February 30) passes it,
#: and :func:`real_date` turns it away.
_TIMESTAMP = (
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?Z?"
)

#: What each field validator (``Token.validate``) accepts: the whole value must match. The one definition:
#: the reference parser compiles them (:mod:`albstats.parsing.lines`), the Athena DDL embeds them in its
#: RegexSerDe pattern (:mod:`albstats.athena_ddl`), and tests/test_validators.py feeds the same edge values
#: to these and to the C tokenizer's matchers (albstats/_albparse.c), which must agree. The syntax is the
#: common subset of Python's ``re`` and Java's regex (Athena): ``[0-9]``, not ``\d``; ``.`` never meets a
#: newline because lines are split on it.
VALIDATORS: dict[str, str] = {
    "type": "(?:" + "|".join(sorted(ALB_TYPES, key=lambda t: (-len(t), t))) + ")",
    "timestamp": _TIMESTAMP,
    "timestamp_or_dash": f"(?:-|{_TIMESTAMP})",
    "number": r"-?[0-9]+(?:\.[0-9]+)?",
    "status": "(?:-|[0-9]{3})",
    "integer": "(?:-|-?[0-9]+)",
    "ip": "[0-9A-Fa-f:.]+",
    "hostport": "(?:-|.*:[0-9]*)",  # '-', or a port of digits (maybe none) after the last colon
}


def real_date(value: str) -> bool:
    """Whether a value the ``timestamp`` validator accepts names a day that exists (``-`` passes).

    The check beside the regex: DuckDB and Athena refuse to read February 30 as a time, so a line
    carrying one is malformed, said with its file and line number, rather than a query error later.
    The C tokenizer makes the same check (albstats/_albparse.c, ``match_ts``)."""
    if value == "-":
        return True
    year, month, day = int(value[0:4]), int(value[5:7]), int(value[8:10])
    return day <= calendar.monthrange(year, month)[1]


def validate_fields(names: list[str], schema: LogSchema = ACCESS) -> list[str]:
    """Check a user-given column list against the schema; raise a UsageError naming the bad one."""
    from albstats.errors import UsageError

    known = set(schema.names)
    for n in names:
        if n not in known:
            raise UsageError(f"unknown field {n!r}; known fields: {', '.join(schema.names)}")
    return names


def markdown_table(schema: LogSchema = ACCESS) -> str:
    """The field reference for the docs, generated so it cannot drift from the parser."""
    lines = ["| # | log token | column | Athena type | quoted | since | meaning |", "|---|---|---|---|---|---|---|"]
    for i, t in enumerate(schema.tokens, 1):
        for c in t.columns:
            lines.append(
                f"| {i} | `{t.log_name}` | `{c.name}` | {c.type} | {'yes' if t.quoted else ''} | {t.since} | {c.doc} |"
            )
    lines.append(f"| | (trailing) | `{EXTRA_COLUMN.name}` | string | | | {EXTRA_COLUMN.doc} |")
    return "\n".join(lines)
