"""No data never reads as "SLO met" (issue 12 item 3), and `parse`/`query` say when they read no log file.

A cron job on ``report --fail-on-breach`` must fail when logs stop arriving: a window without
requests is an error naming the window and the sources, unless ``--allow-empty``, which reports
"no data" and never "met".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import albstats
from albstats.cli import app
from albstats.report import Options, build

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
SMALL = FIXTURES / "security" / "security-log.txt"  # 70 requests on 2026-03-02


def invoke(args: list[str], tmp_path: Path) -> object:
    return CliRunner().invoke(app, [*args, "--db", str(tmp_path / "c.duckdb")])


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


@pytest.fixture
def non_logs(tmp_path: Path) -> Path:
    d = tmp_path / "notes"
    d.mkdir()
    (d / "readme.txt").write_text("hello\n")
    shutil.copy(FIXTURES / "README.md", d / "README.md")
    return d


def one_error_line(res: object) -> str:
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("albstats: error: ")
    return lines[0]


def test_window_without_requests_fails_the_cron_job(tmp_path):
    out = tmp_path / "out"
    res = invoke(["report", str(FIXTURES / "AWSLogs"), "--since", "7d", "--fail-on-breach", "-o", str(out)], tmp_path)
    assert res.exit_code == 1, res.output
    line = one_error_line(res)
    assert "no requests between " in line and str(FIXTURES / "AWSLogs") in line
    assert "--allow-empty" in line
    assert not out.exists()  # nothing that could be read as a report
    assert "met" not in res.stdout


def test_given_window_named_in_the_error(tmp_path):
    res = invoke(
        [
            "report",
            str(SMALL),
            "--since",
            "2027-01-01T00:00:00Z",
            "--until",
            "2027-01-02T00:00:00Z",
            "--format",
            "json",
        ],
        tmp_path,
    )
    assert res.exit_code == 1, res.output
    line = one_error_line(res)
    assert "between 2027-01-01T00:00:00Z and 2027-01-02T00:00:00Z" in line and str(SMALL) in line
    assert "1 log file read, 70 rows, none in that window" in line
    assert res.stdout == ""


@pytest.mark.parametrize("folder", ["empty_dir", "non_logs"])
def test_folder_without_logs_is_an_error(folder, tmp_path, request):
    d = request.getfixturevalue(folder)
    res = invoke(["report", str(d)], tmp_path)
    assert res.exit_code == 1, res.output
    line = one_error_line(res)
    assert f"no requests in {d}: no log files" in line
    assert "None" not in res.output and "? to ?" not in res.output


def test_only_other_log_kinds_named(tmp_path):
    res = invoke(["report", str(FIXTURES / "edge" / "not-alb")], tmp_path)
    assert res.exit_code == 1, res.output
    line = one_error_line(res)
    assert "no ALB log files there, 2 skipped" in line and "a Classic Load Balancer access log" in line


def test_allow_empty_says_no_data_never_met(tmp_path, empty_dir):
    out = tmp_path / "out"
    res = invoke(["report", str(empty_dir), "--allow-empty", "--fail-on-breach", "-o", str(out)], tmp_path)
    assert res.exit_code == 0, res.output
    assert "NO DATA" in res.stdout and "SLO met" not in res.stdout and ": met" not in res.stdout
    assert "warning: NO DATA: no requests in " in res.stderr
    d = json.loads((out / "report.json").read_text())
    assert d["slo"]["met"] is None and d["slo"]["status"] == "no_data" and d["breached"] is None
    assert d["latency"]["slo"]["met"] is None
    assert d["headline"][0].startswith("NO DATA") and d["sources"] == [str(empty_dir)]
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for text in (res.stdout, md, html, json.dumps(d)):
        assert "None" not in text and "? to ?" not in text and ".. None" not in text
        assert "SLO met: " not in text and "| SLO met | yes |" not in text
    assert "NO DATA" in md and "| SLO met | n/a (no data) |" in md and "NO DATA" in html


def test_allow_empty_with_a_window(tmp_path):
    res = invoke(
        [
            "report",
            str(SMALL),
            "--since",
            "2027-01-01T00:00:00Z",
            "--allow-empty",
            "--format",
            "json",
            "--fail-on-breach",
        ],
        tmp_path,
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["slo"] == {"target": 0.99, "met": None, "status": "no_data", "count_460": False}
    assert d["requests"] == 0 and d["window"]["start"] == "2027-01-01T00:00:00Z"


def test_status_met_and_breached_unchanged(tmp_path):
    ok = json.loads(invoke(["report", str(SMALL), "--format", "json"], tmp_path).stdout)
    assert ok["slo"]["status"] == "met" and ok["slo"]["met"] is True and ok["breached"] is False
    bad = json.loads(
        invoke(
            ["report", str(SMALL), "--format", "json", "--slo", "99.99", "--latency-slo", "10ms@99"], tmp_path
        ).stdout
    )
    # slo.* is the availability SLO (no 5XX in this file: met); breached adds the latency SLO asked for
    assert bad["slo"]["status"] == "met" and bad["breached"] is True
    worse = json.loads(
        invoke(["report", str(FIXTURES / "edge" / "eras" / "era34.log"), "--format", "json"], tmp_path).stdout
    )
    assert worse["slo"] == {"target": 0.99, "met": False, "status": "breached", "count_460": False}


def test_python_api(tmp_path, empty_dir):
    from albstats.report import NoData

    with albstats.connect([str(empty_dir)], db=str(tmp_path / "c.duckdb")) as eng:
        with pytest.raises(NoData, match=f"no requests in {empty_dir}"):
            build(eng, Options())
        r = build(eng, Options(allow_empty=True))
    assert r.status == "no_data" and r.slo_met is None and r.breached is False and r.no_data


# --- parse and query on sources without log files ---------------------------------------------------


@pytest.mark.parametrize("folder", ["empty_dir", "non_logs"])
@pytest.mark.parametrize(
    "command",
    [
        ["parse"],
        ["parse", "-q"],
        ["query", "error_rate"],
        ["query", "error_rate", "-q"],
        ["sql", "run", "SELECT count(*) AS n FROM alb_logs"],
    ],
)
def test_parse_and_query_say_nothing_was_read(command, folder, tmp_path, request):
    d = request.getfixturevalue(folder)
    args = [*command, str(d)]
    res = CliRunner().invoke(app, args if command[0] == "parse" else [*args, "--db", str(tmp_path / "c.duckdb")])
    assert res.exit_code == 0, res.output
    warn = [x for x in res.stderr.splitlines() if "warning" in x]
    assert warn == [f"albstats: warning: no log files (*.log, *.log.gz, *.gz) in {d}: nothing was read"]


def test_query_says_which_window_read_nothing(tmp_path):
    res = CliRunner().invoke(
        app,
        ["query", "error_rate", str(FIXTURES / "AWSLogs"), "--since", "2027-01-01", "--db", str(tmp_path / "c.duckdb")],
    )
    assert res.exit_code == 0, res.output
    assert f"no log files (*.log, *.log.gz, *.gz) in {FIXTURES / 'AWSLogs'} since 2027-01-01T00:00:00Z" in res.stderr


def test_query_with_rows_says_nothing_extra(tmp_path):
    res = CliRunner().invoke(app, ["query", "error_rate", str(SMALL), "--db", str(tmp_path / "c.duckdb"), "-q"])
    assert res.exit_code == 0 and res.stderr == ""
