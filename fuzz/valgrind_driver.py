"""Feed prepared blocks to albstats._albparse.parse_block and save what it returns: run under valgrind.

    python fuzz/valgrind_driver.py [EXTENSION.so] CASES.pickle OUT.pickle

EXTENSION.so is a build of albstats/_albparse.c for the Python running this (by default the package's
own, albstats._albparse).
CASES is a pickled list of (data, tokens, min_tokens, columns), the arguments of parse_block, worked
out beforehand (albstats.parsing imports pyarrow, which would only slow memcheck down and add its own
noise). OUT gets each result with its buffers as bytes, so a run under memcheck can be compared with a
plain run: same answers, and no memcheck error (tests/test_fuzz.py). Each case runs twice, so a leak
per call shows as memory definitely lost, not as a one-off.
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
from typing import Any


def _plain(result: tuple) -> Any:
    """The result with every buffer as bytes (the text buffers are the extension's own type)."""
    idx, cols, rest, counts = result
    return (
        bytes(idx),
        [tuple(None if b is None else b if isinstance(b, int) else bytes(b) for b in c) for c in cols],
        bytes(rest),
        list(counts),
    )


def _load(path: str | None) -> Any:
    if path is None:
        from albstats import _albparse

        return _albparse
    spec = importlib.util.spec_from_file_location("_albparse", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(*args: str) -> int:
    extension, cases_path, out_path = args if len(args) == 3 else (None, *args)
    _albparse = _load(extension)
    with open(cases_path, "rb") as f:
        cases = pickle.load(f)
    out = []
    for data, tokens, min_tokens, columns in cases:
        try:
            first = _plain(_albparse.parse_block(data, tokens, min_tokens, columns))
        except ValueError as e:  # a bad spec: its error path must free what it took, too
            out.append(("error", str(e)))
            continue
        again = _plain(_albparse.parse_block(data, tokens, min_tokens, columns))
        if first != again:
            print("valgrind_driver: two calls on the same block gave different results", file=sys.stderr)
            return 1
        out.append(first)
    with open(out_path, "wb") as f:
        pickle.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
