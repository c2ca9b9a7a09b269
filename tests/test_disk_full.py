"""A full disk while writing an output or the cache: one line naming the file, the previous output intact,
the cache usable (the next run, with room, gives the right numbers).

"Full" is made with RLIMIT_FSIZE in the child process (a write past the limit fails with EFBIG, as on a disk
with no room left; Python ignores SIGXFSZ), and with /dev/full (ENOSPC): neither needs root or a mount.
"""

from __future__ import annotations

import resource
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from _procs import env_for, everything, run, temporary, tree

#: integration: CLI subprocesses under RLIMIT_FSIZE.
pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and /dev/full: Linux"),
    pytest.mark.integration,
]

LINES = 30_000
#: Bytes a file may reach in the limited runs: far less than any output or cache of LINES lines.
LIMIT = 200_000


def _disk_full(limit: int = LIMIT) -> Callable[[], None]:
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full-logs")
    res = run(["generate", "-o", str(root / "logs"), "--lines", str(LINES), "-q"], env=env_for(root), cwd=root)
    assert res.returncode == 0, res.stderr
    return root / "logs"


def _one_error(stderr: str, *names: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("albstats: error: "), stderr
    for name in names:
        assert name in lines[0], stderr
    return lines[0]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_parse_output_on_a_full_disk(logs: Path, tmp_path: Path, fmt: str) -> None:
    env = env_for(tmp_path)
    out = tmp_path / "out" / f"result.{fmt}"
    out.parent.mkdir()
    small = run(["parse", str(logs), "-f", fmt, "-o", str(out), "-q"], env=env, cwd=tmp_path, preexec=None)
    assert small.returncode == 0, small.stderr
    before = tree(out)
    res = run(["parse", str(logs), "-f", fmt, "-o", str(out), "-q"], env=env, cwd=tmp_path, preexec=_disk_full())
    assert res.returncode == 1
    line = _one_error(res.stderr, out.name, "File too large")
    if fmt != "parquet":  # (the Parquet output's message is its writer's)
        assert line.endswith(f"(the previous {out.name} is unchanged)")
    assert tree(out) == before
    assert everything(out.parent) == [out.name] + [f"{out.name}/{e}" for e in everything(out)]
    assert everything(tmp_path / "tmp") == []


def test_parse_to_a_full_device(logs: Path, tmp_path: Path) -> None:
    res = run(["parse", str(logs), "-f", "csv", "-o", "/dev/full", "-q"], env=env_for(tmp_path), cwd=tmp_path)
    assert res.returncode == 1
    assert _one_error(res.stderr) == "albstats: error: /dev/full: No space left on device (nothing was written)"
    assert everything(tmp_path / "tmp") == []


def test_query_output_on_a_full_disk(logs: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    warm = run(["query", "error_rate", str(logs), "-q"], env=env, cwd=tmp_path)  # the cache has room
    assert warm.returncode == 0, warm.stderr
    out = tmp_path / "rows.csv"
    out.write_text("previous\n")
    res = run(
        ["sql", "run", "SELECT * FROM alb_logs", str(logs), "-f", "csv", "-o", str(out), "-q"],
        env=env,
        cwd=tmp_path,
        preexec=_disk_full(),
    )
    assert res.returncode == 1
    _one_error(res.stderr, "rows.csv", "File too large")
    assert out.read_text() == "previous\n"
    assert [e for e in everything(tmp_path) if e.startswith(".rows.csv")] == []


def test_cache_on_a_full_disk_stays_usable(logs: Path, tmp_path: Path) -> None:
    ref = run(["query", "error_rate", str(logs), "-q"], env=env_for(tmp_path / "ref"), cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    root = tmp_path / "run"
    env = env_for(root)
    full = run(["query", "error_rate", str(logs), "-q"], env=env, cwd=tmp_path, preexec=_disk_full())
    assert full.returncode == 1, full.stdout
    _one_error(full.stderr, str(root / "cache"), "File too large")
    assert temporary(root / "cache") == []
    assert everything(root / "tmp") == []
    again = run(["query", "error_rate", str(logs), "-q"], env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ref.stdout
