"""The parsing tests again, in an albstats whose C extension is missing (an install without a C compiler).

The extension is optional (setup.py), so albstats must then read everything with the reference parser,
give the same answers, and say once on stderr that it runs the slow parser and how to get the fast one.
The run is a subprocess that hides ``albstats._albparse`` before anything imports it (``sys.modules``
entry None: the import raises ImportError, as for a missing file), then runs the parsing test files with
output uncaptured (``-s``), so the notice reaches the subprocess's own stderr where it is counted. Tests
marked ``c_engine`` exercise the compiled tokenizer itself and are left out; tests/test_albparse.py too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from albstats.parsing.native import SLOW_NOTICE

#: Reruns the parsing test files in a subprocess without the C extension.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
#: The library-level parsing tests first: the notice is said at the first read, which must happen outside a
#: CliRunner (that would capture it).
PARSING_TESTS = [
    "tests/test_parse_basic.py",
    "tests/test_parse_files.py",
    "tests/test_conformance.py",
    "tests/test_parse_properties.py",
    "tests/test_parse_cli.py",
]
OPTIONS = ["-q", "-s", "-p", "no:cacheprovider", "-p", "no:xdist", "-m", "not c_engine"]
RUN = (
    "import sys; sys.modules['albstats._albparse'] = None; import pytest; "
    f"sys.exit(pytest.main([*{OPTIONS!r}, *sys.argv[1:]]))"
)


def test_parsing_tests_pass_without_the_extension_and_the_notice_is_said_once():
    res = subprocess.run(
        [sys.executable, "-c", RUN, *PARSING_TESTS], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert " passed" in res.stdout and " failed" not in res.stdout
    assert out.count(SLOW_NOTICE) == 1, out[-3000:]
    assert "pip install -e ." in SLOW_NOTICE and "C compiler" in SLOW_NOTICE
