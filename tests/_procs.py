"""Helpers for tests that run `albstats` as a real process and stop it: who is still running, what it left.

Everything is observed from outside (``/proc``, the file system), so the tests hold whatever the code inside
does to clean up. Linux only, like the worker processes they check.
"""

from __future__ import annotations

import glob
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

ALBSTATS = [sys.executable, "-c", "from albstats.cli import main; main()"]


def env_for(root: Path) -> dict[str, str]:
    """The environment of a run under ``root``: its own TMPDIR and cache folder, no ALBSTATS_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALBSTATS_")}
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    (root / "cache").mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(root / "tmp")
    env["XDG_CACHE_HOME"] = str(root / "cache")
    return env


def _stat(pid: int | str) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Running (a zombie is not: it holds nothing but its exit status)."""
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def children(pid: int) -> list[int]:
    """Live children of ``pid`` (its worker processes)."""
    try:
        kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        kids = [int(p) for p in os.listdir("/proc") if p.isdigit() and (_stat(p) or ("", 0))[1] == pid]
    return [k for k in kids if alive(k)]


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (a test's own folder), other than this one."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd and alive(int(p)):
            found.append(int(p))
    return found


def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def shm_files(pid: int) -> list[str]:
    """Hand-over files of the parse run of process ``pid`` (albstats.parsing.pool names them albstats-PID-...)."""
    return glob.glob(f"/dev/shm/albstats-{pid}-*") + glob.glob(f"/tmp/albstats-{pid}-*")


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` (or ``path`` itself) with a digest of its bytes: to compare before/after."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for f in sorted(path.rglob("*")):
        if f.is_file():
            out[str(f.relative_to(path))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def everything(path: Path) -> list[str]:
    """Every file and folder under ``path``, relative."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def temporary(path: Path) -> list[str]:
    """Entries under ``path`` named like temporary files: ``*.tmp*``, ``*.part*``, ``tmp*``, ``albstats-*``."""
    return [
        e
        for e in everything(path)
        if any(".tmp" in part or ".part" in part or part.startswith(("tmp", "albstats-")) for part in Path(e).parts)
    ]


@dataclass
class Stopped:
    """A run stopped by a signal: its pid, exit code and stderr."""

    pid: int
    rc: int
    stderr: str


def run_until(
    args: list[str],
    sig: int,
    moment: Callable[[int], bool],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float = 90,
    preexec: Callable[[], None] | None = None,
) -> Stopped:
    """Start ``albstats args``, wait until ``moment(pid)`` holds (it must, while the run is going), send ``sig``.

    The run gets its own session, so whatever the test finds left over can be killed by its group afterwards
    (:func:`reap`), and a failing test leaves nothing running.
    """
    err = cwd / f"stderr-{time.monotonic_ns()}"
    with open(err, "w+") as fh:
        p = subprocess.Popen(
            [*ALBSTATS, *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=fh,
            start_new_session=True,
            preexec_fn=preexec,
        )
        try:
            reached = wait_until(lambda: p.poll() is not None or moment(p.pid), timeout)
            if p.poll() is not None:
                raise AssertionError(
                    f"albstats {args} ended (exit {p.returncode}) before the moment to stop it: "
                    f"{err.read_text()[-2000:]}"
                )
            assert reached, f"albstats {args}: the moment to stop it never came within {timeout} s"
            os.kill(p.pid, sig)
            rc = p.wait(timeout=60)
        except BaseException:
            reap(p.pid)
            raise
    text = err.read_text()
    err.unlink()
    return Stopped(p.pid, rc, text)


def run(
    args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 300, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``albstats args`` to completion (bounded in time)."""
    return subprocess.run(
        [*ALBSTATS, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        preexec_fn=preexec,
    )


def reap(pgid: int) -> None:
    """Kill what is left of the process group of a run this test started (after the assertions on it)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
