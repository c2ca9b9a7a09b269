"""Bad arguments across commands: one line naming the argument, a non-zero exit, no traceback, nothing
written; and outputs that are not regular files (pipes, links) written without being replaced."""

from __future__ import annotations

import gzip
import io
import os
import stat
import threading
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from albstats.cli import app

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "AWSLogs"
ONE = str(sorted(FIXTURES.rglob("*.log.gz"))[0])

runner = CliRunner()


@pytest.fixture()
def places(tmp_path: Path) -> dict[str, str]:
    """A folder, a file, and a path under that file."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    return {
        "FOLDER": str(tmp_path / "folder"),
        "FILE": str(tmp_path / "file"),
        "UNDER_FILE": str(tmp_path / "file" / "out.csv"),
        "DB": str(tmp_path / "c.duckdb"),
        "TMP": str(tmp_path),
    }


CASES = [
    (["query", "error_rate", ONE, "-o", "FOLDER", "-f", "csv"], "-o FOLDER: is a folder"),
    (["query", "error_rate", ONE, "-o", "", "-f", "csv"], "-o: the name is empty"),
    (["query", "error_rate", ONE, "-o", "UNDER_FILE", "-f", "csv"], "FILE is a file, not a folder"),
    (["sql", "run", "SELECT 1 AS x", ONE, "-o", "FOLDER"], "-o FOLDER: is a folder"),
    (["parse", ONE, "-o", "FOLDER"], "-o FOLDER: is a folder"),
    (["parse", ONE, "-o", "UNDER_FILE"], "FILE is a file, not a folder"),
    (["report", ONE, "-o", "FILE"], "-o FILE: is a file; give a folder"),
    (["weekly", ONE, "-o", "FILE"], "-o FILE: is a file; give a folder"),
    (["generate", "-o", "FOLDER", "--lines", "99999999999999999999"], "--lines: 99999999999999999999 is out of range"),
    (["generate", "-o", "FOLDER", "--compress-level", "11"], "--compress-level: 11"),
    (["whatif", ONE, "--seed", "-1"], "--seed: -1"),
    (["sql", "run", "SELECT ' FROM alb_logs", ONE], "does not parse as Athena (Trino) SQL"),
    (["sql", "run", "'; DROP TABLE files; --", ONE], "does not parse as Athena (Trino) SQL"),
    (["query", "error_rate", ONE, "--db", "UNDER_FILE"], "--db UNDER_FILE: cannot make its folder FILE"),
]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[f"{c[0][0]}: {c[1][:32]}" for c in CASES])
def test_one_line_errors(places: dict[str, str], args: list[str], needle: str) -> None:
    full = [places.get(a, a) for a in args]
    if full[0] in ("query", "sql", "report", "weekly"):
        full += ([] if "--db" in full else ["--db", places["DB"]]) + ["-q"]
    before = sorted(p.name for p in Path(places["TMP"]).rglob("*"))
    r = runner.invoke(app, full)
    assert r.exit_code == 2, r.output
    for k in sorted(places, key=len, reverse=True):  # UNDER_FILE before FILE
        needle = needle.replace(k, places[k])
    assert r.stderr.startswith("albstats: error: ") and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.exception is None or isinstance(r.exception, SystemExit)
    after = sorted(p.name for p in Path(places["TMP"]).rglob("*"))
    assert [n for n in after if n not in before and n != "c.duckdb"] == []  # nothing half-written


def test_a_file_system_error_is_one_line_with_the_os_reason(tmp_path: Path) -> None:
    """Errors from the OS (here: a folder that cannot hold files) are reported in its words, exit 1."""
    r = runner.invoke(app, ["parse", ONE, "-o", "/sys/albstats-test.jsonl", "-q"])
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith("albstats: error: /sys/") and len(r.stderr.strip().splitlines()) == 1


def _read_fifo(path: Path, into: io.BytesIO) -> threading.Thread:
    def run() -> None:
        with open(path, "rb") as fh:
            into.write(fh.read())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("via_link", [False, True], ids=["fifo", "link-to-fifo (like /dev/stdout)"])
@pytest.mark.parametrize("cmd", ["query", "parse"])
def test_a_pipe_output_is_written_into_not_replaced(tmp_path: Path, cmd: str, via_link: bool) -> None:
    """`-o /dev/stdout`, `-o >(gzip > x)`: Parquet (which pyarrow would seek in, and delete on failure)
    arrives whole through the pipe, and the pipe or link is still there afterwards."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = fifo
    if via_link:
        target = tmp_path / "stdout"
        target.symlink_to(fifo)
    got = io.BytesIO()
    reader = _read_fifo(fifo, got)
    args = ["query", "error_rate", ONE, "--db", str(tmp_path / "c.duckdb")] if cmd == "query" else ["parse", ONE]
    r = runner.invoke(app, [*args, "-f", "parquet", "-o", str(target), "-q"])
    reader.join(timeout=30)
    assert r.exit_code == 0, r.output
    assert not reader.is_alive()
    df = pd.read_parquet(io.BytesIO(got.getvalue()))
    lines = len(gzip.decompress(Path(ONE).read_bytes()).splitlines())
    assert (df["requests"].sum() if cmd == "query" else len(df)) == lines
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert target.is_symlink() == via_link
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("c.duckdb")) == sorted(
        ["pipe", *(["stdout"] if via_link else [])]
    )


def test_a_link_to_a_file_keeps_the_link_and_the_mode(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    r = runner.invoke(
        app, ["query", "error_rate", ONE, "--db", str(tmp_path / "c.duckdb"), "-f", "csv", "-o", str(link), "-q"]
    )
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and real.read_text().startswith("bucket_start,requests,")
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["sql", "show", "top_clients", "--limit", "nan"],
            "'--limit': Input should be a valid integer, unable to parse string as an integer (see albstats sql show "
            "--help)",
        ),
        (["query", "error_rate", ONE, "--bogus"], "No such option: --bogus (see albstats query --help)"),
        (["qeury"], "No such command 'qeury'. Did you mean 'query'?"),
        (["query"], "Missing argument 'NAME'"),
        (
            ["fetch", "s3://b/AWSLogs/", "-o", "x", "--workers", "0"],
            "'--workers': Input should be greater than or equal to 1",
        ),
    ],
)
def test_click_usage_errors_are_one_line_too(args: list[str], needle: str) -> None:
    """Types and unknown options are checked by Typer: the same one-line form as albstats' own errors.

    (The wording after the option is Typer's: pydantic's since Typer 0.29.)"""
    r = runner.invoke(app, args, prog_name="albstats")
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("albstats: error: ") and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_group_without_a_command_still_shows_its_help() -> None:
    r = runner.invoke(app, ["sql"], prog_name="albstats")
    assert "Usage: albstats sql" in r.output and "list" in r.output and "albstats: error" not in r.output
