"""Reproducible before/after experiments: a scenario upstream, the proxy with a policy, bounded load.

Three scenarios, the ones a retry policy has to be judged on:

- ``flaky``: 10 % of attempts answered 502/503/504, the rest in a few milliseconds;
- ``down``: nothing listens at the upstream address (every attempt is refused: the retry storm case);
- ``slow``: 10 % of attempts take 0.5 s, which a 0.25 s per-try timeout cuts off and retries.

:func:`run_scenario` runs one on 127.0.0.1 and returns the upstream's own count of what arrived (per
request id: attempts and statuses), so harm is counted where it happens, not inferred from the proxy's
log. :func:`check_whatif` runs a scenario twice, "before" (one try: a logging pass-through, as an ALB
would log it) and "after" (the policy), and asks whether what ``whatif`` predicted from the "before"
log lies inside the 95 % interval of what the proxy then measured.
"""

from __future__ import annotations

import asyncio
import math
import socket
from dataclasses import dataclass
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


@dataclass
class WhatIfCheck:
    """One scenario: whatif's prediction from the "before" log against the proxy's measurement."""

    scenario: str
    policy: str
    before_requests: int
    after_requests: int
    predicted_success: float
    measured_success: float
    success_ci: tuple[float, float]
    predicted_attempts: float
    measured_attempts: float
    attempts_ci: tuple[float, float]

    @property
    def success_inside(self) -> bool:
        return self.success_ci[0] <= self.predicted_success <= self.success_ci[1]

    @property
    def attempts_inside(self) -> bool:
        return self.attempts_ci[0] <= self.predicted_attempts <= self.attempts_ci[1]

    def render(self) -> str:
        def mark(ok: bool) -> str:
            return "inside" if ok else "OUTSIDE"

        return (
            f"{self.scenario:6} success rate: predicted {self.predicted_success:.2%}, measured "
            f"{self.measured_success:.2%} [{self.success_ci[0]:.2%}, {self.success_ci[1]:.2%}] "
            f"{mark(self.success_inside)}; attempts/request: predicted {self.predicted_attempts:.3f}, measured "
            f"{self.measured_attempts:.3f} [{self.attempts_ci[0]:.3f}, {self.attempts_ci[1]:.3f}] "
            f"{mark(self.attempts_inside)}  ({self.before_requests} before, {self.after_requests} after)"
        )


async def check_whatif(
    scenario: str,
    workdir: Path,
    *,
    before: int = 1500,
    after: int = 1500,
    policy: RetryPolicy | None = None,
    simulations: int = 40_000,
    seed: int = 3,
    concurrency: int | None = None,
) -> WhatIfCheck:
    """Run ``scenario`` before (one try) and after (``policy``), predict the after from the before log
    with ``whatif``, and measure the after log with ``compare``'s intervals (Wilson; mean +- 1.96 SE).

    Both runs use the same simulator seed, so the upstream fails the same sequence of attempts before
    and after (common random numbers): the check then tests the model (independent attempts, the
    policy's rules), not whether two samples of a 10 % failure rate happened to agree."""
    from albstats.compare import Z95, load_side, wilson
    from albstats.whatif import whatif

    pol = policy or CHECK_POLICIES[scenario]
    one_try = make_policy("recommended", max_attempts=1)
    b_log, a_log = workdir / f"{scenario}-before.log", workdir / f"{scenario}-after.log"
    conc = concurrency or CHECK_CONCURRENCY[scenario]
    await run_scenario(scenario, one_try, b_log, before, seed=seed, concurrency=conc)
    await run_scenario(scenario, pol, a_log, after, seed=seed, concurrency=conc)
    pred = await asyncio.to_thread(whatif, [str(b_log)], pol, simulations=simulations, seed=seed)
    side = load_side([str(a_log)])
    n = side.requests
    mean = side.attempts / n
    var = max(0.0, side.attempts_sq / n - mean * mean) * n / max(1, n - 1)
    half = Z95 * math.sqrt(var / n)
    return WhatIfCheck(
        scenario=scenario,
        policy=pol.describe(),
        before_requests=pred.requests_observed,
        after_requests=n,
        predicted_success=pred.predicted["success_rate"],
        measured_success=side.good / n,
        success_ci=wilson(side.good, n),
        predicted_attempts=pred.predicted["upstream_requests_per_request"],
        measured_attempts=mean,
        attempts_ci=(mean - half, mean + half),
    )
