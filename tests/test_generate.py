"""The synthetic log generator: determinism, S3 layout, parseability, distributions, CLI, fixtures."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from albstats.cli import app
from albstats.errors import UsageError
from albstats.generate import ERAS, INTERVAL_S, PROFILES, GenerateSummary, generate, line_template
from albstats.logformat import format_line
from albstats.parse import iter_batches, parse_line, tokenize
from albstats.schema import ACCESS
from albstats.sources import KEY_RE, expand
from tests.conftest import FIXTURES

#: The documented fixture command (fixtures/README.md), as library arguments.
FIXTURE_ARGS = dict(start="2026-11-16T00:00:00Z", days=1, rps=0.5, seed=1, profile="default")
FIXTURE_CMD = (
    "albstats generate -o fixtures --start 2026-11-16T00:00:00Z --days 1 --rps 0.5 --seed 1 --scenario default"
)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _lines(root: Path) -> list[str]:
    out: list[str] = []
    for p in sorted(root.rglob("*.log.gz")):
        out.extend(gzip.decompress(p.read_bytes()).decode().splitlines())
    return out


def _rows(root: Path) -> list[dict]:
    names = ACCESS.names
    rows = []
    for line in _lines(root):
        row = parse_line(line)
        assert len(row) == len(names)
        rows.append(dict(zip(names, row)))
    return rows


SAMPLE_ARGS = dict(days=1, lines=12000, seed=7, profile="default")
_SUMMARIES: dict[Path, GenerateSummary] = {}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A day of default-profile traffic with an exact line count, parsed once for several tests."""
    out = tmp_path_factory.mktemp("gen-default")
    _SUMMARIES[out] = generate(out, **SAMPLE_ARGS)
    return out


def sample_summary(path: Path) -> GenerateSummary:
    return _SUMMARIES[path]


@pytest.fixture(scope="module")
def sample_rows(sample) -> list[dict]:
    return _rows(sample)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d, seed in ((a, 3), (b, 3), (c, 4)):
        generate(d, days=0.05, rps=3, seed=seed)
    fa, fb = _files(a), _files(b)
    assert len(fa) > 5
    assert fa == fb
    assert _lines(a) != _lines(c)
    # gzip header: no mtime, no file name (FLG byte 0), so bytes do not depend on when or where
    gz = next(v for k, v in fa.items() if k.endswith(".gz"))
    assert gz[3] == 0 and gz[4:8] == b"\0\0\0\0"


def test_key_layout_delivery_date_and_sorted_times(tmp_path):
    s = generate(tmp_path, start="2026-11-16T23:45:00Z", days=4 / 288, rps=4, seed=2, profile="hosp")
    keys = [p for p in sorted(tmp_path.rglob("*")) if p.is_file()]
    ctl = [p for p in keys if p.name == "ELBAccessLogTestFile"]
    assert [str(p.relative_to(tmp_path)) for p in ctl] == ["AWSLogs/123456789012/ELBAccessLogTestFile"]
    assert ctl[0].read_text().startswith(f"Enable AccessLog for ELB: {s.lb} at ")
    logs = [p for p in keys if p.name.endswith(".log.gz")]
    assert len(logs) == 4 * PROFILES["hosp"].nodes == s.files
    ends = set()
    for p in logs:
        rel = p.relative_to(tmp_path).as_posix()
        m = KEY_RE.search(p.name)
        assert m, p.name
        assert m["account"] == "123456789012" and m["region"] == "us-east-2" and not m["conn"]
        assert m["lb"] == s.lb.replace("/", ".")
        end = datetime.strptime(m["end"], "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        ends.add(end)
        # the folder is the delivery date: the file ending 00:00 holds 23:55-00:00 rows but sits in the 17th
        assert rel.startswith(f"AWSLogs/123456789012/elasticloadbalancing/us-east-2/{end:%Y/%m/%d}/"), rel
        lines = gzip.decompress(p.read_bytes()).decode().splitlines()
        times = [ln.split(" ", 2)[1] for ln in lines]
        assert times == sorted(times)
        for t in times:
            ts = datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            assert end - timedelta(seconds=INTERVAL_S) <= ts < end
        assert all(ln.split(" ")[-1] == m["ip"] for ln in lines)  # ip_address = the node of the file
    assert sorted(e.strftime("%d %H:%M") for e in ends) == ["16 23:50", "16 23:55", "17 00:00", "17 00:05"]
    midnight = [p for p in logs if "20261117T0000Z" in p.name]
    assert midnight and all("/2026/11/17/" in p.as_posix() for p in midnight)
    assert all(
        ln.split(" ")[1].startswith("2026-11-16T23:5")
        for p in midnight
        for ln in gzip.decompress(p.read_bytes()).decode().splitlines()
    )


def test_every_line_parses_and_round_trips_through_format_line(sample, sample_rows):
    from albstats.parse import ParseStats

    stats = ParseStats()
    n = sum(b.num_rows for b in iter_batches(expand([str(sample)]), stats=stats))
    assert n == stats.lines == 12000
    assert stats.bad_lines == 0 and not stats.errors
    for line, row in zip(_lines(sample), sample_rows, strict=True):
        assert format_line(row) == line


def test_lines_option_gives_exact_count(tmp_path):
    s = generate(tmp_path, days=0.5, lines=5000, seed=1, nodes=2, compresslevel=1)
    assert s.lines == 5000 == len(_lines(tmp_path))
    assert s.files == 144 * 2  # 144 intervals x 2 nodes; 3.5 days give the benchmark's 2016 files


@pytest.mark.parametrize("era", ERAS)
def test_format_eras(tmp_path, era):
    generate(tmp_path, days=0.01, rps=0.5, seed=5, format_era=era, profile="hosp")
    lines = _lines(tmp_path)
    assert lines
    for line in lines:
        assert len(tokenize(line)) == era
        row = dict(zip(ACCESS.names, parse_line(line)))
        assert row["elb_status_code"] >= 100
        if era == 36:
            assert row["extra_fields"] == '"-" "-"'


def test_template_is_format_line_output():
    # the fast path's template comes from format_line: the same line for the same values
    tmpl, n = line_template("app/x/1", "3.3.3.3")
    vals = (
        "h2",
        "2026-11-16T10:00:00",
        123,
        "2001:db8::1",
        5555,
        "10.0.0.1:80",
        0.0,
        1.2345,
        0.0,
        "200",
        "200",
        10,
        20,
        "GET",
        "https://h:443",
        "/a b",
        "HTTP/2.0",
        'x \\"y\\"',
        "c",
        "TLSv1.3",
        "arn",
        0x6AFADFD7,
        "ab" * 12,
        "h",
        "-",
        "10",
        "2026-11-16T09:59:58",
        7,
        "forward",
        "-",
        "-",
        "10.0.0.1:80",
        "200",
        "-",
        "-",
        "TID_1",
    )
    assert n == len(vals)
    expect = format_line(
        {
            "type": "h2",
            "time": "2026-11-16T10:00:00.000123Z",
            "elb": "app/x/1",
            "client_ip": "2001:db8::1",
            "client_port": 5555,
            "target_ip": "10.0.0.1",
            "target_port": 80,
            "request_processing_time": 0.0,
            "target_processing_time": 1.2345,
            "response_processing_time": 0.0,
            "elb_status_code": 200,
            "target_status_code": "200",
            "received_bytes": 10,
            "sent_bytes": 20,
            "request_verb": "GET",
            "request_url": "https://h:443/a b",
            "request_proto": "HTTP/2.0",
            "user_agent": 'x \\"y\\"',
            "ssl_cipher": "c",
            "ssl_protocol": "TLSv1.3",
            "target_group_arn": "arn",
            "trace_id": f"Root=1-6afadfd7-{'ab' * 12}",
            "domain_name": "h",
            "chosen_cert_arn": "-",
            "matched_rule_priority": "10",
            "request_creation_time": "2026-11-16T09:59:58.007000Z",
            "actions_executed": "forward",
            "redirect_url": "-",
            "lambda_error_reason": "-",
            "target_port_list": "10.0.0.1:80",
            "target_status_code_list": "200",
            "classification": "-",
            "classification_reason": "-",
            "conn_trace_id": "TID_1",
            "transformed_host": None,
            "transformed_uri": None,
            "request_transform_status": None,
            "ip_address": "3.3.3.3",
        }
    )
    assert tmpl % vals == expect


def _share(rows: list[dict], pred) -> float:
    return sum(1 for r in rows if pred(r)) / len(rows)


def _is5xx(r: dict) -> bool:
    return 500 <= r["elb_status_code"] < 600


def test_default_profile_distributions(sample_rows):
    rows = sample_rows
    assert 0.004 <= _share(rows, _is5xx) <= 0.013
    assert 0.05 <= _share(rows, lambda r: ":" in r["client_ip"]) <= 0.11
    assert 0.005 <= _share(rows, lambda r: r["target_processing_time"] >= 2) <= 0.025
    assert 0.002 <= _share(rows, lambda r: '\\"' in r["user_agent"]) <= 0.01
    assert any("\\\\" in r["user_agent"] for r in rows)
    types = {r["type"] for r in rows}
    assert types == {"http", "https", "h2", "grpcs", "ws", "wss"}
    ws = [r for r in rows if r["type"] in ("ws", "wss") and r["elb_status_code"] == 101]
    assert ws and all(r["target_processing_time"] < 1 for r in ws)  # the upgrade, not the connection
    iso = "%Y-%m-%dT%H:%M:%S.%fZ"
    assert all(
        (datetime.strptime(r["time"], iso) - datetime.strptime(r["request_creation_time"], iso)) > timedelta(seconds=5)
        for r in ws
    )  # a WebSocket line is written when it closes
    elb5 = [r for r in rows if _is5xx(r) and r["target_status_code"] == "-"]
    tgt5 = [r for r in rows if _is5xx(r) and r["target_status_code"] == str(r["elb_status_code"])]
    assert elb5 and tgt5
    assert {r["elb_status_code"] for r in elb5} == {502, 503, 504}
    assert all(r["target_processing_time"] == -1.0 for r in elb5)
    assert all(r["target_ip"] == "" for r in elb5 if r["elb_status_code"] == 503)
    c460 = [r for r in rows if r["elb_status_code"] == 460]
    assert c460 and all(r["target_status_code"] == "-" for r in c460)
    redirects = [r for r in rows if r["elb_status_code"] == 301]
    assert redirects and all(
        r["actions_executed"] == "redirect" and r["type"] == "http" and r["redirect_url"].startswith("https://")
        for r in redirects
    )
    waf = [r for r in rows if r["actions_executed"] == "waf"]
    assert waf and all(r["elb_status_code"] == 403 for r in waf)
    assert {r["ssl_protocol"] for r in rows} >= {"TLSv1.2", "TLSv1.3", "TLSv1", "-"}
    assert {r["classification"] for r in rows} >= {"Ambiguous", "Severe"}
    assert all(re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}|-", r["trace_id"]) for r in rows)
    assert all(re.fullmatch(r"TID_[0-9a-f]{32}", r["conn_trace_id"]) for r in rows)
    uas = " ".join({r["user_agent"] for r in rows})
    assert sum(s in uas for s in ("sqlmap", "Nikto", "zgrab", "masscan", "Nuclei")) >= 3
    urls = " ".join(r["request_url"] or "" for r in rows)
    assert "/.env" in urls or "/.git/config" in urls or "/wp-admin" in urls or "etc/passwd" in urls
    assert re.search(r"/api/v1/records/[0-9a-f]{8}-[0-9a-f]{4}-", urls)
    assert re.search(r"/api/v1/attachments/[0-9a-f]{40}/download", urls)


def test_incident_window_is_visible(sample, sample_rows):
    s = sample_summary(sample)
    assert len(s.incidents) == 1
    inc = s.incidents[0]
    assert timedelta(minutes=20) <= inc.end - inc.start <= timedelta(minutes=60)
    lo, hi = inc.start.strftime("%Y-%m-%dT%H:%M:%S"), inc.end.strftime("%Y-%m-%dT%H:%M:%S")
    inside = [r for r in sample_rows if lo <= r["time"] < hi and inc.target_group in r["target_group_arn"]]
    outside = [r for r in sample_rows if not lo <= r["time"] < hi]
    assert _share(inside, _is5xx) > 4 * _share(outside, _is5xx)
    assert _share(inside, lambda r: r["target_processing_time"] >= 2) > 2 * _share(
        outside, lambda r: r["target_processing_time"] >= 2
    )


def test_hosp_profile_breaches_a_99_percent_slo(tmp_path):
    s = generate(tmp_path, days=0.5, lines=8000, seed=3, profile="hosp")
    assert len(s.incidents) >= 2
    rows = _rows(tmp_path)
    five = _share(rows, _is5xx)
    slow = _share(rows, lambda r: r["target_processing_time"] >= 2)
    assert 0.03 <= five <= 0.08
    assert slow >= 0.04
    good = _share(
        rows, lambda r: r["elb_status_code"] < 500 and r["target_processing_time"] < 2 and r["elb_status_code"] != 460
    )
    assert good < 0.99


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--rps", "-1"], "--rps"),
        (["--days", "0"], "--days"),
        (["--start", "yesterday"], "--start"),
        (["--start", "2026-11-16T00:02:00Z"], "--start"),
        (["--scenario", "nope"], "--scenario"),
        (["--format-era", "31"], "--format-era"),
        (["--lines", "-5"], "--lines"),
        (["--rps", "2", "--lines", "10"], "--lines"),
        (["--nodes", "0"], "--nodes"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, args, word):
    res = CliRunner().invoke(app, ["generate", "-o", str(tmp_path / "o"), *args])
    assert res.exit_code == UsageError.exit_code, res.output
    assert word in res.output and "albstats: error:" in res.output
    assert not list((tmp_path / "o").rglob("*.gz")) if (tmp_path / "o").exists() else True


def test_out_that_cannot_be_created_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = CliRunner().invoke(app, ["generate", "-o", str(blocker / "sub"), "--days", "0.01", "--lines", "5"])
    assert res.exit_code == UsageError.exit_code, res.output
    assert "-o" in res.output and "Traceback" not in res.output


def test_scan_bursts_are_ground_truth(sample, sample_rows):
    bursts = sample_summary(sample).scan_bursts
    assert len(bursts) >= 4
    for b in bursts:
        lo, hi = b.start.strftime("%Y-%m-%dT%H:%M:%S"), b.end.strftime("%Y-%m-%dT%H:%M:%S")
        mine = [r for r in sample_rows if r["client_ip"] == b.client_ip]
        inside = [r for r in mine if lo <= r["time"] < hi]
        assert inside and len(inside) >= 0.5 * len(mine)
        assert all(r["user_agent"] in (b.user_agent, "-") for r in inside)


def test_cli_writes_and_summarises(tmp_path):
    res = CliRunner().invoke(app, ["generate", "-o", str(tmp_path), "--days", "0.02", "--lines", "300", "--seed", "9"])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "300 lines" in res.output and "span 2026-11-16T00:" in res.output
    assert len(_lines(tmp_path)) == 300


def test_committed_fixtures_match_the_documented_command(tmp_path):
    readme = (FIXTURES / "README.md").read_text()
    assert FIXTURE_CMD in readme
    committed = FIXTURES / "AWSLogs"
    names = sorted(p.relative_to(FIXTURES).as_posix() for p in committed.rglob("*.log.gz"))
    assert len(names) == 576
    pick = {0, 1, 100, 140, 200, 287}  # a few intervals, including midnight's delivery into the next day
    generate(tmp_path, only_intervals=pick, **FIXTURE_ARGS)
    regen = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.log.gz"))
    assert len(regen) == 2 * len(pick)
    assert set(regen) <= set(names)
    for rel in regen:  # compare content, not gzip bytes (zlib builds may compress differently)
        assert gzip.decompress((tmp_path / rel).read_bytes()) == gzip.decompress((FIXTURES / rel).read_bytes())
    assert (tmp_path / "AWSLogs/123456789012/ELBAccessLogTestFile").read_bytes() == (
        committed / "123456789012/ELBAccessLogTestFile"
    ).read_bytes()
    total = sum(len(gzip.decompress(p.read_bytes()).splitlines()) for p in committed.rglob("*.log.gz"))
    assert 40000 <= total <= 60000


# --- hand-picked edge-case fixtures (fixtures/edge, written by fixtures/edge/make_edge.py) -------

EDGE = FIXTURES / "edge"


def _edge_manifest() -> dict:
    import json

    return json.loads((EDGE / "MANIFEST.json").read_text())


def _text(p: Path) -> str:
    raw = p.read_bytes()
    if p.name.endswith(".gz"):
        import zlib

        raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)  # tolerates the truncated one
    return raw.decode()


def test_edge_fixtures_are_what_make_edge_writes(tmp_path):
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "fixtures" / "edge"
    copy.mkdir(parents=True)
    shutil.copy(EDGE / "make_edge.py", copy)
    subprocess.run([sys.executable, str(copy / "make_edge.py")], check=True, timeout=120)
    made = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    have = sorted(p.relative_to(EDGE).as_posix() for p in EDGE.rglob("*") if p.is_file())
    assert made == have
    for rel in made:
        assert _text(copy / rel) == _text(EDGE / rel), rel
    manifest = _edge_manifest()
    assert set(manifest) == set(have) - {"MANIFEST.json", "make_edge.py"}


def test_edge_access_files_match_their_manifest_line_by_line():
    from albstats.parse import BadLine

    names = ACCESS.names
    seen_eras = set()
    for rel, info in _edge_manifest().items():
        if info["kind"] != "alb-access" or "error" in info:
            continue
        lines = _text(EDGE / rel).splitlines()
        rows, bad = [], []
        for n, ln in enumerate(lines, 1):
            try:
                rows.append(dict(zip(names, parse_line(ln))))
            except BadLine:
                bad.append(n)
        assert len(rows) == info["rows"] and len(bad) == info["bad_lines"], rel
        if "bad_line_numbers" in info:
            assert bad == info["bad_line_numbers"]
        if "tokens" in info:
            seen_eras.add(info["tokens"])
            assert len(tokenize(lines[0])) == info["tokens"]
        for col, values in info.get("expect", {}).items():
            assert [r[col] for r in rows] == values, (rel, col)
    assert seen_eras == set(ERAS)


def test_edge_folders_and_rejections_through_the_reader():
    from albstats.errors import InputError
    from albstats.parse import ParseStats

    m = _edge_manifest()
    stats = ParseStats()
    n = sum(b.num_rows for b in iter_batches([str(EDGE / "AWSLogs")], stats=stats))
    assert n == 3 and stats.bad_lines == 0  # the ELBAccessLogTestFile control object is skipped
    for rel in m:
        if rel.startswith("not-alb/"):
            with pytest.raises(InputError, match="Classic|Network"):
                list(iter_batches([str(EDGE / rel)]))
    dmg = next(rel for rel in m if rel.startswith("damaged/"))
    stats = ParseStats()
    n = sum(b.num_rows for b in iter_batches([str(EDGE / dmg)], stats=stats))
    assert stats.errors and "truncated" in stats.errors[0]
    assert n == m[dmg]["lines_before_damage"]
    conn = next(rel for rel in m if rel.startswith("conn_log_"))
    assert sum(b.num_rows for b in iter_batches([str(EDGE / conn)], kind="connection")) == 4


def test_edge_bad_lines_are_counted_by_the_reader():
    from albstats.parse import ParseStats

    info = _edge_manifest()["bad-lines.log.gz"]
    stats = ParseStats()
    try:
        n = sum(b.num_rows for b in iter_batches([str(EDGE / "bad-lines.log.gz")], stats=stats))
    except Exception as e:  # a crash is a parser bug: report it as a failure with the reason, not an error
        pytest.fail(f"reading bad-lines.log.gz crashed instead of counting bad lines: {type(e).__name__}: {e}")
    assert n == info["rows"] and stats.bad_lines == info["bad_lines"]
    assert [int(x.split(":")[1]) for x in stats.bad_examples(10)][:5] == info["bad_line_numbers"][:5]
