"""Damaged input is never hidden by `report` (issue 12 item 4).

``fixtures/edge`` holds a truncated gzip, an ALB connection log, a Classic ELB and an NLB log, and a
file with 6 malformed lines (fixtures/edge/MANIFEST.json). The report's headline (terminal,
report.md/html, report.json) names them with counts and the first files; ``--strict`` exits 1 after
writing the report. Paths appear as the user gave them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from albstats.cli import app
from albstats.inputs import as_given

ROOT = Path(__file__).resolve().parents[1]
EDGE = "fixtures/edge"
DAMAGED = (
    "fixtures/edge/damaged/123456789012_elasticloadbalancing_us-east-2_app.petclinic-alb.fac91c7a19f8071b"
    "_20261116T1010Z_3.220.220.204_trunc8gz.log.gz"
)
COUNTS = "Input problems: 1 damaged file, 3 skipped files, 6 malformed lines in 1 file"


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root, so the user's path is the relative ``fixtures/edge``."""
    monkeypatch.chdir(ROOT)
    return ROOT


#: The edge files span 2016 to 2026; one day keeps the report quick. Files outside the S3 key layout are
#: read whatever the window, so every damaged, skipped and malformed file is still met.
DAY = ["--since", "2026-11-16T00:00:00Z", "--until", "2026-11-17T00:00:00Z"]


def run(args: list[str], tmp_path: Path) -> object:
    return CliRunner().invoke(app, ["report", *args, *DAY, "--db", str(tmp_path / "c.duckdb")])


def test_terminal_headline_names_damaged_skipped_malformed(in_root, tmp_path):
    res = run([EDGE], tmp_path)
    assert res.exit_code == 0, res.output
    out = res.stdout
    head = out.splitlines()
    i = next(n for n, x in enumerate(head) if x.startswith(COUNTS))
    assert i <= 4  # right under the verdict, before any number
    assert f"damaged: {DAMAGED}: gzip data is truncated" in out
    assert "skipped: fixtures/edge/conn_log_" in out and "an ALB connection log" in out
    assert "malformed lines in: fixtures/edge/bad-lines.log.gz (6 lines)" in out
    # and once on stderr, so a --quiet cron job's mail carries it too
    assert (
        res.stderr.strip() == f"albstats: warning: {COUNTS[0].lower()}{COUNTS[1:]} (first: {DAMAGED}: gzip data "
        "is truncated after line 177; the 177 lines before it were kept)"
    )


def test_quiet_still_warns(in_root, tmp_path):
    res = run([EDGE, "--quiet"], tmp_path)
    assert res.exit_code == 0 and res.stdout == ""
    assert "input problems: 1 damaged file, 3 skipped files, 6 malformed lines in 1 file" in res.stderr


def test_files_headline_and_paths_as_given(in_root, tmp_path):
    out = tmp_path / "o"
    res = run([EDGE, "-o", str(out)], tmp_path)
    assert res.exit_code == 0, res.output
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    d = json.loads((out / "report.json").read_text())
    # the headline: the verdict, then the problems, before the first section
    top = md[: md.index("## Availability")]
    assert COUNTS in top and f"damaged: {DAMAGED}" in top and "fixtures/edge/not-alb/" in top
    assert COUNTS in html[: html.index("<h2>")]
    assert str(ROOT) not in md and str(ROOT) not in html and str(ROOT) not in json.dumps(d)
    assert d["headline"][1] == COUNTS and d["headline"][2].startswith(f"damaged: {DAMAGED}")
    dq = d["data_quality"]
    assert len(dq["damaged_files"]) == 1 and len(dq["skipped_files"]) == 3
    assert dq["malformed_files"] == ["fixtures/edge/bad-lines.log.gz (6 lines)"]
    assert all(x.startswith("fixtures/edge/bad-lines.log.gz:") for x in dq["malformed_examples"])
    assert d["sources"] == [EDGE]


def test_strict_exits_1_after_writing(in_root, tmp_path):
    out = tmp_path / "o"
    res = run([EDGE, "--strict", "-o", str(out), "--fail-on-breach"], tmp_path)
    assert res.exit_code == 1, res.output
    errors = [x for x in res.stderr.splitlines() if x.startswith("albstats: error:")]
    assert len(errors) == 1 and len(res.stderr.splitlines()) == 1
    assert errors[0].startswith(
        "albstats: error: --strict: input problems: 1 damaged file, 3 skipped files, "
        f"6 malformed lines in 1 file (first: {DAMAGED}: gzip data is truncated"
    )
    assert errors[0].endswith(f"(report written to {out})")
    assert json.loads((out / "report.json").read_text())["requests"] > 0


def test_strict_on_clean_input_passes(tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "report",
            str(ROOT / "fixtures" / "security" / "security-log.txt"),
            "--strict",
            "-q",
            "--db",
            str(tmp_path / "c.duckdb"),
        ],
    )
    assert res.exit_code == 0 and res.stderr == ""


def test_as_given(in_root):
    cwd_rel = "fixtures/edge"
    assert as_given(str(ROOT / "fixtures/edge/a/x.log"), [cwd_rel]) == "fixtures/edge/a/x.log"
    assert as_given(str(ROOT / "fixtures/edge/a/x.log"), ["./fixtures/edge/"]) == "./fixtures/edge/a/x.log"
    assert as_given(str(ROOT / "fixtures/edgy/x.log"), [cwd_rel]) == str(ROOT / "fixtures/edgy/x.log")
    assert as_given("s3://b/k.log.gz", [cwd_rel]) == "s3://b/k.log.gz"
    assert as_given(str(ROOT / "fixtures/edge"), [cwd_rel]) == cwd_rel


@pytest.mark.parametrize("day", ["2026-13-16", "2026-02-30"])
def test_a_time_that_is_no_real_instant_is_a_malformed_line(tmp_path, day):
    """The latest line's time names no real day (DuckDB refuses to read it): the report counts the
    line as malformed and names its file, as for any other bad line, and reports the rest."""
    src = ROOT / "fixtures" / "security" / "security-log.txt"
    lines = src.read_text().splitlines()[:20]
    bad = lines[0].split(" ", 2)
    bad[1] = day + bad[1][10:]
    log = tmp_path / "odd.log"
    log.write_text("\n".join([*lines, " ".join(bad)]) + "\n")
    res = CliRunner().invoke(app, ["report", str(log), "--db", str(tmp_path / "c.duckdb")])
    assert res.exit_code == 0, res.output
    assert f"1 malformed line in 1 file (first: {log} (1 line))" in res.stderr
    assert "requests      20" in res.stdout
