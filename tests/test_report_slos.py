"""`report --slo-file`, `weekly --slo-file`: an overview row and a section per SLO, JSON per SLO, exit 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from albstats.cli import app

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "fixtures" / "AWSLogs"
SLO_FILE = ROOT / "fixtures" / "slo.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("slorep")
    out = d / "out"
    r = CliRunner().invoke(
        app,
        [
            "report",
            str(LOGS),
            "--slo-file",
            str(SLO_FILE),
            "--out",
            str(out),
            "--quiet",
            "--fail-on-breach",
            "--db",
            str(d / "c.duckdb"),
        ],
        prog_name="albstats",
    )
    return r, out, d


def test_exit_3_names_the_missed_slo(run):
    r, _, _ = run
    assert r.exit_code == 3, r.output
    assert "SLO breached: petclinic-api/availability 98.683 % < 99.65 %" in r.output


def test_json_per_slo(run):
    _, out, _ = run
    d = json.loads((out / "report.json").read_text())
    assert d["breached"] is True
    rows = [(s["service"], s["objective"]) for s in d["slos"]]
    assert rows == [
        ("petclinic-api", "availability"),
        ("petclinic-api", "latency"),
        ("petclinic-web", "availability"),
        ("petclinic-web", "latency"),
        ("petclinic-grpc", "availability"),
    ]
    api = d["slos"][0]
    assert api["met"] is False and api["requests"] == 28469 and api["bad"] == 375
    assert api["error_budget_remaining_fraction"] == pytest.approx(1 - 375 / (0.0035 * 28469))
    assert [a["name"] for a in api["alerts"] if a["fired"]] == ["1h/5m", "6h/30m"]
    assert api["incidents"][0]["start"] == "2026-11-16T11:15:00Z"
    # the services partition the target groups: their requests add up to those with a target group
    assert all(s["met"] for s in d["slos"][1:])


def test_overview_and_sections_in_md_and_html(run):
    _, out, _ = run
    md = (out / "report.md").read_text()
    assert md.index("## Service level objectives") < md.index("## Availability")
    assert "| service | objective | window | target (%) | achieved (%) | budget left (%)" in md
    assert (
        "| petclinic-api | availability: 99.65 % of requests without 5XX or 460 | rolling 28d | 99.65 | "
        "98.683 (missed) | -276.3 |" in md
    )
    for name in ("petclinic-api", "petclinic-web", "petclinic-grpc"):
        assert f"### Service {name}" in md
    assert "SLO BREACHED: 1 of 5 SLOs missed: petclinic-api/availability" in md
    html = (out / "report.html").read_text()
    assert "<h3>Service petclinic-grpc</h3>" in html


@pytest.mark.integration  # slow: 3 s under load
def test_single_slo_option_is_a_one_service_file(tmp_path):
    out = tmp_path / "o"
    r = CliRunner().invoke(
        app,
        ["report", str(LOGS), "--slo", "99.9", "--out", str(out), "--quiet", "--db", str(tmp_path / "c.duckdb")],
        prog_name="albstats",
    )
    assert r.exit_code == 0, r.output
    d = json.loads((out / "report.json").read_text())
    assert len(d["slos"]) == 1
    s = d["slos"][0]
    assert (s["service"], s["target"], s["requests"], s["bad"]) == ("all", 0.999, d["requests"], d["bad_requests"])
    assert s["met"] is d["slo"]["met"] is False


@pytest.mark.integration  # slow: 3 s under load
def test_weekly_summarises_each_slo_and_exits_3(tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "weekly",
            str(LOGS),
            "--slo-file",
            str(SLO_FILE),
            "--now",
            "2026-11-23T06:00:00Z",
            "--db",
            str(tmp_path / "c.duckdb"),
        ],
        prog_name="albstats",
    )
    assert r.exit_code == 3, r.output
    assert "albstats weekly 2026-W47 (2026-11-16 to 2026-11-22 UTC): 1 of 5 SLOs BREACHED" in r.output
    assert "petclinic-api/availability 99.65 % BREACHED: 98.683 % achieved" in r.output
    assert "petclinic-web/latency 99 % met" in r.output


def test_bad_slo_file_is_a_usage_error_before_work(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("apiVersion: albstats/v1\nkind: SLOFile\nservices:\n  - name: x\n    objectives: []\n")
    r = CliRunner().invoke(
        app, ["report", str(LOGS), "--slo-file", str(bad), "--db", str(tmp_path / "c.duckdb")], prog_name="albstats"
    )
    assert r.exit_code == 2
    assert f"{bad}:5: service 'x': objectives must be a non-empty list" in r.output
