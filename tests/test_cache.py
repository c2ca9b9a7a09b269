"""The Parquet dataset cache (albstats.cache): two processes at once, SIGKILL at any moment, compaction,
prune and clear, --no-cache parsing once, and the SQL sandbox of the local engine."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import albstats.cache as cache_mod
from albstats.cache import Cache
from albstats.cli import app
from albstats.engines.local import LocalEngine
from albstats.errors import UsageError
from albstats.generate import generate

runner = CliRunner()


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three days of logs, one node: 864 five-minute files, 30,000 lines."""
    root = tmp_path_factory.mktemp("week")
    generate(root, days=3, lines=30_000, nodes=1, seed=3, control_file=False)
    return root


@pytest.fixture(scope="module")
def truth(week: Path) -> dict[str, int]:
    """Requests per day, straight from the files (no cache at all)."""
    with LocalEngine([str(week)], cache=False) as eng:
        df = eng.sql("SELECT substr(time, 1, 10) AS d, count(*) AS n FROM alb_logs GROUP BY 1 ORDER BY 1")
    return dict(zip(df["d"], df["n"].astype(int)))


def _per_day(eng: LocalEngine) -> dict[str, int]:
    df = eng.sql("SELECT substr(time, 1, 10) AS d, count(*) AS n FROM alb_logs GROUP BY 1 ORDER BY 1")
    return dict(zip(df["d"], df["n"].astype(int)))


def _consistent(db: Path) -> Cache:
    """The manifest names exactly the parts on disk, no row twice, no temporary file anywhere."""
    c = Cache(db)
    m = c.load()
    on_disk = {str(p.relative_to(c.data)) for p in c.data.rglob("*") if p.is_file()}
    assert on_disk == set(m["parts"]) | set(m["retired"])
    for rel, p in m["parts"].items():
        assert pq.read_metadata(c.data / rel).num_rows == p["rows"]
    assert sum(p["rows"] for p in m["parts"].values()) == sum(e["rows"] for e in m["files"].values())
    assert not list(db.glob("manifest.json.*"))
    return c


QUERY = """
import sys, json
import albstats.cache
albstats.cache.COMMIT_SECONDS = float(sys.argv[3])
from albstats.engines.local import LocalEngine
with LocalEngine([sys.argv[1]], db=sys.argv[2]) as eng:
    df = eng.sql("SELECT substr(time, 1, 10) AS d, count(*) AS n FROM alb_logs GROUP BY 1 ORDER BY 1")
    print(json.dumps({"days": dict(zip(df["d"], df["n"].astype(int).tolist())), "parsed": eng.last_ingest.parsed}))
"""


def _spawn(week: Path, db: Path, commit: float = 5.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", QUERY, str(week), str(db), str(commit)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.integration  # slow: 6 s under load
def test_two_processes_on_one_empty_cache_both_answer_and_nothing_is_added_twice(week, truth, tmp_path):
    db = tmp_path / "c"
    procs = [_spawn(week, db) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    got = [json.loads(o) for o, _ in outs]
    assert all(g["days"] == truth for g in got)
    assert sorted(g["parsed"] for g in got) == [0, 864]  # the second waited, then found everything cached
    _consistent(db)


@pytest.mark.integration  # slow: 3 s under load
def test_a_reader_never_waits_for_a_writer(week, truth, tmp_path):
    db = tmp_path / "c"
    with LocalEngine([str(week)], db=db) as eng:
        assert _per_day(eng) == truth
    fd = os.open(db / "writer.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer busy for as long as this test likes
    try:
        p = _spawn(week, db)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert json.loads(out) == {"days": truth, "parsed": 0}
    finally:
        os.close(fd)


@pytest.mark.integration  # slow: kills fills after up to 3.5 s
@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0, 3.5])
def test_sigkill_at_any_moment_of_a_fill_leaves_a_usable_cache(week, truth, tmp_path, delay):
    db = tmp_path / "c"
    p = _spawn(week, db, commit=0.05)  # commit often, so kills land before, between and after commits
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    q = _spawn(week, db)
    out, err = q.communicate(timeout=300)
    assert q.returncode == 0, err
    got = json.loads(out)
    assert got["days"] == truth
    c = _consistent(db)  # the next fill swept what the killed one left
    spill = db / "tmp"  # removed with the last process's own folder; a killed process's folder is swept
    assert not (spill.exists() and [d for d in spill.iterdir() if d.name.startswith(f"{p.pid}-")])
    assert len(c.load()["files"]) == 864


@pytest.mark.integration  # slow: 6 s under load
def test_an_error_during_a_fill_keeps_what_was_committed_and_leaves_no_part(week, truth, tmp_path, monkeypatch):
    db = tmp_path / "c"
    from albstats import dataset
    from albstats.parsing import pool

    real = dataset.DatasetSink.write

    def failing(self, batches, files):  # type: ignore[no-untyped-def]
        if any("/2026/11/18/" in name for name, _ in files):  # in a worker: the third day's files
            raise RuntimeError("disk full")
        return real(self, batches, files)

    monkeypatch.setattr(cache_mod, "COMMIT_SECONDS", 0.0)
    monkeypatch.setattr(pool, "FRAGMENT_BYTES", 256 << 10)  # many small groups of files
    monkeypatch.setattr(dataset.DatasetSink, "write", failing)
    with pytest.raises(RuntimeError, match="disk full"), LocalEngine([str(week)], db=db) as eng:
        eng.query("error_rate")
    c = _consistent(db)
    kept = len(c.load()["files"])
    assert 0 < kept < 864  # what was committed before the error stays
    monkeypatch.setattr(dataset.DatasetSink, "write", real)
    with LocalEngine([str(week)], db=db) as eng:
        assert _per_day(eng) == truth
        assert eng.last_ingest.parsed == 864 - kept
    _consistent(db)


def test_small_parts_are_compacted_per_day(week, truth, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "COMPACT_PARTS", 3)
    db = tmp_path / "c"
    day = sorted(week.rglob("16"))[0]
    files = sorted(day.glob("*.log.gz"))[:12]
    for f in files:  # one file per fill, as a cron job every five minutes does
        with LocalEngine([str(f)], db=db) as eng:
            eng.query("error_rate")
    c = _consistent(db)
    m = c.load()
    assert len(m["parts"]) <= 3 + 1
    with LocalEngine([str(f) for f in files], db=db) as eng:
        n = int(eng.sql("SELECT count(*) AS n FROM alb_logs")["n"].iloc[0])
        assert eng.last_ingest.parsed == 0
    assert n == sum(e["rows"] for e in m["files"].values())


def test_prune_and_clear(week, truth, tmp_path):
    db = tmp_path / "c"
    with LocalEngine([str(week)], db=db) as eng:
        assert _per_day(eng) == truth
    r = runner.invoke(app, ["cache", "info", "--db", str(db)])
    assert r.exit_code == 0 and "864 log files" in r.output and "30000" in r.output
    # the generated days are 2026-11-16 .. 18; keep 17 and 18 (delivery days), drop the 16th
    from datetime import UTC, datetime, timedelta

    c = Cache(db)
    parts, files = c.prune(timedelta(days=2), now=datetime(2026, 11, 19, tzinfo=UTC))
    assert parts >= 1 and files == len(list(week.rglob("2026/11/16/*.log.gz")))
    assert {p["day"] for p in c.load()["parts"].values()} == {"2026/11/17", "2026/11/18", "2026/11/19"}
    _consistent(db)
    r = runner.invoke(app, ["cache", "prune", "--older-than", "1d", "--db", str(db)])
    assert r.exit_code == 0 and "pruned" in r.output
    assert not Cache(db).load()["files"]  # the test data is from November 2026, before yesterday
    with LocalEngine([str(week)], db=db) as eng:
        assert _per_day(eng) == truth  # parsed again when asked for
        # a reader holds its parts while another process clears the cache
        r = runner.invoke(app, ["cache", "clear", "--db", str(db)])
        assert r.exit_code == 0 and "still in use" in r.output
        assert _per_day(eng) == truth
    r = runner.invoke(app, ["cache", "clear", "--db", str(db)])
    assert r.exit_code == 0 and "still in use" not in r.output
    assert not list((db / "data").rglob("*.parquet"))
    r = runner.invoke(app, ["cache", "prune", "--older-than", "soon", "--db", str(db)])
    assert r.exit_code == 2 and "--older-than" in r.output


def test_a_window_reads_only_its_days(week, tmp_path):
    db = tmp_path / "c"
    with LocalEngine([str(week)], db=db) as eng:
        eng.query("error_rate")
        view = eng._con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'alb_logs_ts'").fetchone()[0]
        assert view.count(".parquet") == len(Cache(db).load()["parts"])
        eng.query("error_rate", since="2026-11-17T01:00:00Z", until="2026-11-17T02:00:00Z")
        view = eng._con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'alb_logs_ts'").fetchone()[0]
        assert "day%3D2026%252F11%252F16" not in view and "%2F11%2F16" not in view  # the 16th is never read
        assert "%2F11%2F17" in view


def test_no_cache_parses_each_file_once_per_report_and_only_the_columns_read(week, truth, monkeypatch):
    from albstats import parse

    calls = {"n": 0}
    real = parse._iter

    def counting(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(parse, "_iter", counting)
    with LocalEngine([str(week)], cache=False) as eng:
        for name in ("error_rate", "errors_by_path", "latency_percentiles", "status_codes", "slowest_requests"):
            eng.query(name)
        assert calls["n"] == 1
        (ds,) = [p for p in Path(eng._tmpdir).iterdir() if p.name.startswith("ds")]
        names = set(pq.read_schema(next(ds.rglob("*.parquet"))).names)
        assert {"time", "elb_status_code", "request_url"} <= names
        from albstats.engines.translate import saved_columns
        from albstats.schema import ACCESS

        assert names == set(saved_columns() or ()) | {"time"}  # what the saved queries read, once
        assert "redirect_url" not in names and len(names) < len(ACCESS.names) - 10
        tmp = eng._tmpdir
    assert not os.path.exists(tmp)


# --- the sandbox ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandboxed(week: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    eng = LocalEngine([str(week)], db=tmp_path_factory.mktemp("sb") / "c")
    eng.query("error_rate")
    yield eng
    eng.close()


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("SELECT * FROM read_text('/etc/hostname')", 'Cannot access file "/etc/hostname"'),
        ("SELECT * FROM read_csv('/etc/passwd')", 'Cannot access file "/etc/passwd"'),
        ("SELECT * FROM read_json('/etc/passwd')", 'Cannot access file "/etc/passwd"'),
        ("SELECT * FROM read_parquet('/tmp/other.parquet')", 'Cannot access file "/tmp/other.parquet"'),
        ("SELECT * FROM read_csv_auto('/etc/passwd')", 'Cannot access file "/etc/passwd"'),
        ("SELECT count(*) AS n FROM read_blob('/etc/*')", 'Cannot access file "/etc/*"'),
        ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "https://example.com/x.parquet"),
        ("SELECT * FROM read_text('/work/../etc/hostname')", "Cannot access file"),
    ],
)
def test_user_sql_cannot_read_files_or_the_network(sandboxed: LocalEngine, sql: str, needle: str) -> None:
    with pytest.raises(UsageError, match="not allowed: SQL here reads alb_logs only") as e:
        sandboxed.sql(sql)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
        ("COPY alb_logs TO '/tmp/x.parquet' (FORMAT parquet)", "COPY"),
        ("ATTACH '/tmp/x.duckdb' AS x", "ATTACH"),
        ("INSTALL httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("SET enable_external_access = true", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("  -- a comment\n  EXPORT DATABASE '/tmp/x'", "EXPORT"),
        ("SELECT 1; COPY (SELECT 1) TO '/tmp/y.csv'", None),
    ],
)
def test_user_sql_statements_other_than_one_select_are_refused(
    sandboxed: LocalEngine, sql: str, kind: str | None, tmp_path: Path
) -> None:
    with pytest.raises(UsageError) as e:
        sandboxed.sql(sql)
    if kind:
        assert str(e.value).startswith(f"{kind} is not allowed")
    assert not Path("/tmp/x.csv").exists() and not Path("/tmp/y.csv").exists()


def test_the_sandbox_leaves_saved_queries_and_alb_logs_alone(sandboxed: LocalEngine, truth) -> None:
    assert _per_day(sandboxed) == truth
    assert int(sandboxed.query("error_rate", bucket="1d")["requests"].sum()) == sum(truth.values())


def test_sql_run_on_the_command_line_says_what_is_not_allowed(week: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "c")
    r = runner.invoke(app, ["sql", "run", "SELECT * FROM read_text('/etc/hostname')", str(week), "--db", db, "-q"])
    assert r.exit_code == 2
    assert r.stderr.startswith("albstats: error: not allowed:") and r.stderr.count("\n") == 1
    r = runner.invoke(app, ["sql", "run", "ATTACH '/etc/passwd' AS p", str(week), "--db", db, "-q"])
    assert (
        r.exit_code == 2
        and r.stderr == "albstats: error: ATTACH is not allowed: SQL here is one SELECT reading alb_logs\n"
    )
