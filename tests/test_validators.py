"""The field validators are defined once (albstats.schema.VALIDATORS); the C tokenizer's matchers must agree.

albstats/_albparse.c checks fields with hand-written matchers (they run on every field of every line, so
they are not a regex engine). This test holds them to the one definition: the same validator names, and
for every validator the same verdict as the reference parser's (albstats.parsing.lines.valid: the schema's
regex, and for a time the calendar, albstats.schema.real_date) on edge values and on many generated strings
over the characters that matter (digits, signs, separators, letters near the hex range, non-ASCII digits).
The reference parser compiles the schema's regexes itself and the Athena DDL embeds them, so all three
readers of a log line judge a field alike (only the Athena regex cannot see the calendar).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from albstats import _albparse
from albstats.parsing.lines import BadLine, parse_line, valid
from albstats.schema import ACCESS, ALB_TYPES, CONNECTION, VALIDATORS

CODES = {name: code for code, name in enumerate(_albparse.VALIDATORS)}

EDGES = [
    *(["", "-", "--", " ", "0", "-0", "00", "x", "é"]),
    *sorted(ALB_TYPES),
    "HTTP",
    "h3",
    "http2",
    "httpss",
    "ws ",
    " ws",
    "w",
    "grpc",
    "2024-05-01T12:00:00Z",
    "2024-05-01T12:00:00.123456Z",
    "2024-05-01T12:00:00",
    "2024-05-01T12:00:00.5",
    "2024-05-01T12:00:00.Z",
    "2024-05-01T12:00:00ZZ",
    "2024-5-01T12:00:00Z",
    "2024-05-01 12:00:00Z",
    "2024-05-01t12:00:00Z",
    "2024-05-01T12:00:0Z",
    "2024-05-01T12:00:00.1.2Z",
    "12024-05-01T12:00:00Z",
    "2024-05-01T12:00:00Z-",
    "٢٠٢٤-05-01T12:00:00Z",
    "2024-13-01T12:00:00Z",
    "2024-00-01T12:00:00Z",
    "2024-05-00T12:00:00Z",
    "2024-05-32T12:00:00Z",
    "2024-04-31T12:00:00Z",
    "2024-02-29T12:00:00Z",
    "2023-02-29T12:00:00Z",
    "2100-02-29T12:00:00Z",
    "2000-02-29T12:00:00Z",
    "2024-05-01T24:00:00Z",
    "2024-05-01T23:60:00Z",
    "2024-05-01T23:59:60Z",
    "2024-12-31T23:59:59.999999Z",
    "1",
    "-1",
    "1.5",
    "-1.0",
    "1.",
    ".5",
    "-.5",
    "1..5",
    "1e5",
    "inf",
    "nan",
    "1_0",
    "+1",
    "0x10",
    "１",
    "200",
    "2000",
    "20",
    "2x0",
    "-200",
    "٢٠٠",
    "1.2.3.4",
    "::1",
    "fe80::1",
    "FE80::A",
    "g::1",
    "1.2.3.4 ",
    "[::1]",
    "1.2.3.4:80",
    "1.2.3.4:",
    ":80",
    ":",
    "1.2.3.4:8x",
    "[::1]:443",
    "a:b:80",
    "a:b:8c",
    "-:80",
    "x:-1",
    "é:1",
    "host:٣",
    "1.2.3.4:80:",
    "a\\:1",
]


def test_the_c_code_knows_exactly_the_schema_validators():
    assert _albparse.VALIDATORS[0] == ""  # no validator
    assert set(_albparse.VALIDATORS[1:]) == set(VALIDATORS)
    used = {t.validate for schema in (ACCESS, CONNECTION) for t in schema.tokens if t.validate}
    assert used <= set(VALIDATORS)


def test_times_name_real_days():
    """Month 13, February 29 of a common year or hour 24 are malformed, whichever parser reads them."""
    for value, ok in [
        ("2024-02-29T00:00:00Z", True),
        ("2000-02-29T00:00:00Z", True),
        ("2023-02-29T00:00:00Z", False),
        ("2100-02-29T00:00:00Z", False),
        ("2024-04-31T00:00:00Z", False),
        ("2024-13-01T00:00:00Z", False),
        ("2024-01-01T24:00:00Z", False),
        ("2024-12-31T23:59:59.999999Z", True),
    ]:
        assert valid("timestamp", value) is ok, value
        assert _albparse.valid(CODES["timestamp"], value.encode()) is ok, value
        assert bool(re.fullmatch(f"(?:{VALIDATORS['timestamp']})", value)) is (ok or value[5:10] in ("02-29", "04-31"))


@pytest.mark.parametrize("name", sorted(VALIDATORS))
def test_c_and_schema_agree_on_edge_values(name):
    for value in EDGES:
        assert _albparse.valid(CODES[name], value.encode()) == valid(name, value), (name, value)
    assert any(valid(name, v) for v in EDGES) and not all(valid(name, v) for v in EDGES), name


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(VALIDATORS)), st.text(alphabet="0123456789-.:TZtzaAfFgG[]x é٣", max_size=30))
def test_c_and_schema_agree_on_generated_values(name, value):
    assert _albparse.valid(CODES[name], value.encode()) == valid(name, value), (name, value)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,3})?Z?.?", fullmatch=True))
def test_c_and_schema_agree_near_timestamps(value):
    for name in ("timestamp", "timestamp_or_dash"):
        assert _albparse.valid(CODES[name], value.encode()) == valid(name, value), (name, value)


def test_the_reference_parser_uses_the_same_definition():
    """A line whose status field fails the schema's status regex is a bad line, and passes when it matches."""
    from conftest import load_jsonl

    line = load_jsonl("alb_access_samples.jsonl")[0]["line"]
    fields = line.split(" ")
    assert valid("status", fields[8])
    parse_line(line)
    for bad in ("2000", "2x0", "٢٠٠"):
        with pytest.raises(BadLine, match="elb_status_code"):
            parse_line(" ".join([*fields[:8], bad, *fields[9:]]))
