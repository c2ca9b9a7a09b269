"""The saved-query library: every file is valid Trino SQL with a complete header, and parameters are
validated and bound the same way for every engine."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from albstats.engines.base import (
    MAX_TIME,
    MIN_TIME,
    bind,
    conform,
    parse_param_args,
    placeholder_names,
    to_pyformat,
    to_qmark,
)
from albstats.errors import UsageError
from albstats.queries import SQL_DIR, all_queries, console_sql, get, parse_query
from albstats.schema import ACCESS
from albstats.timeparse import format_time, parse_duration, parse_time

NAMES = sorted(all_queries())
REQUIRED = {
    "error_rate",
    "latency_percentiles",
    "errors_by_target",
    "errors_by_path",
    "errors_by_reason",
    "status_codes",
    "slowest_requests",
    "top_clients",
    "tls_mix",
}


def test_the_library_has_the_queries_the_issue_asks_for() -> None:
    assert REQUIRED <= set(NAMES)
    assert len(list(SQL_DIR.glob("*.sql"))) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_saved_query_parses_as_trino_and_reads_only_alb_logs(name: str) -> None:
    q = get(name)
    stmts = [s for s in sqlglot.parse(q.sql, read="trino") if s is not None]
    assert len(stmts) == 1 and isinstance(stmts[0], exp.Query)
    tree = stmts[0]
    ctes = {c.alias for c in tree.find_all(exp.CTE)}
    tables = {t.name for t in tree.find_all(exp.Table)} - ctes
    assert tables == {"alb_logs"}
    # every alb_logs column it names exists in the schema; every :placeholder is declared, and vice versa
    declared = {p.name for p in q.params}
    used = set(placeholder_names(q.sql))
    assert used == declared, (used, declared)
    from sqlglot.tokens import TokenType

    assert TokenType.PLACEHOLDER not in {t.token_type for t in sqlglot.tokenize(q.sql, read="trino")}, "no bare ?"


@pytest.mark.parametrize("name", NAMES)
def test_saved_query_header_is_complete(name: str) -> None:
    q = get(name)
    assert q.summary and q.description, "a header says what the query answers"
    assert q.columns and all(c.doc for c in q.columns)
    assert {"since", "until"} <= q.param_names, "every query takes a UTC window"
    tree = sqlglot.parse_one(q.sql, read="trino")
    outer = tree if not isinstance(tree, exp.Union) else tree.left
    assert [e.alias_or_name for e in outer.expressions] == q.column_names


def test_the_two_base_queries_have_exactly_the_issues_columns() -> None:
    assert get("error_rate").column_names == [
        "bucket_start",
        "requests",
        "errors_5xx",
        "elb_5xx",
        "target_5xx",
        "success_rate",
    ]
    assert get("latency_percentiles").column_names == [
        "bucket_start",
        "metric",
        "requests",
        "p50",
        "p90",
        "p95",
        "p99",
        "max",
    ]
    assert get("error_rate").column_types["bucket_start"] == "timestamp"


@pytest.mark.parametrize("name", NAMES)
def test_queries_use_only_schema_columns_from_alb_logs(name: str) -> None:
    tree = sqlglot.parse_one(get(name).sql, read="trino")
    aliases = {a.alias for a in tree.find_all(exp.Alias)} | {"m", "metric"}
    for col in tree.find_all(exp.Column):
        if col.name not in ACCESS.names:
            assert col.name in aliases, f"{name}: {col.name} is neither a schema column nor an alias"


# --- headers ----------------------------------------------------------------------------------


def test_header_parsing_and_errors(tmp_path: Path) -> None:
    text = (
        "-- demo: one line.\n--\n-- What it answers.\n--\n-- Parameters:\n"
        "--   since  timestamp  start (default: all data)\n--   limit  int  rows (default: 5)\n"
        "--   who    string     a name (required)\n--\n-- Columns:\n--   n  bigint  how many\n"
        "--      continued here\nSELECT count(*) AS n FROM alb_logs WHERE x = :who LIMIT :limit\n"
    )
    q = parse_query(text, "demo")
    assert [(p.name, p.type, p.default, p.required) for p in q.params] == [
        ("since", "timestamp", None, False),
        ("limit", "int", "5", False),
        ("who", "string", None, True),
    ]
    assert q.columns[0].doc == "how many continued here"
    with pytest.raises(ValueError, match="first line"):
        parse_query(text, "other")
    with pytest.raises(ValueError, match="unknown type"):
        parse_query(text.replace("bigint", "money"), "demo")
    with pytest.raises(ValueError, match="Columns"):
        parse_query("-- demo: x\nSELECT 1\n", "demo")
    with pytest.raises(UsageError, match="needs a value"):
        bind(q)
    with pytest.raises(UsageError, match="unknown query"):
        get("no_such_query")
    for bad in ("../sql/error_rate", "Error_Rate", "error_rate.sql", ""):  # names, not paths
        with pytest.raises(UsageError, match="unknown query"):
            get(bad)
    assert get("error_rate") == all_queries()["error_rate"]


# --- parameter values -------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T10:30Z", datetime(2026, 11, 1, 10, 30, tzinfo=UTC)),
        ("2026-11-01T12:30:00+02:00", datetime(2026, 11, 1, 10, 30, tzinfo=UTC)),
        ("7d", datetime(2026, 11, 13, 12, 0, tzinfo=UTC)),
        ("90m", datetime(2026, 11, 20, 10, 30, tzinfo=UTC)),
        ("now", NOW),
        (datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_time(text: object, want: datetime) -> None:
    assert parse_time(text, now=NOW) == want


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "7 days", "1x", "'; DROP TABLE alb_logs; --"])
def test_bad_times_are_usage_errors_naming_the_option(bad: str) -> None:
    with pytest.raises(UsageError, match="--since"):
        parse_time(bad, name="since", now=NOW)


@pytest.mark.parametrize(
    ("text", "secs"), [("5m", 300), ("1h", 3600), ("1d", 86400), ("90s", 90), ("600", 600), (3600, 3600)]
)
def test_parse_duration(text: object, secs: int) -> None:
    assert parse_duration(text) == secs


@pytest.mark.parametrize("bad", ["0m", "-5m", "1y", "hour", "", "400d", True, 1.5])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(UsageError, match="--bucket"):
        parse_duration(bad)


def test_bind_fills_the_window_and_converts_types() -> None:
    q = get("error_rate")
    values, window = bind(q, since="2026-11-01", bucket="5m", now=NOW)
    assert values == {"since": "2026-11-01T00:00:00.000Z", "until": format_time(MAX_TIME), "bucket": 300}
    assert window == (datetime(2026, 11, 1, tzinfo=UTC), None)
    values, _ = bind(q)
    assert values["since"] == format_time(MIN_TIME) and values["bucket"] == 3600
    with pytest.raises(UsageError, match="--since .* is not before --until"):
        bind(q, since="2026-11-02", until="2026-11-01")
    with pytest.raises(UsageError, match="--param colour"):
        bind(q, colour="red")
    lim = get("top_clients")
    assert bind(lim)[0]["limit"] == 20 and bind(lim, limit="7")[0]["limit"] == 7
    for bad in (0, -1, "ten", 10**9):
        with pytest.raises(UsageError, match="--limit"):
            bind(lim, limit=bad)


def test_parse_param_args() -> None:
    assert parse_param_args(["a=1", "path_prefix=/x=y"]) == {"a": "1", "path_prefix": "/x=y"}
    for bad in ("novalue", "Bad=1", "a b=1", "x;drop=1", "=1"):
        with pytest.raises(UsageError, match="--param"):
            parse_param_args([bad])


def test_placeholder_rewriting_for_pyathena() -> None:
    sql = (
        "SELECT count(*) AS n FROM alb_logs WHERE request_url LIKE '%admin%' AND time >= :since AND x < :since "
        "AND client_ip = :ip -- 100% sure\n"
    )
    py = to_pyformat(sql)
    assert "'%%admin%%'" in py and "%(since)s" in py and "%(ip)s" in py and ":since" not in py
    # what pyathena does with pyformat: Python %-formatting with escaped literals
    assert "'%admin%'" in py % {"since": "'x'", "ip": "'y'"}
    qm, names = to_qmark(sql)
    assert names == ["since", "since", "ip"] and qm.count("?") == 3
    assert placeholder_names(sql) == ["since", "ip"]


def test_console_sql_keeps_comments_and_fills_values_escaped() -> None:
    q = get("slowest_requests")
    plain = console_sql(q)
    assert plain.startswith("-- Athena console parameters, in order: ")
    assert ":since" not in plain and "?" in plain and "-- slowest_requests:" in plain
    values, _ = bind(q, since="2026-11-01", path_prefix="/it's")
    filled = console_sql(q, values)
    assert "'2026-11-01T00:00:00.000Z'" in filled and "'/it''s'" in filled and "LIMIT 20" in filled
    sqlglot.parse_one(filled, read="trino")  # still valid Trino SQL


def test_conform_casts_to_declared_types() -> None:
    import pandas as pd

    df = pd.DataFrame({"b": ["2026-11-01T00:00:00Z"], "n": [3.0], "s": [None], "x": [1]})
    out = conform(df, {"b": "timestamp", "n": "bigint", "s": "string"})
    assert list(out.columns) == ["b", "n", "s"]
    assert str(out["b"].dtype) == "datetime64[ns, UTC]" and str(out["n"].dtype) == "int64"
    assert out["s"].iloc[0] is None
    with pytest.raises(RuntimeError, match="lacks declared columns"):
        conform(df, {"zzz": "bigint"})


def test_bucket_and_limit_default_to_the_query_header() -> None:
    assert bind(get("slo_buckets"))[0]["bucket"] == 300  # its header says 5m
    assert bind(get("error_rate"))[0]["bucket"] == 3600
    assert bind(get("errors_by_reason"))[0]["limit"] == 50
