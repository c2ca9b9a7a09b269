"""What the fuzz harness checks on every input: the C tokenizer's output against the reference parser.

albstats/_albparse.c may leave any line to Python, but every line it takes must give exactly the row
that albstats.parsing.lines.parse_line gives (the engines' equality rests on that), and its buffers must form
valid Arrow arrays of exactly the sizes it promises. The sanitizers catch memory and undefined-behaviour
errors; this module catches wrong answers. It is imported by the harness binary (albparse_fuzzer.c),
whose module ``_albparse_fuzz`` is the sanitized build; the tests also drive it with the regular build.

An input is one selector byte, then the log text. The selector picks the schema and columns
(``CONFIGS``), how the text is split into the list of parts parse_block takes, and a repeat mode that
makes a block of over 1,024 lines (the path that grows the text buffers once after 256 rows).
"""

from __future__ import annotations

import dataclasses
import math
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa

from albstats.parsing.lines import BadLine, parse_line
from albstats.parsing.native import c_spec
from albstats.schema import ACCESS, CONNECTION, LogSchema

# pyarrow would otherwise hook SIGINT during some calls and raise KeyboardInterrupt in the oracle, which
# the harness takes for a finding; libFuzzer's own handler then stops a run cleanly on Ctrl-C.
pa.enable_signal_handlers(False)


def _loose(schema: LogSchema, min_tokens: int) -> LogSchema:
    """The schema with no validators and fewer required tokens: reaches the casts' own checks."""
    tokens = tuple(dataclasses.replace(t, validate="") for t in schema.tokens)
    return LogSchema(schema.kind, tokens, min_tokens, schema.athena_table)


#: (schema, columns wanted) by the selector's low three bits.
CONFIGS: list[tuple[LogSchema, list[str]]] = [
    (ACCESS, ACCESS.names),
    (CONNECTION, CONNECTION.names),
    (ACCESS, ["client_port", "target_ip", "target_port", "request_url"]),
    (ACCESS, ["extra_fields"]),
    (ACCESS, ["request_proto", "time", "elb_status_code", "sent_bytes"]),
    (ACCESS, list(reversed(ACCESS.names))),
    (_loose(ACCESS, 3), ACCESS.names),
    (_loose(CONNECTION, 2), list(reversed(CONNECTION.names))),
]

#: Per config: parse_block's token and column specs, and the Arrow schema of the columns (worked out once).
SPECS: list[tuple[list, list, pa.Schema]] = [
    (*c_spec(schema, tuple(fields)), schema.arrow_schema(fields)) for schema, fields in CONFIGS
]

#: Lines a repeated block reaches at least (parse_block reserves text space after 256 rows of > 1,024).
REPEAT_LINES = 1100

_WIDTH = {pa.int32(): 4, pa.int64(): 8, pa.float64(): 8}


def _module() -> ModuleType:
    try:
        import _albparse_fuzz as mod  # the harness binary's sanitized build
    except ImportError:
        from albstats import _albparse as mod  # the tests: the regular build
    return mod


MODULE = _module()


def decode(data: bytes) -> tuple[int, list[bytes], bool, int]:
    """(config index, parts, pass the parts as a list, repeat count) of one fuzz input."""
    sel, body = data[0], data[1:]
    split, repeat = (sel >> 3) & 3, (sel >> 5) == 7
    reps = 1
    if repeat:
        if not body.endswith(b"\n"):
            body += b"\n"
        reps = min(REPEAT_LINES, -(-REPEAT_LINES // body.count(b"\n")))
        return sel & 7, [body], split == 3, reps
    if split == 1 and b"\n" in body[len(body) // 2 :]:  # two parts of whole lines
        cut = body.index(b"\n", len(body) // 2) + 1
        return sel & 7, [body[:cut], body[cut:]], True, reps
    if split == 2:  # three parts cut anywhere: a part's tail without a newline is not a line
        a, b = len(body) // 3, 2 * len(body) // 3
        return sel & 7, [body[:a], body[a:b], body[b:]], True, reps
    return sel & 7, [body], split == 3, reps


def _arrays(got: list[tuple], arrow: pa.Schema, n: int) -> list[pa.Array]:
    """The column buffers as Arrow arrays (as albstats.parsing.native builds them), fully validated, sizes exact."""
    out = []
    for f, (nulls, valid, *bufs) in zip(arrow, got, strict=True):
        assert 0 <= nulls <= n, (f.name, nulls, n)
        assert (valid is None) == (nulls == 0), (f.name, nulls)
        if valid is not None:
            assert len(valid) == (n + 7) // 8, (f.name, len(valid), n)
        if pa.types.is_string(f.type):
            offsets, text = bufs
            assert len(offsets) == 4 * (n + 1), (f.name, len(offsets), n)
            last = np.frombuffer(offsets, dtype=np.int32)[-1]
            assert len(memoryview(text)) == last, (f.name, len(memoryview(text)), last)
        else:
            assert len(bufs) == 1 and len(bufs[0]) == _WIDTH[f.type] * n, (f.name, len(bufs[0]), n)
        arr = pa.Array.from_buffers(
            f.type,
            n,
            [None if valid is None else pa.py_buffer(valid), *(pa.py_buffer(b) for b in bufs)],
            null_count=nulls,
        )
        arr.validate(full=True)  # offsets in order and in range, UTF-8, null count matching the bitmap
        out.append(arr)
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same type; floats bit for bit (so -0.0 is not 0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return a.hex() == b.hex() or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


#: parse_line's values by (config, line): mutated inputs share most lines with the ones they came from.
_REF: dict[tuple[int, bytes], list[Any]] = {}


def _reference(config: int, raw: bytes, i: int) -> list[Any]:
    """parse_line's values of a line the C code took, in the config's column order; fails if it rejects it."""
    key = (config, raw)
    if key in _REF:
        return _REF[key]
    schema, fields = CONFIGS[config]
    text = raw.decode("utf-8")  # taken lines are valid UTF-8: parse_line sees them unchanged
    assert "\r" not in text and text.strip(), f"line {i} taken but parse_line's callers would not see it so"
    try:
        values = parse_line(text, schema)
    except BadLine as e:
        raise AssertionError(f"line {i} taken by C, but parse_line rejects it ({e}): {raw!r}") from None
    full = dict(zip(schema.names, values, strict=True))
    if len(_REF) > 200_000:
        _REF.clear()
    _REF[key] = out = [full[f] for f in fields]
    return out


def _signs(table: pa.Table) -> list[list[bool]]:
    """The sign bits of the double columns (Arrow's equality takes -0.0 for 0.0; float() does not)."""
    return [
        np.signbit(c.to_numpy(zero_copy_only=False)).tolist() for c in table.columns if pa.types.is_floating(c.type)
    ]


def check(parts: list[bytes], config: int, result: tuple) -> pa.Table:
    """Assert that one parse_block result is right for these parts; returns its rows as a table."""
    schema, fields = CONFIGS[config]
    arrow = SPECS[config][2]
    idx_buf, got, rest_buf, counts = result
    assert counts == [p.count(b"\n") for p in parts], (counts, [p.count(b"\n") for p in parts])
    lines = [line for p in parts for line in p.split(b"\n")[:-1]]
    idx = np.frombuffer(idx_buf, dtype=np.int64)
    rest = np.frombuffer(rest_buf, dtype=np.int64)
    for name, a in (("taken", idx), ("other", rest)):
        assert np.all(np.diff(a) > 0) and (len(a) == 0 or (a[0] >= 0 and a[-1] < len(lines))), (name, a)
    taken = set(idx.tolist())
    assert not taken & set(rest.tolist()), "a line both taken and left to Python"
    assert taken | set(rest.tolist()) == {i for i, line in enumerate(lines) if line}, "lines lost or invented"
    table = pa.Table.from_arrays(_arrays(got, arrow, len(idx)), schema=arrow)
    want = [_reference(config, lines[i], i) for i in idx.tolist()]
    columns = list(zip(*want)) if want else [() for _ in fields]
    expected = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, arrow)], schema=arrow)
    if not (table.equals(expected) and _signs(table) == _signs(expected)):  # say where, row by row
        for i, row, values in zip(idx.tolist(), table.to_pylist(), want, strict=True):
            for f, w in zip(fields, values, strict=True):
                assert _same(row[f], w), f"line {i} column {f}: C {row[f]!r}, parse_line {w!r}: {lines[i]!r}"
        raise AssertionError("the C rows differ from parse_line's")
    return table


def one_input(data: bytes) -> None:
    """The harness's entry: decode, run the (sanitized) parse_block, check; raises on any difference."""
    if not data:
        return
    mod = MODULE
    config, parts, as_list, reps = decode(data)
    schema, fields = CONFIGS[config]
    tokens, cols, arrow = SPECS[config]

    def run(ps: list[bytes]) -> tuple:
        bufs = [mod.exact(p) for p in ps] if hasattr(mod, "exact") else ps
        return mod.parse_block(bufs if as_list else bufs[0], tokens, schema.min_tokens, cols)

    first = run(parts)
    single = check(parts, config, first)
    if reps > 1:  # the same lines many times: the same rows many times, whatever the buffers did
        big = [parts[0] * reps]
        idx_buf, got, rest_buf, counts = run(big)
        n = parts[0].count(b"\n")
        assert counts == [n * reps], counts
        for k, (a, b) in enumerate(((idx_buf, first[0]), (rest_buf, first[2]))):
            one = np.frombuffer(b, dtype=np.int64)
            want = np.tile(one, reps) + np.repeat(np.arange(reps, dtype=np.int64) * n, len(one))
            assert np.array_equal(np.frombuffer(a, dtype=np.int64), want), ("taken", "other")[k]
        table = pa.Table.from_arrays(_arrays(got, arrow, len(idx_buf) // 8), schema=arrow)
        again = single.take(np.tile(np.arange(single.num_rows), reps))
        assert table.equals(again) and _signs(table) == _signs(again), "a repeated block gives other rows"
