"""`albstats report`: the README's main command on the fixtures, and its numbers recomputed independently.

The expected numbers come from pandas over ``albstats.read_logs`` (and gzip line counts), never
from albstats.report, albstats.slo or the saved queries.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import shlex
import struct
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import albstats
from albstats.cli import app
from albstats.render.data import KEYS, key_paths
from albstats.render.slos import KEYS as SLO_KEYS

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
PNG_SIG = b"\x89PNG\r\n\x1a\n"


def main_command() -> list[str]:
    """The `albstats report ...` part of the README's main command, as arguments."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- main-command -->\s*```\w*\n(.*?)\n```\s*<!-- /main-command -->", text, re.S)
    assert m, "README has no main-command block"
    cmd = m.group(1).strip()
    part = cmd.split("&&")[-1].strip()
    args = shlex.split(part)
    assert args[0].endswith("albstats") and args[1] == "report", cmd
    return args[1:]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run the README's report command once (cache in a temp dir, output dir redirected)."""
    tmp = tmp_path_factory.mktemp("report")
    args = main_command()
    out = tmp / "out"
    i = args.index("-o")
    args[i + 1] = str(out)
    args = [str(ROOT / a) if a.startswith("fixtures") else a for a in args]
    res = CliRunner().invoke(app, [*args, "--db", str(tmp / "cache.duckdb")], catch_exceptions=False)
    return res, out


@pytest.fixture(scope="module")
def report(run) -> dict:
    res, out = run
    assert res.exit_code == 0, res.output
    return json.loads((out / "report.json").read_text())


def data_dir() -> Path:
    """The folder the README's main command reports on: its positional argument as Click parses it.

    Option values such as ``-o /tmp/albstats-report`` are not data, even when that folder exists
    because someone ran the main command before the tests.
    """
    command = typer.main.get_command(app).get_command(None, "report")  # type: ignore[attr-defined]
    with command.make_context("report", main_command()[1:], resilient_parsing=True) as ctx:
        paths = list(ctx.params["paths"] or [])
    assert len(paths) == 1, paths
    assert (ROOT / paths[0]).is_dir(), paths
    return ROOT / paths[0]


@pytest.fixture(scope="module")
def logs() -> pd.DataFrame:
    return albstats.read_logs([str(data_dir())])


def test_outputs_written(run):
    res, out = run
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert {
        "report.md",
        "report.html",
        "report.json",
        "error_rate.png",
        "latency.png",
        "latency_breakdown.png",
        "burn_down.png",
        "status_mix.png",
    } <= names
    assert not [n for n in names if n.endswith(".part")]
    assert not list(out.parent.glob(".out.*"))  # the temporary directory is gone
    assert "SLO" in res.output and "requests" in res.output


def test_counts_recomputed(report, logs):
    n = len(logs)
    status = logs["elb_status_code"].astype("int64")
    is5 = status.between(500, 599)
    tgt5 = logs["target_status_code"].astype(str).str.fullmatch(r"5\d\d")
    assert report["requests"] == n
    assert report["bad_requests"] == int(is5.sum())
    assert report["elb_5xx"] == int((is5 & ~tgt5).sum())
    assert report["target_5xx"] == int(tgt5.sum())
    assert report["success_rate"] == pytest.approx(1 - is5.sum() / n, rel=1e-12)
    assert report["slo"]["target"] == pytest.approx(0.99)
    assert report["slo"]["met"] == bool(1 - is5.sum() / n >= 0.99)
    eb = report["error_budget"]
    assert eb["allowed"] == pytest.approx(0.01 * n)
    assert eb["used"] == int(is5.sum())
    assert eb["remaining_fraction"] == pytest.approx((0.01 * n - is5.sum()) / (0.01 * n))
    assert 0 <= report["success_rate"] <= 1


def test_window(report, logs):
    t = logs["time"]
    assert report["window"]["start"] == t.min().strftime("%Y-%m-%dT%H:%M:%S") + (
        t.min().strftime(".%fZ") if t.min().microsecond else "Z"
    )
    end = datetime.fromisoformat(report["window"]["end"].replace("Z", "+00:00"))
    assert t.max().to_pydatetime() < end <= t.max().to_pydatetime() + pd.Timedelta(milliseconds=1)
    assert report["window"]["source"] == "data"


def test_latency_recomputed(report, logs):
    tpt = logs["target_processing_time"].astype("float64")
    v = tpt[tpt >= 0].to_numpy()
    lat = report["latency"]["target_processing_time"]
    assert lat["requests"] == len(v)
    for q in (50, 90, 99):
        assert lat[f"p{q}"] == pytest.approx(np.percentile(v, q), rel=0.01), q
    parts = logs[["request_processing_time", "target_processing_time", "response_processing_time"]].astype("float64")
    ok = (parts >= 0).all(axis=1)
    total = parts[ok].sum(axis=1)
    ls = report["latency"]["slo"]
    assert ls["requests"] == int(ok.sum())
    assert ls["good"] == int((total < 1.0).sum())
    assert ls["given"] is False and ls["threshold_seconds"] == 1.0 and ls["target"] == pytest.approx(0.95)


def test_worst_hour_recomputed(report, logs):
    df = pd.DataFrame({"t": logs["time"], "bad": logs["elb_status_code"].astype("int64").between(500, 599)})
    b = df.set_index("t").resample("5min").agg(["count", "sum"])["bad"]
    start = b.index.min()
    grid = pd.date_range(start, b.index.max(), freq="5min")
    b = b.reindex(grid, fill_value=0)
    req, bad = b["count"].rolling(12).sum(), b["sum"].rolling(12).sum()
    burn = ((bad / req) / 0.01).max()
    assert report["burn_rate"]["worst_1h"]["burn_rate"] == pytest.approx(burn)
    assert report["burn_rate"]["window"] == pytest.approx((1 - report["success_rate"]) / 0.01)
    names = [a["name"] for a in report["burn_rate"]["alerts"]]
    assert names == ["1h/5m", "6h/30m", "3d/6h"]


def test_malformed_lines_counted_independently(report, logs):
    lines = 0
    for p in sorted(data_dir().rglob("*.log.gz")):
        with gzip.open(p, "rt", encoding="utf-8", errors="replace") as f:
            lines += sum(1 for ln in f if ln.strip())
    assert report["malformed_lines"] == lines - len(logs)
    assert report["data_quality"]["lines"] == lines
    assert report["data_quality"]["files"] == len(list(data_dir().rglob("*.log.gz")))


def test_delivery_gaps_from_file_names(report):
    names = [p.name for p in data_dir().rglob("*.log.gz")]
    nodes: dict[str, set[str]] = {}
    for n in names:
        parts = n.split("_")
        nodes.setdefault(parts[5], set()).add(parts[4])
    got = {d["node_ip"]: d for d in report["data_quality"]["delivery"]}
    assert set(got) == set(nodes)
    for ip, ends in nodes.items():
        ts = sorted(datetime.strptime(e, "%Y%m%dT%H%MZ") for e in ends)
        expected_slots = int((ts[-1] - ts[0]).total_seconds() // 300) + 1
        assert got[ip]["files"] == len(ends)
        assert got[ip]["missing"] == expected_slots - len(ends)


def test_security_findings_list(report):
    fs = report["security"]["findings"]
    assert isinstance(fs, list)
    for f in fs:
        assert f["severity"] in ("high", "medium", "low", "info")
        assert f["count"] >= f["clients"] >= 1 and f["examples"]


def test_every_key_documented(report):
    paths = key_paths(report)
    undocumented = sorted(p for p in paths if p not in KEYS and p not in SLO_KEYS)  # SLO_KEYS: docs/slo.md
    assert not undocumented, undocumented
    for must in (
        "window.start",
        "window.end",
        "requests",
        "bad_requests",
        "success_rate",
        "slo.target",
        "slo.met",
        "error_budget.allowed",
        "error_budget.used",
        "error_budget.remaining_fraction",
        "elb_5xx",
        "target_5xx",
        "latency.<metric>.p50",
        "latency.<metric>.p90",
        "latency.<metric>.p99",
        "malformed_lines",
        "security.findings",
    ):
        assert must in paths, must


def test_timestamps_iso_utc(report):
    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z\Z")
    for key in ("generated_at",):
        assert iso.match(report[key])
    assert iso.match(report["window"]["start"]) and iso.match(report["window"]["end"])
    for inc in report["failures"]["incidents"]:
        assert iso.match(inc["start"]) and iso.match(inc["end"])


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIG
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_pngs_are_real_images(run):
    _, out = run
    for p in out.glob("*.png"):
        data = p.read_bytes()
        w, h = png_size(data)
        assert 400 <= w <= 2000 and 200 <= h <= 1500, (p.name, w, h)
        assert len(data) > 5000, p.name


def test_html_self_contained(run):
    _, out = run
    html = (out / "report.html").read_text(encoding="utf-8")
    refs = re.findall(r"""\b(?:src|href|action|poster|srcset)\s*=\s*["']?([^"'\s>]*)""", html, re.I)
    assert refs, "no images embedded"
    assert all(r.startswith("data:image/png;base64,") for r in refs), [r[:40] for r in refs]
    assert not re.search(r"<(script|link|iframe|object|embed|base)\b", html, re.I)
    assert not re.search(r"url\(|@import", html, re.I)
    # every embedded image is one of the PNGs written beside it
    pngs = {base64.b64encode(p.read_bytes()).decode() for p in out.glob("*.png")}
    embedded = {r.split(",", 1)[1] for r in refs}
    assert embedded == pngs
    # http(s):// may appear only as text inside table cells (URLs from the logs), never elsewhere
    outside_cells = re.sub(r"<td>.*?</td>", "", html, flags=re.S)
    assert not re.search(r"https?://", outside_cells, re.I)


def test_markdown_links_local_pngs(run):
    _, out = run
    md = (out / "report.md").read_text(encoding="utf-8")
    imgs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(imgs) == sorted(p.name for p in out.glob("*.png"))
    assert "## Availability" in md and "## Security findings" in md and "## Data quality" in md


def test_fail_on_breach_exit_code(tmp_path, run):
    # same data, cache warm from the module run is not shared (different db); use a small file instead
    log = FIXTURES / "security" / "security-log.txt"
    db = str(tmp_path / "c.duckdb")
    ok = CliRunner().invoke(app, ["report", str(log), "--quiet", "--fail-on-breach", "--db", db])
    assert ok.exit_code == 0, ok.output
    # the latency SLO: 0.051 s total per request, so 10ms@99 is missed -> exit 3 only when asked
    bad = CliRunner().invoke(
        app, ["report", str(log), "--quiet", "--fail-on-breach", "--latency-slo", "10ms@99", "--db", db]
    )
    assert bad.exit_code == 3, bad.output
    assert "latency SLO missed" in bad.output
    info = CliRunner().invoke(app, ["report", str(log), "--quiet", "--latency-slo", "10ms@99", "--db", db])
    assert info.exit_code == 0


def test_json_format_to_stdout(tmp_path):
    log = FIXTURES / "security" / "security-log.txt"
    res = CliRunner().invoke(
        app,
        [
            "report",
            str(log),
            "--format",
            "json",
            "--db",
            str(tmp_path / "c.duckdb"),
            "--since",
            "2026-03-02T10:00:10Z",
            "--until",
            "2026-03-02T10:00:20Z",
        ],
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    # --quiet drops the progress and the terminal summary, never the format asked for (cron pipes it)
    quiet = CliRunner().invoke(
        app,
        [
            "report",
            str(log),
            "--format",
            "json",
            "-q",
            "--db",
            str(tmp_path / "c.duckdb"),
            "--since",
            "2026-03-02T10:00:10Z",
            "--until",
            "2026-03-02T10:00:20Z",
        ],
    )
    assert quiet.exit_code == 0
    assert {**json.loads(quiet.stdout), "generated_at": None} == {**d, "generated_at": None}
    assert d["requests"] == 10 and d["window"]["source"] == "given"
    assert d["window"]["start"] == "2026-03-02T10:00:10Z" and d["window"]["end"] == "2026-03-02T10:00:20Z"
    assert {f["name"] for f in d["security"]["findings"]} >= {"path_traversal", "sql_injection"}


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--slo", "0.99"], "--slo"),
        (["--latency-slo", "1s"], "--latency-slo"),
        (["--format", "pdf"], "--format"),
        (["--since", "2026-03-03", "--until", "2026-03-02"], "not before"),
    ],
)
def test_usage_errors(tmp_path, args, msg):
    log = FIXTURES / "security" / "security-log.txt"
    res = CliRunner().invoke(app, ["report", str(log), "--db", str(tmp_path / "c.duckdb"), *args])
    assert res.exit_code == 2, res.output
    assert msg in res.output and res.output.startswith("albstats: error:")


def test_out_dir_replaced_atomically(tmp_path):
    log = FIXTURES / "security" / "security-log.txt"
    out = tmp_path / "o"
    out.mkdir()
    (out / "report.json").write_text("old")
    (out / "keep.txt").write_text("mine")
    res = CliRunner().invoke(app, ["report", str(log), "--quiet", "-o", str(out), "--db", str(tmp_path / "c.duckdb")])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "report.json").read_text())["requests"] == 70
    assert (out / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]


def test_generated_at_is_utc(report):
    g = datetime.fromisoformat(report["generated_at"].replace("Z", "+00:00"))
    assert g.tzinfo is not None and g.utcoffset() == UTC.utcoffset(None)


def test_docs_document_every_report_key(tmp_path):
    """The report.json reference page is generated from KEYS (checked above against a real report), and the
    report guide points at it and keeps the cron examples."""
    guide = (ROOT / "docs" / "guide" / "report.md").read_text(encoding="utf-8")
    section = guide[guide.index("<!-- section: report -->") : guide.index("<!-- /section: report -->")]
    assert "../reference/report-json.md" in section
    assert "OnCalendar=" in section and "0 6 * * 1" in section
    page = (ROOT / "docs" / "reference" / "report-json.md").read_text(encoding="utf-8")
    assert "<!-- generated: report-json -->" in page
    from albstats.render.data import markdown_reference

    table = markdown_reference()
    assert all(f"| `{k}` |" in table for k in KEYS)


def test_empty_window_with_allow_empty_still_writes(tmp_path):
    log = FIXTURES / "security" / "security-log.txt"
    out = tmp_path / "o"
    res = CliRunner().invoke(
        app,
        [
            "report",
            str(log),
            "--since",
            "2027-01-01T00:00:00Z",
            "-o",
            str(out),
            "--fail-on-breach",
            "--allow-empty",
            "--db",
            str(tmp_path / "c.duckdb"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "warning: NO DATA: no requests between 2027-01-01T00:00:00Z and " in res.output
    d = json.loads((out / "report.json").read_text())
    assert d["requests"] == 0 and d["success_rate"] is None and d["slo"]["met"] is None
    assert d["error_budget"]["remaining_fraction"] is None and d["window"]["end"] is not None
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == PNG_SIG
