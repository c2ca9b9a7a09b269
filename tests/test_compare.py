"""compare: interval arithmetic against published values, and direct vs proxied logs end to end."""

from __future__ import annotations

import asyncio
import json
import math

import aiohttp
import numpy as np
import pytest
from typer.testing import CliRunner

from albstats.cli import app
from albstats.compare import bootstrap_percentiles, compare, newcombe, render_table, wilson
from albstats.errors import InputError
from albstats.proxy.policy import make_policy
from albstats.proxy.server import ProxyConfig, RetryProxy
from albstats.proxy.upstream_sim import UpstreamSim, make_config
from albstats.whatif import whatif


def test_wilson_and_newcombe_match_published_values():
    # Newcombe (1998), Stat Med 17:857, table I: 81/263 -> 0.2553 to 0.3662
    lo, hi = wilson(81, 263)
    assert round(lo, 4) == 0.2553 and round(hi, 4) == 0.3662
    assert wilson(0, 10)[0] == 0.0 and round(wilson(0, 10)[1], 4) == 0.2775
    # Newcombe (1998), Stat Med 17:873, table II example: 56/70 - 48/80 = 0.2, method 10: 0.0524 to 0.3339
    d, lo, hi = newcombe(48, 80, 56, 70)
    assert round(d, 4) == 0.2 and round(lo, 4) == 0.0524 and round(hi, 4) == 0.3339


def test_bootstrap_is_seeded_and_covers_the_truth():
    rng = np.random.default_rng(0)
    a, b = rng.exponential(0.1, 3000), rng.exponential(0.1, 3000) + 0.05
    r1 = bootstrap_percentiles(a, b, resamples=300)
    r2 = bootstrap_percentiles(a, b, resamples=300)
    assert r1 == r2
    est, lo, hi = r1[50]["change"]
    assert lo < 0.05 < hi and lo > 0
    assert r1[99]["before"][1] < np.log(100) * 0.1 < r1[99]["before"][2]


async def _run(tmp_path, name: str, tries: int, n: int = 1000):
    sim = UpstreamSim(make_config(listen_port=0, error_rate=0.1, error_statuses=(502, 503), seed=2, latency="0.002"))
    sport = await sim.start()
    pol = make_policy(max_attempts=tries, backoff_base=0.005, backoff_cap=0.02)
    proxy = RetryProxy(
        ProxyConfig(
            upstream=f"http://127.0.0.1:{sport}", listen_port=0, policy=pol, access_log=str(tmp_path / name), seed=1
        )
    )
    port = await proxy.start()
    sem = asyncio.Semaphore(30)
    try:
        async with aiohttp.ClientSession() as cs:

            async def one(i):
                async with sem, cs.get(f"http://127.0.0.1:{port}/c?i={i}") as r:
                    await r.read()

            await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await proxy.close()
        await sim.close()


@pytest.mark.integration  # slow: simulated traffic (~6 s)
def test_direct_vs_proxied_is_better_with_intervals(tmp_path):
    # "direct": the proxy with one try is a pass-through that logs like an ALB
    asyncio.run(_run(tmp_path, "direct.log", 1))
    asyncio.run(_run(tmp_path, "proxied.log", 3))
    r = compare([str(tmp_path / "direct.log")], [str(tmp_path / "proxied.log")], slo=0.99, resamples=300)
    assert r.verdict == "better"
    sr = r.metric("success_rate")
    assert 0.86 < sr.before < 0.94 and sr.after > 0.99
    assert sr.change_ci[0] > 0 and sr.before_ci[0] < sr.before < sr.before_ci[1]
    burn = r.metric("error_budget_burn")
    assert burn.before > 5 and burn.after < burn.before and burn.verdict == "better"
    amp = r.metric("upstream_requests_per_request")
    assert amp.before == 1.0 and 1.05 < amp.after < 1.2 and amp.verdict == "worse"
    assert any(t.startswith("upstream_requests_per_request worse") for t in r.tradeoffs)
    assert set(r.histogram) >= {"1", "2"} and r.histogram["1"]["before"][0] == 1000
    assert r.malformed_lines == {"before": 0, "after": 0}
    for m in r.metrics:
        if m.name == "non_idempotent_repeated":  # GETs only: no non-idempotent request on either side
            assert math.isnan(m.before) and m.verdict == "n/a"
            continue
        assert m.before_ci[0] <= m.before <= m.before_ci[1] + 1e-12
    text = render_table(r)
    assert "verdict: better" in text and "95% CI" in text and "trade-offs" in text
    # the CLI, both formats
    res = CliRunner().invoke(app, ["compare", str(tmp_path / "direct.log"), str(tmp_path / "proxied.log")])
    assert res.exit_code == 0 and "verdict: better" in res.output
    js = CliRunner().invoke(
        app,
        ["compare", str(tmp_path / "direct.log"), str(tmp_path / "proxied.log"), "--format", "json", "--slo", "99.9"],
    )
    data = json.loads(js.output)
    assert data["verdict"] == "better" and data["slo"] == 0.999
    # whatif on the "before" logs predicts what the proxy then measured (the failures here are independent)
    pred = whatif([str(tmp_path / "direct.log")], make_policy(backoff_base=0.005, backoff_cap=0.02), simulations=20_000)
    assert abs(pred.predicted["success_rate"] - sr.after) < 0.01
    assert abs(pred.predicted["upstream_requests_per_request"] - amp.after) < 0.03
    # the same logs on both sides: nothing changed
    same = compare([str(tmp_path / "proxied.log")], [str(tmp_path / "proxied.log")], resamples=200)
    assert same.verdict == "no significant change"


def test_bad_input(tmp_path):
    (tmp_path / "empty.log").write_text("")
    with pytest.raises(InputError, match="BEFORE"):
        compare([str(tmp_path / "empty.log")], [str(tmp_path / "empty.log")])
    res = CliRunner().invoke(app, ["compare", str(tmp_path / "empty.log"), str(tmp_path / "x.log"), "-f", "xml"])
    assert res.exit_code == 2 and "--format" in res.output
    res = CliRunner().invoke(app, ["compare", str(tmp_path / "empty.log"), str(tmp_path / "empty.log")])
    assert res.exit_code == 1 and "albstats: error:" in res.output


@pytest.mark.integration  # slow: simulated traffic (~6 s)
def test_harm_of_the_seed_policy_next_to_the_recommended_one(tmp_path):
    """Duplicated POSTs (as the upstream counted them), the retry storm with the upstream down, and the
    wait the seed's spacing adds to rescued requests: compare finds each in the logs alone."""
    from albstats.proxy.scenarios import duplicated_posts, run_scenario

    seed = make_policy("seed", fixed_interval=0.05)  # the seed's 5 tries, every method; spacing scaled down
    rec = make_policy(backoff_base=0.005, backoff_cap=0.02)
    one = make_policy(max_attempts=1)
    logs = {k: tmp_path / f"{k}.log" for k in ("before", "seed", "rec", "down-seed", "down-rec", "down-before")}

    async def go():
        snaps = {}
        for name, pol in (("before", one), ("seed", seed), ("rec", rec)):
            snaps[name] = await run_scenario("flaky", pol, logs[name], 600, post_share=0.25, concurrency=30)
        for name, pol in (("down-before", one), ("down-seed", seed), ("down-rec", rec)):
            await run_scenario("down", pol, logs[name], 200, concurrency=50)
        return snaps

    snaps = asyncio.run(go())
    r_seed = compare([str(logs["before"])], [str(logs["seed"])], resamples=200)
    r_rec = compare([str(logs["before"])], [str(logs["rec"])], resamples=200)
    # duplicated POSTs: the seed repeats them, the recommended policy never does; the log's count is the
    # upstream's own count (every attempt here reached the upstream)
    posts, dup, extra = duplicated_posts(snaps["seed"])
    assert posts == 150 and dup > 5
    assert r_seed.harm["after"]["non_idempotent_repeated"] == dup
    assert r_seed.harm["after"]["non_idempotent_extra_attempts"] == extra
    m = r_seed.metric("non_idempotent_repeated")
    assert m.before == 0 and m.after == dup / 150 and m.verdict == "worse"
    assert any(t.startswith("non_idempotent_repeated worse") for t in r_seed.tradeoffs)
    assert duplicated_posts(snaps["rec"])[1] == 0 and r_rec.metric("non_idempotent_repeated").after == 0
    # the spacing: every success after a retry waited at least one interval before its answering attempt
    h = r_seed.harm["after"]
    assert h["successes_after_retry"] > 30 and h["retry_wait_p50"] >= 0.05
    assert r_seed.metric("retry_wait_per_success").verdict == "worse"
    # the upstream down: 5 attempts per failed request under the seed, about 1.2 under the budget
    d_seed = compare([str(logs["down-before"])], [str(logs["down-seed"])], resamples=200)
    d_rec = compare([str(logs["down-before"])], [str(logs["down-rec"])], resamples=200)
    storm = d_seed.metric("upstream_requests_per_failed_request")
    assert storm.before == 1.0 and storm.after == 5.0 and storm.verdict == "worse"
    assert d_rec.metric("upstream_requests_per_failed_request").after <= 1.2 + 10 / 200 + 0.06
    text = render_table(d_seed)
    assert "harm (counted in the logs)" in text and "200 failed requests took 1000 upstream attempts" in text
    # the CLI: several AFTER log sets side by side against one BEFORE
    res = CliRunner().invoke(app, ["compare", str(logs["before"]), str(logs["seed"]), str(logs["rec"])])
    assert res.exit_code == 0, res.output
    header = res.output.splitlines()[2]
    assert f"{logs['seed']} [95% CI]" in header and f"{logs['rec']} [95% CI]" in header
    assert f"{logs['seed']}: {_harm_of(dup)}" in res.output and f"{logs['rec']}: 0 of 150" in res.output
    js = json.loads(
        CliRunner()
        .invoke(app, ["compare", str(logs["before"]), str(logs["seed"]), str(logs["rec"]), "-f", "json"])
        .output
    )
    assert js[str(logs["seed"])]["harm"]["after"]["non_idempotent_repeated"] == dup


def _harm_of(dup: int) -> str:
    return f"{dup} of 150 non-idempotent requests sent more than once"
