"""Chart rendering of the report, before and after, side by side in one process (issue 13 item 6).

Usage: .venv/bin/python bench/bench_plots.py [--ref main] [--runs 7] [LOG PATHS...]

Builds the report once (default: the bundled fixture day), then renders its five charts to PNG with
the plots module of git ref ``--ref`` ("before") and with the working tree's ("after"), alternating
runs so machine load hits both alike; prints every run and the medians. Needs git.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import albstats
from albstats import report
from albstats.render import _png, figures

ROOT = Path(__file__).resolve().parents[1]


def old_plots(ref: str) -> object:
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:albstats/plots.py"], check=True, capture_output=True, text=True
    ).stdout
    d = tempfile.mkdtemp(prefix="albstats-plots-")
    p = Path(d) / "plots_before.py"
    p.write_text(src)
    spec = importlib.util.spec_from_file_location("plots_before", p)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def render(r: report.Report, module: object) -> tuple[float, int]:
    import albstats.plots as current

    sys.modules["albstats.plots"] = module  # figures() imports albstats.plots at call time
    albstats.plots = module  # type: ignore[attr-defined]
    try:
        t = time.perf_counter()
        size = sum(len(_png(f)) for f in figures(r).values())
        return time.perf_counter() - t, size
    finally:
        sys.modules["albstats.plots"] = current
        albstats.plots = current  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="*", default=[str(ROOT / "fixtures" / "AWSLogs")])
    ap.add_argument("--ref", default="main")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    import albstats.plots as after

    before = old_plots(a.ref)
    with albstats.connect(a.paths, cache=False, quiet=True) as eng:
        r = report.build(eng)
    render(r, before)
    render(r, after)  # warm-up: imports, font cache
    times: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(a.runs):
        for name, mod in (
            (("before", before), ("after", after)) if i % 2 == 0 else (("after", after), ("before", before))
        ):
            t, size = render(r, mod)
            times[name].append(t)
            print(f"run {i + 1} {name:6s} {t:.3f} s  ({size:,} bytes of PNG)", flush=True)
    mb, ma = statistics.median(times["before"]), statistics.median(times["after"])
    print(f"median before ({a.ref}) {mb:.3f} s, after {ma:.3f} s: {ma / mb:.2f}x")


if __name__ == "__main__":
    main()
