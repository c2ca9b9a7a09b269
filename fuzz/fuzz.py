"""Build and run the libFuzzer harness of albstats/_albparse.c (ASan + UBSan), seeded from the repository.

    python fuzz/fuzz.py build                      # -> fuzz/build/albparse_fuzzer
    python fuzz/fuzz.py run --seconds 600          # build if needed, seed, fuzz; corpus kept in fuzz/build/
    python fuzz/fuzz.py run --seconds 3600 --jobs 2
    python fuzz/fuzz.py repro CRASH_FILE           # run one input again (prints the difference found)

Why a script rather than a Makefile: the compile and link flags come from the Python that runs it
(its headers and libpython, which the harness embeds to call the reference parser), and the seeds come
from the conformance corpus and the gzipped fixtures, which need Python to read. Run it with the
project's virtualenv Python (.venv/bin/python), whose packages the harness imports.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE = HERE / "albparse_fuzzer.c"
EXTENSION = ROOT / "albstats" / "_albparse.c"
DICT = HERE / "albparse.dict"
CONFORMANCE = ROOT / "tests" / "data" / "conformance"
FIXTURES = ROOT / "fixtures"
DEFAULT_WORK = HERE / "build"

#: Sanitizers: any report aborts (-fno-sanitize-recover), so libFuzzer keeps the input.
SANITIZE = ["-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"]
CFLAGS = ["-g", "-O1", "-fno-omit-frame-pointer", "-msse2", "-Wall", "-Wno-unused-function"]
#: Runtime options. Leak checking is off: the embedded interpreter keeps caches (interned strings,
#: type caches, lru_cache) that look like leaks per input; valgrind checks leaks (tests/test_fuzz.py).
ASAN_OPTIONS = "detect_leaks=0:quarantine_size_mb=16:abort_on_error=1:symbolize=1:allocator_may_return_null=1"
UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1"
#: Selector bytes of seeds: config 0 (access, all columns) and 1 (connection), see albparse_oracle.
ACCESS_SEL, CONNECTION_SEL = 0, 1
#: Selector bits: two parts of whole lines, three parts cut anywhere, the block repeated to > 1,024 lines.
SPLIT_MODES = (0x08, 0x10, 0xE0)
#: Fixture lines kept as seeds: the first lines of each distinct shape, at most this many.
MAX_FIXTURE_SEEDS = 400


def _python_link_flags() -> list[str]:
    """Compile and link flags that embed this interpreter's libpython (shared, or static exporting symbols)."""
    v = sysconfig.get_config_var
    flags = ["-I" + sysconfig.get_paths()["include"]]
    libdir = v("LIBDIR")
    if v("Py_ENABLE_SHARED"):
        flags += ["-L" + libdir, "-lpython" + v("LDVERSION"), "-Wl,-rpath," + libdir]
    else:  # a static libpython: extension modules (numpy, pyarrow) need its symbols exported
        flags += [os.path.join(v("LIBPL"), v("LIBRARY")), "-Wl,--export-dynamic"]
    flags += (v("LIBS") or "").split() + (v("SYSLIBS") or "").split()
    return flags


def binary_path(work: Path) -> Path:
    return work / "albparse_fuzzer"


def build(work: Path = DEFAULT_WORK, force: bool = False, extension: Path = EXTENSION) -> Path:
    """Compile the harness (with the extension's source included) unless it is newer than both sources."""
    work.mkdir(parents=True, exist_ok=True)
    out = binary_path(work)
    newest = max(SOURCE.stat().st_mtime, extension.stat().st_mtime)
    if not force and extension == EXTENSION and out.exists() and out.stat().st_mtime > newest:
        return out
    cc = os.environ.get("CC_FUZZ") or shutil.which("clang") or "clang"
    source = [f'-DALBPARSE_SOURCE="{extension.resolve()}"']
    cmd = [cc, *CFLAGS, *SANITIZE, *source, str(SOURCE), "-o", str(out), *_python_link_flags()]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"fuzz.py: building the harness failed ({' '.join(cmd)}):\n{r.stderr}")
    return out


def repro(inputs: list[Path], work: Path = DEFAULT_WORK) -> subprocess.CompletedProcess[str]:
    """Run the harness once on each input (crash files, fuzz/regressions): exit 0 when all pass."""
    exe = build(work)
    return subprocess.run([str(exe), *map(str, inputs)], env=environment(), capture_output=True, text=True)


def _gz_lines(path: Path) -> list[bytes]:
    """The whole lines of a gzip file; a damaged file gives the lines before the damage."""
    d = zlib.decompressobj(wbits=31)
    try:
        data = d.decompress(path.read_bytes())
    except zlib.error:
        data = b""
    return data.split(b"\n")[:-1]


def _shape(line: bytes) -> tuple:
    """What makes two fixture lines different for the tokenizer: field count, quoting, dashes, the type."""
    toks = line.split(b" ")
    return (
        len(toks),
        toks[0][:6],
        tuple(t == b"-" or t == b'"-"' for t in toks),
        tuple(t[:1] == b'"' for t in toks),
        bool(re.search(rb"[^\x20-\x7e]", line)),
    )


def seeds() -> dict[str, bytes]:
    """Seed inputs by name: every conformance line alone, diverse fixture lines, the hand-written seeds."""
    out: dict[str, bytes] = {}

    def add(sel: int, text: bytes) -> None:
        data = bytes([sel]) + text
        out[hashlib.sha1(data).hexdigest()] = data

    for name, sel in (
        ("alb_access_samples", ACCESS_SEL),
        ("non_alb_samples", ACCESS_SEL),
        ("alb_connection_samples", CONNECTION_SEL),
    ):
        block = []
        for n, raw in enumerate((CONFORMANCE / f"{name}.jsonl").read_text().splitlines()):
            line = json.loads(raw)["line"].encode() + b"\n"
            block.append(line)
            add(sel, line)
            if n % 3 == 0:  # also under the other column sets (configs 2-6 access, 7 connection)
                add(2 + n % 5 if sel == ACCESS_SEL else 7, line)
        for mode in SPLIT_MODES:  # a few lines: in two parts, in three cut anywhere, repeated
            add(mode | sel, b"".join(block[:6]))
    shapes: set[tuple] = set()
    kept = 0
    for path in sorted(FIXTURES.rglob("*.log.gz")):
        sel = CONNECTION_SEL if path.name.startswith("conn_log") else ACCESS_SEL
        for line in _gz_lines(path):
            s = (sel, _shape(line))
            if s in shapes or kept >= MAX_FIXTURE_SEEDS:
                continue
            shapes.add(s)
            kept += 1
            add(sel, line + b"\n")
    for path in sorted((HERE / "seeds").glob("*.log")):
        sel = CONNECTION_SEL if path.name.startswith("conn") else ACCESS_SEL
        text = path.read_bytes()
        add(sel, text)
        for line in text.splitlines(keepends=True):  # and each line alone
            add(sel, line)
    return out


def write_seeds(directory: Path) -> int:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    s = seeds()
    for name, data in s.items():
        (directory / name).write_bytes(data)
    return len(s)


def environment() -> dict[str, str]:
    """The harness's interpreter finds fuzz/ (the oracle), the project and this Python's packages."""
    paths = [str(HERE), str(ROOT)] + [p for p in sys.path if p and Path(p).is_dir() and Path(p) != HERE]
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        PYTHONNOUSERSITE="1",
        PYTHONMALLOC="malloc",
        PYTHONDONTWRITEBYTECODE="1",
        ASAN_OPTIONS=ASAN_OPTIONS,
        UBSAN_OPTIONS=UBSAN_OPTIONS,
    )
    return env


def run(
    seconds: int, work: Path = DEFAULT_WORK, jobs: int = 1, extra: list[str] | None = None, max_len: int = 4096
) -> subprocess.CompletedProcess[str]:
    """Fuzz for ``seconds``; libFuzzer's log goes to work/fuzz.log and is returned too."""
    exe = build(work)
    corpus, seed_dir, artifacts = work / "corpus", work / "seeds", work / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    write_seeds(seed_dir)
    cmd = [
        str(exe),
        f"-max_total_time={seconds}",
        f"-max_len={max_len}",
        f"-dict={DICT}",
        "-timeout=25",
        "-rss_limit_mb=4096",
        "-reload=30",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
    ]
    if jobs > 1:
        cmd += [f"-fork={jobs}", "-ignore_crashes=0"]
    cmd += [*(extra or []), str(corpus), str(seed_dir)]
    log = work / "fuzz.log"
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=environment(), text=True)
    return subprocess.CompletedProcess(cmd, r.returncode, log.read_text(errors="replace"), "")


def summary(log: str) -> dict[str, int]:
    """libFuzzer's final figures: executions, coverage (edges), features, corpus size, seconds."""
    out: dict[str, int] = {}
    for key, pat in (
        ("executions", r"stat::number_of_executed_units:\s*(\d+)"),
        ("seconds", r"Done \d+ runs in (\d+) second"),
        ("peak_rss_mb", r"stat::peak_rss_mb:\s*(\d+)"),
        ("new_units", r"stat::new_units_added:\s*(\d+)"),
    ):
        m = re.search(pat, log)
        if m:
            out[key] = int(m.group(1))
    last = [m for m in re.finditer(r"cov: (\d+) ft: (\d+) corp: (\d+)/(\d+)(b|Kb|Mb)", log)]
    if last:
        m = last[-1]
        out.update(coverage=int(m.group(1)), features=int(m.group(2)), corpus=int(m.group(3)))
    return out


def valgrind_cases() -> list[tuple[Any, list, int, list]]:
    """parse_block's arguments for memcheck: the conformance corpus (each file as a block, each line alone,
    under every column set), the seeds, a block of over 1,024 lines and blocks given as lists of parts."""
    sys.path.insert(0, str(HERE))
    import albparse_oracle as oracle

    def spec(config: int) -> tuple[list, int, list]:
        tokens, cols, _ = oracle.SPECS[config]
        return tokens, oracle.CONFIGS[config][0].min_tokens, cols

    cases: list[tuple[Any, list, int, list]] = []
    files = {
        n: [json.loads(r)["line"].encode() + b"\n" for r in (CONFORMANCE / f"{n}.jsonl").read_text().splitlines()]
        for n in ("alb_access_samples", "non_alb_samples", "alb_connection_samples")
    }
    for name, lines in files.items():
        for config in range(len(oracle.CONFIGS)):
            cases.append((b"".join(lines), *spec(config)))
        own = 1 if "connection" in name else 0
        cases += [(line, *spec(own)) for line in lines]
        cases.append((lines, *spec(own)))  # one part per line
        cases.append((b"".join(lines) * (1100 // len(lines) + 1), *spec(own)))  # > 1,024 lines: reserve()
    tokens, min_tokens, cols = spec(0)
    block = b"".join(files["alb_access_samples"])
    cases.append((block, tokens, min_tokens, [*cols, (len(tokens), 0, 0)]))  # errors: a column past the tokens,
    cases.append((block, tokens, min_tokens, [*cols, (0, 0, 9)]))  # an unknown type,
    cases.append((block, tokens * 8, min_tokens, cols))  # too many tokens
    for data in seeds().values():
        config, parts, as_list, _ = oracle.decode(data)
        cases.append((parts if as_list else parts[0], *spec(config)))
    return cases


#: The interpreter memcheck runs: the distribution's. The pyenv-built CPython 3.11 this project's venv uses
#: makes memcheck report CPython's own int code (a zero int's unset digit read in maybe_small_long), and
#: the "uninitialised" value then spreads through the interpreter: suppressing it would hide real errors.
VALGRIND_PYTHON = os.environ.get("ALBSTATS_VALGRIND_PYTHON", "/usr/bin/python3")


def build_plain(python: str, work: Path) -> Path:
    """_albparse.c compiled for ``python`` as setup.py builds it (-O3, CPython's flags), with debug info."""
    info = subprocess.run(
        [python, "-c", "import sysconfig as s; print(s.get_paths()['include']); print(s.get_config_var('EXT_SUFFIX'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out = work / ("_albparse" + info[1])
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or "cc"
    cmd = [cc, "-shared", "-fPIC", "-g", "-O3", "-fwrapv", "-fno-strict-aliasing", "-DNDEBUG", "-I" + info[0]]
    r = subprocess.run([*cmd, str(EXTENSION), "-o", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"fuzz.py: building the extension for {python} failed:\n{r.stderr}")
    return out


def valgrind(work: Path = DEFAULT_WORK, python: str = VALGRIND_PYTHON) -> tuple[int, str, bool]:
    """The cases through the extension under memcheck: (exit code, memcheck's log, answers equal to the
    project's own build run without memcheck)."""
    import pickle

    work.mkdir(parents=True, exist_ok=True)
    cases, plain, checked = work / "vg-cases.pickle", work / "vg-plain.pickle", work / "vg-memcheck.pickle"
    cases.write_bytes(pickle.dumps(valgrind_cases()))
    env = dict(os.environ, PYTHONMALLOC="malloc", PYTHONDONTWRITEBYTECODE="1")
    driver = str(HERE / "valgrind_driver.py")
    subprocess.run([sys.executable, driver, str(cases), str(plain)], check=True, env=env)  # the venv's build
    ext = build_plain(python, work)
    env.pop("PYTHONPATH", None)
    log = work / "memcheck.log"
    cmd = [
        "valgrind",
        "--tool=memcheck",
        "--error-exitcode=99",
        "--leak-check=full",
        "--show-leak-kinds=definite",
        "--errors-for-leak-kinds=definite",
        "--num-callers=40",
        f"--log-file={log}",
        python,
        "-I",
        driver,
        str(ext),
        str(cases),
        str(checked),
    ]
    r = subprocess.run(cmd, env=env)
    same = checked.exists() and checked.read_bytes() == plain.read_bytes()
    return r.returncode, log.read_text(errors="replace"), same


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the sanitized harness")
    b.add_argument("--work", type=Path, default=DEFAULT_WORK)
    r = sub.add_parser("run", help="fuzz for a while (the corpus in WORK/corpus grows across runs)")
    r.add_argument("--seconds", type=int, default=600)
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--work", type=Path, default=DEFAULT_WORK)
    r.add_argument("libfuzzer_args", nargs="*", help="more libFuzzer flags, after --")
    p = sub.add_parser("repro", help="run the harness on saved inputs (crash files)")
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    s = sub.add_parser("seeds", help="write the seed inputs to a folder")
    s.add_argument("folder", type=Path)
    v = sub.add_parser("valgrind", help="the conformance corpus and the seeds through the extension under memcheck")
    v.add_argument("--work", type=Path, default=DEFAULT_WORK)
    a = ap.parse_args(argv)
    if a.cmd == "build":
        print(build(a.work, force=True))
        return 0
    if a.cmd == "seeds":
        print(f"{write_seeds(a.folder)} seeds in {a.folder}")
        return 0
    if a.cmd == "valgrind":
        code, log, same = valgrind(a.work)
        print("\n".join(line for line in log.splitlines() if "ERROR SUMMARY" in line or "lost" in line))
        print(f"memcheck exit {code}; answers {'equal' if same else 'DIFFERENT'} to a plain run")
        return 0 if code == 0 and same else 1
    if a.cmd == "repro":
        res = repro(a.inputs, a.work)
        print(res.stdout + res.stderr, end="")
        return res.returncode
    res = run(a.seconds, a.work, a.jobs, a.libfuzzer_args)
    tail = "\n".join(res.stdout.splitlines()[-25:])
    print(tail)
    print(json.dumps(summary(res.stdout)))
    if res.returncode != 0:
        print(
            f"fuzz.py: FINDING (exit {res.returncode}); the input is in {a.work / 'artifacts'}, "
            f"the log in {a.work / 'fuzz.log'}",
            file=sys.stderr,
        )
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
