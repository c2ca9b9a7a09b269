"""Shared test fixtures: where the bundled fixtures and the shared conformance corpus live."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
#: ../shared beside the checkout (CI lays a copy there); ALBSTATS_SHARED overrides.
SHARED = Path(os.environ.get("ALBSTATS_SHARED", ROOT.parent / "shared"))
CONFORMANCE = SHARED / "conformance"


def load_jsonl(name: str) -> list[dict]:
    path = CONFORMANCE / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: tests need ../shared/conformance (or set ALBSTATS_SHARED)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
