"""Soak benchmark: `albstats proxy` for minutes at a steady rate in front of the flaky upstream.

Run by hand (Linux: reads /proc):

    .venv/bin/python bench/bench_proxy_soak.py [--minutes 10] [--rate 200]

What it runs and checks is described in :mod:`albstats.proxy.soak`: RSS flat within 10 % after the
warm-up, open file descriptors bounded by the requests in flight (and back down after the load),
access-log lines == requests, every POST at the upstream exactly once. Prints the figures and
PASS/FAIL per check, with the load average; exits 1 when a check fails, 2 when the client could not
keep the rate (an overloaded machine: inconclusive). A 30 s version runs in the test suite (tests/test_proxy.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from albstats.proxy.soak import run


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second, open loop")
    ap.add_argument("--keep", action="store_true", help="keep the proxy's access log (path printed)")
    a = ap.parse_args()
    if not 0.1 <= a.minutes <= 240 or not 1 <= a.rate <= 2000:
        raise SystemExit("--minutes 0.1..240, --rate 1..2000")
    work = Path(tempfile.mkdtemp(prefix="albstats-soak-"))
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        res = run(a.minutes * 60, a.rate, work, progress=sys.stderr.isatty())
        print(
            f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}; load average at start {load}, at end "
            f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
        )
        print(res.render())
        if a.keep:
            print(f"access log kept: {work / 'soak-proxy.log'}")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(2 if res.fell_behind else 0 if all(res.checks().values()) else 1)


if __name__ == "__main__":
    main()
