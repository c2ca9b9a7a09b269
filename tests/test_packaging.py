"""Every package of the source tree is in the wheel: pyproject lists packages by name, so a new
sub-package that is not added there would install from a clone (editable) but be missing from a
wheel, and fail only for users."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "albstats").rglob("__init__.py")}
    assert found, "no packages found under albstats/"
    assert found - listed == set(), f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
