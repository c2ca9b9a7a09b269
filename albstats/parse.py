"""ALB log lines -> Arrow record batches, with format detection and bad-line accounting.

Values equal what Athena returns for the same line with AWS's table: ``-`` stays ``'-'`` in string
columns, ``-1`` stays ``-1.0`` in timing columns, a value that does not cast in an int column is
NULL, fields missing at the end of an older-format line are NULL, and quoted fields keep their
backslash escapes exactly as logged (Athena's RegexSerDe cannot unescape either). Two documented
differences: bracketed IPv6 (``[::1]:80``, not written by ALB itself) loses its brackets, and a
field absent from an older line is NULL where AWS's regex yields an empty string.

Files are read one at a time and turned into batches as they go, so memory holds one batch at most.
"""

from __future__ import annotations

import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from albstats.errors import InputError
from albstats.schema import ACCESS, ALB_TYPES, CONNECTION, LogSchema
from albstats.sources import Source, expand

#: A quoted token (backslash escapes allowed) followed by a space or the end, or a bare token.
_TOKEN_RE = re.compile(r'"((?:[^"\\]|\\.)*)"(?= |$)|([^ "][^ ]*)', re.DOTALL)
_TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?\Z")
_NUM_RE = re.compile(r"-?\d+(?:\.\d+)?\Z")
_INT_RE = re.compile(r"-?\d+\Z")
_STATUS_RE = re.compile(r"\d{3}\Z")
_PORT_RE = re.compile(r"\d*\Z")
_IP_RE = re.compile(r"[0-9A-Fa-f:.]+\Z")

MAX_BAD_EXAMPLES = 5
INT32_MAX = 2**31 - 1


class BadLine(ValueError):
    """A line that is not a valid log line of the expected kind; the message says why."""


def _valid(kind: str, v: str) -> bool:
    if kind == "type":
        return v in ALB_TYPES
    if kind == "timestamp":
        return bool(_TS_RE.match(v))
    if kind == "timestamp_or_dash":
        return v == "-" or bool(_TS_RE.match(v))
    if kind == "number":
        return bool(_NUM_RE.match(v))
    if kind == "status":
        return v == "-" or bool(_STATUS_RE.match(v))
    if kind == "integer":
        return v == "-" or bool(_INT_RE.match(v))
    if kind == "ip":
        return bool(_IP_RE.match(v))
    if kind == "hostport":
        return v == "-" or (":" in v and bool(_PORT_RE.match(v.rsplit(":", 1)[1])))
    return True


def tokenize(line: str) -> list[tuple[str, int]]:
    """Split a line into (value, start offset) pairs; quotes removed, escapes kept as written."""
    out: list[tuple[str, int]] = []
    pos, n = 0, len(line)
    match = _TOKEN_RE.match
    while pos < n:
        m = match(line, pos)
        if m is None:
            raise BadLine(f"unbalanced quote or missing space at column {pos + 1}")
        q = m.group(1)
        out.append((q if q is not None else m.group(2), pos))
        pos = m.end()
        if pos < n:
            if line[pos] != " ":  # pragma: no cover - the lookahead guarantees a space
                raise BadLine(f"missing space at column {pos + 1}")
            pos += 1
    return out


def _cast(type_: str, v: str) -> Any:
    if type_ == "string":
        return v
    if type_ == "double":
        try:
            return float(v)
        except ValueError:
            return None
    if _INT_RE.match(v):
        i = int(v)
        if type_ == "int" and not -INT32_MAX - 1 <= i <= INT32_MAX:
            return None
        return i
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
        return v[:first], v[first + 1:], None
    return v[:first], v[first + 1:last], v[last + 1:]


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
        if tok.validate and not _valid(tok.validate, v):
            raise BadLine(f"field {i + 1} ({tok.log_name}) is not valid: {v[:40]!r}")
        if tok.kind == "hostport":
            row.extend(_hostport(v))
        elif tok.kind == "request":
            row.extend(_request(v))
        else:
            row.append(_cast(tok.columns[0].type, v))
    ntok = len(schema.tokens)
    row.append(line[toks[ntok][1]:] if len(toks) > ntok else None)
    return row


# --- format detection -------------------------------------------------------------------------

_ISO_PREFIX = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


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
        return "alb-connection" if _IP_RE.match(parts[1]) else "classic-elb"
    return "unknown"


FORMAT_NAMES = {
    "classic-elb": "a Classic Load Balancer access log",
    "nlb": "a Network Load Balancer (TLS) access log",
    "elb-control": "the ELBAccessLogTestFile control object ELB writes when logging is enabled",
    "alb-access": "an ALB access log",
    "alb-connection": "an ALB connection log",
}


# --- statistics -------------------------------------------------------------------------------

@dataclass
class FileStats:
    """What reading one file found."""

    name: str
    kind: str = "access"
    lines: int = 0  # non-blank lines read
    rows: int = 0  # lines parsed into rows
    bad_lines: int = 0
    bad_examples: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    error: str | None = None  # damage that stopped the file early (corrupt gzip), good lines kept
    skipped: str | None = None  # why the file was not read at all


@dataclass
class ParseStats:
    """Totals over a read, for summaries and the report's data-quality section."""

    files: list[FileStats] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bad_lines(self) -> int:
        return sum(f.bad_lines for f in self.files)

    @property
    def errors(self) -> list[str]:
        return [f"{f.name}: {f.error}" for f in self.files if f.error]

    @property
    def files_read(self) -> int:
        return sum(1 for f in self.files if not f.skipped)

    def bad_examples(self, limit: int = MAX_BAD_EXAMPLES) -> list[str]:
        out: list[str] = []
        for f in self.files:
            for ln, reason in f.bad_examples:
                if len(out) >= limit:
                    return out
                out.append(f"{f.name}:{ln}: {reason}")
        return out

    def summary(self) -> str:
        s = (f"{self.files_read} files, {self.lines} lines, {self.rows} rows, "
             f"{self.bad_lines} malformed lines")
        skipped = sum(1 for f in self.files if f.skipped)
        if skipped:
            s += f", {skipped} files skipped"
        if self.errors:
            s += f", {len(self.errors)} damaged files"
        return s


# --- reading files ----------------------------------------------------------------------------

def _gunzip(raw: Any, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream chunk by chunk, so damage loses only what follows it."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = False
    while chunk := raw.read(chunk_size):
        while chunk:
            pending = True
            yield d.decompress(chunk)
            if d.eof:
                chunk, pending = d.unused_data, False
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                chunk = b""
    if pending:
        raise EOFError("gzip stream ends before its end marker")


def iter_chunks(src: Source) -> Iterator[bytes]:
    """The decompressed bytes of one source, in chunks."""
    raw = src.open()
    try:
        if src.is_gzip:
            yield from _gunzip(raw)
        else:
            while chunk := raw.read(1 << 20):
                yield chunk
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def _lines(src: Source, fs: FileStats) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) from one source; a damaged gzip stops early with ``fs.error`` set."""
    n = 0
    rest = b""
    try:
        for chunk in iter_chunks(src):
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for b in parts:
                n += 1
                yield n, b.decode("utf-8", "replace").rstrip("\r")
    except (EOFError, zlib.error, OSError) as e:
        what = "is truncated" if isinstance(e, EOFError) else f"is corrupt ({e})"
        fs.error = f"gzip data {what} after line {n}; the {n} lines before it were kept"
        return
    if rest:
        n += 1
        yield n, rest.decode("utf-8", "replace").rstrip("\r")


def _schema_for(fmt: str) -> LogSchema | None:
    return {"alb-access": ACCESS, "alb-connection": CONNECTION}.get(fmt)


def iter_file_rows(src: Source, schema: LogSchema, fs: FileStats, *, strict: bool = False,
                   explicit: bool = True) -> Iterator[list[Any]]:
    """Rows of one file. Rejects a file in another format when it was named explicitly."""
    first = True
    for n, line in _lines(src, fs):
        if not line.strip():
            continue
        if first:
            first = False
            fmt = detect_format(line)
            if fmt in ("classic-elb", "nlb", "elb-control") or (_schema_for(fmt) not in (None, schema)):
                msg = f"{src.name}: this is {FORMAT_NAMES[fmt]}, not an ALB {schema.kind} log"
                if explicit:
                    raise InputError(msg)
                fs.skipped = FORMAT_NAMES[fmt]
                return
        fs.lines += 1
        try:
            row = parse_line(line, schema)
        except BadLine as e:
            fs.bad_lines += 1
            if strict:
                raise InputError(f"{src.name}:{n}: malformed line: {e}") from None
            if len(fs.bad_examples) < MAX_BAD_EXAMPLES:
                fs.bad_examples.append((n, str(e)))
            continue
        fs.rows += 1
        yield row


def rows_to_batch(rows: list[list[Any]], schema: LogSchema, fields: list[str] | None = None) -> pa.RecordBatch:
    """Column-major conversion of parsed rows into a batch with the schema's Arrow types."""
    names = schema.names
    idx = list(range(len(names))) if fields is None else [names.index(f) for f in fields]
    cols = list(zip(*rows)) if rows else [() for _ in names]
    arrow = schema.arrow_schema(None if fields is None else fields)
    arrays = [pa.array(cols[i], type=arrow.field(j).type) for j, i in enumerate(idx)]
    return pa.RecordBatch.from_arrays(arrays, schema=arrow)


def iter_batches(paths: Iterable[str] | Iterable[Source], *, kind: str = "access", fields: list[str] | None = None,
                 strict: bool = False, stats: ParseStats | None = None, batch_size: int = 65536,
                 on_file: Callable[[FileStats], None] | None = None, explicit: set[str] | None = None,
                 **expand_kw: Any) -> Iterator[pa.RecordBatch]:
    """Stream Arrow record batches from files, folders, globs, ``-`` or ``s3://`` prefixes.

    ``kind`` is ``access``, ``connection`` or ``auto`` (the kind of the first file decides).
    ``stats`` (if given) is filled in as files are read; ``on_file`` is called after each file,
    for progress bars. A file named directly (or listed in ``explicit``) in another format is an
    error; files of another kind found inside folders are skipped and noted in ``stats``.
    """
    stats = stats if stats is not None else ParseStats()
    items = list(paths)
    names = [str(p) for p in items if not isinstance(p, Source)]
    explicit = set(explicit or ()) | set(names)
    sources = [p for p in items if isinstance(p, Source)]
    if names:
        sources = expand(names, **expand_kw) + sources
    schema: LogSchema | None = {"access": ACCESS, "connection": CONNECTION}.get(kind)
    if schema is None:
        schema = CONNECTION if sources and sources[0].is_connection_log else ACCESS
    if fields is not None:
        from albstats.schema import validate_fields

        validate_fields(fields, schema)
    rows: list[list[Any]] = []
    for src in sources:
        fs = FileStats(src.name, kind=schema.kind)
        stats.files.append(fs)
        named = src.name in explicit
        if src.is_connection_log != (schema is CONNECTION) and not named:
            fs.skipped = f"an ALB {'connection' if src.is_connection_log else 'access'} log"
        else:
            for row in iter_file_rows(src, schema, fs, strict=strict, explicit=named):
                rows.append(row)
                if len(rows) >= batch_size:
                    yield rows_to_batch(rows, schema, fields)
                    rows = []
        if on_file:
            on_file(fs)
    if rows:
        yield rows_to_batch(rows, schema, fields)


def read_table(paths: Iterable[str], **kw: Any) -> pa.Table:
    """All rows as one Arrow table, in the Athena-equal representation (times as strings)."""
    kind = kw.get("kind", "access")
    schema = CONNECTION if kind == "connection" else ACCESS
    batches = list(iter_batches(paths, **kw))
    if batches:
        return pa.Table.from_batches(batches)
    return schema.arrow_schema(kw.get("fields")).empty_table()


def parse_files(paths: list[str], *, fmt: str = "jsonl", output: str | None = None,
                fields: list[str] | None = None, kind: str = "auto", strict: bool = False,
                quiet: bool = False) -> ParseStats:
    """What `albstats parse` does: stream every file into one output, returning the statistics."""
    from albstats import progress
    from albstats.output import write_batches

    stats = ParseStats()
    sources = expand(paths)
    if kind == "auto":
        kind = "connection" if sources and all(s.is_connection_log for s in sources) else "access"
    schema = CONNECTION if kind == "connection" else ACCESS
    if fields:
        from albstats.schema import validate_fields

        validate_fields(fields, schema)
    names = {s.name for s in sources if s.name in {str(p) for p in paths}}
    with progress.bar("parsing", total=len(sources), quiet=quiet) as tick:
        batches = iter_batches(sources, kind=kind, fields=fields, strict=strict, stats=stats,
                               on_file=lambda fs: tick.advance(1, lines=stats.lines), explicit=names)
        write_batches(batches, schema.arrow_schema(fields), fmt, output)
    return stats
