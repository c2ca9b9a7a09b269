"""SIGTERM and SIGHUP stop `albstats` like Ctrl-C: workers stopped, temporary files removed, exit 143 / 129.

Each test runs the real command on generated logs, stops it at moments observed from outside (the output's
temporary file appears, the worker processes exist, hand-over files are in /dev/shm, DuckDB spills to disk),
then checks what a cron job or systemd unit would see: the exit code, one line on stderr, no albstats process
left, no temporary file in TMPDIR, /dev/shm, the output's folder or the cache, the previous output as it was,
and a next run that gives the right numbers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _procs import (
    ALBSTATS,
    Stopped,
    alive,
    children,
    env_for,
    everything,
    processes_with,
    reap,
    run,
    run_until,
    shm_files,
    temporary,
    tree,
    wait_until,
)

#: integration: real CLI processes stopped by signals.
pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc: Linux"),
    pytest.mark.integration,
]

#: Lines of generated logs: enough that parsing takes a while on a fast machine, little for a loaded one.
LINES = 100_000
#: Columns written by the parse tests: all the parsing work, a tenth of the bytes of a full output.
_NARROW = ["--fields", "time,elb_status_code,request_url"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signal-logs")
    res = run(
        ["generate", "-o", str(root / "logs"), "--lines", str(LINES), "--days", "1", "-q"], env=env_for(root), cwd=root
    )
    assert res.returncode == 0, res.stderr
    return root / "logs"


def _clean_after(
    stopped: Stopped, root: Path, *, sig: int, out: Path | None = None, before: dict[str, str] | None = None
) -> None:
    """What a stop must leave: the code, one line, no process, no temporary file, the previous output."""
    assert stopped.rc == 128 + sig, stopped.stderr
    lines = stopped.stderr.strip().splitlines()
    assert lines == [f"albstats: stopped by {signal.Signals(sig).name}; workers stopped and temporary files removed"], (
        stopped.stderr
    )
    # workers end with the parent (they may take a moment: bounded)
    assert wait_until(lambda: not processes_with(str(root)), 15), processes_with(str(root))
    assert shm_files(stopped.pid) == []
    assert everything(root / "tmp") == []
    assert temporary(root / "cache") == []
    assert temporary(root / "work") == []
    if out is not None:
        assert everything(out.parent) == [out.name] + [f"{out.name}/{e}" for e in everything(out)]
        assert tree(out) == before
    reap(stopped.pid)


def _workers(pid: int) -> bool:
    return bool(children(pid))


def _appears_in(folder: Path, known: set[str]) -> Callable[[int], bool]:
    return lambda pid: bool(set(everything(folder)) - known)


def _handover(pid: int) -> bool:
    return bool(shm_files(pid))


def _rows(out: Path, fmt: str) -> int:
    if fmt == "jsonl":
        return sum(1 for _ in out.open())
    return pq.read_table(out).num_rows  # a file, or a folder of files


@pytest.mark.parametrize(("sig", "fmt"), [(signal.SIGTERM, "parquet"), (signal.SIGHUP, "jsonl")])
def test_parse_stopped_by_signal(logs: Path, tmp_path: Path, sig: int, fmt: str) -> None:
    env = env_for(tmp_path)
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    out = work / "out" / f"result.{fmt}"
    args = ["parse", str(logs), "-f", fmt, "-o", str(out), "-q", *_NARROW]
    first = run(args, env=env, cwd=work)  # the previous output
    assert first.returncode == 0, first.stderr
    before = tree(out)
    known = set(everything(out.parent))
    moments: dict[str, Callable[[int], bool]] = {
        "output started": _appears_in(out.parent, known),
        "workers running": _workers,
    }
    if fmt == "jsonl":  # batches handed over through /dev/shm (the Parquet path writes its own files)
        moments["hand-over files written"] = _handover
    for name, moment in moments.items():
        stopped = run_until(args, sig, moment, env=env, cwd=work)
        try:
            _clean_after(stopped, tmp_path, sig=sig, out=out, before=before)
        except AssertionError as e:
            raise AssertionError(f"stopped when {name}: {e}") from e
    again = run(args, env=env, cwd=work)
    assert again.returncode == 0, again.stderr
    assert _rows(out, fmt) == LINES


def test_nohup_keeps_sighup_ignored(logs: Path, tmp_path: Path) -> None:
    """``nohup albstats ...`` asked to survive a hang-up: a SIGHUP ignored at start stays ignored."""
    env = env_for(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    out = work / "all.jsonl"
    p = subprocess.Popen(
        [*ALBSTATS, "parse", str(logs), "-o", str(out), "-q", *_NARROW],
        env=env,
        cwd=work,
        start_new_session=True,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    try:
        assert wait_until(lambda: p.poll() is not None or _workers(p.pid), 90)
        os.kill(p.pid, signal.SIGHUP)
        _, err = p.communicate(timeout=120)
    finally:
        reap(p.pid)
    assert p.returncode == 0, err
    assert _rows(out, "jsonl") == LINES


def test_a_worker_killed_alone_is_one_line(logs: Path, tmp_path: Path) -> None:
    """The OOM killer picks a worker: the run fails with one line, exit 1, and leaves nothing behind."""
    env = env_for(tmp_path)
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    out = work / "out" / "all.jsonl"
    p = subprocess.Popen(
        [*ALBSTATS, "parse", str(logs), "-o", str(out), "-q", *_NARROW],
        env=env,
        cwd=work,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: p.poll() is not None or _workers(p.pid), 90)
        os.kill(children(p.pid)[0], signal.SIGKILL)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 1, err
        assert err.strip() == "albstats: error: a parse worker process ended unexpectedly (killed, or out of memory?)"
        assert wait_until(lambda: not processes_with(str(tmp_path)), 15)
        assert shm_files(p.pid) == []
        assert everything(work / "out") == []
    finally:
        reap(p.pid)


_SLOW_SPILLING_SQL = "SELECT count(DISTINCT a.request_url || b.trace_id) AS n FROM alb_logs a, alb_logs b"


def test_query_stopped_by_signal(logs: Path, tmp_path: Path) -> None:
    """Stopped while parsing into the cache, and while DuckDB spills a big query to disk: nothing left."""
    ref_root = tmp_path / "ref"
    ref = run(["query", "error_rate", str(logs), "-q"], env=env_for(ref_root), cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    root = tmp_path / "run"
    env = env_for(root)
    work = root / "work"
    work.mkdir()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        _clean_after(
            run_until(["query", "error_rate", str(logs), "-q"], sig, _workers, env=env, cwd=work), root, sig=sig
        )
    # DuckDB holding a spill folder (``<cache>.tmp``, or ``.tmp`` in the working folder) when the signal comes;
    # at the latest 20 s in (the query runs for minutes)
    started = time.monotonic()

    def spilling(pid: int) -> bool:
        return bool(temporary(root / "cache") or temporary(work) or everything(root / "tmp")) or (
            time.monotonic() - started > 20 and not children(pid)
        )

    stopped = run_until(
        ["sql", "run", _SLOW_SPILLING_SQL, str(logs), "-q"], signal.SIGTERM, spilling, env=env, cwd=work
    )
    _clean_after(stopped, root, sig=signal.SIGTERM)
    again = run(["query", "error_rate", str(logs), "-q"], env=env, cwd=work)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ref.stdout  # nothing but the table (no progress bar from DuckDB either)


def _report_numbers(folder: Path) -> dict:
    data = json.loads((folder / "report.json").read_text())
    data.pop("generated_at", None)
    return data


def test_report_stopped_by_signal(logs: Path, tmp_path: Path) -> None:
    """Stopped while parsing, and later while its queries run: the previous report folder is untouched."""
    root = tmp_path / "run"
    env = env_for(root)
    work = root / "work"
    (work / "reports").mkdir(parents=True)
    out = work / "reports" / "weekly"
    ref = run(["report", str(logs), "-o", str(out), "-q"], env=env_for(tmp_path / "ref"), cwd=work)
    assert ref.returncode == 0, ref.stderr
    expected = _report_numbers(out)
    before = tree(out)
    for sig, moment in ((signal.SIGTERM, _workers), (signal.SIGHUP, _workers)):
        _clean_after(
            run_until(["report", str(logs), "-o", str(out), "-q"], sig, moment, env=env, cwd=work),
            root,
            sig=sig,
            out=out,
            before=before,
        )
    # later: the report folder is being written (charts, pages) beside the previous one
    known = set(everything(out.parent))
    stopped = run_until(
        ["report", str(logs), "-o", str(out), "-q"],
        signal.SIGTERM,
        _appears_in(out.parent, known),
        env=env,
        cwd=work,
    )
    _clean_after(stopped, root, sig=signal.SIGTERM, out=out, before=before)
    again = run(["report", str(logs), "-o", str(out), "-q"], env=env, cwd=work)
    assert again.returncode == 0, again.stderr
    assert _report_numbers(out) == expected


_ORPHAN = """
import os, sys, time
from albstats.parse import iter_batches
print(os.getpid(), flush=True)
for _ in iter_batches([sys.argv[1]], workers=2, processes=True):
    time.sleep(0.05)  # a slow consumer: the workers are busy or waiting for it when the parent dies
"""


def test_workers_exit_when_parent_is_killed(logs: Path, tmp_path: Path) -> None:
    """SIGKILL leaves no chance to clean up: the workers notice the parent is gone and exit on their own,
    deleting their hand-over files."""
    p = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, str(logs)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
        env=env_for(tmp_path),
        start_new_session=True,
    )
    try:
        pid = int(p.stdout.readline())
        assert wait_until(lambda: len(children(pid)) == 2 and bool(shm_files(pid)), 90), "no workers came up"
        workers = children(pid)
        os.kill(pid, signal.SIGKILL)
        p.wait(timeout=30)
        t0 = time.monotonic()
        assert wait_until(lambda: not any(alive(w) for w in workers), 15), "workers outlived their parent"
        took = time.monotonic() - t0
        assert wait_until(lambda: not shm_files(pid), 5), shm_files(pid)
    finally:
        reap(p.pid)
    assert took < 15


def test_signal_handlers_only_from_the_command_line() -> None:
    """Importing albstats changes no signal handling (a library must not); the entry point installs them."""
    code = (
        "import signal, albstats.cli, albstats.parse, albstats.engines.local; "
        "print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "
        "signal.getsignal(signal.SIGHUP) == signal.SIG_DFL)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.split() == ["True", "True"], res.stderr
