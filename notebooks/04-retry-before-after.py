# %% [markdown]
# # 04 · Did the retry proxy help? Help and harm, before and after, with confidence intervals
#
# The original fix for the flaky vet-hospital system was a retrying reverse proxy: 5 tries, 3 s apart,
# whatever the method (the **seed** policy). Retries raise the success rate a client sees, at a price:
# a POST that failed may already have done its work upstream, so repeating it can book a visit twice;
# against a dead upstream every request becomes 5 requests (a retry storm); and a request rescued by
# the third try has waited 6 s for it. This notebook measures the help *and* the harm of the seed
# policy side by side with the **recommended** one (at most 3 attempts, idempotent methods only,
# jittered backoff, a retry budget).
#
# `albstats compare BEFORE AFTER [AFTER ...]` measures a change from log sets: success rate (Wilson
# intervals, Newcombe for the difference), error-budget burn, latency percentiles (bootstrap intervals),
# upstream requests per client request, and the harm: non-idempotent requests sent more than once,
# upstream requests per failed request, and the wait retries add to successful requests. It only says
# "better" when the 95 % interval of the change excludes zero, and lists every significant harm as a
# trade-off.
#
# By default this notebook makes the log sets itself, on 127.0.0.1: albstats' flaky-upstream simulator
# (10 % 502/503/504) behind the proxy with one try (**before**: a pass-through that logs like an ALB),
# with the seed policy and with the recommended policy; a quarter of the requests are POSTs. To compare
# your own periods instead, point `ALBSTATS_BEFORE` and `ALBSTATS_AFTER` at two log sets (folders, files
# or `s3://` prefixes: `compare` streams the files itself, on either engine setting).

# %% tags=["parameters"]
# Parameters: everything that points this notebook at data. Set the environment variables (or edit
# here) to run it on your own logs or on Athena; the defaults simulate the log sets locally.
import os

ENGINE = os.environ.get("ALBSTATS_ENGINE", "local")  # "local" or "athena": engine for the per-period reports
LOGS = os.environ.get("ALBSTATS_LOGS", "../fixtures/AWSLogs")  # not needed here; kept for symmetry
BEFORE = os.environ.get("ALBSTATS_BEFORE") or None  # log set before the change; None = simulate
AFTER = os.environ.get("ALBSTATS_AFTER") or None  # log set after the change; None = simulate
# Athena: the two periods as windows of the table (ISO-8601 UTC), for the per-period SLO reports
BEFORE_WINDOW = (os.environ.get("ALBSTATS_BEFORE_SINCE"), os.environ.get("ALBSTATS_BEFORE_UNTIL"))
AFTER_WINDOW = (os.environ.get("ALBSTATS_AFTER_SINCE"), os.environ.get("ALBSTATS_AFTER_UNTIL"))
SLO = float(os.environ.get("ALBSTATS_SLO", "99.0")) / 100
REQUESTS = int(os.environ.get("ALBSTATS_SIM_REQUESTS", "800"))  # simulated client requests per run

ATHENA = {
    "database": os.environ.get("ALBSTATS_ATHENA_DATABASE", "albstats"),
    "table": os.environ.get("ALBSTATS_ATHENA_TABLE", "alb_logs"),
    "workgroup": os.environ.get("ALBSTATS_ATHENA_WORKGROUP"),
    "output_location": os.environ.get("ALBSTATS_ATHENA_OUTPUT_LOCATION"),
    "region": os.environ.get("ALBSTATS_ATHENA_REGION"),
}

# %% [markdown]
# ## Making the log sets (simulator + proxy on 127.0.0.1)
#
# Every run sends the same requests (GETs, and every fourth one a POST with a body) to a fresh
# simulator with the same seed, so the upstream fails the same sequence of attempts in each run. The
# proxy writes one ALB-format access-log line per client request; `target:port_list` and
# `target_status_code_list` list every upstream attempt, so the logs show the retries. The simulator
# also counts, per request id, every attempt that *arrived*: the ground truth for duplicated POSTs.
#
# The seed policy keeps its real 3 s spacing here (that wait is one of the harms being measured);
# the recommended policy's backoff is shortened to milliseconds so the notebook runs in seconds.

# %%
# %matplotlib inline
import tempfile
from pathlib import Path

import pandas as pd
from IPython.display import display

import albstats
from albstats.proxy.policy import make_policy
from albstats.proxy.scenarios import duplicated_posts, run_scenario

seed_policy = make_policy("seed")  # 5 tries, 3 s apart, any 5XX, every method, no budget
recommended = make_policy("recommended", backoff_base=0.01, backoff_cap=0.05)  # faster backoff for the demo
one_try = make_policy("recommended", max_attempts=1)  # a logging pass-through
for pol in (seed_policy, recommended):
    print(pol.describe())

simulated = BEFORE is None or AFTER is None
if simulated:
    work = Path(tempfile.mkdtemp(prefix="albstats-retry-"))
    BEFORE, AFTER, SEED = (str(work / f"{k}.log") for k in ("before", "recommended", "seed"))
    upstream = {}
    for name, log, pol in (
        ("before", BEFORE, one_try),
        ("recommended", AFTER, recommended),
        ("seed", SEED, seed_policy),
    ):
        # the seed's 3 s waits hold a client slot each: more in parallel keeps the run short
        upstream[name] = await run_scenario(
            "flaky", pol, log, REQUESTS, post_share=0.25, concurrency=100 if name == "seed" else 25
        )
    print({k: (v["requests"], v["attempts"]) for k, v in upstream.items()}, "(requests, upstream attempts)")

# %% [markdown]
# ## Compare: help and harm side by side
#
# Read each cell as: the estimate, its 95 % interval, the change against *before* and what it means.
# The harm rows: `non_idempotent_repeated` (share of POSTs sent upstream more than once),
# `upstream_requests_per_failed_request` (what a failure costs the upstream) and
# `retry_wait_per_success` (mean time successful requests spent on earlier attempts and waits).

# %%
from albstats.compare import compare, render_side_by_side, render_table

if simulated:
    results = {"seed": compare(BEFORE, SEED, slo=SLO), "recommended": compare(BEFORE, AFTER, slo=SLO)}
    print(render_side_by_side(results))
    result = results["recommended"]
else:
    result = compare(BEFORE, AFTER, slo=SLO)
    results = {"after": result}
    print(render_table(result))

# %%
metrics = pd.concat(
    {
        name: pd.DataFrame(
            [
                {
                    "metric": m.name,
                    "before": m.before,
                    "after": m.after,
                    "change": m.change,
                    "change_lo": m.change_ci[0],
                    "change_hi": m.change_ci[1],
                    "verdict": m.verdict,
                }
                for m in r.metrics
            ]
        ).set_index("metric")
        for name, r in results.items()
    },
    axis=1,
)
metrics

# %% [markdown]
# The success rate of each log set with its interval, and how many upstream attempts a client request
# took (the retry histogram):

# %%
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

fig = Figure(figsize=(11, 3.8), layout="constrained")
left, right = fig.subplots(1, 2)
sr = result.metric("success_rate")
points = [("before", sr.before, sr.before_ci)]
points += [(k, r.metric("success_rate").after, r.metric("success_rate").after_ci) for k, r in results.items()]
for x, (label, value, (lo, hi)) in enumerate(points):
    left.errorbar([x], [value], yerr=[[value - lo], [hi - value]], fmt="o", capsize=6, ms=7, label=label)
left.axhline(SLO, ls="--", color="grey", label=f"SLO {SLO:.0%}")
left.set_xticks(range(len(points)), [p[0] for p in points])
left.set_xlim(-0.5, len(points) - 0.5)
left.yaxis.set_major_formatter(PercentFormatter(1.0))
left.set_title("success rate, 95 % interval")
left.legend()
attempts = sorted({int(k) for r in results.values() for k in r.histogram})
share = {"before": {k: result.histogram.get(str(k), {"before": [0, 0.0]})["before"][1] for k in attempts}}
share.update(
    {
        name: {k: r.histogram.get(str(k), {"after": [0, 0.0]})["after"][1] for k in attempts}
        for name, r in results.items()
    }
)
pd.DataFrame(share).plot.bar(ax=right, rot=0)
right.set_xlabel("upstream attempts per client request")
right.set_ylabel("share of requests")
right.set_yscale("log")
right.set_title("retries")
fig

# %% [markdown]
# ## Harm 1: duplicated POSTs, counted at the upstream
#
# The seed policy retries a POST after a 5XX. The upstream may well have done the work before it
# failed (a timeout in the answer path, a crash after the commit), so every repeat is a possible second
# visit booked. The simulator counts what actually arrived, per request id; the proxy's log gives the
# same count, so `compare` finds it from logs alone. The recommended policy does not repeat a request
# without an `Idempotency-Key`.

# %%
if simulated:
    dup = pd.DataFrame(
        {
            name: dict(
                zip(
                    ("POSTs", "POSTs arriving more than once", "extra POST executions"),
                    duplicated_posts(upstream[name]),
                )
            )
            for name in upstream
        }
    ).T
    dup["repeated in the log (compare)"] = [
        0 if name == "before" else results[name].harm["after"]["non_idempotent_repeated"] for name in dup.index
    ]
    display(dup)

# %% [markdown]
# ## Harm 2: the retry storm, with the upstream down
#
# Nothing listens at the upstream address: every attempt is refused. Each policy gets the same
# requests. The seed policy turns each into 5 attempts: the load on the recovering service is five
# times the real traffic, exactly when it can least take it. The recommended policy's budget allows
# retries of at most 20 % of requests (plus a floor of 10 per 10 s), so the load stays near 1.2x. The
# seed's spacing is shortened to 50 ms here: the wait changes how long each request takes, not how many
# attempts it makes.

# %%
storm = {}
if simulated:
    down_logs = {k: str(work / f"down-{k}.log") for k in ("before", "seed", "recommended")}
    for name, pol in (
        ("before", one_try),
        ("seed", make_policy("seed", fixed_interval=0.05)),
        ("recommended", recommended),
    ):
        await run_scenario("down", pol, down_logs[name], 300, concurrency=50)
    storm = {k: compare(down_logs["before"], down_logs[k], slo=SLO) for k in ("seed", "recommended")}
    display(
        pd.DataFrame(
            {
                k: {
                    "success rate": r.metric("success_rate").after,
                    "upstream attempts per request": r.metric("upstream_requests_per_request").after,
                    "95 % CI low": r.metric("upstream_requests_per_request").after_ci[0],
                    "95 % CI high": r.metric("upstream_requests_per_request").after_ci[1],
                }
                for k, r in storm.items()
            }
        ).T
    )

# %% [markdown]
# ## Harm 3: what the spacing costs the requests it rescues
#
# A request that succeeds on its second try under the seed policy has waited 3 s before that try; on its
# third, 6 s. `retry_wait_per_success` averages that over all successes; the harm summary gives the wait
# of the rescued ones. The recommended policy's jittered backoff starts at milliseconds.

# %%
if simulated:
    waits = pd.DataFrame(
        {
            name: {
                k: r.harm["after"][k]
                for k in ("successes_after_retry", "retry_wait_p50", "retry_wait_p90", "retry_wait_max")
            }
            for name, r in results.items()
        }
    ).T
    waits["p99 latency of all requests (s)"] = [r.metric("latency_p99").after for r in results.values()]
    display(waits)

# %% [markdown]
# ## The SLO view of each period
#
# The same logs through `albstats report`'s computation: did the change turn a breached SLO into a
# met one, and how much error budget did each period burn?

# %%
from albstats.render.data import to_dict
from albstats.report import Options, build


def period_report(paths, window):
    """report.json for one period: its log set locally, or its window of the Athena table."""
    if ENGINE == "athena" and not simulated:
        since, until = (pd.Timestamp(t).to_pydatetime() if t else None for t in window)
        with albstats.connect(engine="athena", **{k: v for k, v in ATHENA.items() if v}) as eng:
            return to_dict(build(eng, Options(slo=SLO, since=since, until=until)))
    with albstats.connect(paths, cache=False) as eng:
        return to_dict(build(eng, Options(slo=SLO)))


periods = {"before": period_report(BEFORE, BEFORE_WINDOW), "after": period_report(AFTER, AFTER_WINDOW)}
pd.DataFrame(
    {
        k: {
            "requests": r["requests"],
            "success rate": r["success_rate"],
            "SLO met": r["slo"]["met"],
            "budget remaining": r["error_budget"]["remaining_fraction"],
            "burn rate": r["burn_rate"]["window"],
            "p99 total time (s)": r["latency"]["total_time"]["p99"],
        }
        for k, r in periods.items()
    }
)

# %% [markdown]
# ## What would a policy have done? (`whatif`)
#
# `whatif` replays the *before* log's outcomes under a policy to predict the *after*, assuming attempts
# fail independently (real outages cluster, so real retries help less). Here the prediction can be
# checked against what the proxy actually did (`bench/bench_whatif.py` checks three scenarios).

# %%
from albstats.whatif import whatif

predicted = whatif(BEFORE, recommended if simulated else make_policy("recommended"), simulations=5000)
pd.DataFrame(
    {
        "observed before": predicted.observed,
        "predicted after": predicted.predicted,
        "measured after": {
            "success_rate": sr.after,
            "upstream_requests_per_request": result.metric("upstream_requests_per_request").after,
        },
    }
).dropna(how="all")

# %% [markdown]
# ## Verdict
#
# The recommended policy is *better* only if the success rate's 95 % interval of the change lies above
# zero; the success rates `compare` reports are the same ones `albstats report` gives each period. The
# seed policy may be "better" on success rate too: its harm is what the other rows show.

# %%
import math

assert result.verdict == "better", render_table(result)
assert sr.change_ci[0] > 0 and sr.after > sr.before
for side, value, count in (("before", sr.before, result.before_requests), ("after", sr.after, result.after_requests)):
    assert periods[side]["requests"] == count
    assert math.isclose(periods[side]["success_rate"], value, rel_tol=1e-12), (side, periods[side])
if simulated:
    amp = result.metric("upstream_requests_per_request")
    assert result.before_requests == result.after_requests == REQUESTS
    assert amp.before == 1.0 and 1.0 < amp.after <= 1.2 + 10 / REQUESTS  # within the retry budget
    # the upstream's own count of attempts equals what the proxy logged
    assert upstream["recommended"]["attempts"] == round(amp.after * REQUESTS)
    assert not periods["before"]["slo"]["met"] and periods["after"]["success_rate"] > sr.before
    # the harm: duplicated POSTs (as the upstream counted them), the storm, the spacing
    posts, dup_seed, _ = duplicated_posts(upstream["seed"])
    assert dup_seed > 0 and duplicated_posts(upstream["recommended"])[1] == 0
    assert results["seed"].harm["after"]["non_idempotent_repeated"] == dup_seed
    assert results["seed"].metric("non_idempotent_repeated").verdict == "worse"
    assert storm["seed"].metric("upstream_requests_per_request").after == 5.0
    assert storm["recommended"].metric("upstream_requests_per_request").after <= 1.2 + 10 / 300 + 0.05
    wait = results["seed"].harm["after"]["retry_wait_p50"]
    assert wait >= 3.0
lo, hi = sr.change_ci
print(
    f"OK: verdict {result.verdict}: success rate {sr.before:.2%} -> {sr.after:.2%} "
    f"(change {sr.change * 100:+.2f} pp, 95 % CI {lo * 100:+.2f} to {hi * 100:+.2f})"
)
if simulated:
    print(
        f"seed policy: {dup_seed} of {posts} POSTs executed more than once; 5.0 upstream attempts per "
        f"request with the upstream down; rescued requests waited {wait:.1f} s (median) before the answer"
    )
