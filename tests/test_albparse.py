"""The compiled tokenizer (albstats/_albparse.c) against the reference parse_line: the two engines.

The C engine only takes lines it can vouch for and leaves the rest to parse_line, so every comparison
here is of whole results: the same rows, in the same order, and the same statistics (lines, rows, bad
lines and their reasons) as the line-by-line engine. The extension must build wherever CI runs (gcc is
there), so a missing build fails these tests rather than skipping them; a machine without a compiler
still installs albstats and reads with the reference parser (tests/test_no_extension.py runs the parsing
tests that way).
"""

from __future__ import annotations

import gzip
import math
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from conftest import FIXTURES, load_jsonl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parse_properties import ERAS, rows

from albstats.errors import InputError, UsageError
from albstats.generate import generate
from albstats.logformat import format_line
from albstats.parse import iter_batches
from albstats.parsing import native
from albstats.parsing.lines import python_line
from albstats.parsing.native import Seg, c_spec, parse_block, resolve_engine
from albstats.parsing.stats import FileStats, ParseStats
from albstats.schema import ACCESS, CONNECTION, LogSchema

ENGINES = ("c",)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_extension_is_built():
    from albstats import _albparse

    assert callable(_albparse.parse_block)
    assert resolve_engine() in ("c", "python")
    assert resolve_engine("fast") == "c"


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NaN compares unequal to itself; make it comparable."""
    return [{k: ("NaN" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def _reference(data: bytes, schema: LogSchema, fields: list[str] | None) -> tuple[list[dict], dict]:
    """parse_line over the block's lines, exactly as the line-by-line engine reads a file."""
    fs = FileStats("x", kind=schema.kind)
    out = []
    for n, raw in enumerate(data.split(b"\n")[:-1], 1):
        row = python_line(n, raw.decode("utf-8", "replace").rstrip("\r"), schema, fs, False, "x")
        if row is not None:
            full = dict(zip(schema.names, row))
            out.append({f: full[f] for f in (fields or schema.names)})
    return _plain(out), asdict(fs)


def _block(data: bytes, schema: LogSchema, fields: list[str] | None, engine: str) -> tuple[list[dict], dict]:
    fs = FileStats("x", kind=schema.kind)
    assert engine == "c"
    batches = parse_block([data], [Seg(fs, "x")], schema, fields, False)
    table = pa.Table.from_batches(batches, schema=schema.arrow_schema(fields))
    return _plain(table.to_pylist()), asdict(fs)


def assert_same(lines: list[str] | bytes, schema: LogSchema = ACCESS, fields: list[str] | None = None) -> None:
    data = lines if isinstance(lines, bytes) else "".join(line + "\n" for line in lines).encode()
    if data and not data.endswith(b"\n"):
        data += b"\n"  # what the reader does to a file without a trailing newline
    want = _reference(data, schema, fields)
    for engine in ENGINES:
        assert _block(data, schema, fields, engine) == want, engine


class _Result:
    """Rows and per-file statistics of a read, or its error (a file of another format named directly)."""

    def __init__(self, path: str, engine: str, **kw: Any) -> None:
        stats = ParseStats()
        self.table: pa.Table | None = None
        self.error = ""
        try:
            self.table = pa.Table.from_batches(list(iter_batches([path], stats=stats, engine=engine, workers=1, **kw)))
        except InputError as e:
            self.error = str(e)
        self.stats = [asdict(f) for f in stats.files]

    def __eq__(self, other: object) -> bool:
        assert isinstance(other, _Result)
        same = (
            self.table.equals(other.table)
            if self.table is not None and other.table is not None
            else (self.table is other.table)
        )
        if self.error or other.error:  # the statistics of a stopped read are not compared
            return same and self.error == other.error
        return same and self.stats == other.stats

    def __len__(self) -> int:
        return 0 if self.table is None else self.table.num_rows


_file_result = _Result


# --- real lines -----------------------------------------------------------------------------------


def test_conformance_lines():
    assert_same([r["line"] for r in load_jsonl("alb_access_samples.jsonl")])
    assert_same([r["line"] for r in load_jsonl("non_alb_samples.jsonl")])
    assert_same([r["line"] for r in load_jsonl("alb_connection_samples.jsonl")], CONNECTION)


def test_conformance_lines_one_by_one():
    """Each line alone in its block, so one line cannot hide another's difference."""
    for r in load_jsonl("alb_access_samples.jsonl") + load_jsonl("non_alb_samples.jsonl"):
        assert_same([r["line"]])
    for r in load_jsonl("alb_connection_samples.jsonl"):
        assert_same([r["line"]], CONNECTION)


@pytest.mark.parametrize(
    "fields",
    [
        None,
        ["client_port", "target_ip"],
        ["extra_fields"],
        ["request_proto", "time"],
        ["received_bytes", "target_processing_time", "elb_status_code", "ip_address"],
    ],
)
def test_column_subsets(fields):
    assert_same([r["line"] for r in load_jsonl("alb_access_samples.jsonl")], fields=fields)


@pytest.mark.parametrize(
    "path",
    sorted(str(p) for p in (FIXTURES / "edge").rglob("*") if p.is_file() and p.suffix in (".log", ".gz")),
    ids=lambda p: Path(p).name,
)
def test_edge_fixtures_all_engines(path):
    want = _file_result(path, "python", kind="auto")
    for engine in ENGINES:
        assert _file_result(path, engine, kind="auto") == want, engine


@pytest.mark.integration  # slow: 7 s under load
def test_bundled_fixture_folder_all_engines():
    want = _file_result(str(FIXTURES / "AWSLogs"), "python")
    assert len(want) > 10_000
    for engine in ENGINES:
        assert _file_result(str(FIXTURES / "AWSLogs"), engine) == want, engine


@pytest.mark.parametrize("era", [20, 24, 25, 27, 29, 30, 33, 34])
def test_generated_files_of_every_era(tmp_path, era):
    generate(tmp_path, days=1 / 288, lines=600, format_era=era, seed=era, control_file=False)
    want = _file_result(str(tmp_path), "python")
    assert len(want) == 600
    for engine in ENGINES:
        assert _file_result(str(tmp_path), engine) == want, engine


def test_the_c_engine_takes_every_generated_line():
    """Equality must not come from handing everything to parse_line: the generated day (IPv6 clients,
    escaped quotes, every status) is taken by the C tokenizer line for line."""
    from albstats import _albparse

    files = sorted((FIXTURES / "AWSLogs").rglob("*.log.gz"))[:60]
    data = b"".join(gzip.decompress(f.read_bytes()) for f in files)
    assert b'\\"' in data  # some user agents with an escaped quote
    tokens, cols = c_spec(ACCESS, tuple(ACCESS.names))
    idx, _, rest, counts = _albparse.parse_block(data, tokens, ACCESS.min_tokens, cols)
    assert len(idx) // 8 == sum(counts) == data.count(b"\n") > 1000
    assert rest == b""


def test_doubles_round_like_python_float():
    """Timings become doubles without strtod when that is exact; every result must equal float(text)."""
    from albstats import _albparse

    rnd = random.Random(3)
    base = load_jsonl("alb_connection_samples.jsonl")[0]["line"].split(" ")
    texts = [
        "0",
        "-0",
        "-0.000",
        "00.5",
        "0.1",
        "9007199254740993",
        "123456789012345.6",
        "1." + "9" * 30,
        "0." + "0" * 21 + "1",
        "0." + "0" * 22 + "1",
        "1" * 25,
        "4.35",
        "0.3",
        "1" * 310,
    ]
    for _ in range(3000):
        digits = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 18)))
        frac = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(0, 25)))
        texts.append(("-" if rnd.random() < 0.3 else "") + digits + ("." + frac if frac else ""))
    data = "".join(" ".join(base[:6] + [t] + base[7:]) + "\n" for t in texts).encode()
    tokens, cols = c_spec(CONNECTION, ("tls_handshake_latency",))
    idx, got, rest, _ = _albparse.parse_block(data, tokens, CONNECTION.min_tokens, cols)
    taken = np.frombuffer(idx, dtype=np.int64)
    values = np.frombuffer(got[0][2], dtype=np.float64)
    assert len(taken) >= len(texts) - 1  # only the 310-digit number may be left to Python
    for i, v in zip(taken.tolist(), values.tolist()):
        assert repr(v) == repr(float(texts[i])), texts[i]


def test_env_var_picks_the_engine(monkeypatch):
    monkeypatch.setenv("ALBSTATS_PARSER", "python")
    assert resolve_engine() == "python"
    monkeypatch.setenv("ALBSTATS_PARSER", "c")
    assert resolve_engine() == "c"
    for retired in ("cobol", "arrow"):  # the Arrow engine is retired: a one-line error naming the variable
        monkeypatch.setenv("ALBSTATS_PARSER", retired)
        with pytest.raises(UsageError, match=f"{retired}.*ALBSTATS_PARSER.*known: fast, c, python"):
            resolve_engine()


def test_without_the_extension_the_reference_engine_runs_and_says_so_once(monkeypatch, capsys):
    monkeypatch.setattr(native, "_albparse", None)
    monkeypatch.setattr(native, "_noticed", False)
    monkeypatch.delenv("ALBSTATS_PARSER", raising=False)
    assert resolve_engine() == "python"
    assert resolve_engine() == "python"
    err = capsys.readouterr().err
    assert err.count("albstats: the fast C parser") == 1
    assert "gcc python3-dev" in err and "pip install -e ." in err
    assert resolve_engine("python") == "python"  # asked for: nothing to say
    assert capsys.readouterr().err == ""
    with pytest.raises(UsageError, match="not built"):
        resolve_engine("c")


# --- hand-made odd lines --------------------------------------------------------------------------

GOOD = load_jsonl("alb_access_samples.jsonl")[0]["line"]


def test_odd_lines():
    odd = [
        "",
        " ",
        "\t",
        GOOD + " ",
        GOOD + "\r",
        GOOD.replace(" ", "  ", 1),
        GOOD + ' "x" y',
        GOOD + ' "a\\"b"',
        GOOD.replace('"curl/7.46.0"', '"cu\\"rl \\\\ x"'),
        GOOD.replace('"curl/7.46.0"', '"curl\\"'),
        GOOD.replace('"curl/7.46.0"', '"curl"x'),
        GOOD.replace('"curl/7.46.0"', 'c"url'),
        GOOD.replace("192.168.131.39:2817", "[::1]:2817"),
        GOOD.replace("192.168.131.39:2817", "[::1]:"),
        GOOD.replace("192.168.131.39:2817", "::1"),
        GOOD.replace("192.168.131.39:2817", "1.2.3.4:99999999999"),
        GOOD.replace("192.168.131.39:2817", "1.2.3.4:4294967296"),
        GOOD.replace("10.0.0.1:80", "-"),
        GOOD.replace("10.0.0.1:80", "[]:1"),
        GOOD.replace("10.0.0.1:80", "[:1"),
        GOOD.replace(" 34 366 ", " 99999999999999999999 -5 "),
        GOOD.replace(" 34 366 ", " - 9223372036854775808 "),
        GOOD.replace(" 34 366 ", " -9223372036854775808 9223372036854775807 "),
        GOOD.replace(" 34 366 ", " 0034 -0 "),
        GOOD.replace(" 200 200 ", " - - "),
        GOOD.replace(" 200 200 ", " 2000 200 "),
        GOOD.replace(" 200 200 ", " ٢٠٠ 200 "),
        GOOD.replace("0.000 0.001 0.000", "-1 0.1234567890123456789012345 00.5"),
        GOOD.replace("0.000 0.001 0.000", "1e3 0.1 0.1"),
        GOOD.replace("0.000 0.001 0.000", "-1.0 .5 1."),
        GOOD.replace('"GET http://www.example.com:80/ HTTP/1.1"', '"- - -"'),
        GOOD.replace('"GET http://www.example.com:80/ HTTP/1.1"', '"GET"'),
        GOOD.replace('"GET http://www.example.com:80/ HTTP/1.1"', '"GET /a b c HTTP/1.1"'),
        GOOD.replace('"GET http://www.example.com:80/ HTTP/1.1"', '"GET /x"'),
        GOOD.replace('"GET http://www.example.com:80/ HTTP/1.1"', '""'),
        GOOD.replace('"GET http://www.example.com:80/ HTTP/1.1"', '" "'),
        GOOD.replace("http 2018", '"http" 2018'),
        GOOD.replace("http 2018", "HTTP 2018"),
        GOOD.replace("2018-07-02T22:23:00.186641Z", "2018-07-02T22:23:00Z"),
        GOOD.replace("2018-07-02T22:23:00.186641Z", "2018-07-02T22:23:00."),
        GOOD.replace("2018-07-02T22:23:00.186641Z", "2018-07-02T22:23:00.1ZZ"),
        GOOD.replace("2018-07-02T22:22:48.364000Z", "-"),
        GOOD.replace("2018-07-02T22:22:48.364000Z", "x"),
        GOOD.replace("curl/7.46.0", "curl/ü 日本 \x00 \x7f"),
        " ".join(GOOD.split(" ")[:19]),
        " ".join(GOOD.split(" ")[:20]),
        GOOD + ' extra1 "two words" -',
        GOOD + ' "unterminated',
        GOOD.replace("curl/7.46.0", "x" * 100_000),
    ]
    assert_same(odd)
    for line in odd:
        assert_same([line])


def test_every_byte_at_every_timestamp_position():
    """The tokenizer checks a timestamp's first 19 characters eight bytes at a time: each position, with
    each byte value, must be judged as parse_line judges it (the line is taken or left to it)."""
    g = GOOD.encode()
    blocks = []
    for ts in (b"2018-07-02T22:23:00.186641Z", b"2018-07-02T22:22:48.364000Z"):  # time, request_creation_time
        at = g.index(ts)
        for i in range(19):
            for v in range(256):
                if v not in (10, 13, 32, 34):  # these end the line or the field: other tests cover them
                    blocks.append(g[: at + i] + bytes([v]) + g[at + i + 1 :])
    assert_same(b"\n".join(blocks) + b"\n")


def test_quotes_escapes_and_odd_bytes_at_every_offset():
    """The tokenizer scans 16 bytes at a time for a field's closing quote (or a backslash) and for carriage
    returns and non-ASCII bytes: put each at every offset around those strides."""
    from albstats import _albparse

    good = []
    for n in range(40):
        for k in range(n + 1):
            for esc in ('\\"', '\\" ', "\\\\", '\\\\ \\"x'):  # escaped quote (and space), backslash
                good.append(GOOD.replace('"curl/7.46.0"', f'"{"a" * k}{esc}{"b" * (n - k)}"'))
    bad = [GOOD.replace('"curl/7.46.0"', f'"{"u" * n}') for n in range(40)]  # unterminated: the next field's
    bad += [GOOD + ' "' + "z" * n for n in range(40)]  # quote closes it, or the line ends first
    assert_same(good + bad)
    data = "".join(line + "\n" for line in good).encode()
    tokens, cols = c_spec(ACCESS, tuple(ACCESS.names))
    assert _albparse.parse_block(data, tokens, ACCESS.min_tokens, cols)[2] == b""  # all taken by the C code
    g = GOOD.encode()
    blocks = [g[:i] + odd + g[i + 1 :] for i in range(len(g)) for odd in (b"\r", b"\xc3\xa9", b"\xff")]
    assert_same(b"\n".join(blocks) + b"\n")


def test_odd_bytes_next_to_the_line_end_at_every_alignment():
    """The line's end is found 16 bytes at a time, noting carriage returns and non-ASCII bytes on the way:
    an odd byte in the 16 bytes before the one holding the '\\n' (or in the same 16) still counts, and one
    just after the '\\n' (the next line's) does not count for this line."""
    g = GOOD.encode()
    lines = []
    for pad in range(18):  # shifts where the '\n' falls within the 16-byte strides
        for odd in (b"\r", b"\xc3\xa9", b"\xff"):
            for back in range(1, 20):  # the odd byte this many bytes before the line's end
                base = g.replace(b"curl", b"curl" + b"x" * pad)
                lines.append(base[: len(base) - back] + odd + base[len(base) - back + 1 :])
            lines.append(base)
    assert_same(b"\n".join(lines) + b"\n")
    assert_same(b"\n".join(lines) + b"\r\n")


def test_invalid_utf8_and_odd_bytes():
    g = GOOD.encode()
    blocks = [
        g.replace(b"curl", b"cu\xffrl"),
        g.replace(b"curl", b"cu\xc3rl"),
        g.replace(b"curl", b"\xed\xa0\x80"),
        g.replace(b"curl", b"\xf4\x90\x80\x80"),
        g.replace(b"curl", b"\xe0\x80\x80"),
        g.replace(b"curl", b"\xc0\xaf"),
        g.replace(b"curl", b"\xf0\x9f\x98\x80"),
        g.replace(b"curl", b"\x00\x00"),
        g.replace(b"my-", b"m\xe9"),
    ]
    assert_same(b"\n".join(blocks) + b"\n")
    for b in blocks:
        assert_same(b + b"\n")
    assert_same(b"\n".join(blocks) + b"\r\n" + g)  # CRLF, and no newline at the end
    assert_same(b"\n\n\n" + g + b"\n\n")


def test_connection_log_values():
    base = load_jsonl("alb_connection_samples.jsonl")[0]["line"]
    parts = base.split(" ")
    lines = [base]
    for j, repl in [
        (2, "99999999999"),
        (2, "-"),
        (3, "x"),
        (6, "1e5"),
        (6, "nan"),
        (6, "-"),
        (6, "0.25"),
        (6, "inf"),
        (6, " 1"),
        (1, "2001:db8::1"),
        (1, "zz"),
        (6, "1_000"),
    ]:
        p = list(parts)
        p[j] = repl
        lines.append(" ".join(p))
    assert_same(lines, CONNECTION)
    for line in lines:
        assert_same([line], CONNECTION)


# --- fuzzing --------------------------------------------------------------------------------------

CONFORMANCE_LINES = [r["line"] for r in load_jsonl("alb_access_samples.jsonl")]
PIECES = [
    '"',
    " ",
    "\\",
    '\\"',
    "\\\\",
    "0",
    "9",
    "-",
    ":",
    ".",
    "é",
    "日",
    "\x00",
    "\r",
    "\t",
    "[",
    "]",
    "Z",
    "x" * 300,
]


@st.composite
def mutated(draw: Any) -> str:
    line = draw(st.sampled_from(CONFORMANCE_LINES))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(line)))
        if draw(st.booleans()) and pos < len(line):
            line = line[:pos] + line[pos + draw(st.integers(1, 3)) :]
        else:
            line = line[:pos] + draw(st.sampled_from(PIECES)) + line[pos:]
    return line


@pytest.mark.integration  # slow: 3 s under load
@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=12))
def test_mutated_real_lines(lines):
    assert_same([x.replace("\n", " ") for x in lines])


@pytest.mark.integration  # slow: hypothesis over all engines (~4 s)
@FUZZ
@given(st.lists(st.text(max_size=200), max_size=8), st.booleans())
def test_arbitrary_text(texts, newline_at_end):
    data = "\n".join(texts).encode("utf-8", "surrogatepass") + (b"\n" if newline_at_end else b"")
    assert_same(data)
    assert_same(data, CONNECTION)


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data):
    assert_same(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows(), min_size=1, max_size=20), st.sampled_from(ERAS))
def test_written_lines_of_every_era(cases, _era):
    assert_same([format_line(v, ntokens=era) for v, era in cases])


def test_many_random_mutations_in_one_big_block():
    """One block of a few thousand lines, mostly good, some broken: rows must merge back in order."""
    rnd = random.Random(7)
    lines = []
    for i in range(4000):
        line = CONFORMANCE_LINES[i % len(CONFORMANCE_LINES)]
        if rnd.random() < 0.2:
            pos = rnd.randrange(len(line))
            line = line[:pos] + rnd.choice(PIECES) + line[pos:]
        lines.append(line.replace("\n", " "))
    assert_same(lines)


def test_gzip_file_all_engines(tmp_path):
    lines = CONFORMANCE_LINES * 20 + ["junk", GOOD + ' "a\\"b"']
    p = tmp_path / "x.log.gz"
    p.write_bytes(gzip.compress(("\n".join(lines)).encode()))
    want = _file_result(str(p), "python")
    for engine in ENGINES:
        assert _file_result(str(p), engine) == want
