"""The version lives in one place: ``albstats/__init__.py``; the package metadata and the CLI read it.

Why: with the number written in pyproject.toml and in ``__version__`` both, a release bumps one and
``albstats --version``, ``report.json``'s ``albstats_version`` and the cache's format check disagree
with what pip installed.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT

import albstats


def test_pyproject_takes_the_version_from_the_package() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in meta["project"], "pyproject.toml must not repeat the version"
    assert "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "albstats.__version__"}


def test_version_is_a_plain_literal_assigned_once() -> None:
    """setuptools reads a literal without importing the package; no other module may define its own."""
    src = (ROOT / "albstats" / "__init__.py").read_text()
    assert re.search(r'^__version__ = "\d+\.\d+\.\d+([a-z]+\d+)?"$', src, re.M), "__version__ must be a literal"
    others = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "albstats").rglob("*.py")
        if p.name != "__init__.py" or p.parent.name != "albstats"
        if re.search(r"^\s*__version__\s*=", p.read_text(), re.M)
    ]
    assert others == []


def test_installed_metadata_matches_the_package() -> None:
    installed = importlib.metadata.version("albstats")
    assert installed == albstats.__version__, (
        f"installed metadata says {installed}, albstats.__version__ says {albstats.__version__}: "
        "reinstall (pip install -e '.[dev]') after changing the version"
    )


def test_cli_prints_the_version() -> None:
    script = Path(sys.executable).with_name("albstats")  # the console script pip installed beside python
    res = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == f"albstats {albstats.__version__}"
