"""The compacted Parquet table on Athena (issue 13 item 5): `athena create-table --format parquet`,
`athena compact`, saved queries on the Parquet table, and the bytes Athena scanned in the output.

moto records what is submitted (it runs no SQL); every generated statement is parsed with sqlglot
(DML with the Trino parser, Hive DDL with sqlglot's Athena dialect); and the very INSERT ... SELECT
compact submits is run on DuckDB over local files, translated by the project's Trino -> DuckDB
translation, to show the Parquet table's rows equal the raw table's (every column, every era).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
import sqlglot
from moto import mock_aws
from sqlglot import exp
from test_athena_engine import seed  # one way to queue canned Athena results
from typer.testing import CliRunner

from albstats import queries
from albstats.athena_ddl import ParquetSpec, compact_day_sql, create_parquet_table_sql
from albstats.athena_tables import compact, compact_days
from albstats.cli import app
from albstats.engines import connect
from albstats.errors import UsageError
from albstats.schema import ACCESS, DUCKDB_TYPES

REGION = "us-east-1"
WG = "albstats-wg"
OUT = "s3://athena-results-test/albstats/"
PQ = "s3://alb-parquet-test/compacted/"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in list(__import__("os").environ):
        if k.startswith("ALBSTATS_ATHENA_") or k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("ALBSTATS_CACHE_DB", str(tmp_path / "cache.duckdb"))


@pytest.fixture
def aws() -> boto3.client:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="athena-results-test")
        s3.create_bucket(Bucket="alb-parquet-test")
        ath = boto3.client("athena", region_name=REGION)
        ath.create_work_group(Name=WG, Configuration={"ResultConfiguration": {"OutputLocation": OUT}})
        yield ath


def executions(ath: boto3.client) -> list[str]:
    ids = ath.list_query_executions(WorkGroup=WG)["QueryExecutionIds"]
    out = [ath.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    return [q["Query"] for q in sorted(out, key=lambda q: q["Status"]["SubmissionDateTime"])]


ATHENA = ["--workgroup", WG, "--output-location", OUT]
CREATE = [
    "athena",
    "create-table",
    "--s3-bucket",
    "my-alb-logs",
    "--account",
    "123456789012",
    "--region",
    REGION,
    *ATHENA,
    "--format",
    "parquet",
    "--location",
    PQ,
    "-q",
]


def _catalog_from_ddl(ddl: str) -> None:
    """What Athena does with the DDL, which moto does not: the table in the Glue catalog (from the DDL's
    own LOCATION, columns and TBLPROPERTIES, read back with sqlglot)."""
    tree = sqlglot.parse_one(ddl, read="athena")
    props = tree.args["properties"].expressions
    params = {p.name: p.args["value"].name for p in props if type(p) is exp.Property}
    location = next(p for p in props if isinstance(p, exp.LocationProperty)).this.name
    cols = [{"Name": c.name, "Type": c.args["kind"].sql("athena").lower()} for c in tree.this.expressions]
    glue = boto3.client("glue", region_name=REGION)
    try:
        glue.create_database(DatabaseInput={"Name": tree.this.this.db})
    except glue.exceptions.AlreadyExistsException:
        pass
    glue.create_table(
        DatabaseName=tree.this.this.db,
        TableInput={
            "Name": tree.this.this.name,
            "Parameters": params,
            "PartitionKeys": [{"Name": "day", "Type": "string"}],
            "StorageDescriptor": {"Columns": cols, "Location": location},
        },
    )


@pytest.mark.integration  # slow: 2 s under load
def test_create_table_parquet(aws: boto3.client) -> None:
    res = CliRunner().invoke(app, CREATE)
    assert res.exit_code == 0, res.output
    db, raw, ddl = executions(aws)
    assert db == "CREATE DATABASE IF NOT EXISTS `albstats`"
    assert raw.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `albstats`.`alb_logs` (")  # compact's source
    assert ddl.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `albstats`.`alb_logs_parquet` (")
    tree = sqlglot.parse_one(ddl, read="athena")
    assert [c.name for c in tree.this.expressions] == ACCESS.names
    assert [c.args["kind"].sql("hive").lower() for c in tree.this.expressions] == [c.type for c in ACCESS.columns]
    assert "PARTITIONED BY (`day` string)\nSTORED AS PARQUET\nLOCATION 's3://alb-parquet-test/compacted/'" in ddl
    for prop in (
        "'storage.location.template' = 's3://alb-parquet-test/compacted/day=${day}/'",
        "'projection.day.format' = 'yyyy/MM/dd'",
        "'projection.enabled' = 'true'",
        "'parquet.compression' = 'ZSTD'",
    ):
        assert prop in ddl
    sqlglot.parse_one(raw, read="athena")
    lines = res.stderr.splitlines()
    assert (
        f"albstats: next: albstats athena compact --database albstats --table alb_logs_parquet --workgroup {WG} "
        f"--output-location {OUT} --region {REGION} --since 7d"
    ) in lines
    assert any(
        line.startswith(
            "albstats: then: albstats query error_rate --engine athena --database albstats --table alb_logs_parquet"
        )
        for line in lines
    )


def test_create_table_parquet_needs_a_location(aws: boto3.client) -> None:
    args = [a for a in CREATE if a not in ("--location", PQ)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "--location s3://" in res.stderr and res.stderr.count("\n") == 1
    res = CliRunner().invoke(app, [*args, "--location", "not-a-url"])
    assert res.exit_code == 2 and "--location" in res.stderr
    assert executions(aws) == []


def _put(key: str) -> None:
    boto3.client("s3", region_name=REGION).put_object(Bucket="alb-parquet-test", Key=key, Body=b"PAR1 old")


def _keys() -> list[str]:
    page = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket="alb-parquet-test")
    return sorted(o["Key"] for o in page.get("Contents", []))


COMPACT = ["athena", "compact", "--since", "2026-11-16", "--until", "2026-11-18", *ATHENA, "--region", REGION]


@pytest.mark.integration  # slow: 7 s under load
def test_compact_inserts_each_day_and_replaces_it(aws: boto3.client) -> None:
    assert CliRunner().invoke(app, CREATE).exit_code == 0
    _catalog_from_ddl(executions(aws)[-1])
    for day in ("2026/11/15", "2026/11/16", "2026/11/17", "2026/11/18"):
        _put(f"compacted/day={day}/old-1.parquet")
        _put(f"compacted/day={day}/old-2.parquet")
    _put("compacted/day=2026/11/160/not-this-day.parquet")  # a prefix of a day folder's name, not the folder
    before = len(executions(aws))
    res = CliRunner().invoke(app, COMPACT)
    assert res.exit_code == 0, res.output
    sent = executions(aws)[before:]
    assert sent == [
        compact_day_sql("albstats", "alb_logs", "alb_logs_parquet", d) for d in ("2026/11/16", "2026/11/17")
    ]
    for sql, day in zip(sent, ("2026/11/16", "2026/11/17")):
        tree = sqlglot.parse_one(sql, read="trino")
        assert isinstance(tree, exp.Insert)
        assert tree.this.this.name == "alb_logs_parquet" and tree.this.this.db == "albstats"
        assert [c.name for c in tree.this.expressions] == [*ACCESS.names, "day"]
        sel = tree.expression
        assert [c.name for c in sel.expressions] == [*ACCESS.names, "day"]
        assert sel.args["from_"].this.name == "alb_logs"
        where = sel.args["where"].this
        assert isinstance(where, exp.EQ) and where.this.name == "day" and where.expression.name == day
    # the window's days were emptied before the insert; the days around them and the look-alike stay
    assert _keys() == [
        "compacted/day=2026/11/15/old-1.parquet",
        "compacted/day=2026/11/15/old-2.parquet",
        "compacted/day=2026/11/160/not-this-day.parquet",
        "compacted/day=2026/11/18/old-1.parquet",
        "compacted/day=2026/11/18/old-2.parquet",
    ]
    lines = res.stderr.splitlines()
    assert lines[0].startswith("albstats: 2026/11/16: 0 B scanned, 2 old objects replaced (Athena query ")
    assert lines[-1] == (
        "albstats: compacted 2 days of albstats.alb_logs into albstats.alb_logs_parquet; Athena scanned 0 B"
    )
    # again: the same statements (a day is replaced, never duplicated)
    res = CliRunner().invoke(app, COMPACT)
    assert res.exit_code == 0 and executions(aws)[before + 2 :] == sent


@pytest.mark.integration  # slow: 3 s under load
def test_compact_dry_run_changes_nothing(aws: boto3.client) -> None:
    assert CliRunner().invoke(app, CREATE).exit_code == 0
    _catalog_from_ddl(executions(aws)[-1])
    _put("compacted/day=2026/11/16/old.parquet")
    before = len(executions(aws))
    res = CliRunner().invoke(app, [*COMPACT, "--dry-run"])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("INSERT INTO") == 2 and len(executions(aws)) == before
    assert "2026/11/16: would empty s3://alb-parquet-test/compacted/day=2026/11/16/ (1 objects)" in res.stderr
    assert _keys() == ["compacted/day=2026/11/16/old.parquet"]


@pytest.mark.integration  # slow: 4 s under load
def test_compact_refuses_a_table_albstats_did_not_make(aws: boto3.client) -> None:
    glue = boto3.client("glue", region_name=REGION)
    glue.create_database(DatabaseInput={"Name": "albstats"})
    glue.create_table(
        DatabaseName="albstats",
        TableInput={
            "Name": "other",
            "Parameters": {"storage.location.template": PQ + "day=${day}/"},
            "StorageDescriptor": {"Location": PQ},
        },
    )
    _put("compacted/day=2026/11/16/precious.parquet")
    res = CliRunner().invoke(app, [*COMPACT, "--table", "other"])
    assert res.exit_code == 2 and "is not a table made by `albstats athena create-table --format parquet`" in res.stderr
    res = CliRunner().invoke(app, [*COMPACT, "--table", "missing"])
    assert res.exit_code == 1 and "albstats.missing does not exist; create it with" in res.stderr
    assert _keys() == ["compacted/day=2026/11/16/precious.parquet"] and executions(aws) == []


def test_compact_days() -> None:
    d = datetime(2026, 11, 16, tzinfo=UTC)
    assert compact_days(d, datetime(2026, 11, 17, tzinfo=UTC)) == ["2026/11/16"]
    assert compact_days(d, datetime(2026, 11, 17, 0, 0, 1, tzinfo=UTC)) == ["2026/11/16", "2026/11/17"]
    assert compact_days(d, None, now=datetime(2026, 11, 18, 9, tzinfo=UTC)) == [
        "2026/11/16",
        "2026/11/17",
        "2026/11/18",
    ]
    with pytest.raises(UsageError, match="at most 400 days"):
        compact_days(datetime(2020, 1, 1, tzinfo=UTC), d)
    with pytest.raises(UsageError):
        compact(d, datetime(2026, 11, 17, tzinfo=UTC), table="alb_logs", workgroup=WG)


# --- saved queries on the Parquet table, and the bytes scanned -----------------------------------


def _seed(columns: dict[str, str]) -> None:
    """An empty result with the query's columns, with the column metadata Athena returns."""
    seed([], [(n, "varchar" if t == "string" else t) for n, t in columns.items()])


@pytest.mark.integration  # slow: 4 s under load
@pytest.mark.parametrize("name", queries.names())
def test_every_saved_query_runs_unchanged_on_the_parquet_table(aws: boto3.client, name: str) -> None:
    _seed(queries.get(name).column_types)
    res = CliRunner().invoke(
        app,
        [
            "query",
            name,
            "--engine",
            "athena",
            "--table",
            "alb_logs_parquet",
            *ATHENA,
            "--region",
            REGION,
            "--since",
            "2026-11-16",
            "--until",
            "2026-11-17",
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == []
    (sql,) = executions(aws)
    tree = sqlglot.parse_one(sql, read="trino")
    tables = [t for t in tree.find_all(exp.Table) if t.name == "alb_logs_parquet"]
    assert tables and all(t.db == "albstats" for t in tables)
    assert not [t for t in tree.find_all(exp.Table) if t.name == "alb_logs" and t.db]
    assert "day BETWEEN '2026/11/16' AND '2026/11/17'" in sql
    assert res.stderr.splitlines()[-1].startswith(
        "albstats: Athena scanned 0 B (~$0.0000) in 1 query of albstats.alb_logs_parquet: "
    )


@pytest.mark.integration  # slow: 3 s under load
def test_query_output_says_the_bytes_athena_scanned(aws: boto3.client) -> None:
    """The statistics come from GetQueryExecution; moto reports 0, so a botocore event hook on the session
    sets the figure Athena would report."""
    session = boto3.Session(region_name=REGION)

    def scanned(parsed: dict, **_: object) -> None:
        parsed["QueryExecution"]["Statistics"]["DataScannedInBytes"] = 123_456_789

    session.events.register("after-call.athena.GetQueryExecution", scanned)
    _seed(queries.get("error_rate").column_types)
    with connect(
        engine="athena", table="alb_logs_parquet", workgroup=WG, session=session, quiet=True, poll_interval=0.01
    ) as eng:
        eng.query("error_rate", since="2026-11-16", until="2026-11-17")
        msg, _, _ = eng.summary()
    qid = eng.last_query.query_id
    assert msg == f"Athena scanned 123.46 MB (~$0.0006) in 1 query of albstats.alb_logs_parquet: {qid}"


# --- the same INSERT ... SELECT on DuckDB: the Parquet table's rows are the raw table's ----------


def _raw_lines_dir(tmp: Path) -> Path:
    """The conformance corpus's access-log lines (every era) as a log file, beside the fixtures."""
    out = tmp / "conformance" / "all.log"
    out.parent.mkdir(parents=True)
    with open(ROOT / "tests/data/conformance/alb_access_samples.jsonl", encoding="utf-8") as f:
        out.write_text("".join(json.loads(line)["line"] + "\n" for line in f if line.strip()), encoding="utf-8")
    return out.parent


@pytest.mark.integration  # slow: 10 s under load
def test_insert_select_on_duckdb_keeps_every_row_and_column(tmp_path: Path) -> None:
    import duckdb

    from albstats.engines.local import translate

    with connect(
        [str(_raw_lines_dir(tmp_path)), str(ROOT / "fixtures/AWSLogs")], db=str(tmp_path / "c.duckdb"), quiet=True
    ) as eng:
        df = eng.sql("SELECT * FROM alb_logs")
    assert len(df) > 1000
    df["day"] = df["time"].str[:10].str.replace("-", "/")  # a day per row, as the delivery folders give
    con = duckdb.connect()
    con.register("parsed", df)
    typed = ", ".join(f'CAST("{c.name}" AS {DUCKDB_TYPES[c.type]}) AS "{c.name}"' for c in ACCESS.columns)
    con.execute("CREATE SCHEMA albstats")
    con.execute(f"CREATE TABLE albstats.alb_logs AS SELECT {typed}, day FROM parsed")
    cols = ", ".join(f'"{c.name}" {DUCKDB_TYPES[c.type]}' for c in ACCESS.columns)
    con.execute(f"CREATE TABLE albstats.alb_logs_parquet ({cols}, day VARCHAR)")
    # every format era is in the raw table: rows without and with the fields AWS added over the years
    for late in ("matched_rule_priority", "classification", "conn_trace_id", "transformed_host"):
        nulls, values = con.execute(
            f'SELECT count(*) FILTER ("{late}" IS NULL), count("{late}") FROM albstats.alb_logs'
        ).fetchone()
        assert nulls > 0 and values > 0, late
    days = [r[0] for r in con.execute("SELECT DISTINCT day FROM albstats.alb_logs ORDER BY 1").fetchall()]
    assert len(days) > 5
    root = tmp_path / "parquet"
    for day in days:
        insert = sqlglot.parse_one(compact_day_sql("albstats", "alb_logs", "alb_logs_parquet", day), read="trino")
        select = translate(insert.expression.sql("trino"))  # the project's Trino -> DuckDB translation
        con.execute(f"INSERT INTO {insert.this.sql('duckdb')} {select.sql}")
        # what Athena writes for the day: Parquet files in the table's day=YYYY/MM/DD/ folder
        folder = root / f"day={day}"
        folder.mkdir(parents=True)
        con.execute(
            f"COPY (SELECT * EXCLUDE (day) FROM albstats.alb_logs_parquet WHERE day = ?) "
            f"TO '{folder / 'part-0.parquet'}' (FORMAT parquet, COMPRESSION zstd)",
            [day],
        )
    schema = pq.read_schema(next(root.rglob("*.parquet")))
    assert schema.names == ACCESS.names
    assert [schema.field(c.name).type for c in ACCESS.columns] == [c.arrow_type for c in ACCESS.columns]
    back = (
        f"SELECT * EXCLUDE (filename), regexp_extract(filename, 'day=([0-9]{{4}}/[0-9]{{2}}/[0-9]{{2}})/', 1) "
        f"AS day FROM read_parquet('{root}/**/*.parquet', filename = true, hive_partitioning = false)"
    )
    n_raw = con.execute("SELECT count(*) FROM albstats.alb_logs").fetchone()[0]
    assert con.execute(f"SELECT count(*) FROM ({back})").fetchone()[0] == n_raw == len(df)
    assert con.execute(f"SELECT count(*) FROM (SELECT * FROM albstats.alb_logs EXCEPT ALL {back})").fetchone() == (0,)
    assert con.execute(f"SELECT count(*) FROM ({back} EXCEPT ALL SELECT * FROM albstats.alb_logs)").fetchone() == (0,)


def test_generated_ddl_parses() -> None:
    ddl = create_parquet_table_sql(ParquetSpec(PQ, start="2025/01/01"))
    tree = sqlglot.parse_one(ddl, read="athena")
    assert isinstance(tree, exp.Create) and "'projection.day.range' = '2025/01/01,NOW'" in ddl
    with pytest.raises(UsageError):
        compact_day_sql("albstats", "alb_logs", "alb_logs_parquet", "2026-11-16' OR '1'='1")
    with pytest.raises(UsageError):
        compact_day_sql("albstats", "alb_logs; DROP", "alb_logs_parquet", "2026/11/16")
