"""`albstats query` and `albstats sql list|show|run` through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlglot
from typer.testing import CliRunner

from albstats.cli import app
from albstats.generate import generate
from albstats.queries import all_queries

runner = CliRunner()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-logs")
    generate(root, days=1 / 24, lines=1200, profile="hosp", seed=3, nodes=1)
    return root


@pytest.fixture()
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cache.duckdb")


def run(*args: str) -> object:
    return runner.invoke(app, list(args))


def test_query_csv_has_the_issues_columns(logs: Path, db: str) -> None:
    r = run("query", "error_rate", str(logs), "--db", db, "--format", "csv", "--bucket", "5m")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "bucket_start,requests,errors_5xx,elb_5xx,target_5xx,success_rate"
    assert len(lines) == 1 + 12  # one hour in 5-minute buckets
    assert lines[1].startswith("2026-11-16T00:00:00Z,")
    assert sum(int(x.split(",")[1]) for x in lines[1:]) == 1200


def test_query_json_table_and_summary(logs: Path, db: str) -> None:
    r = run("query", "latency_percentiles", str(logs), "--db", db, "-f", "json", "--bucket", "1h")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {x["metric"] for x in rows} == {
        "request_processing_time",
        "target_processing_time",
        "response_processing_time",
        "total_time",
    }
    assert all(x["p50"] <= x["p90"] <= x["p95"] <= x["p99"] <= x["max"] for x in rows)
    assert "12 files" in r.stderr and "malformed lines" in r.stderr
    r = run("query", "error_rate", str(logs), "--db", db)
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0].split() == [
        "bucket_start",
        "requests",
        "errors_5xx",
        "elb_5xx",
        "target_5xx",
        "success_rate",
    ]
    assert "0 files parsed, 12 from cache" in r.stderr


def test_query_parquet_and_output_file(logs: Path, db: str, tmp_path: Path) -> None:
    import pandas as pd

    out = tmp_path / "er.parquet"
    r = run("query", "error_rate", str(logs), "--db", db, "-f", "parquet", "-o", str(out), "-q")
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(out)
    assert list(df.columns) == ["bucket_start", "requests", "errors_5xx", "elb_5xx", "target_5xx", "success_rate"]
    assert df["requests"].sum() == 1200
    r = run("query", "error_rate", str(logs), "--db", db, "-f", "parquet", "-q")
    assert r.exit_code == 2 and "-o FILE" in r.stderr
    csv_out = tmp_path / "top.csv"
    r = run("query", "top_clients", str(logs), "--db", db, "-f", "csv", "-o", str(csv_out), "--limit", "3", "-q")
    assert r.exit_code == 0 and r.stdout == ""
    assert len(csv_out.read_text().splitlines()) == 4


def test_no_cache_gives_the_same_output(logs: Path, db: str) -> None:
    a = run("query", "errors_by_path", str(logs), "--db", db, "-f", "csv", "-q")
    b = run("query", "errors_by_path", str(logs), "--no-cache", "-f", "csv", "-q")
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout and "{id}" in a.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["query", "nope", "LOGS"], "unknown query 'nope'"),
        (["query", "error_rate", "LOGS", "--bucket", "2 hours"], "--bucket"),
        (["query", "error_rate", "LOGS", "--since", "last tuesday"], "--since"),
        (["query", "error_rate", "LOGS", "--param", "colour=red"], "--param colour"),
        (["query", "error_rate", "LOGS", "--param", "noequals"], "--param"),
        (["query", "top_clients", "LOGS", "--limit", "0"], "--limit"),
        (["query", "error_rate", "LOGS", "--format", "xml"], "--format"),
        (["query", "error_rate", "LOGS", "--engine", "bigquery"], "--engine"),
        (["query", "error_rate", "LOGS", "--workgroup", "wg"], "--workgroup is an Athena option"),
        (["query", "error_rate", "/no/such/dir"], "no such file"),
        (["sql", "run", "DROP TABLE alb_logs", "LOGS"], "DROP is not allowed"),
        (["sql", "run", "SELECT 1; SELECT 2", "LOGS"], "one SQL statement"),
        (["sql", "run", "SELECT nonsense FROM alb_logs", "LOGS"], "failed in DuckDB"),
        (["sql", "show", "nope"], "unknown query"),
        (["query", "top_clients", "LOGS", "--param", "limit=3; SELECT 1"], "--limit"),
        (["query", "top_clients", "LOGS", "--param", "limit=3", "--limit", "4"], "also given as --limit"),
        (["query", "error_rate", "LOGS", "--param", "since=2026-11-16'; DROP TABLE files; --"], "--since"),
        (["sql", "show", "top_clients", "--param", "bucket=1h", "--bucket", "1d"], "also given as --bucket"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(logs: Path, db: str, args: list[str], needle: str) -> None:
    full = [str(logs) if a == "LOGS" else a for a in args]
    if args[:2] != ["sql", "show"]:
        full += ["--db", db]
    r = run(*full)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("albstats: error: ") and needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_sql_fragments_passed_as_params_are_bound_not_run(logs: Path, db: str) -> None:
    before = run("query", "error_rate", str(logs), "--db", db, "-f", "json", "-q", "--bucket", "1d")
    evil = "'; DROP TABLE alb_logs; --"
    r = run("query", "slowest_requests", str(logs), "--db", db, "-q", "-f", "json", "--param", f"path_prefix={evil}")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == []
    r = run(
        "sql",
        "run",
        "SELECT count(*) AS n FROM alb_logs WHERE client_ip = :ip",
        str(logs),
        "--db",
        db,
        "-q",
        "-f",
        "json",
        "--param",
        f"ip={evil}",
    )
    assert r.exit_code == 0 and json.loads(r.stdout) == [{"n": 0}]
    after = run("query", "error_rate", str(logs), "--db", db, "-f", "json", "-q", "--bucket", "1d")
    assert before.stdout == after.stdout and json.loads(after.stdout)[0]["requests"] == 1200


def test_named_parameters_given_as_param_mean_the_same(logs: Path, db: str) -> None:
    """`--param limit=2` is `--limit 2` (sql list shows them among the parameters), for query and sql show."""
    a = run(
        "query",
        "top_clients",
        str(logs),
        "--db",
        db,
        "-q",
        "-f",
        "csv",
        "--param",
        "limit=2",
        "--param",
        "since=2026-11-16T00:30Z",
    )
    b = run(
        "query", "top_clients", str(logs), "--db", db, "-q", "-f", "csv", "--limit", "2", "--since", "2026-11-16T00:30Z"
    )
    assert a.exit_code == b.exit_code == 0, a.output
    assert a.stdout == b.stdout and len(a.stdout.splitlines()) == 3
    whole = run("query", "top_clients", str(logs), "--db", db, "-q", "-f", "csv", "--limit", "2")
    assert whole.stdout != a.stdout  # the window took effect
    a = run("sql", "show", "top_clients", "--param", "limit=7")
    b = run("sql", "show", "top_clients", "--limit", "7")
    assert a.exit_code == 0 and a.stdout == b.stdout and "LIMIT 7" in a.stdout


def test_sql_list_names_every_query() -> None:
    r = run("sql", "list")
    assert r.exit_code == 0
    for name, q in all_queries().items():
        assert name in r.stdout and q.summary in r.stdout


def test_sql_show_prints_console_ready_sql() -> None:
    r = run("sql", "show", "error_rate")
    assert r.exit_code == 0
    assert r.stdout.startswith("-- Athena console parameters, in order: bucket, bucket, since, until")
    assert "-- error_rate:" in r.stdout and ":since" not in r.stdout
    r = run("sql", "show", "error_rate", "--since", "2026-11-16", "--until", "2026-11-17", "--bucket", "5m")
    assert r.exit_code == 0
    assert "from_iso8601_timestamp('2026-11-16T00:00:00.000Z')" in r.stdout and "/ 300)" in r.stdout
    tree = sqlglot.parse_one(r.stdout, read="trino")
    assert not list(tree.find_all(sqlglot.exp.Placeholder))


def test_sql_run_adhoc(logs: Path, db: str) -> None:
    r = run(
        "sql",
        "run",
        "SELECT elb_status_code, count(*) AS n FROM alb_logs GROUP BY 1 ORDER BY 1",
        str(logs),
        "--db",
        db,
        "-f",
        "csv",
        "-q",
    )
    assert r.exit_code == 0, r.output
    rows = r.stdout.splitlines()
    assert rows[0] == "elb_status_code,n" and sum(int(x.split(",")[1]) for x in rows[1:]) == 1200
    r = run("sql", "run", "SELECT count(*) AS n FROM alb_logs", str(logs), "--db", db, "-q")
    assert r.exit_code == 0 and "1200" in r.stdout
