"""Property tests: written lines read back; arbitrary input never crashes the parser."""

from __future__ import annotations

import gzip
from dataclasses import asdict
from datetime import datetime
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from albstats.logformat import escape, format_line
from albstats.parse import BadLine, ParseStats, iter_batches, parse_line
from albstats.schema import ACCESS, ALB_TYPES

ERAS = [20, 24, 25, 27, 29, 30, 33, 34]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

bare = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_characters='"\\'), min_size=1, max_size=12)
# raw text for quoted fields: anything but a newline (ALB writes one entry per line); logged escaped
raw_text = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=30)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(lambda t: ":".join(f"{x:x}" for x in t))
ip = st.one_of(ipv4, ipv6)
port = st.integers(0, 65535)
seconds = st.one_of(st.just(-1.0), st.integers(0, 10**6).map(lambda i: i / 1000))
ts = st.datetimes(min_value=datetime(1000, 1, 1)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
status = st.integers(100, 599)


@st.composite
def rows(draw: Any) -> tuple[dict[str, Any], int]:
    era = draw(st.sampled_from(ERAS))
    v: dict[str, Any] = {
        "type": draw(st.sampled_from(sorted(ALB_TYPES))),
        "time": draw(ts),
        "elb": draw(bare),
        "client_ip": draw(ip),
        "client_port": draw(port),
        "target_ip": draw(st.one_of(st.none(), ip)),
        "target_port": draw(port),
        "request_processing_time": draw(seconds),
        "target_processing_time": draw(seconds),
        "response_processing_time": draw(seconds),
        "elb_status_code": draw(status),
        "target_status_code": draw(st.one_of(st.just("-"), status.map(str))),
        "received_bytes": draw(st.integers(0, 2**62)),
        "sent_bytes": draw(st.integers(0, 2**62)),
        "request_verb": draw(bare),
        "request_url": escape(draw(raw_text)),
        "request_proto": draw(bare),
        "request_creation_time": draw(st.one_of(st.just("-"), ts)),
    }
    for c in ACCESS.columns:
        if c.name not in v and c.name != "extra_fields":
            tok = next(t for t in ACCESS.tokens if c in t.columns)
            v[c.name] = escape(draw(raw_text)) if tok.quoted else draw(bare)
    if era == len(ACCESS.tokens) and draw(st.booleans()):
        v["extra_fields"] = " ".join(
            draw(st.lists(st.one_of(bare, raw_text.map(lambda t: f'"{escape(t)}"')), min_size=1, max_size=3))
        )
    return v, era


def expected(v: dict[str, Any], era: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, tok in enumerate(ACCESS.tokens):
        for c in tok.columns:
            if i >= era:
                out[c.name] = None
            elif c.name == "target_ip":
                out[c.name] = v["target_ip"] or ""
            elif c.name == "target_port":
                out[c.name] = v["target_port"] if v["target_ip"] else None
            else:
                out[c.name] = v[c.name]
    out["extra_fields"] = v.get("extra_fields")
    return out


@SETTINGS
@given(rows())
def test_written_rows_read_back(case):
    v, era = case
    line = format_line(v, ntokens=era)
    assert dict(zip(ACCESS.names, parse_line(line))) == expected(v, era)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.lists(rows(), min_size=1, max_size=40), st.lists(st.text(max_size=80), max_size=5))
def test_engines_agree_on_generated_files(tmp_path_factory, cases, junk):
    lines = [format_line(v, ntokens=era) for v, era in cases] + [j.replace("\n", " ") for j in junk]
    p = tmp_path_factory.mktemp("h") / "x.log.gz"
    p.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    got = []
    for engine in ("fast", "python"):
        stats = ParseStats()
        bs = list(iter_batches([str(p)], stats=stats, engine=engine))
        got.append((pa.Table.from_batches(bs, schema=ACCESS.arrow_schema()).to_pylist(), asdict(stats.files[0])))
    assert got[0] == got[1]
    assert len(got[0][0]) >= len(cases)


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text_is_a_row_or_a_bad_line(text):
    try:
        row = parse_line(text)
    except BadLine:
        return
    assert len(row) == len(ACCESS.names)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000), st.booleans())
def test_arbitrary_bytes_never_crash_the_reader(tmp_path_factory, data, gzipped):
    p = tmp_path_factory.mktemp("b") / ("x.log.gz" if gzipped else "x.log")
    p.write_bytes(gzip.compress(data) if gzipped else data)
    for engine in ("fast", "python"):
        stats = ParseStats()
        try:
            rows = sum(b.num_rows for b in iter_batches([str(p)], stats=stats, engine=engine))
        except Exception as e:  # only "this file is another format" may stop a named file
            assert "not an ALB access log" in str(e)
            continue
        f = stats.files[0]
        assert rows == f.rows and f.rows + f.bad_lines == f.lines


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=2000))
def test_random_bytes_after_a_good_line_are_counted(tmp_path_factory, junk):
    from conftest import load_jsonl

    good = load_jsonl("alb_access_samples.jsonl")[0]["line"].encode()
    p = tmp_path_factory.mktemp("c") / "x.log"
    p.write_bytes(good + b"\n" + junk + b"\n" + good + b"\n")
    res = []
    for engine in ("fast", "python"):
        stats = ParseStats()
        rows = sum(b.num_rows for b in iter_batches([str(p)], stats=stats, engine=engine))
        assert rows >= 2 and rows + stats.bad_lines == stats.lines
        res.append(asdict(stats.files[0]))
    assert res[0] == res[1]
