"""albstats/_albparse.c under the sanitizers, the fuzzer and valgrind (issue 12, item 13).

Log lines carry what clients send, and the C tokenizer reads them with SSE2 loads and its own buffers.
These tests build the libFuzzer harness (fuzz/albparse_fuzzer.c, ASan + UBSan) and fuzz for 30 seconds
from the repository's seeds; replay the inputs of past findings; show that the harness and its oracle
do report a bug (a copy of the C code with the fixed bug put back, and tampered results); and run the
conformance corpus through the extension under valgrind's memcheck. clang, libclang-rt and valgrind are
installed by .ci/run: a missing tool fails here, it is not skipped.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import CONFORMANCE, ROOT, load_jsonl

FUZZ_DIR = ROOT / "fuzz"
REGRESSIONS = sorted((FUZZ_DIR / "regressions").iterdir())


def _tool() -> ModuleType:
    """fuzz/fuzz.py, loaded by path (a folder named fuzz would shadow a plain import)."""
    spec = importlib.util.spec_from_file_location("albparse_fuzz_tool", FUZZ_DIR / "fuzz.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tool = _tool()
sys.path.insert(0, str(FUZZ_DIR))
import albparse_oracle as oracle  # noqa: E402  (fuzz/ is not a package)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("fuzz")
    tool.build(work, force=True)
    return work


@pytest.mark.integration  # clang, libFuzzer, valgrind
def test_fuzz_30_seconds(harness: Path) -> None:
    """The CI run: 30 s of coverage-guided fuzzing under ASan and UBSan, every seed first, no finding."""
    res = tool.run(30, work=harness)
    tail = "\n".join(res.stdout.splitlines()[-40:])
    assert res.returncode == 0, f"the fuzzer found something (inputs in {harness / 'artifacts'}):\n{tail}"
    stats = tool.summary(res.stdout)
    seeds = len(list((harness / "seeds").iterdir()))
    assert seeds > 100, seeds
    assert "INITED" in res.stdout, tail  # all seeds ran through the oracle
    assert stats["executions"] >= seeds and stats["coverage"] > 100, stats
    assert "runtime error" not in res.stdout and "AddressSanitizer" not in res.stdout


@pytest.mark.integration  # clang, libFuzzer, valgrind
def test_past_findings_stay_fixed(harness: Path) -> None:
    """Every input in fuzz/regressions passes the sanitized harness and its oracle."""
    assert REGRESSIONS
    res = tool.repro(REGRESSIONS, harness)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"Running {len(REGRESSIONS)} inputs" in res.stderr


@pytest.mark.integration  # clang, libFuzzer, valgrind
def test_the_harness_reports_the_bug_it_found(tmp_path: Path) -> None:
    """With the fix taken out of a copy of the C code, the first finding's input makes UBSan abort."""
    source = (ROOT / "albstats" / "_albparse.c").read_text()
    fixed = "if (!c->isnull && c->sl) {"
    assert fixed in source
    broken = tmp_path / "_albparse.c"
    broken.write_text(source.replace(fixed, "if (!c->isnull) {"))
    tool.build(tmp_path, extension=broken)
    res = tool.repro([FUZZ_DIR / "regressions" / "ub-null-text-buffer-empty-value"], tmp_path)
    assert res.returncode != 0
    assert "runtime error: applying zero offset to null pointer" in res.stderr


# --- the oracle: what "no finding" means beyond "no crash" --------------------------------------------


def _block(name: str) -> bytes:
    return b"".join(r["line"].encode() + b"\n" for r in load_jsonl(name))


def test_oracle_passes_the_conformance_corpus_in_every_mode() -> None:
    """Every schema, column set, split into parts and repeat of the conformance lines: C equals parse_line."""
    for name in ("alb_access_samples.jsonl", "alb_connection_samples.jsonl", "non_alb_samples.jsonl"):
        block = _block(name)
        for selector in range(256):
            oracle.one_input(bytes([selector]) + block)


def _result(config: int, data: bytes) -> list:
    from albstats import _albparse

    tokens, cols, _ = oracle.SPECS[config]
    idx, got, rest, counts = _albparse.parse_block(data, tokens, oracle.CONFIGS[config][0].min_tokens, cols)
    return [
        bytes(idx),
        [[b if b is None or isinstance(b, int) else bytearray(b) for b in c] for c in got],
        bytes(rest),
        counts,
    ]


def _tamper_text(r: list, fields: list[str]) -> None:
    text = r[1][fields.index("user_agent")][3]
    text[0] ^= 1


def _tamper_int(r: list, fields: list[str]) -> None:
    values = r[1][fields.index("elb_status_code")][2]
    values[0] ^= 1


def _tamper_sign(r: list, fields: list[str]) -> None:
    """0.0 becomes -0.0: equal under ==, not what float('0.000') gives."""
    values = r[1][fields.index("request_processing_time")][2]
    assert values[:8] == bytes(8)
    values[7] = 0x80


def _tamper_lost(r: list, fields: list[str]) -> None:
    r[0] = r[0][:-8]  # the last line neither taken nor left to Python


def _tamper_size(r: list, fields: list[str]) -> None:
    r[1][fields.index("sent_bytes")][2] += bytes(8)


@pytest.mark.parametrize("tamper", [_tamper_text, _tamper_int, _tamper_sign, _tamper_lost, _tamper_size])
def test_oracle_reports_a_wrong_result(tamper) -> None:
    lines = [r["line"] for r in load_jsonl("alb_access_samples.jsonl")]
    data = "".join(line + "\n" for line in lines if line.split(" ")[5] == "0.000").encode()
    r = _result(0, data)
    oracle.check([data], 0, tuple(r))  # the real result passes
    tamper(r, oracle.CONFIGS[0][1])
    with pytest.raises(AssertionError):
        oracle.check([data], 0, tuple(r))


def test_oracle_reports_a_line_parse_line_rejects() -> None:
    good = _block("alb_access_samples.jsonl").split(b"\n")[0] + b"\n"
    bad = good.replace(b"http ", b"gopher ", 1)
    data = good + bad
    r = _result(0, data)
    assert r[2] == (1).to_bytes(8, "little")  # C left the bad line to Python
    r[0], r[2] = (1).to_bytes(8, "little"), (0).to_bytes(8, "little")  # swap: C claims the bad line
    with pytest.raises(AssertionError, match="parse_line rejects it"):
        oracle.check([data], 0, tuple(r))


# --- valgrind -----------------------------------------------------------------------------------------


@pytest.mark.integration  # clang, libFuzzer, valgrind
def test_conformance_corpus_under_memcheck(tmp_path: Path) -> None:
    """The conformance corpus (each file, each line, every column set, > 1,024 lines, lists of parts) and
    the seeds through the extension under memcheck: no error, no leak, the same answers as without it."""
    cases = tool.valgrind_cases()
    assert sum(1 for _ in CONFORMANCE.glob("*.jsonl")) == 3 and len(cases) > 300
    code, log, same = tool.valgrind(tmp_path)
    summary = [line for line in log.splitlines() if "ERROR SUMMARY" in line or "definitely lost" in line]
    assert code == 0, "\n".join(log.splitlines()[-60:])
    assert any("ERROR SUMMARY: 0 errors" in line for line in summary), summary
    assert same, "the extension answers differently under memcheck"
