"""End to end: the installed `albstats` command, in its own process, against moto's server on loopback.

Shows that the standard boto3 chain is all the CLI uses (fake keys and AWS_ENDPOINT_URL in the
environment), for S3 (`fetch`) and Athena (`athena create-table`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

#: The installed CLI as subprocesses against moto's server on loopback.
pytestmark = pytest.mark.integration

ALBSTATS = [sys.executable, "-c", "from albstats.cli import main; main()"]


@pytest.fixture(scope="module")
def endpoint() -> str:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _env(endpoint: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ALBSTATS_ATHENA_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        ALBSTATS_CACHE_DB=str(tmp_path / "c.duckdb"),
    )
    return env


def test_cli_against_moto_server(endpoint: str, tmp_path: Path) -> None:
    kw = dict(
        endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    s3 = boto3.client("s3", **kw)
    s3.create_bucket(Bucket="srv-logs")
    root = "AWSLogs/123456789012/elasticloadbalancing/us-east-1"
    for day in ("2026/11/16", "2026/11/17", "2026/11/18", "2026/11/19"):
        s3.put_object(Bucket="srv-logs", Key=f"{root}/{day}/f_{day.replace('/', '')}.log.gz", Body=b"x" * 10)
    env = _env(endpoint, tmp_path)
    out = tmp_path / "mirror"
    res = subprocess.run(
        [*ALBSTATS, "fetch", "s3://srv-logs/", "--since", "2026-11-17", "--until", "2026-11-18", "-o", str(out), "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.log.gz"))
    assert got == [f"{root}/2026/11/17/f_20261117.log.gz", f"{root}/2026/11/18/f_20261118.log.gz"]
    assert "testing" not in res.stderr

    res = subprocess.run(
        [*ALBSTATS, "fetch", "s3://no-such-bucket-srv/", "-o", str(out), "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1
    assert res.stderr.startswith("albstats: error: ") and "NoSuchBucket" in res.stderr

    ath = boto3.client("athena", **kw)
    ath.create_work_group(Name="srv-wg", Configuration={"ResultConfiguration": {"OutputLocation": "s3://r/x/"}})
    res = subprocess.run(
        [
            *ALBSTATS,
            "athena",
            "create-table",
            "--s3-bucket",
            "srv-logs",
            "--account",
            "123456789012",
            "--region",
            "us-east-1",
            "--workgroup",
            "srv-wg",
            "--output-location",
            "s3://srv-logs/athena/",
            "-q",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    ids = ath.list_query_executions(WorkGroup="srv-wg")["QueryExecutionIds"]
    queries = sorted(ath.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Query"] for i in ids)
    assert queries[0] == "CREATE DATABASE IF NOT EXISTS `albstats`"
    assert queries[1].startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `albstats`.`alb_logs`")


def _seed(endpoint: str, rows: list[list[str]], columns: list[tuple[str, str]]) -> None:
    """Queue one result in moto's server through its documented HTTP API (header row first, as Athena)."""
    import json
    import urllib.request

    body = {
        "results": [
            {
                "rows": [{"Data": [{"VarCharValue": n} for n, _ in columns]}]
                + [{"Data": [{"VarCharValue": v} for v in r]} for r in rows],
                "column_info": [  # all the fields Athena's ColumnInfo has (PyAthena reads them)
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
                ],
            }
        ]
    }
    req = urllib.request.Request(
        f"{endpoint}/moto-api/static/athena/query-results",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 201


def test_athena_defaults_against_moto_server(endpoint: str, tmp_path: Path) -> None:
    """No --workgroup, no --output-location: `primary` (moto's has no result location) is a one-line error
    naming --output-location; a workgroup with a result location (from ALBSTATS_ATHENA_WORKGROUP) works."""
    env = _env(endpoint, tmp_path)
    query = [*ALBSTATS, "query", "error_rate", "--engine", "athena", "--since", "1d", "--format", "json", "-q"]
    res = subprocess.run(query, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "workgroup 'primary' has no query result location" in res.stderr and "--output-location" in res.stderr
    res = subprocess.run(
        [
            *ALBSTATS,
            "athena",
            "create-table",
            "--s3-bucket",
            "srv-logs",
            "--account",
            "123456789012",
            "--region",
            "us-east-1",
            "-q",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and "--output-location" in res.stderr and res.stderr.count("\n") == 1

    kw = dict(
        endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    ath = boto3.client("athena", **kw)
    ath.create_work_group(
        Name="wg-with-results", Configuration={"ResultConfiguration": {"OutputLocation": "s3://srv-results/athena/"}}
    )
    cols = [
        ("bucket_start", "timestamp"),
        ("requests", "bigint"),
        ("errors_5xx", "bigint"),
        ("elb_5xx", "bigint"),
        ("target_5xx", "bigint"),
        ("success_rate", "double"),
    ]
    _seed(endpoint, [["2026-11-17 00:00:00.000", "10", "1", "1", "0", "0.9"]], cols)
    env["ALBSTATS_ATHENA_WORKGROUP"] = "wg-with-results"
    res = subprocess.run(query, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert '"requests": 10' in res.stdout
    (qid,) = ath.list_query_executions(WorkGroup="wg-with-results")["QueryExecutionIds"]
    qe = ath.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
    assert not qe.get("ResultConfiguration")  # the workgroup's own location applies

    # a result without the declared columns: one line with the query id, no traceback (issue 12 item 6)
    _seed(endpoint, [["7"]], [("n", "bigint")])
    res = subprocess.run(query, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1
    ids = set(ath.list_query_executions(WorkGroup="wg-with-results")["QueryExecutionIds"]) - {qid}
    assert res.stderr.startswith(f"albstats: error: Athena query {ids.pop()} (error_rate): the result lacks")


def _moto_api(endpoint: str, path: str, body: dict) -> None:
    """One call of moto's own HTTP API (state manager)."""
    import json
    import urllib.request

    req = urllib.request.Request(
        f"{endpoint}/moto-api/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status in (200, 201)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_the_athena_query(endpoint: str, tmp_path: Path, signum: int, code: int) -> None:
    """SIGTERM (systemd, timeout, kill) or Ctrl-C while Athena runs the query: the installed command stops
    it in Athena (PyAthena's kill_on_interrupt) and exits with the signal's code."""
    kw = dict(
        endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    ath = boto3.client("athena", **kw)
    wg = f"sig-wg-{signum}"
    ath.create_work_group(Name=wg, Configuration={"ResultConfiguration": {"OutputLocation": "s3://srv-results/x/"}})
    env = _env(endpoint, tmp_path)
    # the query stays RUNNING until something stops it
    _moto_api(
        endpoint,
        "state-manager/set-transition",
        {"model_name": "athena::execution", "transition": {"progression": "manual", "times": 10**6}},
    )
    try:
        proc = subprocess.Popen(
            [*ALBSTATS, "query", "error_rate", "--engine", "athena", "--since", "1d", "--workgroup", wg, "-q"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not ath.list_query_executions(WorkGroup=wg)["QueryExecutionIds"]:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the query was never submitted"
                time.sleep(0.05)
            time.sleep(0.3)  # PyAthena is polling now
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        _moto_api(endpoint, "state-manager/unset-transition", {"model_name": "athena::execution"})
    assert proc.returncode == code, err
    assert err.count("\n") == 1 and "Traceback" not in err and "canceled" not in err, err  # PyAthena's log: quiet
    (qid,) = ath.list_query_executions(WorkGroup=wg)["QueryExecutionIds"]
    assert ath.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]["State"] == "CANCELLED"
