"""The whole tree stays as ``ruff check`` and ``ruff format`` want it (pyproject's [tool.ruff]):
issue 14 made it so, and a test keeps a later change from quietly undoing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUFF), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_check_passes_on_the_tree() -> None:
    r = _ruff("check", "--no-cache", ".")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]


def test_ruff_format_leaves_the_tree_alone() -> None:
    r = _ruff("format", "--check", "--no-cache", ".")
    assert r.returncode == 0, "run `ruff format .`:\n" + r.stdout[-3000:] + r.stderr[-1000:]
