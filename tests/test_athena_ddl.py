"""The generated Athena table: its regex gives, column for column, what the local parser gives.

Athena's RegexSerDe does a full-line match with DOTALL; column i takes group i+1; a group that did not
take part is NULL; a value that does not cast to the column type is NULL for that cell. ``athena_cast``
mirrors that (Java's Integer/Long/Double parsing) so the comparison is with what Athena would return.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from albstats import athena_ddl as ddl
from albstats.errors import UsageError
from albstats.generate import ERAS, generate
from albstats.logformat import format_line
from albstats.parse import BadLine, iter_chunks, parse_line
from albstats.schema import ACCESS, CONNECTION, LogSchema
from albstats.sources import expand
from tests.conftest import load_jsonl

INT32 = 2**31 - 1
INT64 = 2**63 - 1
_JAVA_DOUBLE = re.compile(r"[-+]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)[fFdD]?")


def athena_cast(type_: str, v: str | None) -> object:
    """What Athena's RegexSerDe puts in a column of ``type_`` for the text ``v`` of a group."""
    if v is None:
        return None
    if type_ == "string":
        return v
    if type_ in ("int", "bigint"):
        if not re.fullmatch(r"[-+]?[0-9]+", v):
            return None
        i = int(v)
        lim = INT32 if type_ == "int" else INT64
        return i if -lim - 1 <= i <= lim else None
    if type_ == "double":
        s = v.strip()
        return float(s.rstrip("fFdD")) if _JAVA_DOUBLE.fullmatch(s) else None
    raise AssertionError(type_)


def athena_row(rx: re.Pattern[str], line: str, schema: LogSchema) -> list[object] | None:
    m = rx.fullmatch(line)
    if m is None:
        return None
    return [athena_cast(c.type, m.group(i + 1)) for i, c in enumerate(schema.columns)]


def parser_row(line: str, schema: LogSchema) -> list[object] | None:
    try:
        return parse_line(line, schema)
    except BadLine:
        return None


@pytest.fixture(scope="module")
def access_rx() -> re.Pattern[str]:
    return re.compile(ddl.input_regex(ACCESS), re.DOTALL)


@pytest.fixture(scope="module")
def conn_rx() -> re.Pattern[str]:
    return re.compile(ddl.input_regex(CONNECTION), re.DOTALL)


def assert_same(rx: re.Pattern[str], line: str, schema: LogSchema = ACCESS) -> list[object]:
    want = parser_row(line, schema)
    assert want is not None, f"parser rejects {line!r}"
    got = athena_row(rx, line, schema)
    assert got is not None, f"regex does not match {line!r}"
    diffs = {c.name: (g, w) for c, g, w in zip(schema.columns, got, want) if g != w}
    assert not diffs, f"columns differ (athena, parser) for {line!r}: {diffs}"
    return got


def test_one_group_per_column() -> None:
    assert ddl.group_count(ACCESS) == len(ACCESS.columns)
    assert ddl.group_count(CONNECTION) == len(CONNECTION.columns)
    assert ACCESS.columns[-1].name == "extra_fields"


def test_every_conformance_line_with_29_fields_or_more(access_rx: re.Pattern[str]) -> None:
    lines = [r["line"] for r in load_jsonl("alb_access_samples.jsonl")]
    long_ones = [ln for ln in lines if len(parse_line_tokens(ln)) >= 29]
    assert len(long_ones) >= 30
    seen_counts = set()
    for line in long_ones:
        row = assert_same(access_rx, line)
        seen_counts.add(len(parse_line_tokens(line)))
        assert row[ACCESS.names.index("type")] is not None
    assert {29, 30, 33, 36} <= seen_counts


def parse_line_tokens(line: str) -> list[tuple[str, int]]:
    from albstats.parse import tokenize

    return tokenize(line)


def test_older_conformance_lines_too(access_rx: re.Pattern[str]) -> None:
    """The table also reads 20-27 token lines (2016-2020), with NULL for the fields they lack."""
    for rec in load_jsonl("alb_access_samples.jsonl"):
        row = assert_same(access_rx, rec["line"])
        if len(parse_line_tokens(rec["line"])) < 29:
            assert row[ACCESS.names.index("classification_reason")] is None


def test_exposes_conn_trace_id_transform_fields_ip_address_and_extras(access_rx: re.Pattern[str]) -> None:
    lines = [r["line"] for r in load_jsonl("alb_access_samples.jsonl")]
    line36 = next(ln for ln in lines if len(parse_line_tokens(ln)) == 36)
    row = dict(zip(ACCESS.names, athena_row(access_rx, line36, ACCESS)))
    assert row["conn_trace_id"].startswith("TID_")
    assert row["transformed_host"] == "-" and row["request_transform_status"] == "-"
    assert re.fullmatch(r"[0-9.]+", row["ip_address"])
    assert row["extra_fields"] == '"-" "-"'


def test_target_dash_and_bracketed_ipv6(access_rx: re.Pattern[str]) -> None:
    lines = [r["line"] for r in load_jsonl("alb_access_samples.jsonl")]
    dash = next(ln for ln in lines if " - 0.000 " in ln or re.search(r":\d+ - -1 ", ln))
    row = dict(zip(ACCESS.names, athena_row(access_rx, dash, ACCESS)))
    assert row["target_ip"] == "" and row["target_port"] is None
    br = next(ln for ln in lines if re.search(r" \[[0-9a-f:]+\]:\d+ ", ln))
    row = dict(zip(ACCESS.names, athena_row(access_rx, br, ACCESS)))
    assert ":" in row["client_ip"] and "[" not in row["client_ip"]


def test_connection_conformance_lines(conn_rx: re.Pattern[str]) -> None:
    recs = load_jsonl("alb_connection_samples.jsonl")
    assert recs
    for rec in recs:
        row = assert_same(conn_rx, rec["line"], CONNECTION)
        assert row[0] is not None


_CONN_VALUES = {
    "time": "2025-09-01T10:00:00.123456Z",
    "client_ip": "2001:db8::7",
    "client_port": 36280,
    "listener_port": 443,
    "tls_protocol": "TLSv1.3",
    "tls_cipher": "TLS_AES_128_GCM_SHA256",
    "tls_handshake_latency": 0.004,
    "leaf_client_cert_subject": 'CN=a b,O=\\"x\\"',
    "leaf_client_cert_validity": "NotBefore=x;NotAfter=y",
    "leaf_client_cert_serial_number": "FEF2",
    "tls_verify_status": "Failed:ClientCertUntrusted",
    "conn_trace_id": "TID_1c71",
    "tls_keyexchange": "X25519MLKEM768",
    "elb": "app/lb/50dc",
    "ip_address": "10.0.0.5",
}


@pytest.mark.parametrize("ntokens", range(CONNECTION.min_tokens, len(CONNECTION.tokens) + 1))
def test_connection_lines_of_every_length(ntokens: int, conn_rx: re.Pattern[str]) -> None:
    line = format_line(_CONN_VALUES, CONNECTION, ntokens=ntokens)
    row = assert_same(conn_rx, line, CONNECTION)
    assert row[CONNECTION.names.index("tls_handshake_latency")] == 0.004
    row = assert_same(conn_rx, line + ' "-" new', CONNECTION)
    if ntokens == len(CONNECTION.tokens):
        assert row[-1] == '"-" new'


def test_non_alb_lines_do_not_match(access_rx: re.Pattern[str], conn_rx: re.Pattern[str]) -> None:
    """A line the parser rejects is an all-NULL row on Athena (no match), never a garbled row."""
    for rec in load_jsonl("non_alb_samples.jsonl"):
        line = rec["line"]
        for rx, schema in ((access_rx, ACCESS), (conn_rx, CONNECTION)):
            assert (rx.fullmatch(line) is None) == (parser_row(line, schema) is None), (schema.kind, line)


@pytest.mark.parametrize("era", ERAS)
def test_generated_lines_of_every_era(era: int, tmp_path: Path, access_rx: re.Pattern[str]) -> None:
    generate(tmp_path, days=1 / 288, rps=2.0, seed=era, format_era=era, control_file=False)
    n = 0
    for src in expand([str(tmp_path)]):
        text = b"".join(iter_chunks(src)).decode()
        for line in text.splitlines():
            assert_same(access_rx, line)
            n += 1
    assert n > 100


def _values(i: int) -> dict[str, object]:
    return {
        "type": "https",
        "time": "2025-08-19T10:00:00.123456Z",
        "elb": "app/lb/50dc6c495c0c9188",
        "client_ip": "2001:db8::1",
        "client_port": 50599,
        "target_ip": "10.0.0.1",
        "target_port": 8080,
        "request_processing_time": 0.001,
        "target_processing_time": -1.0,
        "response_processing_time": 0.0,
        "elb_status_code": 502,
        "target_status_code": "-",
        "received_bytes": 10,
        "sent_bytes": 2**40,
        "request_verb": "GET",
        "request_url": 'https://h:443/a b\\"c?q=1 2',
        "request_proto": "HTTP/1.1",
        "user_agent": 'Mozilla \\"x\\" \\\\ y' + "z" * i,
        "ssl_cipher": "ECDHE",
        "ssl_protocol": "TLSv1.3",
        "target_group_arn": "arn:aws:elasticloadbalancing:us-east-2:1:targetgroup/t/1",
        "trace_id": "Root=1-5",
        "domain_name": "h",
        "chosen_cert_arn": "session-reused",
        "matched_rule_priority": "1",
        "request_creation_time": "2025-08-19T10:00:00.100000Z",
        "actions_executed": "waf,forward",
        "redirect_url": "https://x y/",
        "lambda_error_reason": "-",
        "target_port_list": "10.0.0.1:8080 10.0.0.2:8080",
        "target_status_code_list": "- 502",
        "classification": "-",
        "classification_reason": "-",
        "conn_trace_id": "TID_abc",
        "transformed_host": "new.example",
        "transformed_uri": "/v2/x",
        "request_transform_status": "TransformSuccess",
        "ip_address": "172.31.0.9",
    }


@pytest.mark.parametrize("ntokens", range(ACCESS.min_tokens, len(ACCESS.tokens) + 1))
def test_format_line_every_token_count(ntokens: int, access_rx: re.Pattern[str]) -> None:
    line = format_line(_values(3), ntokens=ntokens)
    row = assert_same(access_rx, line)
    names = ACCESS.names
    assert row[names.index("request_url")] == 'https://h:443/a b\\"c?q=1 2'
    assert row[names.index("user_agent")].startswith('Mozilla \\"x\\"')  # escapes kept as logged
    assert row[names.index("sent_bytes")] == 2**40
    assert row[names.index("target_processing_time")] == -1.0
    if ntokens < len(ACCESS.tokens):
        assert row[names.index("ip_address")] is None  # missing trailing fields are NULL, not ''


@pytest.mark.parametrize("extra", ['"-"', '"-" "-"', 'new_field "quoted \\" one" 42', '"-" '])
def test_appended_fields_land_in_extra_fields(extra: str, access_rx: re.Pattern[str]) -> None:
    line = format_line(_values(0)) + " " + extra
    row = assert_same(access_rx, line)
    assert row[-1] == extra


@pytest.mark.parametrize("ntokens", [20, 29, 34])
def test_trailing_spaces_like_the_parser(ntokens: int, access_rx: re.Pattern[str]) -> None:
    """One trailing space is accepted (and kept in extra_fields), two make the line malformed."""
    line = format_line(_values(0), ntokens=ntokens)
    assert_same(access_rx, line + " ")
    assert_same(access_rx, line + " x ")
    assert parser_row(line + "  ", ACCESS) is None and access_rx.fullmatch(line + "  ") is None
    assert parser_row(line + " x  ", ACCESS) is None and access_rx.fullmatch(line + " x  ") is None


def test_request_edge_cases(access_rx: re.Pattern[str]) -> None:
    for req in (
        "- - -",
        "- http://h:80- -",
        "GET",
        "GET /x",
        "GET /a\\ b HTTP/1.1",
        "",
        "- http://h:80-/ ",
        'GET /\\"q\\" HTTP/1.1',
        "GET /a  b HTTP/2.0",
        "GET\\ /x y",
    ):
        v = _values(0)
        line = format_line(v).replace('"GET https://h:443/a b\\"c?q=1 2 HTTP/1.1"', f'"{req}"', 1)
        assert f'"{req}"' in line
        assert_same(access_rx, line)


@pytest.mark.parametrize(
    "hostport",
    [
        "[-",
        '" :"',
        'a"b:80',
        '"[a\\]:80"',
        '"a\\:80"',
        '-"',
        '"-"',
        "[::1]:",
        "[]:80",
        '"[::1]:443"',
        "[::1:80",
        "::1]:80",
        "-:80",
        "abc",
        '"a b:1"',
    ],
)
def test_hostport_oddities_agree_with_parser(hostport: str, access_rx: re.Pattern[str]) -> None:
    """Found by fuzzing: whatever the parser does with an odd client:port, the regex does too."""
    line = format_line(_values(0)).replace(" 2001:db8::1:50599 ", f" {hostport} ", 1)
    assert athena_row(access_rx, line, ACCESS) == parser_row(line, ACCESS)


# --- random lines: the regex and the parser agree on accept/reject and on every value -------------

_text = st.text(alphabet=st.sampled_from(list('ab -"\\:1[]T.')), max_size=12)


@st.composite
def _lines(draw: st.DrawFn) -> str:
    ntok = draw(st.integers(ACCESS.min_tokens, len(ACCESS.tokens) + 2))
    line = format_line(_values(0), ntokens=min(ntok, len(ACCESS.tokens)))
    if ntok > len(ACCESS.tokens):
        line += ' "-" x'
    # mutate one token: raw text, possibly quoted, possibly with escapes and spaces
    from albstats.parse import tokenize

    toks = tokenize(line)
    i = draw(st.integers(0, len(toks) - 1))
    start = toks[i][1]
    end = toks[i + 1][1] - 1 if i + 1 < len(toks) else len(line)
    new = draw(_text)
    if draw(st.booleans()):
        new = f'"{new}"'
    return line[:start] + new + line[end:]


@pytest.mark.integration  # slow: 6 s under load
@settings(max_examples=1500, deadline=None, derandomize=True)  # CI stays deterministic
@given(_lines())
def test_random_token_mutations_agree_with_parser(access_rx: re.Pattern[str], line: str) -> None:
    want = parser_row(line, ACCESS)
    got = athena_row(access_rx, line, ACCESS)
    if want is not None and line[parse_line_tokens(line)[12][1]] != '"':
        # documented difference: a request field written without quotes (ALB always quotes it,
        # even "- - -") is read by the parser but is an all-NULL row on Athena
        assert got is None
        return
    if want is None:
        assert got is None, f"regex accepts a line the parser rejects: {line!r}"
    else:
        assert got == want, line


# --- the DDL ----------------------------------------------------------------------------------


def hive_unescape(lit: str) -> str:
    """Hive's unescapeSQLString (what Athena's DDL parser does to a '...' literal)."""
    assert lit[0] == lit[-1] == "'"
    body, out, i = lit[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "Z": "\x1a"}.get(n, n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def test_create_table_ddl() -> None:
    spec = ddl.TableSpec(
        bucket="my-logs",
        prefix="prod/web",
        account="123456789012",
        region="us-east-2",
        database="albstats",
        table="alb_logs",
        start="2024/01/01",
    )
    sql = ddl.create_table_sql(spec)
    assert sql.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `albstats`.`alb_logs` (")
    for c in ACCESS.columns:
        assert re.search(rf"`{c.name}`\s+{c.type},?\n", sql), c.name
    assert "PARTITIONED BY (`day` string)" in sql
    loc = "s3://my-logs/prod/web/AWSLogs/123456789012/elasticloadbalancing/us-east-2/"
    assert f"LOCATION '{loc}'" in sql
    assert f"'storage.location.template' = '{loc}${{day}}'" in sql
    assert "'projection.day.range' = '2024/01/01,NOW'" in sql
    assert "'projection.day.format' = 'yyyy/MM/dd'" in sql
    assert "'projection.day.type' = 'date'" in sql
    lit = re.search(r"'input.regex' = ('(?:[^'\\]|\\.)*')", sql, re.DOTALL)[1]
    assert hive_unescape(lit) == ddl.input_regex(ACCESS)
    conn = ddl.create_table_sql(
        ddl.TableSpec(
            bucket="b-1", account="123456789012", region="eu-west-1", table="alb_connection_logs", kind="connection"
        )
    )
    lit = re.search(r"'input.regex' = ('(?:[^'\\]|\\.)*')", conn, re.DOTALL)[1]
    assert hive_unescape(lit) == ddl.input_regex(CONNECTION)
    assert "`tls_verify_status`" in conn and "s3://b-1/AWSLogs/" in conn
    stmts = ddl.statements(spec, replace=True)
    assert stmts[0] == "CREATE DATABASE IF NOT EXISTS `albstats`"
    assert stmts[1] == "DROP TABLE IF EXISTS `albstats`.`alb_logs`"


@pytest.mark.parametrize(
    "field,value",
    [
        ("database", "albstats; DROP TABLE x"),
        ("database", "Albstats"),
        ("table", "a`b"),
        ("table", ""),
        ("bucket", "My_Bucket"),
        ("bucket", "b' OR 1=1"),
        ("prefix", "x/AWSLogs/1"),
        ("prefix", "a'b"),
        ("account", "12345"),
        ("region", "us-east-2'"),
        ("start", "2024-13-01"),
    ],
)
def test_bad_values_are_rejected(field: str, value: str) -> None:
    kw = dict(bucket="my-logs", account="123456789012", region="us-east-2")
    kw[field] = value
    with pytest.raises(UsageError):
        ddl.TableSpec(**kw)


def test_other_validators() -> None:
    assert ddl.check_workgroup("primary") == "primary"
    with pytest.raises(UsageError):
        ddl.check_workgroup("a b")
    assert ddl.check_s3_url("s3://out-bucket/athena") == "s3://out-bucket/athena/"
    with pytest.raises(UsageError):
        ddl.check_s3_url("https://x/")
    assert ddl.check_from("2024-02-03") == "2024/02/03"


JAVA_CHECK = r"""
import java.nio.file.*; import java.util.*; import java.util.regex.*;
public class RegexCheck {
  public static void main(String[] a) throws Exception {
    Pattern p = Pattern.compile(Files.readString(Path.of(a[0])), Pattern.DOTALL);
    StringBuilder out = new StringBuilder();
    for (String line : Files.readAllLines(Path.of(a[1]))) {
      Matcher m = p.matcher(line);
      if (!m.matches()) { out.append("null\n"); continue; }
      out.append("[");
      for (int i = 1; i <= m.groupCount(); i++) {
        String g = m.group(i);
        if (i > 1) out.append(",");
        out.append(g == null ? "null" : "\"" + g.replace("\\", "\\\\").replace("\"", "\\\"") + "\"");
      }
      out.append("]\n");
    }
    System.out.print(out);
  }
}
"""


@pytest.mark.integration  # the JDK
def test_java_regex_engine_agrees(tmp_path: Path, access_rx: re.Pattern[str]) -> None:
    """Athena runs the regex with java.util.regex: same groups as Python's re, and no stack overflow
    on an 8 KB User-Agent full of escapes."""
    assert shutil.which("java"), "needs a JDK (java on PATH): apt-get install default-jdk-headless (.ci/run does)"
    lines = [r["line"] for r in load_jsonl("alb_access_samples.jsonl")]
    lines.append(format_line(_values(8000)))
    lines.append(format_line({**_values(0), "user_agent": 'x\\"' * 3000}))
    lines.append(format_line({**_values(0), "request_url": "/" + "a b" * 3000}))
    lines.append(format_line({**_values(0), "request_url": "/" + 'a\\" b' * 3000}))
    lines.append(format_line(_values(0)) + ' "-"' * 3000)
    (tmp_path / "re.txt").write_text(ddl.input_regex(ACCESS))
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "RegexCheck.java").write_text(JAVA_CHECK)
    res = subprocess.run(
        ["java", "-Xss256k", str(tmp_path / "RegexCheck.java"), str(tmp_path / "re.txt"), str(tmp_path / "lines.txt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    got = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(got) == len(lines)
    for line, groups in zip(lines, got):
        m = access_rx.fullmatch(line)
        assert groups is not None, line[:200]
        assert list(m.groups()) == groups, line[:200]
