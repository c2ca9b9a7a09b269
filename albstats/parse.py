"""ALB log lines -> Arrow record batches, with format detection and bad-line accounting.

Values equal what Athena returns for the same line with AWS's table: ``-`` stays ``'-'`` in string
columns, ``-1`` stays ``-1.0`` in timing columns, a value that does not cast in an int column is
NULL, fields missing at the end of an older-format line are NULL, and quoted fields keep their
backslash escapes exactly as logged (Athena's RegexSerDe cannot unescape either). Two documented
differences: bracketed IPv6 (``[::1]:80``, not written by ALB itself) loses its brackets, and a
field absent from an older line is NULL where AWS's regex yields an empty string.

Two engines give identical rows and statistics: ``parse_line`` line by line (the reference), and a
vectorised one (Arrow's CSV reader plus checks against the raw bytes, see ``_Block``) that hands any
line it cannot vouch for to ``parse_line``. Files are read in groups of about ``BLOCK_BYTES`` of text
by worker processes (threads for S3 and stdin), a bounded number of groups ahead, so memory does not
grow with the input; big or unsized sources stream block by block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import itertools
import os
import re
import sys
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from albstats.errors import InputError
from albstats.schema import ACCESS, ALB_TYPES, CONNECTION, LogSchema, Token
from albstats.sources import Source, expand

if TYPE_CHECKING:  # pragma: no cover
    from albstats.dataset import DatasetSink

#: A quoted token (backslash escapes allowed) or a bare token, each with the space after it (or the end).
_TOKEN_RE = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"(?: |\Z)|([^ "][^ ]*)(?: |\Z)', re.DOTALL)
_TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?\Z", re.ASCII)
_NUM_RE = re.compile(r"-?\d+(?:\.\d+)?\Z", re.ASCII)
_INT_RE = re.compile(r"-?\d+\Z", re.ASCII)
_STATUS_RE = re.compile(r"\d{3}\Z", re.ASCII)
_PORT_RE = re.compile(r"\d*\Z", re.ASCII)
_IP_RE = re.compile(r"[0-9A-Fa-f:.]+\Z", re.ASCII)
#: What Athena's ``([-.0-9]*)`` admits for a double; Python's float() alone would also take inf, nan, 1_0, 1e5.
_DBL_RE = re.compile(r"[-.0-9]+\Z", re.ASCII)

MAX_BAD_EXAMPLES = 5
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


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
        return "alb-connection" if _IP_RE.match(parts[1]) else "classic-elb"
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


# --- statistics -------------------------------------------------------------------------------

@dataclass(slots=True)
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

try:  # ISA-L inflates gzip about 1.6x faster than zlib; same API, same results
    from isal import igzip as _igzip
    from isal import igzip_lib as _igzip_lib
    from isal import isal_zlib as _zlib
    _ZLIB_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _zlib.error)
except ImportError:  # pragma: no cover - isal is a dependency, zlib is the fallback
    _igzip = _igzip_lib = None  # type: ignore[assignment]
    _zlib = zlib  # type: ignore[no-redef]
    _ZLIB_ERRORS = (zlib.error,)

#: Largest decompressed size (from a gzip trailer) inflated in one call into a buffer of that size.
FAST_INFLATE_MAX = 256 << 20
#: Sources bigger than this (compressed) or of unknown size are streamed block by block.
STREAM_OVER = 32 << 20
#: About this many decompressed bytes go to the CSV reader at once (small files are grouped).
BLOCK_BYTES = 4 << 20
#: Text per Parquet fragment, estimated from gzip sizes (x7; ALB logs compress 8-10x): 30-40k lines, one row group.
#: Bigger fragments cost less per row (each has its own writer, column chunks and footer) and more memory.
FRAGMENT_BYTES = 24 << 20


def _gunzip(raw: Any, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream chunk by chunk, so damage loses only what follows it."""
    d = _zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = False
    while chunk := raw.read(chunk_size):
        while chunk:
            pending = True
            yield d.decompress(chunk)
            if d.eof:
                chunk, pending = d.unused_data, False
                d = _zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                chunk = b""
    if pending:
        raise EOFError("gzip stream ends before its end marker")


def iter_chunks(src: Source) -> Iterator[bytes]:
    """The decompressed bytes of one source, in chunks; damage raises after the good part was yielded."""
    raw = src.open()
    try:
        if src.is_gzip and src.size is not None and src.size <= STREAM_OVER:
            data, err = _inflate_all(raw.read())
            if data:
                yield data
            if err is not None:
                raise err
        elif src.is_gzip:
            yield from _gunzip(raw)
        else:
            while chunk := raw.read(1 << 20):
                yield chunk
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def _damage(e: BaseException, n: int) -> str:
    what = "is truncated" if isinstance(e, EOFError) else f"is corrupt ({e})"
    return f"gzip data {what} after line {n}; the {n} lines before it were kept"


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
    except (EOFError, OSError, *_ZLIB_ERRORS) as e:
        fs.error = _damage(e, n)
        return
    if rest:
        n += 1
        yield n, rest.decode("utf-8", "replace").rstrip("\r")


def _schema_for(fmt: str) -> LogSchema | None:
    return {"alb-access": ACCESS, "alb-connection": CONNECTION}.get(fmt)


#: Lines after an unrecognised first line that are looked at before a named file is called no log at all.
LOOKAHEAD_LINES = 8


def _check_format(line: str, src_name: str, schema: LogSchema, fs: FileStats, explicit: bool,
                  later: Iterable[str] = ()) -> bool:
    """False (and ``fs.skipped`` set) when the first line shows another format; an error if the file was named.

    A named file whose first line is no log line is an error too, unless one of the ``later`` lines (the next
    LOOKAHEAD_LINES) is an ALB line: then it is a log cut mid-line (``tail -c``, ``split -b``), and the first
    line is counted as malformed like any other."""
    fmt = detect_format(line)
    if fmt in ("classic-elb", "nlb", "elb-control") or (_schema_for(fmt) not in (None, schema)):
        msg = f"{src_name}: this is {FORMAT_NAMES[fmt]}, not an ALB {schema.kind} log"
        if explicit:
            raise InputError(msg)
        fs.skipped = FORMAT_NAMES[fmt]
        return False
    if fmt == "unknown" and explicit and not any(_schema_for(detect_format(x)) for x in later if x.strip()):
        raise InputError(f"{src_name}: this is {describe_other(line)}, not an ALB {schema.kind} log")
    return True


def _python_line(n: int, line: str, schema: LogSchema, fs: FileStats, strict: bool, src_name: str) -> list[Any] | None:
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


def iter_file_rows(src: Source, schema: LogSchema, fs: FileStats, *, strict: bool = False,
                   explicit: bool = True) -> Iterator[list[Any]]:
    """Rows of one file, line by line in Python (the reference engine). Rejects another format if named."""
    lines: Iterator[tuple[int, str]] = _lines(src, fs)
    for n, line in lines:
        if line.strip():
            ahead = list(itertools.islice(lines, LOOKAHEAD_LINES)) if explicit and detect_format(line) == "unknown" \
                else []
            if not _check_format(line, src.name, schema, fs, explicit, [x for _, x in ahead]):
                return
            lines = itertools.chain([(n, line)], ahead, lines)
            break
    for n, line in lines:
        row = _python_line(n, line, schema, fs, strict, src.name)
        if row is not None:
            yield row


def rows_to_batch(rows: list[list[Any]], schema: LogSchema, fields: list[str] | None = None) -> pa.RecordBatch:
    """Column-major conversion of parsed rows into a batch with the schema's Arrow types."""
    names = schema.names
    idx = list(range(len(names))) if fields is None else [names.index(f) for f in fields]
    cols = list(zip(*rows)) if rows else [() for _ in names]
    arrow = schema.arrow_schema(None if fields is None else fields)
    arrays = [pa.array(cols[i], type=arrow.field(j).type) for j, i in enumerate(idx)]
    return pa.RecordBatch.from_arrays(arrays, schema=arrow)


# --- the vectorised engine --------------------------------------------------------------------
#
# A block of whole lines (one or more files' worth) goes through pyarrow's CSV reader (space
# delimited, '"' quotes, no escapes) with every column as a string. The CSV reader is more lenient
# than the log grammar (it would turn '"-"1' into '-1' and '"a"b' into 'ab'), so each row is then
# checked against the raw bytes: the quotes must sit exactly at the field boundaries, every field
# must be non-empty unless quoted, the fields must add up to the line's length, and no other quote
# may appear. Validation and casting are Arrow compute kernels. Every line that the checks do not
# vouch for (a backslash escape, another field count, a failed check, a value only Python can
# judge) goes to parse_line, so results are identical to the line-by-line engine by construction.

try:  # the compiled tokenizer (albstats/_albparse.c); optional: without a C compiler the Arrow engine runs
    from albstats import _albparse
except ImportError:  # pragma: no cover - exercised by forcing ALBSTATS_PARSER=arrow
    _albparse = None  # type: ignore[assignment]

ENGINES = ("c", "arrow", "python")


def resolve_engine(engine: str | None = None) -> str:
    """The engine to use: ``c``, ``arrow`` or ``python``. ``None`` means the environment variable
    ``ALBSTATS_PARSER`` if set, else the fastest available; ``fast`` means the fastest vectorised one."""
    if engine is None:
        engine = os.environ.get("ALBSTATS_PARSER") or "fast"
    if engine == "fast":
        return "c" if _albparse is not None else "arrow"
    if engine not in ENGINES:
        raise ValueError(f"unknown parser engine {engine!r}; known: fast, {', '.join(ENGINES)}")
    if engine == "c" and _albparse is None:
        raise ImportError("the C parser (albstats._albparse) is not built; reinstall with a C compiler")
    return engine


_C_VALIDATORS = {"": 0, "type": 1, "timestamp": 2, "timestamp_or_dash": 3, "number": 4, "status": 5,
                 "integer": 6, "ip": 7, "hostport": 8}
_C_KINDS = {"plain": 0, "hostport": 1, "request": 2}
_C_TYPES = {"string": 0, "int": 1, "bigint": 2, "double": 3}


@functools.lru_cache(maxsize=16)
def _c_spec(schema: LogSchema, fields: tuple[str, ...]) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """The schema as the C tokenizer takes it: (validator, kind) per token, (token, sub, type) per wanted column."""
    tokens = [(_C_VALIDATORS[t.validate], _C_KINDS[t.kind]) for t in schema.tokens]
    where = {c.name: (j, k, _C_TYPES[c.type]) for j, t in enumerate(schema.tokens) for k, c in enumerate(t.columns)}
    where["extra_fields"] = (-1, 0, 0)
    return tokens, [where[f] for f in fields]


#: What each validator (``_valid``) accepts, as RE2 fragments; ``.`` never matches the newline separator.
_RE_OK = {
    "type": "(?:" + "|".join(sorted(ALB_TYPES)) + ")",
    "timestamp": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?",
    "timestamp_or_dash": r"(?:-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?)",
    "number": r"-?\d+(?:\.\d+)?",
    "status": r"(?:-|\d{3})",
    "integer": r"(?:-|-?\d+)",
    "ip": r"[0-9A-Fa-f:.]+",
    "hostport": r"(?:-|.*:\d*)",
}
_RE_DOUBLE = r"^-?\d{1,20}(?:\.\d{1,20})?$"
_RE_INT = r"^-?\d{1,18}$"


@dataclass
class _Seg:
    """One file's lines inside a block."""

    fs: FileStats
    name: str
    start: int  # byte offset of its first line in the block
    line_no: int  # the file's line number of that line (1-based)
    first_line: int = 0  # index of that line in the block (set by _Block)


_scratch = threading.local()


def _eq_scratch(step: int) -> np.ndarray:
    tmp = getattr(_scratch, "eq", None)
    if tmp is None:
        tmp = _scratch.eq = np.empty(step, dtype=bool)
    return tmp


def _count_byte(buf: np.ndarray, byte: int) -> int:
    step = 1 << 20
    tmp = _eq_scratch(step)
    total = 0
    for k in range(0, len(buf), step):
        piece = buf[k:k + step]
        total += int(np.count_nonzero(np.equal(piece, byte, out=tmp[: len(piece)])))
    return total


def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of the lines; the comparison goes through a reused 1 MB buffer, because
    fresh multi-MB temporaries cost page faults on every block."""
    step = 1 << 20
    tmp = _eq_scratch(step)
    parts = []
    for k in range(0, len(buf), step):
        piece = buf[k:k + step]
        eq = tmp[: len(piece)]
        np.equal(piece, 10, out=eq)
        parts.append(np.flatnonzero(eq) + k)
    ends = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    starts = np.empty(len(ends), dtype=np.int64)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts, ends.astype(np.int64)


def _taken(n: int, idx: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask


def _lines_with(data: bytes, starts: np.ndarray, byte: bytes) -> np.ndarray:
    """Indexes of the lines holding ``byte`` (a rare one: found with bytes.find, not a scan in numpy)."""
    found: list[int] = []
    pos = data.find(byte)
    while pos >= 0:
        found.append(pos)
        nl = data.find(b"\n", pos)
        pos = data.find(byte, nl + 1) if nl >= 0 else -1
    return np.searchsorted(starts, np.array(found, dtype=np.int64), side="right") - 1


# Arrays and scalars are built from buffers here: pa.array() or pa.scalar() on Python values make
# pyarrow import pandas (about a second of CPU), which reading logs never needs.

_NP_TYPES = {pa.int32(): np.int32, pa.int64(): np.int64, pa.float64(): np.float64}


def _bits(buf: Any, offset: int, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(buf, np.uint8), count=offset + n, bitorder="little")[offset:].view(bool)


def _np(arr: pa.Array) -> np.ndarray:
    """The values of a numeric or boolean array as numpy, zero-copy where possible (NULL slots: junk)."""
    bufs = arr.buffers()
    if arr.type == pa.bool_():
        return _bits(bufs[1], arr.offset, len(arr))
    return np.frombuffer(bufs[1], _NP_TYPES[arr.type], count=arr.offset + len(arr))[arr.offset:]


def _mask(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, NULL as False."""
    vals = _np(arr)
    if arr.null_count:
        vals = vals & _bits(arr.buffers()[0], arr.offset, len(arr))
    return vals


def _bool_array(mask: np.ndarray) -> pa.Array:
    bits = pa.py_buffer(np.packbits(mask, bitorder="little"))
    return pa.BooleanArray.from_buffers(pa.bool_(), len(mask), [None, bits])


def _int_array(values: np.ndarray) -> pa.Array:
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def _str_array(values: list[str]) -> pa.Array:
    data = [v.encode() for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum([len(d) for d in data])
    return pa.StringArray.from_buffers(len(data), pa.py_buffer(offsets), pa.py_buffer(b"".join(data)))


@functools.lru_cache(maxsize=64)
def _str(value: str) -> pa.Scalar:
    return _str_array([value])[0]


@functools.lru_cache(maxsize=64)
def _pair(a: str, b: str) -> pa.Scalar:
    offsets = pa.Array.from_buffers(pa.int32(), 2, [None, pa.py_buffer(np.array([0, 2], dtype=np.int32))])
    return pa.ListArray.from_arrays(offsets, _str_array([a, b]))[0]


@functools.lru_cache(maxsize=64)
def _i64(value: int) -> pa.Scalar:
    return _int_array(np.array([value]))[0]


_NULL_STR = pa.nulls(1, pa.string())[0]
_NULL_I64 = pa.nulls(1, pa.int64())[0]


def _rows_batch(rows: list[list[Any]], schema: LogSchema, fields: list[str]) -> pa.RecordBatch:
    """Rows made by parse_line as a batch, via Arrow's JSON reader (exact: repr() floats round-trip)."""
    import json

    import pyarrow.json as pjson

    names = schema.names
    pick = [names.index(f) for f in fields]
    arrow = schema.arrow_schema(fields)
    try:
        text = "\n".join(json.dumps({f: row[i] for f, i in zip(fields, pick)}, ensure_ascii=False, allow_nan=False)
                         for row in rows)
    except ValueError:  # NaN or infinity (possible in an unvalidated double): pyarrow can take them from Python
        return rows_to_batch(rows, schema, fields)
    table = pjson.read_json(pa.py_buffer(text.encode()), read_options=pjson.ReadOptions(use_threads=False),
                            parse_options=pjson.ParseOptions(explicit_schema=arrow))
    return table.combine_chunks().to_batches()[0] if table.num_rows else _empty(arrow)


def _csv_columns(data: bytes, ncols: int) -> tuple[list[pa.Array], list[int]] | None:
    """All fields as strings, plus the (1-based) row numbers with another field count; None if unusable."""
    import pyarrow.csv as pcsv

    bad_rows: list[int] = []

    def handler(row: Any) -> str:
        bad_rows.append(row.number)
        return "skip"

    names = [f"f{i}" for i in range(ncols)]
    try:
        table = pcsv.read_csv(
            pa.py_buffer(data),
            read_options=pcsv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 20),
            parse_options=pcsv.ParseOptions(delimiter=" ", quote_char='"', escape_char=False, double_quote=False,
                                            newlines_in_values=False, ignore_empty_lines=False,
                                            invalid_row_handler=handler),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, null_values=[],
                                                strings_can_be_null=False, quoted_strings_can_be_null=False,
                                                check_utf8=False),  # the caller checked the block is UTF-8
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if any(n is None for n in bad_rows):
        return None
    return [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in table.columns], bad_rows


class _Block:
    """Parse one block of whole lines; see the comment above."""

    def __init__(self, data: bytes | list[bytes], segs: list[_Seg], schema: LogSchema, fields: list[str] | None,
                 strict: bool, engine: str = "arrow") -> None:
        # ``data`` may come in parts (one per file, each of whole lines): the C engine reads them as they
        # are, and they are joined only if a line needs Python or another engine runs
        self.parts = data if isinstance(data, list) else [data]
        self.segs, self.schema, self.strict, self.engine = segs, schema, strict, engine
        self.fields = fields if fields is not None else schema.names
        if engine != "c":
            self._set_seg_first()

    def _set_seg_first(self, counts: list[int] | None = None) -> None:
        """The index of each file's first line in the block, from the parts' line counts if known."""
        firsts: list[int] = []
        off = line = k = 0
        for seg in self.segs:
            while k < len(self.parts) and off + len(self.parts[k]) <= seg.start:
                line += self.parts[k].count(b"\n") if counts is None else counts[k]
                off += len(self.parts[k])
                k += 1
            firsts.append(line + (self.parts[k].count(b"\n", 0, seg.start - off) if k < len(self.parts) else 0))
        self.seg_first = np.array(firsts, dtype=np.int64)
        for seg, first in zip(self.segs, firsts):
            seg.first_line = first

    @functools.cached_property
    def data(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)

    @functools.cached_property
    def buf(self) -> np.ndarray:
        return np.frombuffer(self.data, dtype=np.uint8)

    @functools.cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return _line_bounds(self.buf)

    @property
    def starts(self) -> np.ndarray:
        return self._bounds[0]

    @property
    def ends(self) -> np.ndarray:
        return self._bounds[1]

    def line_text(self, i: int) -> str:
        return self.data[self.starts[i]:self.ends[i]].decode("utf-8", "replace").rstrip("\r")

    def seg_of(self, i: int) -> _Seg:
        return self.segs[int(np.searchsorted(self.seg_first, i, side="right")) - 1]

    def run(self) -> list[pa.RecordBatch]:
        """The block's rows in line order: slices of the vectorised result around the rows parse_line made."""
        arrow = self.schema.arrow_schema(self.fields)
        self._rest: np.ndarray | None = None  # the C engine's list of lines for parse_line
        got = self._compiled() if self.engine == "c" else self._fast(len(self.starts))
        if got is None:
            csv_lines, good_rows, fast = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), None
        else:
            csv_lines, good, cols = got
            good_rows = np.flatnonzero(good)
            fast = pa.RecordBatch.from_arrays(cols, schema=arrow)
        fast_lines = csv_lines[good_rows]
        # every line the fast path did not take is handled in Python, in order
        if self._rest is not None:
            todo_lines = self._rest.tolist()
        else:
            todo = self.ends > self.starts  # empty lines: skipped, as in the line-by-line engine
            todo[fast_lines] = False
            todo_lines = np.flatnonzero(todo).tolist()
        if len(fast_lines):
            counts = np.bincount(np.searchsorted(self.seg_first, fast_lines, side="right") - 1,
                                 minlength=len(self.segs))
            for seg, c in zip(self.segs, counts):
                seg.fs.lines += int(c)
                seg.fs.rows += int(c)
        py_rows: list[list[Any]] = []
        py_lines: list[int] = []
        for i in todo_lines:
            seg = self.seg_of(i)
            row = _python_line(seg.line_no + i - seg.first_line, self.line_text(i), self.schema, seg.fs,
                               self.strict, seg.name)
            if row is not None:
                py_rows.append(row)
                py_lines.append(i)
        slow = _rows_batch(py_rows, self.schema, self.fields) if py_rows else None
        if fast is None:
            return [slow] if slow is not None else []
        if slow is None and len(good_rows) == fast.num_rows:
            return [fast] if fast.num_rows else []
        # zero-copy: runs of consecutive good CSV rows, cut where a Python row goes in between
        cuts = set((np.flatnonzero(np.diff(good_rows) != 1) + 1).tolist())
        at = np.searchsorted(fast_lines, np.array(py_lines, dtype=np.int64)).tolist() if py_rows else []
        cuts.update(at)
        bounds = sorted(cuts | {0, len(good_rows)})
        out: list[pa.RecordBatch] = []
        p = 0
        for lo, hi in zip(bounds, bounds[1:]):
            q = p
            while q < len(at) and at[q] <= lo:
                q += 1
            if q > p:
                out.append(slow.slice(p, q - p))
                p = q
            if hi > lo:
                out.append(fast.slice(int(good_rows[lo]), hi - lo))
        if slow is not None and p < len(py_rows):
            out.append(slow.slice(p))
        return out

    # -- the compiled part ---------------------------------------------------------------------
    def _compiled(self) -> tuple[np.ndarray, np.ndarray, list[pa.Array]] | None:
        """The lines the C tokenizer vouches for (indexes, all ok) and their columns, built zero-copy;
        ``self._rest`` gets the other non-empty lines, for parse_line."""
        tokens, cols = _c_spec(self.schema, tuple(self.fields))
        try:
            idx_buf, got, rest, counts = _albparse.parse_block(self.parts, tokens, self.schema.min_tokens, cols)
        except OverflowError:  # a block over 2 GB: the Arrow engine copes
            self._set_seg_first()
            return self._fast(len(self.starts))
        self._set_seg_first(counts)
        self._rest = np.frombuffer(rest, dtype=np.int64)
        if sum(counts) == 0:
            return None
        idx = np.frombuffer(idx_buf, dtype=np.int64)
        n = len(idx)
        arrow = self.schema.arrow_schema(self.fields)
        arrays = []
        for f, (nulls, valid, *bufs) in zip(arrow, got):
            arrays.append(pa.Array.from_buffers(f.type, n, [None if valid is None else pa.py_buffer(valid),
                                                            *(pa.py_buffer(b) for b in bufs)], null_count=nulls))
        return idx, np.ones(n, dtype=bool), arrays

    # -- the vectorised part -------------------------------------------------------------------
    def _layout(self) -> tuple[int, np.ndarray]:
        """Field count and quoting of most files' first line; rows laid out otherwise go to Python."""
        counts: dict[tuple[bool, ...], int] = {}
        nlines = len(self.starts)
        # each file's first line, and a few more spread over the block, so one odd line cannot decide
        firsts = [s.first_line for s in self.segs]
        probes = firsts[:3] + firsts[3::max(1, len(firsts) // 3)][:3] + [nlines * k // 4 for k in range(1, 4)]
        for i in probes:
            while i < nlines and self.ends[i] == self.starts[i]:
                i += 1
            if i < nlines:
                line = self.line_text(i)
                try:
                    layout = tuple(line[off] == '"' for _, off in tokenize(line))
                except BadLine:
                    continue
                counts[layout] = counts.get(layout, 0) + 1
        if not counts:
            return -1, np.zeros(0, dtype=bool)
        best = max(counts, key=lambda k: counts[k])
        return len(best), np.array(best, dtype=bool)

    def _fast(self, nlines: int) -> tuple[np.ndarray, np.ndarray, list[pa.Array]] | None:
        import pyarrow.compute as pc  # the Arrow engine only: not imported for the C one
        data, buf = self.data, self.buf
        if nlines == 0 or b"\r" in data:
            return None
        if not data.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        ncols, pattern = self._layout()
        if ncols < self.schema.min_tokens:
            return None
        got = _csv_columns(data, ncols)
        if got is None:
            return None
        cols, bad_rows = got
        if len(cols[0]) + len(bad_rows) != nlines:  # an unbalanced quote joined lines: all go to Python
            return None
        keep = np.ones(nlines, dtype=bool)
        if bad_rows:
            keep[np.array(bad_rows, dtype=np.int64) - 1] = False
        idx = np.flatnonzero(keep)
        ok = np.ones(len(idx), dtype=bool)
        if b"\\" in data:  # escapes are kept as logged; only parse_line knows where such a field ends
            escaped = np.zeros(nlines, dtype=bool)
            escaped[_lines_with(data, self.starts, b"\\")] = True
            ok &= ~escaped[idx]
        # With the layout of the first line (which fields are quoted), each row's field offsets follow
        # from the field lengths; the quotes must be exactly at those boundaries and the fields must add
        # up to the line. All columns at once: offs[j] is where field j starts.
        m = len(idx)
        last = len(buf) - 1
        lens = np.empty((ncols, m), dtype=np.int32)  # blocks are far below 2 GB
        for j, c in enumerate(cols):
            lens[j] = _np(pc.binary_length(c))
        widths = lens + (2 * pattern[:, None]).astype(np.int32)
        offs = np.empty((ncols + 1, m), dtype=np.int32)
        offs[0] = self.starts[idx]
        widths += 1
        np.cumsum(widths, axis=0, out=offs[1:])
        widths -= 1
        offs[1:] += offs[0]
        ok &= offs[ncols] - 1 == self.ends[idx]
        if (~pattern).any():  # a bare field is never empty
            ok &= (lens[~pattern] > 0).all(axis=0)
        qj = np.flatnonzero(pattern)
        if len(qj):
            opens = np.minimum(offs[qj], last)
            closes = np.clip(offs[qj] + widths[qj] - 1, 0, last)
            ok &= (buf[opens] == 34).all(axis=0) & (buf[closes] == 34).all(axis=0)
        quoted = [np.full(m, q) for q in pattern]
        nquotes = np.full(m, 2 * len(qj), dtype=np.int64)
        # no quote anywhere else (a quote inside a field's text would make the counts differ)
        expect = int(nquotes[ok].sum())
        have = _count_byte(buf, 34) - sum(data[self.starts[i]:self.ends[i]].count(b'"') for i in
                                      np.flatnonzero(~_taken(nlines, idx[ok])).tolist())
        if have != expect:
            qpos = np.flatnonzero(buf == 34)
            per_line = np.bincount(np.searchsorted(self.starts, qpos, side="right") - 1, minlength=nlines)
            ok &= per_line[idx] == nquotes
        # validation, one regex per row over the validated fields joined by newlines (no field holds one);
        # a row failing any rule goes to parse_line, which says why
        vcols, pattern = [], []
        for j, tok in enumerate(self.schema.tokens[:ncols]):
            if tok.validate:
                vcols.append(cols[j])
                pattern.append(_RE_OK[tok.validate])
        if vcols:
            joined = pc.binary_join_element_wise(*vcols, _str("\n")) if len(vcols) > 1 else vcols[0]
            ok &= _mask(pc.match_substring_regex(joined, "^" + "\n".join(pattern) + "$"))
        out_cols = self._values(cols, quoted, ncols, ok)
        for extra in self._value_fallbacks:  # values only parse_line can compute
            ok &= extra
        return idx, ok, out_cols

    def _values(self, cols: list[pa.Array], quoted: list[np.ndarray], ncols: int,
                ok: np.ndarray) -> list[pa.Array]:
        """The output columns for every CSV row; rows not ``ok`` hold NULLs or junk and are never used."""
        import pyarrow.compute as pc  # the Arrow engine only: not imported for the C one
        self._value_fallbacks: list[np.ndarray] = []
        self._ok = ok
        want = set(self.fields)
        n = len(cols[0])
        by_name: dict[str, pa.Array] = {}
        toks = self.schema.tokens
        for j, tok in enumerate(toks):
            names = [c.name for c in tok.columns]
            if not want.intersection(names):
                continue
            if j >= ncols:
                for c in tok.columns:
                    by_name[c.name] = pa.nulls(n, c.arrow_type)
                continue
            v = cols[j]
            if tok.kind == "hostport":
                by_name.update(self._hostport(v, tok))
            elif tok.kind == "request":
                by_name.update(self._request(v, tok))
            else:
                c = tok.columns[0]
                by_name[c.name] = v if c.type == "string" else self._number(v, c.type, bool(tok.validate))
        if "extra_fields" in want:
            ntok = len(toks)
            if ncols > ntok:
                q, empty = _str('"'), _str("")
                parts = [pc.if_else(_bool_array(quoted[j]), pc.binary_join_element_wise(q, cols[j], q, empty), cols[j])
                         for j in range(ntok, ncols)]
                by_name["extra_fields"] = pc.binary_join_element_wise(*parts, _str(" ")) if len(parts) > 1 else parts[0]
            else:
                by_name["extra_fields"] = pa.nulls(n, pa.string())
        return [by_name[f] for f in self.fields]

    def _number(self, v: pa.Array, type_: str, validated: bool) -> pa.Array:
        """Athena's cast: '-' (or anything else that does not cast) is NULL. Validated fields are digits
        already, so only their length needs a look; others are cast here only when plainly numeric."""
        import pyarrow.compute as pc  # the Arrow engine only: not imported for the C one
        dash = _mask(pc.equal(v, _str("-")))
        if validated:  # digits, in rows that passed validation
            simple = ~dash & (_np(pc.binary_length(v)) <= 18) & self._ok
        else:
            simple = _mask(pc.match_substring_regex(v, _RE_DOUBLE if type_ == "double" else _RE_INT))
        self._value_fallbacks.append(dash | simple)
        clean = v if simple.all() else pc.if_else(_bool_array(simple), v, _NULL_STR)
        if type_ == "double":
            return pc.cast(clean, pa.float64())
        out = pc.cast(clean, pa.int64())
        if type_ == "int":
            mm = pc.min_max(out).as_py()
            if mm["min"] is not None and (mm["max"] > INT32_MAX or mm["min"] < -INT32_MAX - 1):
                wide = pc.or_(pc.greater(out, _i64(INT32_MAX)), pc.less(out, _i64(-INT32_MAX - 1)))
                out = pc.if_else(wide, _NULL_I64, out)
            return pc.cast(out, pa.int32())
        return out

    def _hostport(self, v: pa.Array, tok: Token) -> dict[str, pa.Array]:
        """Split on the last colon (validated: there is one unless the field is '-'); '-' gives '' and NULL."""
        import pyarrow.compute as pc  # the Arrow engine only: not imported for the C one
        hn, pn = (c.name for c in tok.columns)
        dash = pc.equal(v, _str("-"))
        if pc.any(dash).as_py():
            v = pc.if_else(dash, _str(":"), v)
        parts = pc.split_pattern(v, ":", max_splits=1, reverse=True)
        flat = parts.flatten()
        if len(flat) != 2 * len(v):  # a field without a colon: parse_line decides
            two = _np(pc.list_value_length(parts)) == 2
            self._value_fallbacks.append(two)
            parts = pc.if_else(_bool_array(two), parts, _pair("", ""))
            flat = parts.flatten()
        host = flat.take(_int_array(np.arange(0, len(flat), 2)))
        port = flat.take(_int_array(np.arange(1, len(flat), 2)))
        if pc.any(pc.starts_with(host, "[")).as_py():
            bracket = pc.and_(pc.starts_with(host, "["), pc.ends_with(host, "]"))
            host = pc.if_else(bracket, pc.utf8_slice_codeunits(host, 1, -1), host)
        plen = _np(pc.binary_length(port))
        self._value_fallbacks.append(plen <= 18)
        unset = (plen == 0) | (plen > 18) | ~self._ok
        if unset.any():
            port = pc.if_else(_bool_array(unset), _NULL_STR, port)
        p = pc.cast(port, pa.int64())
        top = pc.max(p).as_py()
        if top is not None and top > INT32_MAX:
            p = pc.if_else(pc.greater(p, _i64(INT32_MAX)), _NULL_I64, p)
        return {hn: host, pn: pc.cast(p, pa.int32())}

    def _request(self, v: pa.Array, tok: Token) -> dict[str, pa.Array]:
        """Split at the first and the last space; a request with fewer than two spaces goes to parse_line."""
        import pyarrow.compute as pc  # the Arrow engine only: not imported for the C one
        vn, un, pn = (c.name for c in tok.columns)
        head = pc.split_pattern(v, " ", max_splits=1)
        ok = _np(pc.list_value_length(head)) == 2
        if not ok.all():
            head = pc.if_else(_bool_array(ok), head, _pair("", " "))
        flat = head.flatten()
        verb = flat.take(_int_array(np.arange(0, len(flat), 2)))
        rest = flat.take(_int_array(np.arange(1, len(flat), 2)))
        tail = pc.split_pattern(rest, " ", max_splits=1, reverse=True)
        ok2 = _np(pc.list_value_length(tail)) == 2
        self._value_fallbacks.append(ok & ok2)
        if not ok2.all():
            tail = pc.if_else(_bool_array(ok2), tail, _pair("", ""))
        flat = tail.flatten()
        url = flat.take(_int_array(np.arange(0, len(flat), 2)))
        proto = flat.take(_int_array(np.arange(1, len(flat), 2)))
        return {vn: verb, un: url, pn: proto}


def _empty(arrow: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in arrow], schema=arrow)


# --- reading sources into blocks --------------------------------------------------------------

def _inflate_all(raw: bytes) -> tuple[bytes, BaseException | None]:
    """A whole (possibly multi-member) gzip file; on damage, everything that decompressed before it."""
    if _igzip is not None:
        # One member (what ALB writes): inflate straight into a buffer of the size its trailer gives. It
        # is one member only if no other gzip header follows and the trailer's size is what came out;
        # anything else (several members, padding, damage) takes the slower paths below.
        isize = int.from_bytes(raw[-4:], "little")
        if len(raw) > 18 and isize <= FAST_INFLATE_MAX and raw.find(b"\x1f\x8b\x08", 1) < 0:
            try:
                out = _igzip_lib.decompress(raw, flag=_igzip_lib.DECOMP_GZIP, hist_bits=15, bufsize=isize + 64)
            except (OSError, EOFError, ValueError, *_ZLIB_ERRORS):
                pass
            else:
                if len(out) == isize:
                    return out, None
        try:  # a sound file in one call: about a quarter less CPU than a decompressor object per member
            return _igzip.decompress(raw), None
        except (OSError, EOFError, ValueError, *_ZLIB_ERRORS):
            pass  # damaged: member by member below, to keep what came before the damage
    out: list[bytes] = []
    pos, n = 0, len(raw)
    while pos < n:
        member = memoryview(raw)[pos:]
        d = _zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out.append(d.decompress(member))
        except _ZLIB_ERRORS as e:
            out.append(_salvage(member))
            return b"".join(out), e
        if not d.eof:
            return b"".join(out), EOFError("gzip stream ends before its end marker")
        pos = n - len(d.unused_data)
    return (out[0] if len(out) == 1 else b"".join(out)), None


def _salvage(member: memoryview, step: int = 1024) -> bytes:
    """What a damaged gzip member yields before the damage, fed in small steps (rare, so plain zlib)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    got: list[bytes] = []
    for k in range(0, len(member), step):
        try:
            got.append(d.decompress(member[k:k + step]))
        except zlib.error:
            break
    return b"".join(got)


def _complete(data: bytes, err: BaseException | None, fs: FileStats) -> bytes:
    """Whole lines only: after damage the partial last line is dropped (and the error noted)."""
    if err is not None:
        cut = data.rfind(b"\n") + 1
        data = data[:cut]
        fs.error = _damage(err, data.count(b"\n"))
        return data
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data


def _read_whole(src: Source, fs: FileStats) -> bytes:
    """The decompressed text of a small source, whole lines only."""
    try:
        with src.open() as fh:
            raw = fh.read()
    except OSError as e:
        raise InputError(f"{src.name}: {e.strerror or e}") from None
    if src.is_gzip:
        data, err = _inflate_all(raw)
    else:
        data, err = raw, None
    return _complete(data, err, fs)


def _stream_blocks(src: Source, fs: FileStats) -> Iterator[tuple[bytes, int]]:
    """(whole-lines block, line number of its first line) of a big or unsized source, about BLOCK_BYTES each."""
    pending: list[bytes] = []
    size = 0
    line_no = 1
    err: BaseException | None = None
    try:
        for chunk in iter_chunks(src):
            pending.append(chunk)
            size += len(chunk)
            if size >= BLOCK_BYTES:
                data = b"".join(pending)
                start = 0
                while len(data) - start >= BLOCK_BYTES:
                    cut = data.rfind(b"\n", start, start + BLOCK_BYTES) + 1
                    if cut <= start:  # a line longer than a block
                        cut = data.find(b"\n", start + BLOCK_BYTES) + 1
                        if not cut:
                            break
                    yield data[start:cut], line_no
                    line_no += data.count(b"\n", start, cut)
                    start = cut
                pending, size = [data[start:]], len(data) - start
    except (EOFError, OSError, *_ZLIB_ERRORS) as e:
        err = e
    data = b"".join(pending)
    if err is not None:
        cut = data.rfind(b"\n") + 1
        fs.error = _damage(err, line_no - 1 + data.count(b"\n", 0, cut))
        data = data[:cut]
    elif data and not data.endswith(b"\n"):
        data += b"\n"
    if data:
        yield data, line_no


def _first_line(data: bytes) -> str | None:
    """The first non-blank line of a block, decoded as the line-by-line engine does."""
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        line = data[pos:end].decode("utf-8", "replace").rstrip("\r")
        if line.strip():
            return line
        pos = end + 1
    return None


def _lines_after_first(data: bytes) -> list[str]:
    """The LOOKAHEAD_LINES lines after the first non-blank one, for :func:`_check_format`."""
    start = len(data) - len(data.lstrip(b"\r\n\t "))
    pos = data.find(b"\n", start)
    if pos < 0:
        return []
    ends = pos + 1
    for _ in range(LOOKAHEAD_LINES):
        nxt = data.find(b"\n", ends)
        ends = len(data) if nxt < 0 else nxt + 1
        if nxt < 0:
            break
    return data[pos + 1:ends].decode("utf-8", "replace").splitlines()


@dataclass
class _Opts:
    schema: LogSchema
    fields: list[str] | None
    strict: bool
    explicit: set[str]
    engine: str = "arrow"


def _parse_group(group: list[tuple[Source, FileStats]], o: _Opts) -> list[pa.RecordBatch]:
    """Read, check the format of, and parse a group of small sources (runs in a worker thread)."""
    out: list[pa.RecordBatch] = []
    parts: list[bytes] = []
    segs: list[_Seg] = []
    size = 0

    def flush() -> None:
        nonlocal parts, segs, size
        if segs:
            if o.engine == "c":  # reads the parts as they are
                data: bytes | list[bytes] = parts
            else:
                data = b"".join(parts) if len(parts) > 1 else parts[0]
            parts = []  # the joined copy is enough; do not hold the text twice
            out.extend(_Block(data, segs, o.schema, o.fields, o.strict, o.engine).run())
        parts, segs, size = [], [], 0

    for src, fs in group:
        data = _read_whole(src, fs)
        first = _first_line(data)
        if first is None or not _check_format(first, src.name, o.schema, fs, src.name in o.explicit,
                                              _lines_after_first(data)):
            continue
        segs.append(_Seg(fs, src.name, size, 1))
        parts.append(data)
        size += len(data)
        if size >= BLOCK_BYTES:
            flush()
    flush()
    return out


def _parse_stream(src: Source, fs: FileStats, o: _Opts) -> Iterator[pa.RecordBatch]:
    """A big or unsized source (stdin, a large .log), block by block in this thread."""
    checked = False
    for data, line_no in _stream_blocks(src, fs):
        if not checked:
            first = _first_line(data)
            if first is None:
                continue
            checked = True
            if not _check_format(first, src.name, o.schema, fs, src.name in o.explicit, _lines_after_first(data)):
                return
        yield from _Block(data, [_Seg(fs, src.name, 0, line_no)], o.schema, o.fields, o.strict, o.engine).run()


def _plan(sources: list[tuple[Source, FileStats]],
          group_bytes: int = BLOCK_BYTES) -> Iterator[tuple[str, list[tuple[Source, FileStats]]]]:
    """Group consecutive small sources (about ``group_bytes`` of text per group); big ones stream alone."""
    group: list[tuple[Source, FileStats]] = []
    est = 0
    for item in sources:
        src = item[0]
        if src.size is None or src.size > STREAM_OVER:
            if group:
                yield "group", group
                group, est = [], 0
            yield "stream", [item]
            continue
        group.append(item)
        est += src.size * (7 if src.is_gzip else 1)
        if est >= group_bytes:
            yield "group", group
            group, est = [], 0
    if group:
        yield "group", group


def _tail_split(plan: list[tuple[str, list[tuple[Source, FileStats]]]],
                workers: int) -> list[tuple[str, list[tuple[Source, FileStats]]]]:
    """The last ``workers`` groups split in halves: the run ends when the slowest worker does, so smaller
    last groups leave the others less time idle (on 2 cores, about half a group less)."""
    if workers <= 1:
        return plan
    out: list[tuple[str, list[tuple[Source, FileStats]]]] = []
    tail = {i for i, (how, _) in enumerate(plan) if how == "group"}
    tail = set(sorted(tail)[-workers:]) if len(tail) > workers else set()
    for i, (how, g) in enumerate(plan):
        if i in tail and len(g) > 1:
            out += [(how, g[:len(g) // 2]), (how, g[len(g) // 2:])]
        else:
            out.append((how, g))
    return out


def default_workers() -> int:
    """Workers that read and parse files: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def iter_batches(paths: Iterable[str] | Iterable[Source], *, kind: str = "access", fields: list[str] | None = None,
                 strict: bool = False, stats: ParseStats | None = None, batch_size: int = 65536,
                 on_file: Callable[[FileStats], None] | None = None, explicit: set[str] | None = None,
                 workers: int | None = None, engine: str | None = None, processes: bool | None = None,
                 **expand_kw: Any) -> Iterator[pa.RecordBatch]:
    """Stream Arrow record batches from files, folders, globs, ``-`` or ``s3://`` prefixes.

    ``kind`` is ``access``, ``connection`` or ``auto`` (the kind of the first file decides).
    ``stats`` (if given) is filled in as files are read; ``on_file`` is called after each file, in
    order, for progress bars. A file named directly (or listed in ``explicit``) in another format is
    an error; files of another kind found inside folders are skipped and noted in ``stats``.

    ``engine="fast"`` parses blocks of about 4 MB of text with the compiled tokenizer (``"c"``,
    albstats/_albparse.c) where it was built, else with Arrow kernels (``"arrow"``), in ``workers``
    processes for local files (threads for S3 and stdin; the environment variable
    ``ALBSTATS_WORKERS_KIND=thread`` forces threads: with the C engine, which releases the GIL, they
    use about 1 CPU second less per million lines but reach about 300 MB peak RSS on ten million
    lines, against 190 MB for the parent of worker processes), default one per core. ``processes=None`` forks
    worker processes only when no other thread is running (forking a threaded process, a notebook
    kernel say, risks a deadlock); ``True`` always forks (the CLI), ``False`` never. It reads at most
    ``workers + 1`` groups of files ahead so memory stays bounded whatever the input size.
    ``engine="python"`` is the line-by-line reference engine. All give identical rows and stats, in
    file and line order. ``engine=None`` (default) takes the environment variable ``ALBSTATS_PARSER``
    (``c``, ``arrow`` or ``python``) if set, else ``fast``. ``batch_size`` bounds batches of the python
    engine only.
    """
    yield from _iter(paths, kind=kind, fields=fields, strict=strict, stats=stats, batch_size=batch_size,
                     on_file=on_file, explicit=explicit, workers=workers, engine=engine, processes=processes,
                     encode=None, **expand_kw)


def _iter(paths: Iterable[str] | Iterable[Source], *, kind: str, fields: list[str] | None, strict: bool,
          stats: ParseStats | None, batch_size: int, on_file: Callable[[FileStats], None] | None,
          explicit: set[str] | None, workers: int | None, engine: str | None, processes: bool | None,
          encode: DatasetSink | None, **expand_kw: Any) -> Iterator[Any]:
    """iter_batches, or with ``encode`` (a :class:`~albstats.dataset.DatasetSink`) the same rows written
    as Parquet parts of that dataset where they are parsed (in the worker processes): then it yields lists
    of the :class:`~albstats.dataset.Part` written, each before the ``on_file`` calls of its files."""
    engine = resolve_engine(engine)
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
    todo: list[tuple[Source, FileStats]] = []
    for src in sources:
        fs = FileStats(src.name, kind=schema.kind)
        if src.is_connection_log != (schema is CONNECTION) and src.name not in explicit:
            fs.skipped = f"an ALB {'connection' if src.is_connection_log else 'access'} log"
        todo.append((src, fs))
    if engine == "python":
        if encode is not None:  # file by file: the sink needs each file's rows together
            for item in todo:
                got = list(_iter_python([item], schema, fields, strict, ParseStats(), batch_size, None, explicit))
                yield encode.write(got, [(item[1].name, item[1].rows)])
                stats.files.append(item[1])
                if on_file:
                    on_file(item[1])
            return
        yield from _iter_python(todo, schema, fields, strict, stats, batch_size, on_file, explicit)
    else:
        if processes is None:
            processes = threading.active_count() == 1
        yield from _iter_fast(todo, _Opts(schema, fields, strict, explicit, engine), stats, on_file,
                              default_workers() if workers is None else workers, processes, encode)


#: Rows of one big (streamed) file written per Parquet part.
STREAM_PART_ROWS = 1 << 20


def _encoded(batches: Iterable[pa.RecordBatch], arrow: pa.Schema, encode: DatasetSink | None,
             live: list[tuple[Source, FileStats]]) -> Iterator[Any]:
    """Batches made in this process for the files ``live``, as they are or written to the sink (a
    streamed file in parts of :data:`STREAM_PART_ROWS` rows, so memory stays bounded)."""
    if encode is None:
        yield from batches
        return
    if len(live) == 1:  # one file, maybe huge: in pieces
        name, buf, n = live[0][1].name, [], 0
        for b in batches:
            buf.append(b)
            n += b.num_rows
            if n >= STREAM_PART_ROWS:
                yield encode.write(buf, [(name, n)])
                buf, n = [], 0
        if buf:
            yield encode.write(buf, [(name, n)])
        return
    yield encode.write(list(batches), [(fs.name, fs.rows) for _, fs in live])


def _iter_python(todo: list[tuple[Source, FileStats]], schema: LogSchema, fields: list[str] | None, strict: bool,
                 stats: ParseStats, batch_size: int, on_file: Callable[[FileStats], None] | None,
                 explicit: set[str]) -> Iterator[pa.RecordBatch]:
    rows: list[list[Any]] = []
    for src, fs in todo:
        stats.files.append(fs)
        if not fs.skipped:
            for row in iter_file_rows(src, schema, fs, strict=strict, explicit=src.name in explicit):
                rows.append(row)
                if len(rows) >= batch_size:
                    yield rows_to_batch(rows, schema, fields)
                    rows = []
        if on_file:
            on_file(fs)
    if rows:
        yield rows_to_batch(rows, schema, fields)


def _process_context() -> Any:
    """A fork context where there is one: processes, not threads, because a machine may run the threads
    of one process on one core (seen on the 2-core benchmark VM); fork shares the imported modules."""
    import multiprocessing as mp

    if not sys.platform.startswith("linux"):  # fork is unsafe on macOS and absent on Windows: threads there
        return None
    try:
        return mp.get_context("fork")
    except ValueError:  # pragma: no cover - no fork on this platform
        return None


def _worker_init(watch_fd: int, spill: str, prefix: str) -> None:
    """Ctrl-C is the parent's to handle (it stops the pool and cleans up); workers do not print tracebacks,
    and exit by themselves when the parent is gone (albstats.workers)."""
    from albstats import workers

    workers.start_worker(watch_fd, spill, prefix)
    _tune_malloc()
    # the parent's objects, inherited by fork, never become garbage here: keep the collector off them
    gc.freeze()


def _worker_task(fn: Callable[..., Any]) -> Callable[..., Any]:
    """albstats.workers.task, imported when a worker first runs one (parse is imported by every command)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        from albstats.workers import task

        return task(fn)(*args, **kwargs)

    return run


def _spill_dir() -> str:
    import tempfile

    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


@_worker_task
def _worker_group(items: list[tuple[str, str, int | None]], o: _Opts, spill: str, prefix: str = "albstats-",
                  encode: DatasetSink | None = None) -> tuple[list[FileStats], Any]:
    """In a worker process: parse local files by path; the batches go to an Arrow IPC file in ``spill``
    (shared memory where there is one), which the parent maps instead of receiving them through a pipe.
    With ``encode``, the worker writes them into that dataset instead and returns the parts (encoding is
    a third of the CPU of a Parquet parse; here it runs on every core)."""
    import tempfile

    from albstats import workers
    from albstats.sources import Source as _Source

    group = [(_Source(name, (lambda p=path: open(p, "rb")), size, local_path=path), FileStats(name, kind=o.schema.kind))
             for name, path, size in items]
    batches = _parse_group(group, o)
    stats = [fs for _, fs in group]
    if not batches:
        return stats, None
    if encode is not None:
        return stats, encode.write(batches, [(fs.name, fs.rows) for fs in stats])
    path = None
    try:
        with workers.handover():  # never deleted half-written by a worker exiting with its parent
            fd, path = tempfile.mkstemp(prefix=prefix, suffix=".arrows", dir=spill)
            os.close(fd)
            with pa.OSFile(path, "wb") as f, pa.ipc.new_stream(f, batches[0].schema) as w:
                for b in batches:
                    w.write_batch(b)
        return stats, path
    except OSError:  # shared memory full or not writable: send the batches through the pipe instead
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batches[0].schema) as w:
            for b in batches:
                w.write_batch(b)
        return stats, sink.getvalue().to_pybytes()


def _thread_group(group: list[tuple[Source, FileStats]], o: _Opts, encode: DatasetSink | None) -> Any:
    """In a worker thread: the group's batches, or (like a worker process) its statistics and the parts
    written to ``encode``."""
    batches = _parse_group(group, o)
    if encode is not None:
        return [fs for _, fs in group], encode.write(batches, [(fs.name, fs.rows) for _, fs in group])
    return batches


def _read_spill(path: str | bytes | None) -> list[pa.RecordBatch]:
    if path is None:
        return []
    if isinstance(path, bytes):
        return list(pa.ipc.open_stream(pa.py_buffer(path)))
    try:
        return list(pa.ipc.open_stream(pa.memory_map(path)))  # batches keep the mapping alive
    finally:
        os.unlink(path)


def _iter_fast(todo: list[tuple[Source, FileStats]], o: _Opts, stats: ParseStats,
               on_file: Callable[[FileStats], None] | None, workers: int,
               processes: bool = True, encode: DatasetSink | None = None) -> Iterator[Any]:
    from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from albstats.workers import ParentWatch, remove_handover_files

    def done(group: list[tuple[Source, FileStats]]) -> None:
        for _, fs in group:
            stats.files.append(fs)
            if on_file:
                on_file(fs)

    arrow = o.schema.arrow_schema(o.fields)
    # a Parquet fragment holds one row group: groups of about ROW_GROUP_ROWS lines of text
    groups = _tail_split(list(_plan(todo, FRAGMENT_BYTES if encode else BLOCK_BYTES)), workers)
    plan = [(how, [it for it in g if not it[1].skipped], g) for how, g in groups]
    if workers <= 1 or sum(1 for how, _, _ in plan if how == "group") <= 1:
        for how, live, group in plan:
            if how == "stream" and live:
                yield from _encoded(_parse_stream(*live[0], o), arrow, encode, live)
            elif live:
                yield from _encoded(_parse_group(live, o), arrow, encode, live)
            done(group)
        return
    ctx = _process_context()
    local = (processes and ctx is not None and all(src.local_path for src, _ in todo)
             and os.environ.get("ALBSTATS_WORKERS_KIND", "process") == "process")
    spill = _spill_dir()
    prefix = f"albstats-{os.getpid()}-{os.urandom(4).hex()}-"  # this run's hand-over files
    watch = ParentWatch() if local else None  # workers exit when it closes: the parent stopped or died
    ex: Executor = (ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                        initargs=(watch.read_fd, spill, prefix)) if watch is not None
                    else ThreadPoolExecutor(workers, thread_name_prefix="albstats-parse"))
    ahead = workers + 1  # groups read ahead: memory stays bounded whatever the input size
    window: deque[tuple[str, list, list, Future | None]] = deque()
    finished = False
    try:
        for how, live, group in plan:
            fut = None
            if how == "group" and live:
                if local:
                    fut = ex.submit(_worker_group, [(s.name, s.local_path, s.size) for s, _ in live], o, spill,
                                    prefix, encode)
                else:
                    fut = ex.submit(_thread_group, live, o, encode)
            window.append((how, live, group, fut))
            while len(window) > ahead or (window and window[0][0] == "stream"):
                yield from _drain(window.popleft(), o, done, arrow, encode)
        while window:
            yield from _drain(window.popleft(), o, done, arrow, encode)
        finished = True
    except BrokenProcessPool:  # a worker died (the OOM killer, a kill of the worker alone): one line
        from albstats.errors import AlbstatsError

        raise AlbstatsError("a parse worker process ended unexpectedly (killed, or out of memory?)") from None
    finally:
        # Nested so that each step runs even if a signal interrupts the one before (albstats.shutdown
        # raises once): stop the workers, wait for them, then delete what they handed over.
        try:
            try:
                for *_, fut in window:
                    if fut is not None:
                        fut.cancel()
                if watch is not None and not finished:  # an error, a signal or an abandoned generator:
                    watch.stop()  # the workers stop now, not after the groups they are parsing
            finally:
                ex.shutdown(wait=True, cancel_futures=True)
        finally:
            if watch is not None:  # hand-over files nobody will read (an error or a signal stopped the run)
                watch.close()
                remove_handover_files(spill, prefix)


def _drain(item: tuple[str, list, list, Any], o: _Opts, done: Callable[[list], None], arrow: pa.Schema,
           encode: DatasetSink | None) -> Iterator[Any]:
    how, live, group, fut = item
    if how == "stream" and live:
        yield from _encoded(_parse_stream(*live[0], o), arrow, encode, live)
    elif fut is not None:
        res = fut.result()
        if isinstance(res, tuple):  # from a worker process: its statistics, and the batches in a spill file
            got, path = res
            for (_, fs), new in zip(live, got):
                for f in dataclasses.fields(FileStats):
                    setattr(fs, f.name, getattr(new, f.name))
            if encode is not None:
                yield path or []  # the parts the worker wrote
            else:
                yield from _read_spill(path)
        else:
            yield from res
    done(group)


def read_table(paths: Iterable[str], **kw: Any) -> pa.Table:
    """All rows as one Arrow table, in the Athena-equal representation (times as strings)."""
    kind = kw.get("kind", "access")
    schema = CONNECTION if kind == "connection" else ACCESS
    batches = list(iter_batches(paths, **kw))
    if batches:
        return pa.Table.from_batches(batches)
    return schema.arrow_schema(kw.get("fields")).empty_table()


def _tune_malloc() -> None:
    """glibc only: serve multi-MB buffers from the heap and keep freed memory for the next block, instead
    of mapping fresh pages for each one (page faults cost about 10% of the parse on the benchmark VM)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _lean_memory_pool() -> None:
    """For the command line (not done for library callers): Arrow's jemalloc pool keeps the peak RSS of a
    long parse about 60 MB lower than the default mimalloc one (measured with bench/bench_parse.py), and
    glibc keeps freed buffers for reuse."""
    _tune_malloc()
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, pa.ArrowNotImplementedError):  # pragma: no cover - builds without jemalloc
        pass


def _dataset_target(output: str | None) -> bool:
    """Whether ``--format parquet -o output`` means the dataset folder: yes unless the target is stdout, a
    ``.parquet`` name, or an existing file, pipe or device (then one Parquet file, written by pyarrow's
    ParquetWriter in this process: unsorted, unpartitioned, for a pipe or a quick look)."""
    if output in (None, "-"):
        return False
    assert output is not None
    if os.path.isdir(output) or output.endswith(("/", os.sep)):
        return True
    return not (os.path.exists(output) or output.endswith(".parquet"))


def parse_files(paths: list[str], *, fmt: str = "jsonl", output: str | None = None,
                fields: list[str] | None = None, kind: str = "auto", strict: bool = False,
                quiet: bool = False, s3_options: dict[str, Any] | None = None) -> ParseStats:
    """What `albstats parse` does: stream every file into one output, returning the statistics.
    ``s3_options`` (``profile``, ``region``) are for ``s3://`` paths."""
    from albstats import progress
    from albstats.output import write_batches

    stats = ParseStats()
    _lean_memory_pool()
    sources = expand(paths, s3_options=s3_options)
    if kind == "auto":
        kind = "connection" if sources and all(s.is_connection_log for s in sources) else "access"
    schema = CONNECTION if kind == "connection" else ACCESS
    if fields:
        from albstats.schema import validate_fields

        validate_fields(fields, schema)
    names = {s.name for s in sources if s.name in {str(p) for p in paths}}
    lines = 0

    def on_file(fs: FileStats) -> None:  # a running total: stats.lines sums over all files read so far
        nonlocal lines
        lines += fs.lines
        tick.advance(1, lines=lines)

    with progress.bar("parsing", total=len(sources), quiet=quiet) as tick:
        if fmt == "parquet" and _dataset_target(output):  # the workers write the dataset (albstats.dataset)
            import pyarrow.parquet  # noqa: F401  (once, before the workers fork, not once in each)

            from albstats.dataset import DatasetSink, required_fields, staged_folder

            fields = required_fields(fields)
            with staged_folder(output) as tmp:
                sink = DatasetSink(tmp, schema.arrow_schema(fields))
                parts = _iter(sources, kind=kind, fields=fields, strict=strict, stats=stats, batch_size=65536,
                              on_file=on_file, explicit=names, workers=None, engine=None, processes=True, encode=sink)
                with contextlib.closing(parts):  # workers stopped before the staged folder is removed
                    for _ in parts:
                        pass
        else:
            batches = iter_batches(sources, kind=kind, fields=fields, strict=strict, stats=stats, processes=True,
                                   on_file=on_file, explicit=names)
            with contextlib.closing(batches):  # on an error, the workers stop now, not when the process exits
                write_batches(batches, schema.arrow_schema(fields), fmt, output)
    return stats
