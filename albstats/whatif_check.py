"""whatif checked against measurement: run a scenario through the proxy before (one try) and after (a
policy), and ask whether what ``whatif`` predicted from the "before" log lies inside the confidence
intervals of what the proxy then measured (issue 16, item 4).

Its own module above both :mod:`albstats.proxy` (which runs the scenarios) and :mod:`albstats.whatif`
(which predicts), so that neither has to import the other.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path

from albstats.proxy.policy import RetryPolicy, make_policy
from albstats.proxy.scenarios import CHECK_CONCURRENCY, CHECK_POLICIES, run_scenario


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
