"""The bridge to the compiled tokenizer (albstats/_albparse.c), and the choice of engine.

Two engines give identical rows and statistics: ``c``, the compiled tokenizer, which parses a block of
whole lines straight into Arrow buffers and leaves every line it cannot vouch for to the reference
:func:`~albstats.parsing.lines.parse_line` (so its results equal the reference by construction), and
``python``, the reference line by line. The extension is optional (setup.py builds it where a C compiler
exists); without it albstats reads with the reference parser, about ten times slower, and says so once
on stderr (:func:`resolve_engine`).
"""

from __future__ import annotations

import functools
import io
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from albstats.errors import UsageError
from albstats.parsing.lines import python_line, rows_to_batch
from albstats.parsing.stats import FileStats
from albstats.schema import LogSchema

try:  # optional: without a C compiler the install still succeeds, and the reference parser reads
    from albstats import _albparse
except ImportError:  # pragma: no cover - the no-extension run of tests/test_no_extension.py covers it
    _albparse = None  # type: ignore[assignment]

ENGINES = ("c", "python")

#: Said once per process when the C parser is missing and no engine was asked for.
SLOW_NOTICE = (
    "albstats: the fast C parser (albstats._albparse) is not built, so logs are read with the reference "
    "parser, about 10x slower. To get the fast one, install a C compiler and Python's headers (Debian/Ubuntu: "
    "apt-get install gcc python3-dev) and reinstall albstats (pip install -e . in a clone)."
)
_noticed = False


def resolve_engine(engine: str | None = None) -> str:
    """The engine to use: ``c`` or ``python``. ``None`` means the environment variable ``ALBSTATS_PARSER``
    if set, else ``fast``: the C engine where it was built, else the reference one (said once on stderr)."""
    global _noticed
    if engine is None:
        engine = os.environ.get("ALBSTATS_PARSER") or "fast"
    if engine == "fast":
        if _albparse is not None:
            return "c"
        if not _noticed:
            _noticed = True
            print(SLOW_NOTICE, file=sys.stderr, flush=True)
        return "python"
    if engine not in ENGINES:
        raise UsageError(f"unknown parser engine {engine!r} (ALBSTATS_PARSER); known: fast, {', '.join(ENGINES)}")
    if engine == "c" and _albparse is None:
        raise UsageError("the C parser (albstats._albparse) is not built; reinstall albstats with a C compiler")
    return engine


def _codes(names: tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


@functools.lru_cache(maxsize=16)
def c_spec(schema: LogSchema, fields: tuple[str, ...]) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """The schema as the C tokenizer takes it: (validator, kind) per token, (token, sub, type) per wanted column.

    The codes are positions in the extension's own name tuples (``VALIDATORS``, ``KINDS``, ``TYPES``), so
    nothing here mirrors its enums by hand; a name the C code does not know is a KeyError, not a wrong code.
    """
    validators, kinds, types = _codes(_albparse.VALIDATORS), _codes(_albparse.KINDS), _codes(_albparse.TYPES)
    tokens = [(validators[t.validate], kinds[t.kind]) for t in schema.tokens]
    where = {c.name: (j, k, types[c.type]) for j, t in enumerate(schema.tokens) for k, c in enumerate(t.columns)}
    where["extra_fields"] = (-1, 0, 0)
    return tokens, [where[f] for f in fields]


@dataclass
class Seg:
    """One source's whole lines inside a block: its statistics, its name, and its first line's number."""

    fs: FileStats
    name: str
    line_no: int = 1


def parse_block(
    parts: list[bytes], segs: list[Seg], schema: LogSchema, fields: list[str] | None, strict: bool
) -> list[pa.RecordBatch]:
    """The rows of a block (one part of whole lines per segment), in line order, with every segment's
    statistics counted: the C tokenizer's rows, and between them those :func:`python_line` made of the
    lines it left."""
    fields = fields if fields is not None else schema.names
    tokens, cols = c_spec(schema, tuple(fields))
    try:
        idx_buf, got, rest_buf, counts = _albparse.parse_block(parts, tokens, schema.min_tokens, cols)
    except OverflowError:  # a block over 2 GB (one huge line): every line to Python
        counts = [p.count(b"\n") for p in parts]
        lengths = [len(line) for p in parts for line in p.split(b"\n")[:-1]]
        idx_buf, got, rest_buf = b"", [], np.flatnonzero(np.array(lengths, dtype=np.int64)).tobytes()
    firsts = np.cumsum([0, *counts[:-1]]).astype(np.int64)  # each part's first line in the block
    taken = np.frombuffer(idx_buf, dtype=np.int64)
    if len(taken):
        per_seg = np.bincount(np.searchsorted(firsts, taken, side="right") - 1, minlength=len(segs))
        for seg, c in zip(segs, per_seg.tolist()):
            seg.fs.lines += c
            seg.fs.rows += c
    fast = _c_batch(got, len(taken), schema.arrow_schema(fields)) if len(taken) else None
    slow, slow_lines = _python_rows(
        parts, segs, firsts, np.frombuffer(rest_buf, dtype=np.int64), schema, fields, strict
    )
    if slow is None:
        return [fast] if fast is not None else []
    if fast is None:
        return [slow]
    # in line order: runs of C rows cut where Python rows go in between (slices are zero-copy)
    at = np.searchsorted(taken, slow_lines).tolist()  # C rows before each Python row
    out: list[pa.RecordBatch] = []
    done = p = 0
    while p < len(at):
        q = p
        while q < len(at) and at[q] == at[p]:
            q += 1
        if at[p] > done:
            out.append(fast.slice(done, at[p] - done))
            done = at[p]
        out.append(slow.slice(p, q - p))
        p = q
    if done < fast.num_rows:
        out.append(fast.slice(done))
    return out


def _c_batch(got: list[tuple[Any, ...]], n: int, arrow: pa.Schema) -> pa.RecordBatch:
    """The C tokenizer's column buffers as a batch, zero-copy."""
    arrays = []
    for f, (nulls, valid, *bufs) in zip(arrow, got):
        buffers = [None if valid is None else pa.py_buffer(valid), *(pa.py_buffer(b) for b in bufs)]
        arrays.append(pa.Array.from_buffers(f.type, n, buffers, null_count=nulls))
    return pa.RecordBatch.from_arrays(arrays, schema=arrow)


def _python_rows(
    parts: list[bytes],
    segs: list[Seg],
    firsts: np.ndarray,
    rest: np.ndarray,
    schema: LogSchema,
    fields: list[str],
    strict: bool,
) -> tuple[pa.RecordBatch | None, np.ndarray]:
    """The lines the C code left (indexes in the block, in order) through :func:`python_line`: their rows
    as a batch, and the line index of each row."""
    if not len(rest):
        return None, rest
    which = (np.searchsorted(firsts, rest, side="right") - 1).tolist()
    ends: dict[int, np.ndarray] = {}  # per part with such lines: where its lines end
    rows: list[list[Any]] = []
    lines: list[int] = []
    for i, k in zip(rest.tolist(), which):
        if k not in ends:
            ends[k] = np.flatnonzero(np.frombuffer(parts[k], dtype=np.uint8) == 10)
        j = i - int(firsts[k])
        start = int(ends[k][j - 1]) + 1 if j else 0
        text = parts[k][start : int(ends[k][j])].decode("utf-8", "replace").rstrip("\r")
        seg = segs[k]
        row = python_line(seg.line_no + j, text, schema, seg.fs, strict, seg.name)
        if row is not None:
            rows.append(row)
            lines.append(i)
    if not rows:
        return None, np.empty(0, dtype=np.int64)
    return rows_batch(rows, schema, fields), np.array(lines, dtype=np.int64)


def rows_batch(rows: list[list[Any]], schema: LogSchema, fields: list[str]) -> pa.RecordBatch:
    """Rows made by parse_line as a batch, via Arrow's JSON reader (exact: repr() floats round-trip).

    Not ``pa.array`` on the Python values: that makes pyarrow import pandas (about a second of CPU), which
    the C engine otherwise never needs."""
    import pyarrow.json as pjson

    names = schema.names
    pick = [names.index(f) for f in fields]
    arrow = schema.arrow_schema(fields)
    try:
        text = "\n".join(
            json.dumps({f: row[i] for f, i in zip(fields, pick)}, ensure_ascii=False, allow_nan=False) for row in rows
        )
    except ValueError:  # NaN or infinity (possible in an unvalidated double): pyarrow can take them from Python
        return rows_to_batch(rows, schema, fields)
    table = pjson.read_json(
        io.BytesIO(text.encode()),
        read_options=pjson.ReadOptions(use_threads=False),
        parse_options=pjson.ParseOptions(explicit_schema=arrow),
    )
    return table.combine_chunks().to_batches()[0]
