"""`whatif` against measurement: three scenarios, prediction vs the proxy's 95 % interval.

Run by hand (127.0.0.1 only; about a minute on an idle machine):

    .venv/bin/python bench/bench_whatif.py [--requests 1500] [flaky down slow]

For each scenario (see :mod:`albstats.proxy.scenarios`): a "before" run through the proxy with one
try (a pass-through that logs like an ALB), ``whatif`` on that log for the checked policy, an "after"
run through the proxy with that policy, and whether the predicted success rate and upstream attempts
per request fall inside the 95 % intervals of what the proxy measured. Exits 1 if one does not.
tests/test_whatif.py runs the flaky scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from albstats.proxy.scenarios import CHECK_POLICIES, SCENARIOS
from albstats.whatif_check import check_whatif


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    ap.add_argument("--requests", type=int, default=1500, help="client requests per run (before and after)")
    a = ap.parse_args()
    if not 100 <= a.requests <= 20_000:
        raise SystemExit("--requests 100..20000")
    unknown = [s for s in a.scenarios if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    ok = True
    for name in a.scenarios or list(SCENARIOS):
        work = Path(tempfile.mkdtemp(prefix=f"albstats-whatif-{name}-"))
        try:
            r = asyncio.run(check_whatif(name, work, before=a.requests, after=a.requests))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"policy for {name}: {CHECK_POLICIES[name].describe()}")
        print(r.render(), flush=True)
        ok &= r.success_inside and r.attempts_inside
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
