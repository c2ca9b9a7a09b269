"""The flaky upstream simulator: distributions, failure injection, attempt counting, the stats endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import random

import aiohttp
import pytest

from albstats.errors import UsageError
from albstats.proxy.upstream_sim import PROFILES, Latency, UpstreamSim, make_config


def test_latency_specs():
    rng = random.Random(1)
    assert Latency.parse("0.25").sample(rng) == 0.25
    u = [Latency.parse("uniform:2,20").sample(rng) for _ in range(500)]
    assert 2 <= min(u) and max(u) <= 20 and 9 < sum(u) / len(u) < 13
    ln = sorted(Latency.parse("lognormal:0.2,0.5").sample(rng) for _ in range(2001))
    assert 0.17 < ln[1000] < 0.23  # the median is the first parameter
    assert str(Latency.parse("exp:0.1")) == "exp:0.1"
    for bad in ("uniform:2", "gamma:1,2", "fast", "fixed:-1"):
        with pytest.raises(UsageError):
            Latency.parse(bad)


def test_profiles_and_validation():
    hosp = make_config("hosp")
    assert hosp.error_rate == 0.10 and hosp.slow_latency == Latency("uniform", 2.0, 20.0) and hosp.reset_rate > 0
    assert make_config("hosp", error_rate=0.5).error_rate == 0.5
    assert "hosp" in PROFILES
    with pytest.raises(UsageError, match="between 0 and 1"):
        make_config(error_rate=1.5)
    with pytest.raises(UsageError, match="unknown simulator profile"):
        make_config("nope")
    with pytest.raises(UsageError):
        make_config(error_statuses=(42,))


def test_rates_resets_counts_and_body_hashes():
    async def main():
        sim = UpstreamSim(make_config(listen_port=0, error_rate=0.3, error_statuses=(500, 503), reset_rate=0.1, seed=9))
        port = await sim.start()
        base = f"http://127.0.0.1:{port}"
        statuses = []
        try:
            async with aiohttp.ClientSession() as cs:
                for i in range(400):
                    body = f"body-{i}".encode()
                    try:
                        async with cs.post(f"{base}/p", data=body, headers={"X-Request-Id": f"k{i % 200}"}) as r:
                            js = await r.json()
                            assert js["body_sha256"] == hashlib.sha256(body).hexdigest()
                            assert js["key"] == f"k{i % 200}" and js["attempt"] == (1 if i < 200 else 2)
                            statuses.append(r.status)
                    except aiohttp.ClientConnectionError:
                        statuses.append("reset")
                async with cs.get(f"{base}/__sim/stats") as r:
                    stats = await r.json()
                async with cs.get(f"{base}/__sim/stats?detail=1") as r:
                    detail = await r.json()
                async with cs.post(f"{base}/__sim/reset") as r:
                    assert r.status == 200
                async with cs.get(f"{base}/__sim/stats") as r:
                    after_reset = await r.json()
        finally:
            await sim.close()
        return statuses, stats, detail, after_reset

    statuses, stats, detail, after_reset = asyncio.run(main())
    assert stats["attempts"] == 400 and stats["requests"] == 200
    assert stats["attempts_histogram"] == {"2": 200}
    resets = statuses.count("reset")
    errors = sum(1 for s in statuses if s in (500, 503))
    assert 20 <= resets <= 65 and stats["resets"] == resets
    assert 0.2 < errors / (400 - resets) < 0.4
    assert set(s for s in statuses if s != "reset") <= {200, 500, 503}
    entry = detail["by_request"]["k0"]
    assert entry["attempts"] == 2 and len(entry["times"]) == 2 and len(entry["statuses"]) == 2
    assert after_reset["attempts"] == 0
