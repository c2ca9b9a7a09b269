"""`albstats check --engine athena` against moto: bounded days, selection bound as literals, one query per service."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from test_athena_engine import OUT, REGION, WG, seed  # one way to queue canned Athena results
from typer.testing import CliRunner

from albstats.cli import app

SLO = """\
apiVersion: albstats/v1
kind: SLOFile
services:
  - name: api
    selector: {targetGroup: "api' OR '1'='1", pathPrefix: /api/}
    objectives: [{sli: availability, objective: 99.9}]
"""
BUCKET_COLS = [
    ("bucket_start", "timestamp"),
    ("requests", "bigint"),
    ("errors_5xx", "bigint"),
    ("status_460", "bigint"),
    ("elb_5xx", "bigint"),
    ("target_5xx", "bigint"),
    ("latency_requests", "bigint"),
    ("latency_good", "bigint"),
]


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="athena-results-test")
        ath = boto3.client("athena", region_name=REGION)
        ath.create_work_group(Name=WG, Configuration={"ResultConfiguration": {"OutputLocation": OUT}})
        yield ath


@pytest.mark.integration  # slow: 3 s under load
def test_check_on_athena_reads_only_the_days_its_windows_need(aws, tmp_path: Path):
    slo = tmp_path / "slo.yaml"
    slo.write_text(SLO)
    seed(
        [["100", "2026-11-16 00:00:01.000", "2026-11-20 11:59:59.000"]],
        [("requests", "bigint"), ("first_request", "timestamp"), ("last_request", "timestamp")],
    )
    seed([["2026-11-20 11:55:00.000", "100", "50", "0", "50", "0", "100", "100"]], BUCKET_COLS)
    r = CliRunner().invoke(
        app,
        [
            "check",
            "--engine",
            "athena",
            "--slo-file",
            str(slo),
            "--state",
            str(tmp_path / "s.json"),
            "--now",
            "2026-11-20T12:00:00Z",
            "--workgroup",
            WG,
            "--output-location",
            OUT,
            "--database",
            "albstats",
            "--region",
            REGION,
        ],
        prog_name="albstats",
    )
    assert r.exit_code == 3, r.output  # 50 % bad in the last 5 minutes pages at 99.9 %
    assert "FIRING page api/availability/1h/5m" in r.output
    ids = aws.list_query_executions(WorkGroup=WG)["QueryExecutionIds"]
    queries = [aws.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Query"] for i in ids]
    assert len(queries) == 2  # the newest request, then one query for the one service
    span, svc = queries
    # partitions: the newest request looked for back to the alert windows plus a day, the counts over 3 days
    assert "day BETWEEN '2026/11/16' AND '2026/11/2" in span, span
    assert "day BETWEEN '2026/11/17' AND '2026/11/2" in svc, svc
    assert "'api'' OR ''1''=''1'" in svc  # the selector is a literal with its quotes doubled, never SQL
