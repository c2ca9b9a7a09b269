"""The import contracts of pyproject.toml ([tool.importlinter]) hold: layers from the CLI down to the schema,
and no new import cycle. Run here so the README's test command (hence CI) enforces them.

``lint-imports`` analyses the source statically, imports inside functions included, so a lazy import that
points upward or closes a cycle breaks the build as surely as one at the top of a module.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: Runs lint-imports over the whole package.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = str(exe) if exe.exists() else shutil.which("lint-imports")
    assert cmd, "lint-imports is missing: pip install -e '.[dev]' installs import-linter"
    return subprocess.run([cmd, "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    res = _lint_imports()
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout and "Layers" in res.stdout and "cycles" in res.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    """The contract has teeth: the same configuration over a copy of the package where the schema imports
    the parser fails, naming the import."""
    pkg = tmp_path / "albstats"
    shutil.copytree(ROOT / "albstats", pkg, ignore=shutil.ignore_patterns("__pycache__", "*.so", "sql"))
    schema = pkg / "schema.py"
    schema.write_text(
        schema.read_text() + "\n\ndef _upward() -> None:\n    from albstats.parsing import lines  # noqa\n"
    )
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, '.'); from importlinter.cli import lint_imports_command;"
            " lint_imports_command()",
            "--no-cache",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0, res.stdout[-3000:]
    assert "albstats.schema -> albstats.parsing.lines" in res.stdout, res.stdout[-3000:]
