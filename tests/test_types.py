"""The package type-checks under mypy with pyproject's [tool.mypy] settings.

Why a test: the README's test command is what CI runs, so a type error fails CI the same way a wrong
answer does. mypy's cache goes to a temporary folder: nothing is written into the checkout.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT


def _mypy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """mypy with the project's settings, its cache under ``tmp_path``."""
    config = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "mypy-cache")]
    cmd = [sys.executable, "-m", "mypy", *config, "--no-color-output", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.integration  # runs mypy
def test_mypy_passes_on_the_package_and_the_api_cases(tmp_path: Path) -> None:
    """One run (about 20 s cold): the package as configured, plus tests/api_typing_cases.py, which states
    what the public API's calls return and which calls it must refuse."""
    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    proc = _mypy(tmp_path, *files, "tests/api_typing_cases.py")
    assert proc.returncode == 0, f"mypy found errors:\n{proc.stdout}{proc.stderr}"


def test_mypy_config_checks_the_package_strictly() -> None:
    """The settings the test relies on are really there (a config that checks nothing would pass)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert cfg["files"] == ["albstats"]
    assert cfg["disallow_untyped_defs"] is True and cfg["check_untyped_defs"] is True
    assert "ignore_missing_imports" not in cfg  # third-party types come from stub packages, not silence


@pytest.mark.integration  # runs mypy
def test_mypy_really_reports_an_error(tmp_path: Path) -> None:
    """The same invocation fails on a file with a type error: a broken set-up cannot pass silently."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n")
    proc = _mypy(tmp_path, str(bad))
    assert proc.returncode == 1 and "Incompatible return value type" in proc.stdout, proc.stdout + proc.stderr
