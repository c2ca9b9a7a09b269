"""Incident finder against the generator's ground truth: planted, found, missed and false incident windows.

Usage: .venv/bin/python bench/incident_recall.py [--days 2] [--rps 5] [--seeds 1 2 3] [--profiles default hosp]

A planted window is found when a reported incident overlaps it; a reported incident that overlaps no
planted window is false. The SLO target is the report's default (99 %).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime

from albstats import connect, slo
from albstats.generate import generate


def score(profile: str, seed: int, days: float, rps: float, target: float = 0.99) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="albstats-inc-") as d:
        s = generate(d, start=datetime(2026, 11, 16, tzinfo=UTC), days=days, rps=rps, seed=seed, profile=profile)
        with connect([d], cache=False, quiet=True) as eng:
            buckets = eng.query("slo_buckets", bucket="5m")
    found, _ = slo.find_incidents(buckets, target)
    planted = [(i.start, i.end) for i in s.incidents]

    def overlaps(a: tuple, b: tuple) -> bool:
        return a[0] < b[1] and b[0] < a[1]

    hit = [p for p in planted if any(overlaps(p, (f.start, f.end)) for f in found)]
    false = [f for f in found if not any(overlaps(p, (f.start, f.end)) for p in planted)]
    return {
        "profile": profile,
        "seed": seed,
        "planted": len(planted),
        "found": len(hit),
        "missed": len(planted) - len(hit),
        "false": len(false),
        "days": days,
        "missed_windows": [p for p in planted if p not in hit],
        "false_windows": [(f.start, f.end) for f in false],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--rps", type=float, default=5.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--profiles", nargs="+", default=["default", "hosp"])
    a = ap.parse_args()
    print("| profile | seed | planted | found | missed | false |")
    print("|---|---:|---:|---:|---:|---:|")
    tot = [0, 0, 0, 0]
    for prof in a.profiles:
        for seed in a.seeds:
            r = score(prof, seed, a.days, a.rps)
            print(f"| {prof} | {seed} | {r['planted']} | {r['found']} | {r['missed']} | {r['false']} |", flush=True)
            for w in r["missed_windows"]:
                print(f"<!-- missed {w[0]:%m-%d %H:%M}-{w[1]:%H:%M} -->")
            for w in r["false_windows"]:
                print(f"<!-- false {w[0]:%m-%d %H:%M}-{w[1]:%H:%M} -->")
            for i, k in enumerate(("planted", "found", "missed", "false")):
                tot[i] += int(r[k])  # type: ignore[arg-type]
    print(f"| all | | {tot[0]} | {tot[1]} | {tot[2]} | {tot[3]} |")


if __name__ == "__main__":
    main()
