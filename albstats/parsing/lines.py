"""The reference line parser and format detection: one log line in, one row (or the reason it is bad) out.

Values equal what Athena returns for the same line with AWS's table: ``-`` stays ``'-'`` in string
columns, ``-1`` stays ``-1.0`` in timing columns, a value that does not cast in an int column is
NULL, fields missing at the end of an older-format line are NULL, and quoted fields keep their
backslash escapes exactly as logged (Athena's RegexSerDe cannot unescape either). Two documented
differences: bracketed IPv6 (``[::1]:80``, not written by ALB itself) loses its brackets, and a
field absent from an older line is NULL where AWS's regex yields an empty string.

:func:`parse_line` is the definition the compiled tokenizer (:mod:`albstats.parsing.native`) is held
to: the C code only takes lines it can vouch for and hands every other one to :func:`python_line`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from albstats.errors import InputError
from albstats.parsing.stats import MAX_BAD_EXAMPLES, FileStats
from albstats.schema import ACCESS, ALB_TYPES, CONNECTION, VALIDATORS, LogSchema, real_date

#: A quoted token (backslash escapes allowed) or a bare token, each with the space after it (or the end).
_TOKEN_RE = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"(?: |\Z)|([^ "][^ ]*)(?: |\Z)', re.DOTALL)
_INT_RE = re.compile(r"-?\d+\Z", re.ASCII)
_IP_RE = re.compile(VALIDATORS["ip"], re.ASCII)
#: What Athena's ``([-.0-9]*)`` admits for a double; Python's float() alone would also take inf, nan, 1_0, 1e5.
_DBL_RE = re.compile(r"[-.0-9]+\Z", re.ASCII)
#: The field validators of :data:`albstats.schema.VALIDATORS`, whole-value matches.
_MATCH = {name: re.compile(f"(?:{pattern})", re.ASCII).fullmatch for name, pattern in VALIDATORS.items()}


def valid(validator: str, value: str) -> bool:
    """Whether ``value`` passes a schema validator: its regex, and for a time a day that exists."""
    if _MATCH[validator](value) is None:
        return False
    return real_date(value) if validator in ("timestamp", "timestamp_or_dash") else True


INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class BadLine(ValueError):
    """A line that is not a valid log line of the expected kind; the message says why."""


def tokenize(line: str) -> list[tuple[str, int]]:
    """Split a line into (value, start offset) pairs; quotes removed, escapes kept as written."""
    out: list[tuple[str, int]] = []
    pos = 0
    for m in _TOKEN_RE.finditer(line):
        if m.start() != pos:
            break
        q = m.group(1)
        out.append((q if q is not None else m.group(2), pos))
        pos = m.end()
    if pos != len(line):
        raise BadLine(f"unbalanced quote or missing space at column {pos + 1}")
    return out


def _cast(type_: str, v: str) -> Any:
    if type_ == "string":
        return v
    if type_ == "double":
        if not _DBL_RE.match(v):
            return None
        try:
            return float(v)
        except ValueError:
            return None
    if _INT_RE.match(v):
        i = int(v)
        lim = INT32_MAX if type_ == "int" else INT64_MAX
        return i if -lim - 1 <= i <= lim else None
    return None


def _hostport(v: str) -> tuple[str, int | None]:
    if v == "-":
        return "", None  # Athena's ([^ ]*)[:-]([0-9]*) gives '' and an empty port for '-'
    host, _, port = v.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port) if port and int(port) <= INT32_MAX else None


def _request(v: str) -> tuple[str, str | None, str | None]:
    first = v.find(" ")
    if first < 0:
        return v, None, None
    last = v.rfind(" ")
    if last == first:
        return v[:first], v[first + 1 :], None
    return v[:first], v[first + 1 : last], v[last + 1 :]


def parse_line(line: str, schema: LogSchema = ACCESS) -> list[Any]:
    """Parse one line into a list of column values in ``schema.columns`` order.

    Raises :class:`BadLine` with a short reason when the line is not a valid line of that kind.
    """
    toks = tokenize(line)
    if len(toks) < schema.min_tokens:
        raise BadLine(f"{len(toks)} fields, an ALB {schema.kind} log line has at least {schema.min_tokens}")
    row: list[Any] = []
    for i, tok in enumerate(schema.tokens):
        if i >= len(toks):
            row.extend(None for _ in tok.columns)
            continue
        v = toks[i][0]
        if tok.validate and not valid(tok.validate, v):
            raise BadLine(f"field {i + 1} ({tok.log_name}) is not valid: {v[:40]!r}")
        if tok.kind == "hostport":
            row.extend(_hostport(v))
        elif tok.kind == "request":
            row.extend(_request(v))
        else:
            row.append(_cast(tok.columns[0].type, v))
    ntok = len(schema.tokens)
    row.append(line[toks[ntok][1] :] if len(toks) > ntok else None)
    return row


def python_line(n: int, line: str, schema: LogSchema, fs: FileStats, strict: bool, src_name: str) -> list[Any] | None:
    """The per-line rules shared by both engines: blank lines are skipped, bad lines counted (fatal if strict)."""
    if not line.strip():
        return None
    fs.lines += 1
    try:
        row = parse_line(line, schema)
    except BadLine as e:
        fs.bad_lines += 1
        if strict:
            raise InputError(f"{src_name}:{n}: malformed line: {e}") from None
        if len(fs.bad_examples) < MAX_BAD_EXAMPLES:
            fs.bad_examples.append((n, str(e)))
        return None
    fs.rows += 1
    return row


def rows_to_batch(rows: list[list[Any]], schema: LogSchema, fields: list[str] | None = None) -> pa.RecordBatch:
    """Column-major conversion of parsed rows into a batch with the schema's Arrow types."""
    names = schema.names
    idx = list(range(len(names))) if fields is None else [names.index(f) for f in fields]
    cols = list(zip(*rows)) if rows else [() for _ in names]
    arrow = schema.arrow_schema(None if fields is None else fields)
    arrays = [pa.array(cols[i], type=arrow.field(j).type) for j, i in enumerate(idx)]
    return pa.RecordBatch.from_arrays(arrays, schema=arrow)


# --- format detection -------------------------------------------------------------------------

_ISO_PREFIX = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", re.ASCII)


def detect_format(line: str) -> str:
    """Name the log format a line is in: alb-access, alb-connection, classic-elb, nlb, elb-control or unknown."""
    if line.startswith("Enable AccessLog for ELB:"):
        return "elb-control"
    parts = line.split(" ", 2)
    first = parts[0]
    if first in ALB_TYPES:
        return "alb-access"
    if first == "tls" and len(parts) > 1 and parts[1] == "2.0":
        return "nlb"
    if _ISO_PREFIX.match(first) and len(parts) > 1:
        return "alb-connection" if _IP_RE.fullmatch(parts[1]) else "classic-elb"
    return "unknown"


FORMAT_NAMES = {
    "classic-elb": "a Classic Load Balancer access log",
    "nlb": "a Network Load Balancer (TLS) access log",
    "elb-control": "the ELBAccessLogTestFile control object ELB writes when logging is enabled",
    "alb-access": "an ALB access log",
    "alb-connection": "an ALB connection log",
}


def describe_other(line: str) -> str:
    """What a first line that is no load-balancer log at all looks like, for the error naming a file given by
    name (``albstats parse README.md``): a guess from its first characters, with the line's start."""
    head = line.lstrip("\ufeff")
    width = 40
    if head.startswith("PAR1"):
        found = "a Parquet file"
    elif "\x00" in head or "\ufffd" in head or any(ord(c) < 32 and c not in "\t\r" for c in head):
        found, width = "binary data", 8
    elif head.startswith("{") or re.match(r"\[\s*([\[{\"\d-]|$)", head):
        found = "JSON"
    elif head.startswith("<"):
        found = "HTML or XML"
    elif head.count(",") >= 2 and head.count(",") > head.count(" "):
        found = "CSV"
    else:
        found = "text"
    excerpt = head[:width] + ("..." if len(head) > width else "")
    return f"{found} (line 1: {excerpt!r})"


def schema_for(fmt: str) -> LogSchema | None:
    """The schema of a format :func:`detect_format` names, None for formats albstats does not read."""
    return {"alb-access": ACCESS, "alb-connection": CONNECTION}.get(fmt)


#: Lines after an unrecognised first line that are looked at before a named file is called no log at all.
LOOKAHEAD_LINES = 8


def check_format(
    line: str, src_name: str, schema: LogSchema, fs: FileStats, explicit: bool, later: Iterable[str] = ()
) -> bool:
    """False (and ``fs.skipped`` set) when the first line shows another format; an error if the file was named.

    A named file whose first line is no log line is an error too, unless one of the ``later`` lines (the next
    LOOKAHEAD_LINES) is an ALB line: then it is a log cut mid-line (``tail -c``, ``split -b``), and the first
    line is counted as malformed like any other."""
    fmt = detect_format(line)
    if fmt in ("classic-elb", "nlb", "elb-control") or (schema_for(fmt) not in (None, schema)):
        msg = f"{src_name}: this is {FORMAT_NAMES[fmt]}, not an ALB {schema.kind} log"
        if explicit:
            raise InputError(msg)
        fs.skipped = FORMAT_NAMES[fmt]
        return False
    if fmt == "unknown" and explicit and not any(schema_for(detect_format(x)) for x in later if x.strip()):
        raise InputError(f"{src_name}: this is {describe_other(line)}, not an ALB {schema.kind} log")
    return True
