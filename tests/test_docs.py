"""The documentation site builds strictly, and its generated reference pages say what the code does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

#: Runs a strict mkdocs build of the whole site.
pytestmark = pytest.mark.integration


def _build(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return site


def test_mkdocs_builds_strictly_with_generated_reference(tmp_path: Path):
    site = _build(tmp_path)
    cli = (site / "reference" / "cli" / "index.html").read_text()
    # every command's help is in the page: a command added to the app shows up without editing docs
    for command in ("albstats report", "albstats query", "albstats sql run", "albstats athena create-table"):
        assert command in cli, command
    queries = (site / "reference" / "queries" / "index.html").read_text()
    for sql in sorted((ROOT / "sql").glob("*.sql")):
        assert sql.stem in queries, sql.name
    keys = (site / "reference" / "report-json" / "index.html").read_text()
    assert "slo.met" in keys or "slo" in keys
    assert "<!-- generated:" not in cli + queries + keys
