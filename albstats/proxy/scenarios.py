"""Reproducible before/after experiments: a scenario upstream, the proxy with a policy, bounded load.

Three scenarios, the ones a retry policy has to be judged on:

- ``flaky``: 10 % of attempts answered 502/503/504, the rest in a few milliseconds;
- ``down``: nothing listens at the upstream address (every attempt is refused: the retry storm case);
- ``slow``: 10 % of attempts take 0.5 s, which a 0.25 s per-try timeout cuts off and retries.

:func:`run_scenario` runs one on 127.0.0.1 and returns the upstream's own count of what arrived (per
request id: attempts and statuses), so harm is counted where it happens, not inferred from the proxy's
log. :func:`albstats.whatif_check.check_whatif` runs a scenario twice, "before" (one try: a logging
pass-through, as an ALB would log it) and "after" (the policy), and asks whether what ``whatif``
predicted from the "before" log lies inside the 95 % interval of what the proxy then measured.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp

from albstats.proxy.policy import RetryPolicy, make_policy
from albstats.proxy.server import ProxyConfig, RetryProxy
from albstats.proxy.upstream_sim import UpstreamSim, make_config

#: Simulator settings per scenario (``down`` has no simulator).
SCENARIOS: dict[str, dict[str, Any] | None] = {
    "flaky": dict(error_rate=0.10, error_statuses=(502, 503, 504), latency="lognormal:0.003,0.5"),
    "down": None,
    "slow": dict(slow_rate=0.10, slow_latency="fixed:0.5", latency="lognormal:0.003,0.5"),
}

#: The policies the scenarios are checked with: the recommended one with waits scaled down so a run
#: takes seconds (the spacing changes latency, not the success rate or the number of attempts).
CHECK_POLICIES: dict[str, RetryPolicy] = {
    "flaky": make_policy("recommended", backoff_base=0.005, backoff_cap=0.02),
    "down": make_policy("recommended", backoff_base=0.005, backoff_cap=0.02),
    "slow": make_policy("recommended", backoff_base=0.005, backoff_cap=0.02, per_try_timeout=0.25),
}

#: Client concurrency per scenario in :func:`check_whatif`. One at a time makes ``flaky`` exactly
#: reproducible (seeded simulator and jitter, one order of attempts); ``slow`` needs a few in parallel to
#: finish in seconds, and few enough that the shared event loop adds no timeouts of its own.
CHECK_CONCURRENCY = {"flaky": 1, "down": 25, "slow": 10}


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_scenario(
    scenario: str,
    policy: RetryPolicy,
    log_path: str | Path,
    requests: int,
    *,
    concurrency: int = 25,
    post_share: float = 0.0,
    seed: int = 3,
) -> dict[str, Any]:
    """``requests`` client requests (``post_share`` of them POSTs with a body) through the proxy with
    ``policy`` to a fresh scenario upstream; returns the upstream's snapshot with per-request detail
    (empty counts for ``down``). Bounded: each client request has a 120 s timeout."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    if not 1 <= requests <= 1_000_000:
        raise ValueError("requests must be between 1 and 1,000,000")
    knobs = SCENARIOS[scenario]
    sim = UpstreamSim(make_config(listen_port=0, seed=seed, **knobs)) if knobs is not None else None
    port = await sim.start() if sim is not None else _closed_port()
    proxy = RetryProxy(
        ProxyConfig(
            upstream=f"http://127.0.0.1:{port}", listen_port=0, policy=policy, access_log=str(log_path), seed=seed
        )
    )
    pport = await proxy.start()
    gate = asyncio.Semaphore(concurrency)
    post_every = round(1 / post_share) if post_share > 0 else 0
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as client:

            async def one(i: int) -> None:
                post = bool(post_every) and i % post_every == 0
                hdrs = {"X-Request-Id": f"{scenario}-{i}"}
                url = f"http://127.0.0.1:{pport}/owners/{i % 50}/" + ("visits" if post else "pets")
                async with gate:
                    req = (
                        client.post(url, data=b'{"visit": 1}', headers=hdrs) if post else client.get(url, headers=hdrs)
                    )
                    async with req as r:
                        await r.read()

            await asyncio.gather(*(one(i) for i in range(requests)))
    finally:
        await proxy.close()
        if sim is not None:
            await sim.close()
    if sim is None:
        return {"attempts": 0, "requests": 0, "resets": 0, "statuses": {}, "methods": {}, "by_request": {}}
    return sim.snapshot(detail=True)


def duplicated_posts(snapshot: dict[str, Any]) -> tuple[int, int, int]:
    """(POSTs that arrived, POSTs that arrived more than once, extra POST executions) at the upstream."""
    posts = [e for e in snapshot.get("by_request", {}).values() if e["method"] == "POST"]
    return len(posts), sum(e["attempts"] > 1 for e in posts), sum(e["attempts"] - 1 for e in posts)
