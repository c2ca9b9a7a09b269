"""`albstats parse` through the real Typer app: formats, keys, --fields, -o atomicity, summary, exit codes."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import load_jsonl
from typer.testing import CliRunner

from albstats.cli import app
from albstats.schema import ACCESS, CONNECTION

LINES = [s["line"] for s in load_jsonl("alb_access_samples.jsonl")]
CLASSIC = next(s["line"] for s in load_jsonl("non_alb_samples.jsonl") if s["notes"].startswith("CLASSIC"))
runner = CliRunner()


@pytest.fixture
def logs(tmp_path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "a.log.gz").write_bytes(gzip.compress(("\n".join(LINES[:30]) + "\n").encode()))
    (d / "b.log").write_text("\n".join(LINES[30:] + ["http broken line", ""]) + "\n")
    return d


def run(*args: str, input: bytes | None = None):
    return runner.invoke(app, ["parse", *args], input=input)


def test_jsonl_to_stdout_keys_are_the_schema(logs):
    r = run(str(logs), "-q")
    assert r.exit_code == 0, r.stderr
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(recs) == len(LINES)
    assert all(list(rec) == ACCESS.names for rec in recs)
    assert recs[0]["client_ip"] == "192.168.131.39" and recs[0]["elb_status_code"] == 200


def test_summary_on_stderr_with_bad_line_location(logs):
    r = run(str(logs))
    assert r.exit_code == 0
    assert f"2 files, {len(LINES) + 1} lines, {len(LINES)} rows, 1 malformed lines" in r.stderr
    assert f"{logs / 'b.log'}:{len(LINES) - 30 + 1}:" in r.stderr
    assert r.stdout.count("\n") == len(LINES)


def test_csv_and_fields(logs, tmp_path):
    out = tmp_path / "o.csv"
    r = run(str(logs), "--format", "csv", "--fields", "time,client_ip,target_port", "-o", str(out), "-q")
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["time", "client_ip", "target_port"] and len(rows) == len(LINES)


def test_parquet_has_the_athena_types(logs, tmp_path):
    out = tmp_path / "o.parquet"
    r = run(str(logs), "--format", "parquet", "-o", str(out), "-q")
    assert r.exit_code == 0, r.stderr
    t = pq.read_table(out)
    assert t.schema == ACCESS.arrow_schema()
    assert t.num_rows == len(LINES)
    assert out.stat().st_mode & 0o044  # readable like any file the user creates, not 0600


def test_parquet_needs_an_output_file(logs):
    r = run(str(logs), "--format", "parquet")
    assert r.exit_code == 2 and "needs -o" in r.stderr


def test_unknown_field_and_format_are_usage_errors(logs):
    r = run(str(logs), "--fields", "time,nope")
    assert r.exit_code == 2 and "unknown field 'nope'" in r.stderr
    r = run(str(logs), "--format", "xml")
    assert r.exit_code == 2 and "--format" in r.stderr


def test_strict_fails_with_file_line_and_leaves_no_output(logs, tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text("old\n")
    r = run(str(logs), "--strict", "-o", str(out))
    assert r.exit_code == 1
    assert f"albstats: error: {logs / 'b.log'}:{len(LINES) - 30 + 1}: malformed line" in r.stderr
    assert out.read_text() == "old\n"  # not replaced
    assert list(tmp_path.glob(".o.jsonl.*")) == []  # no temporary left behind
    new = tmp_path / "new.parquet"
    r = run(str(logs), "--strict", "--format", "parquet", "-o", str(new))
    assert r.exit_code == 1 and not new.exists() and list(tmp_path.glob("*.part")) == []


def test_other_format_named_directly(tmp_path):
    p = tmp_path / "elb.log"
    p.write_text(CLASSIC + "\n")
    r = run(str(p))
    assert r.exit_code == 1
    assert f"albstats: error: {p}: this is a Classic Load Balancer access log" in r.stderr


def test_missing_path(tmp_path):
    r = run(str(tmp_path / "nope"))
    assert r.exit_code == 2 and "no such file or directory" in r.stderr


def test_damaged_gzip_writes_good_lines_and_exits_1(tmp_path):
    data = gzip.compress(("\n".join(LINES * 40) + "\n").encode())
    p = tmp_path / "cut.log.gz"
    p.write_bytes(data[: len(data) * 3 // 4])
    out = tmp_path / "o.jsonl"
    r = run(str(p), "-o", str(out))
    assert r.exit_code == 1
    assert f"albstats: error: {p}: gzip data is truncated after line" in r.stderr
    n = len(out.read_text().splitlines())
    assert 0 < n < len(LINES) * 40


def test_stdin():
    r = run("-", "-q", input=("\n".join(LINES) + "\n").encode())
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == len(LINES)


def test_connection_logs_by_file_name(tmp_path):
    lines = [s["line"] for s in load_jsonl("alb_connection_samples.jsonl")]
    p = tmp_path / "conn_log_123456789012_elasticloadbalancing_us-east-2_app.x.1_20240101T0000Z_1.2.3.4_a.log"
    p.write_text("\n".join(lines) + "\n")
    r = run(str(p), "-q")
    assert r.exit_code == 0, r.stderr
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(recs) == len(lines) and list(recs[0]) == CONNECTION.names


def test_parquet_to_a_folder_is_the_dataset_by_day(logs, tmp_path):
    """`-o DIR` writes the one layout: Hive-style day= folders, every schema column, rows sorted by time."""
    import duckdb

    out = tmp_path / "ds"
    r = run(str(logs), "--format", "parquet", "-o", str(out), "-q")
    assert r.exit_code == 0, r.stderr
    files = sorted(out.rglob("*.parquet"))
    assert files and all(f.parent.name.startswith("day=") and f.parent.parent == out for f in files)
    for f in files:
        t = pq.read_table(f)
        assert t.schema == ACCESS.arrow_schema()  # exactly the schema's columns, no partition column inside
        times = t.column("time").to_pylist()
        assert times == sorted(times)
        assert pq.ParquetFile(f).metadata.row_group(0).column(0).compression == "ZSTD"
    con = duckdb.connect()
    got = con.execute(
        "SELECT day, count(*), min(substr(time, 1, 10)), max(substr(time, 1, 10)) FROM "
        "read_parquet(?, hive_partitioning = true) GROUP BY day",
        [[str(f) for f in files]],
    ).fetchall()
    assert sum(n for _, n, _, _ in got) == len(LINES)
    # files outside the S3 key layout: each row's own day, as 'YYYY/MM/DD' (the Athena table's day)
    assert all(day == lo.replace("-", "/") == hi.replace("-", "/") for day, _, lo, hi in got)
    # written again: replaced, not added to
    r = run(str(logs), "--format", "parquet", "-o", str(out), "-q")
    assert r.exit_code == 0, r.stderr
    assert sum(pq.read_metadata(f).num_rows for f in out.rglob("*.parquet")) == len(LINES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "logs"]  # no temporary folder left


def test_parquet_dataset_refuses_a_folder_of_other_files_and_leaves_nothing_on_error(logs, tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    r = run(str(logs), "--format", "parquet", "-o", str(other), "-q")
    assert r.exit_code == 2 and "holds other files (notes.txt)" in r.stderr
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    r = run(str(logs), "--strict", "--format", "parquet", "-o", str(tmp_path / "ds"), "-q")
    assert r.exit_code == 1 and not (tmp_path / "ds").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "mine"]  # no .ds.*.part folder
