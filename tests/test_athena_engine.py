"""The Athena engine and `albstats athena create-table` against moto (in-process mock_aws).

moto does not run SQL: it records query executions (read back with GetQueryExecution) and returns
results seeded into its backend's ``query_results_queue`` (moto's documented way), which it also
writes to the query's S3 result location as Athena's CSV (what PyAthena's PandasCursor downloads).
moto cannot make a query FAILED with a StateChangeReason, nor throttle: those two cases edit moto's
answers with botocore event hooks on a boto3 session given to the engine.
"""

from __future__ import annotations

import _thread
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
import sqlglot
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager
from sqlglot import exp
from typer.testing import CliRunner

from albstats import queries
from albstats.athena_sql import rewrite
from albstats.cli import app
from albstats.engines import connect
from albstats.engines.athena import AthenaEngine, QueryStats
from albstats.engines.base import bind
from albstats.errors import AwsError, UsageError

REGION = "us-east-1"
WG = "albstats-wg"
OUT = "s3://athena-results-test/albstats/"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in list(__import__("os").environ):
        if k.startswith("ALBSTATS_ATHENA_") or k in (
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ATHENA_WORK_GROUP",
            "AWS_ATHENA_S3_STAGING_DIR",
            "AWS_SESSION_TOKEN",
        ):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def aws() -> boto3.client:
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="athena-results-test")
        ath = boto3.client("athena", region_name=REGION)
        ath.create_work_group(Name=WG, Configuration={"ResultConfiguration": {"OutputLocation": OUT}})
        yield ath
        state_manager.unset_transition("athena::execution")


def executions(ath: boto3.client) -> list[dict]:
    ids = ath.list_query_executions(WorkGroup=WG)["QueryExecutionIds"]
    out = [ath.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    return sorted(out, key=lambda q: q["Status"]["SubmissionDateTime"])


def seed(rows: list[list[str]], columns: list[tuple[str, str]]) -> None:
    """Queue one canned result (header row first, as Athena returns it) in moto's Athena backend."""
    header = {"Data": [{"VarCharValue": n} for n, _ in columns]}
    data = [{"Data": [{"VarCharValue": v} if v is not None else {} for v in r]} for r in rows]
    info = [
        {
            "Name": n,
            "Label": n,
            "Type": t,
            "CatalogName": "hive",
            "SchemaName": "",
            "TableName": "",
            "Nullable": "UNKNOWN",
            "CaseSensitive": False,
            "Precision": 0,
            "Scale": 0,
        }
        for n, t in columns
    ]
    athena_backends[DEFAULT_ACCOUNT_ID][REGION].query_results_queue.append(QueryResults([header, *data], info))


CREATE = [
    "athena",
    "create-table",
    "--s3-bucket",
    "my-alb-logs",
    "--s3-prefix",
    "prod",
    "--account",
    "123456789012",
    "--region",
    REGION,
    "--workgroup",
    WG,
    "--output-location",
    OUT,
    "--database",
    "albstats",
    "-q",
]


@pytest.mark.integration  # slow: 3 s under load
def test_create_table_submits_database_and_table_ddl(aws: boto3.client) -> None:
    res = CliRunner().invoke(app, CREATE)
    assert res.exit_code == 0, res.output
    ex = executions(aws)
    assert [q["Query"].split("(")[0].strip() for q in ex] == [
        "CREATE DATABASE IF NOT EXISTS `albstats`",
        "CREATE EXTERNAL TABLE IF NOT EXISTS `albstats`.`alb_logs`",
    ]
    for q in ex:
        assert q["WorkGroup"] == WG
        assert q["ResultConfiguration"]["OutputLocation"].startswith(OUT)
        assert q["QueryExecutionContext"]["Database"] == "albstats"
    ddl = ex[1]["Query"]
    loc = "s3://my-alb-logs/prod/AWSLogs/123456789012/elasticloadbalancing/us-east-1/"
    assert f"'storage.location.template' = '{loc}${{day}}'" in ddl
    assert "'projection.day.range' = '2024/01/01,NOW'" in ddl and "RegexSerDe" in ddl
    assert aws.get_database(CatalogName="AwsDataCatalog", DatabaseName="albstats")["Database"]["Name"] == "albstats"
    # idempotent: again is fine; --replace drops first
    assert CliRunner().invoke(app, CREATE).exit_code == 0
    res = CliRunner().invoke(app, [*CREATE, "--replace", "--connection-logs"])
    assert res.exit_code == 0, res.output
    last = [q["Query"] for q in executions(aws)][-3:]
    assert last[1] == "DROP TABLE IF EXISTS `albstats`.`alb_connection_logs`"
    assert last[2].startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `albstats`.`alb_connection_logs`")
    assert "`tls_verify_status`" in last[2]


@pytest.mark.integration  # slow: 2 s under load
def test_dry_run_sends_nothing(aws: boto3.client) -> None:
    res = CliRunner().invoke(app, [*CREATE, "--dry-run"])
    assert res.exit_code == 0
    assert res.stdout.startswith("CREATE DATABASE IF NOT EXISTS `albstats`;")
    assert "'input.regex'" in res.stdout
    assert executions(aws) == []


def test_bad_identifiers_never_reach_athena(aws: boto3.client) -> None:
    res = CliRunner().invoke(app, [*CREATE, "--database", "x; DROP DATABASE y"])
    assert res.exit_code == 2 and "--database" in res.stderr
    assert executions(aws) == []


ERROR_RATE_COLS = [
    ("bucket_start", "timestamp"),
    ("requests", "bigint"),
    ("errors_5xx", "bigint"),
    ("elb_5xx", "bigint"),
    ("target_5xx", "bigint"),
    ("success_rate", "double"),
]


def test_query_runs_in_workgroup_and_returns_the_saved_columns(aws: boto3.client) -> None:
    seed(
        [
            ["2026-11-17 00:00:00.000", "1000", "12", "5", "7", "0.988"],
            ["2026-11-17 01:00:00.000", "800", "0", "0", "0", "1.0"],
        ],
        ERROR_RATE_COLS,
    )
    with connect(
        engine="athena",
        database="albstats",
        workgroup=WG,
        output_location=OUT,
        region=REGION,
        quiet=True,
        poll_interval=0.01,
    ) as eng:
        df = eng.query("error_rate", since="2026-11-17T00:00:00Z", until="2026-11-17T02:00:00Z", bucket="1h")
        assert eng.last_query.state == "SUCCEEDED"
    assert list(df.columns) == queries.get("error_rate").column_names
    assert df["requests"].tolist() == [1000, 800]
    assert str(df["requests"].dtype) == "int64" and str(df["success_rate"].dtype) == "float64"
    assert df["bucket_start"].iloc[0] == datetime(2026, 11, 17, tzinfo=UTC)
    (q,) = executions(aws)
    assert q["WorkGroup"] == WG and q["ResultConfiguration"]["OutputLocation"].startswith(OUT)
    assert "day BETWEEN '2026/11/17' AND '2026/11/18'" in q["Query"]
    assert '"albstats"."alb_logs"' in q["Query"]
    assert "FROM_ISO8601_TIMESTAMP('2026-11-17T00:00:00.000Z')" in q["Query"]


def test_query_cli_with_engine_athena(aws: boto3.client) -> None:
    seed([["2026-11-17 00:00:00.000", "10", "1", "1", "0", "0.9"]], ERROR_RATE_COLS)
    res = CliRunner().invoke(
        app,
        [
            "query",
            "error_rate",
            "--engine",
            "athena",
            "--since",
            "2026-11-17",
            "--until",
            "2026-11-18",
            "--workgroup",
            WG,
            "--output-location",
            OUT,
            "--database",
            "albstats",
            "--region",
            REGION,
            "--format",
            "json",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == [
        {
            "bucket_start": "2026-11-17T00:00:00Z",
            "requests": 10,
            "errors_5xx": 1,
            "elb_5xx": 1,
            "target_5xx": 0,
            "success_rate": 0.9,
        }
    ]
    (q,) = executions(aws)
    assert "day BETWEEN '2026/11/17' AND '2026/11/18'" in q["Query"]


@pytest.mark.integration  # slow: 2 s under load
def test_environment_configures_the_engine(aws: boto3.client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALBSTATS_ATHENA_DATABASE", "logs_db")
    monkeypatch.setenv("ALBSTATS_ATHENA_TABLE", "web_alb")
    monkeypatch.setenv("ALBSTATS_ATHENA_WORKGROUP", WG)
    monkeypatch.setenv("ALBSTATS_ATHENA_OUTPUT_LOCATION", OUT)
    seed([["5"]], [("n", "bigint")])
    with connect(engine="athena", quiet=True, poll_interval=0.01) as eng:
        df = eng.sql(
            "SELECT count(*) AS n FROM alb_logs WHERE client_ip = :ip AND day = '2026/11/17'",
            {"ip": "10.0.0.1' OR '1'='1"},
        )
    assert df["n"].tolist() == [5]
    (q,) = executions(aws)
    assert q["QueryExecutionContext"]["Database"] == "logs_db"
    assert '"logs_db"."web_alb" AS alb_logs' in q["Query"]
    assert "client_ip = '10.0.0.1'' OR ''1''=''1'" in q["Query"]  # bound as one literal, quotes doubled


def test_no_window_refuses_to_scan_everything(aws: boto3.client) -> None:
    with connect(engine="athena", workgroup=WG, region=REGION, quiet=True) as eng:
        with pytest.raises(UsageError, match="--since"):
            eng.query("error_rate")
        with pytest.raises(UsageError, match="--since"):
            eng.query("error_rate", until="2026-11-18")
    assert executions(aws) == []
    seed([], ERROR_RATE_COLS)
    with connect(engine="athena", workgroup=WG, region=REGION, quiet=True, scan_all=True, poll_interval=0.01) as eng:
        assert eng.query("error_rate").empty
    (q,) = executions(aws)
    assert "day BETWEEN" not in q["Query"]


def _alb_tables(tree: exp.Expression) -> list[exp.Table]:
    return [t for t in tree.find_all(exp.Table) if t.name in ("alb_logs", "my_table")]


@pytest.mark.parametrize("name", queries.names())
def test_every_saved_query_gets_the_day_predicate(name: str) -> None:
    q = queries.get(name)
    since, until = datetime(2026, 11, 16, 22, 30, tzinfo=UTC), datetime(2026, 11, 18, tzinfo=UTC)
    values, window = bind(q, since=since, until=until, bucket="1h")
    eng = AthenaEngine(database="logs", table="my_table", region=REGION, workgroup=WG)
    text = eng.prepare(q.sql, values, window, name)
    tree = sqlglot.parse_one(text, read="trino")
    refs = _alb_tables(tree)
    assert refs, f"{name} does not read alb_logs"
    for t in refs:
        assert t.name == "my_table" and t.args["db"].name == "logs"
        sel = t.find_ancestor(exp.Select)
        between = sel.args["where"].this
        assert isinstance(between, exp.Between) and between.this.name == "day"
        assert (between.args["low"].name, between.args["high"].name) == ("2026/11/16", "2026/11/18")
    assert ":" + "albstats_day" not in text


def test_bad_sql_is_a_usage_error() -> None:
    eng = AthenaEngine(workgroup=WG, region=REGION)
    for window in ((None, None), (datetime(2026, 11, 17, tzinfo=UTC), None)):
        with pytest.raises(UsageError, match="does not parse as Athena"):
            eng.prepare("SELECT FROM WHERE (", {}, window)
        with pytest.raises(UsageError, match="does not parse as Athena"):  # a tokenizer error, too
            eng.prepare("SELECT 'unclosed FROM alb_logs", {}, window)


def test_rewrite_covers_joins_aliases_and_ctes() -> None:
    sql = (
        "WITH a AS (SELECT * FROM alb_logs x WHERE x.type = 'h2') "
        "SELECT count(*) FROM a JOIN alb_logs b ON a.trace_id = b.trace_id"
    )
    tree = sqlglot.parse_one(rewrite(sql, "db", "t", day_predicate=True), read="trino")
    subs = [s for s in tree.find_all(exp.Subquery) if s.find(exp.Between)]
    assert sorted(s.alias for s in subs) == ["b", "x"]
    shadow = "WITH alb_logs AS (SELECT 1 AS n) SELECT n FROM alb_logs"
    assert "BETWEEN" not in rewrite(shadow, "db", "t", day_predicate=True)


# --- timeout, Ctrl-C, FAILED, throttling ------------------------------------------------------


def test_timeout_cancels_the_query(aws: boto3.client) -> None:
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 10**6})
    eng = AthenaEngine(workgroup=WG, region=REGION, quiet=True, timeout=0.05, poll_interval=0.01)
    with pytest.raises(AwsError, match=r"did not finish within 0.05 s and was cancelled"):
        eng.query("error_rate", since="2026-11-17", until="2026-11-18")
    (q,) = executions(aws)
    assert q["Status"]["State"] == "CANCELLED"


def test_ctrl_c_stops_the_athena_query(aws: boto3.client) -> None:
    """A real asynchronous KeyboardInterrupt (what Ctrl-C raises) while PyAthena waits between polls."""
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 10**6})
    timers: list[threading.Timer] = []

    def interrupt_soon(st: QueryStats) -> None:
        if not timers:  # the query is submitted and polled once: Ctrl-C arrives while PyAthena sleeps
            timers.append(threading.Timer(0.05, _thread.interrupt_main))
            timers[0].start()

    eng = AthenaEngine(workgroup=WG, region=REGION, quiet=True, poll_interval=0.5, on_poll=interrupt_soon)
    with pytest.raises(KeyboardInterrupt):
        eng.query("error_rate", since="2026-11-17", until="2026-11-18")
    timers[0].join()
    (q,) = executions(aws)
    assert q["Status"]["State"] == "CANCELLED"  # StopQueryExecution reached Athena
    assert eng.last_query.state == "CANCELLED" and eng.last_query.query_id == q["QueryExecutionId"]


def test_states_progress_until_succeeded(aws: boto3.client) -> None:
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 2})
    seen: list[str] = []
    eng = AthenaEngine(
        workgroup=WG, region=REGION, quiet=True, poll_interval=0.001, on_poll=lambda st: seen.append(st.state)
    )
    seed([], ERROR_RATE_COLS)
    eng.query("error_rate", since="2026-11-17", until="2026-11-18")
    order = ["QUEUED", "RUNNING", "SUCCEEDED"]
    assert sorted(set(seen), key=order.index) == order and seen == sorted(seen, key=order.index)
    assert eng.last_query.state == "SUCCEEDED"


def _session() -> boto3.Session:
    """A boto3 session whose clients reach moto; tests register botocore event hooks on it."""
    return boto3.Session(region_name=REGION)


def test_failed_query_shows_athenas_reason(aws: boto3.client) -> None:
    """moto's queries always succeed, so a botocore after-call hook turns moto's answer into the FAILED one
    Athena gives for a bad column (state, StateChangeReason, AthenaError, the bytes read before failing)."""
    reason = "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"
    session = _session()

    def failed(parsed: dict, **_: object) -> None:
        qe = parsed["QueryExecution"]
        qe["Status"].update(
            State="FAILED", StateChangeReason=reason, AthenaError={"ErrorCategory": 2, "ErrorMessage": reason}
        )
        qe["Statistics"]["DataScannedInBytes"] = 3 * 10**9

    session.events.register("after-call.athena.GetQueryExecution", failed)
    eng = AthenaEngine(workgroup=WG, output_location=OUT, session=session, quiet=True, poll_interval=0.01)
    with pytest.raises(AwsError) as ei:
        eng.sql("SELECT nope FROM alb_logs WHERE day = '2026/11/17'")
    (q,) = executions(aws)
    assert str(ei.value) == f"Athena query {q['QueryExecutionId']} (sql) FAILED: {reason}"
    st = eng.last_query
    assert st.state == "FAILED" and st.query_id == q["QueryExecutionId"]
    assert st.scanned_bytes == 3 * 10**9 and abs(st.cost_usd - 0.015) < 1e-12


def _throttle(session: boto3.Session, operation: str, times: int) -> list[int]:
    """Answer the first ``times`` calls of ``operation`` with Athena's throttling error, before they reach
    moto (moto never throttles), through botocore's before-call event; returns the call counter."""
    calls = [0]

    def hook(**_: object) -> tuple[AWSResponse, dict] | None:
        calls[0] += 1
        if calls[0] > times:
            return None  # on to moto
        body = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}, "ResponseMetadata": {}}
        return AWSResponse("https://athena.invalid/", 400, {}, None), body

    session.events.register(f"before-call.athena.{operation}", hook)
    return calls


@pytest.mark.integration  # slow: 2 s under load
def test_throttling_is_retried_with_backoff(aws: boto3.client) -> None:
    session = _session()
    starts = _throttle(session, "StartQueryExecution", 2)
    polls = _throttle(session, "GetQueryExecution", 1)
    seed([["3"]], [("n", "bigint")])
    eng = AthenaEngine(
        workgroup=WG, output_location=OUT, session=session, quiet=True, poll_interval=0.01, retry_base_delay=0.05
    )
    t0 = time.monotonic()
    df = eng.sql("SELECT count(*) AS n FROM alb_logs WHERE day = '2026/11/17'")
    waited = time.monotonic() - t0
    assert df["n"].tolist() == [3]
    assert starts[0] == 3 and polls[0] >= 2  # two throttled starts, then the one that reached moto
    assert len(executions(aws)) == 1
    assert waited >= 0.05 + 0.1 + 0.05  # exponential back-off: 0.05 s, then 0.1 s (plus jitter); 0.05 s


@pytest.mark.integration  # slow: 2 s under load
def test_throttling_gives_up_with_awss_message(aws: boto3.client) -> None:
    session = _session()
    starts = _throttle(session, "StartQueryExecution", 10**6)
    eng = AthenaEngine(
        workgroup=WG, output_location=OUT, session=session, quiet=True, max_attempts=3, retry_base_delay=0.01
    )
    with pytest.raises(AwsError) as ei:
        eng.sql("SELECT 1 AS n FROM alb_logs WHERE day = '2026/11/17'")
    assert str(ei.value) == "Athena StartQueryExecution (gave up after 3 attempts): ThrottlingException: Rate exceeded"
    assert starts[0] == 3 and executions(aws) == []


# --- defaults: the primary workgroup and its result location (issue 12 item 1) ------------------

QUERY = [
    "query",
    "error_rate",
    "--engine",
    "athena",
    "--since",
    "2026-11-17",
    "--until",
    "2026-11-18",
    "--region",
    REGION,
    "-q",
]


def _all_executions(ath: boto3.client) -> list[dict]:
    out = []
    for wg in ath.list_work_groups()["WorkGroups"]:
        for i in ath.list_query_executions(WorkGroup=wg["Name"])["QueryExecutionIds"]:
            out.append(ath.get_query_execution(QueryExecutionId=i)["QueryExecution"])
    return out


@pytest.mark.integration  # slow: 3 s under load
def test_primary_without_result_location_is_one_line_naming_the_option(aws: boto3.client) -> None:
    assert "ResultConfiguration" not in str(
        aws.get_work_group(WorkGroup="primary")["WorkGroup"]["Configuration"].get("ResultConfiguration") or {}
    )
    res = CliRunner().invoke(app, QUERY)
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.output
    assert res.stderr.startswith("albstats: error: Athena workgroup 'primary' has no query result location")
    assert "--output-location" in res.stderr
    assert _all_executions(aws) == []  # nothing submitted
    res = CliRunner().invoke(app, CREATE[: CREATE.index("--workgroup")] + ["--database", "albstats", "-q"])
    assert res.exit_code == 2 and "--output-location" in res.stderr
    assert _all_executions(aws) == []


@pytest.mark.integration  # slow: 2 s under load
def test_primary_with_output_location_option(aws: boto3.client) -> None:
    seed([], ERROR_RATE_COLS)
    res = CliRunner().invoke(app, [*QUERY, "--output-location", OUT])
    assert res.exit_code == 0, res.output
    (q,) = _all_executions(aws)
    assert q["WorkGroup"] == "primary" and q["ResultConfiguration"]["OutputLocation"].startswith(OUT)


@pytest.mark.integration  # slow: 2 s under load
def test_workgroup_location_is_used_and_option_beats_environment(
    aws: boto3.client, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.create_work_group(Name="other-wg", Configuration={})
    monkeypatch.setenv("ALBSTATS_ATHENA_WORKGROUP", WG)
    seed([], ERROR_RATE_COLS)
    res = CliRunner().invoke(app, QUERY)  # the environment's workgroup, which has a result location
    assert res.exit_code == 0, res.output
    (q,) = executions(aws)
    assert q["WorkGroup"] == WG
    assert not q.get("ResultConfiguration")  # Athena uses the workgroup's own location
    res = CliRunner().invoke(app, [*QUERY, "--workgroup", "other-wg"])  # the option wins; it has none
    assert res.exit_code == 2
    assert "workgroup 'other-wg' has no query result location" in res.stderr and "--output-location" in res.stderr
    res = CliRunner().invoke(app, [*QUERY, "--workgroup", "missing-wg"])
    assert res.exit_code == 1 and "workgroup 'missing-wg' does not exist" in res.stderr


@pytest.mark.integration  # slow: 2 s under load
def test_create_table_hint_repeats_every_option_given(aws: boto3.client) -> None:
    args = [*CREATE, "--table", "web_logs"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    hint = next(line for line in res.stderr.splitlines() if "try:" in line)
    assert hint == (
        f"albstats: try: albstats query error_rate --engine athena --database albstats --table web_logs "
        f"--workgroup {WG} --output-location {OUT} --region {REGION} --since 1d"
    )
    from albstats.cli.athena import query_hint

    assert query_hint(
        "db", "t", workgroup=None, output_location="s3://b/x y/", region="eu-west-1", profile="prod ro"
    ).endswith("--output-location 's3://b/x y/' --region eu-west-1 --profile 'prod ro' --since 1d")


# --- result problems are one line with the query id (issue 12 item 6) --------------------------


@pytest.mark.integration  # slow: 3 s under load
def test_result_lacking_declared_columns_is_one_line_with_the_query_id(aws: boto3.client) -> None:
    seed([["2026-11-17 00:00:00.000", "10"]], [("bucket_start", "timestamp"), ("requests", "bigint")])
    res = CliRunner().invoke(app, [*QUERY, "--workgroup", WG])
    assert res.exit_code == 1
    (q,) = executions(aws)
    assert res.stderr == (
        f"albstats: error: Athena query {q['QueryExecutionId']} (error_rate): the result lacks "
        f"the declared columns errors_5xx, elb_5xx, target_5xx, success_rate; it has "
        f"bucket_start, requests\n"
    )
    seed(
        [["2026-11-17 00:00:00.000", "many", "1", "1", "0", "0.9"]],
        ERROR_RATE_COLS[:1] + [("requests", "varchar")] + ERROR_RATE_COLS[2:],
    )
    res = CliRunner().invoke(app, [*QUERY, "--workgroup", WG])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.startswith("albstats: error: Athena query ") and res.stderr.count("\n") == 1
    assert "does not have its declared type" in res.stderr


@pytest.mark.integration  # slow: 2 s under load
@pytest.mark.parametrize("cmd", [["report", "--since", "7d"], ["weekly"]])
def test_report_and_weekly_name_the_missing_result_location(aws: boto3.client, cmd: list[str], tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, [*cmd, "--engine", "athena", "--region", REGION, "-o", str(tmp_path / "o"), "--quiet"]
    )
    assert res.exit_code == 2, res.output
    assert "workgroup 'primary' has no query result location" in res.stderr and "--output-location" in res.stderr
    assert "Traceback" not in res.output and _all_executions(aws) == []


def test_bad_output_location_names_its_option() -> None:
    with pytest.raises(UsageError, match=r"^--output-location: 's3://R/x' .*bucket"):
        AthenaEngine(output_location="s3://R/x")


# --- the same saved query gives the same frame on both engines ---------------------------------

ROOT = Path(__file__).resolve().parent.parent
ATHENA_TYPE = {"string": "varchar", "int": "integer"}  # the names Athena's ColumnInfo uses


def _athena_text(value: object, type_: str) -> str | None:
    """A value as Athena's result carries it (VarCharValue): text, NULL as absent."""
    import pandas as pd

    if value is None or value is pd.NA or (not isinstance(value, str) and pd.isna(value)):
        return None
    if type_ == "timestamp":
        return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if type_ == "double":
        return repr(float(value))
    return str(value)


@pytest.fixture(scope="module")
def local_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every saved query on the fixture logs with the local (DuckDB) engine, over their whole span."""
    db = tmp_path_factory.mktemp("cache") / "c.duckdb"
    with connect([str(ROOT / "fixtures/AWSLogs")], db=str(db), quiet=True) as eng:
        span = eng.query("data_span")
        since = span["first_request"].iloc[0].floor("D")
        until = span["last_request"].iloc[0].ceil("D")
        return {n: (eng.query(n, since=since, until=until), since, until) for n in queries.names()}


@pytest.mark.integration  # slow: 4 s under load
@pytest.mark.parametrize("via", ["result file", "GetQueryResults"])
@pytest.mark.parametrize("name", queries.names())
def test_athena_result_types_match_the_local_engines(
    aws: boto3.client, local_results: dict, name: str, via: str
) -> None:
    """Athena's text answer for the rows DuckDB computed comes back, through PyAthena and the declared
    columns, as the very frame the local engine returns: timestamps in UTC, integers as int64, NULLs kept.
    (Athena's ``timestamp`` holds milliseconds, DuckDB's microseconds: the only difference, compared so.)

    Both ways PyAthena reads a result: the CSV file in the query's output location (moto writes it, but
    without doubling the quotes inside values, so rows with a ``"`` are left out there), and
    GetQueryResults pages when the workgroup's own location applies (moto then writes no file)."""
    from pandas.testing import assert_frame_equal

    local, since, until = local_results[name]
    assert not local.empty, f"{name}: the fixtures give no rows"
    types = queries.get(name).column_types
    rows = [[_athena_text(v, types[c]) for c, v in zip(local.columns, r)] for r in local.itertuples(index=False)]
    keep = [i for i, r in enumerate(rows) if via == "GetQueryResults" or not any(v and '"' in v for v in r)]
    assert keep
    seed([rows[i] for i in keep], [(c, ATHENA_TYPE.get(t, t)) for c, t in types.items()])
    where = {"output_location": OUT} if via == "result file" else {}
    with connect(engine="athena", workgroup=WG, region=REGION, quiet=True, poll_interval=0.01, **where) as eng:
        got = eng.query(name, since=since, until=until)
    (q,) = executions(aws)
    assert bool(q.get("ResultConfiguration")) == (via == "result file")
    want = local.iloc[keep].reset_index(drop=True)
    for c, t in types.items():
        if t == "timestamp":
            want[c] = want[c].dt.floor("ms")
    assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
