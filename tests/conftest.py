"""Shared test fixtures: where the bundled fixtures and the conformance corpus live."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
#: Real ALB lines written by others, and lines that are not ALB; tests/data/conformance/README.md says
#: where each came from. Kept in the repository so a fresh clone's tests need nothing beside it.
CONFORMANCE = ROOT / "tests" / "data" / "conformance"


#: Variables that would point tests at the developer's own cache, parser choice or AWS account.
_HOST_ENV_PREFIXES = ("ALBSTATS_", "AWS_")
_scratch: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Run every test in a clean environment: no ALBSTATS_/AWS_ settings from the shell, a scratch cache.

    Why: CI may run the README's main command before the tests, and a developer may have
    AWS_PROFILE or ALBSTATS_CACHE_DB set; neither may change what a test sees. Tests that need
    such a variable set it themselves.
    """
    global _scratch
    config.addinivalue_line("markers", "c_engine: needs the compiled tokenizer (not run by tests/test_no_extension.py)")
    for k in [k for k in os.environ if k.startswith(_HOST_ENV_PREFIXES)]:
        del os.environ[k]
    _scratch = tempfile.mkdtemp(prefix="albstats-tests-")
    os.environ["XDG_CACHE_HOME"] = _scratch
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(_scratch, "no-aws")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _scratch:
        shutil.rmtree(_scratch, ignore_errors=True)


def load_jsonl(name: str) -> list[dict]:
    path = CONFORMANCE / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
