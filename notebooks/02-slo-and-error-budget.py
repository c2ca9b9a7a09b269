# %% [markdown]
# # 02 · SLO, error budget and burn rates
#
# **The SLO.** "99 % of requests succeed" (`SLO = 0.99`) over the window. A request is *bad* when the
# load balancer answered it with a 5XX: the service failed it. 4XX answers are the client's (a wrong
# URL, a missing token, a WAF block) and do not count against the service. (`--count-460` in the CLI
# also counts 460, "the client gave up", usually on a slow target.)
#
# **The error budget** is the failure the SLO allows: `(1 - SLO) x requests` bad requests. At 99 %
# and 40,000 requests that is 400 failures. *Remaining fraction* 1 means untouched, 0 spent, below 0
# overspent.
#
# **The burn rate** is how fast the budget goes: `(bad / requests) / (1 - SLO)` over some window.
# A burn rate of 1 spends exactly the whole budget over the SLO period; 14.4 sustained for one hour
# spends 2 % of a 30-day budget. The SRE workbook alerts when **both** a long and a short window burn
# above a threshold: 1 h and 5 min above 14.4 (page), 6 h and 30 min above 6 (page), 3 days and 6 h
# above 1 (ticket). The long window proves it is significant, the short one that it is still happening.
#
# This notebook computes all of that in pandas from per-5-minute counts (the saved query `slo_buckets`)
# and checks it equals `albstats report`'s `report.json`.

# %% tags=["parameters"]
# Parameters: everything that points this notebook at data. Set the environment variables (or edit
# here) to run it on your own logs or on Athena; the defaults read the bundled fixtures.
import os

ENGINE = os.environ.get("ALBSTATS_ENGINE", "local")  # "local" (DuckDB over files) or "athena"
LOGS = os.environ.get("ALBSTATS_LOGS", "../fixtures/AWSLogs")  # local engine: folder, files, glob or s3:// prefix
SINCE = os.environ.get("ALBSTATS_SINCE") or None  # window start: ISO-8601 UTC or an age like 7d; None = all data
UNTIL = os.environ.get("ALBSTATS_UNTIL") or None  # window end (exclusive); None = up to the last request
SLO = float(os.environ.get("ALBSTATS_SLO", "99.0")) / 100  # availability target, as `albstats report --slo`
LATENCY_THRESHOLD = float(os.environ.get("ALBSTATS_LATENCY_THRESHOLD", "1.0"))  # seconds, total time

# Athena (ENGINE = "athena"): the same settings `albstats --engine athena` reads.
ATHENA = {
    "database": os.environ.get("ALBSTATS_ATHENA_DATABASE", "albstats"),
    "table": os.environ.get("ALBSTATS_ATHENA_TABLE", "alb_logs"),
    "workgroup": os.environ.get("ALBSTATS_ATHENA_WORKGROUP"),
    "output_location": os.environ.get("ALBSTATS_ATHENA_OUTPUT_LOCATION"),  # s3://bucket/prefix/
    "region": os.environ.get("ALBSTATS_ATHENA_REGION"),
}

# %%
# %matplotlib inline
import re

import pandas as pd

import albstats


def utc(value):
    """ISO-8601 text or an age such as 7d / 12h / 30m (= that long before now) -> UTC Timestamp."""
    if not value:
        return None
    m = re.fullmatch(r"(\d+)([smhdw])", value.strip().lower())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m[2]]
        return pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(**{unit: int(m[1])})
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


since, until = utc(SINCE), utc(UNTIL)
if ENGINE == "athena":
    # Athena bills by data scanned: always give it a window (the report's default is the last 7 days)
    until = until or pd.Timestamp.now(tz="UTC").floor("s")
    since = since or until - pd.Timedelta(days=7)
    eng = albstats.connect(engine="athena", **{k: v for k, v in ATHENA.items() if v})
else:
    eng = albstats.connect(LOGS)
WINDOW = {"since": since, "until": until}  # passed to every query, so all numbers cover the same requests
print(f"engine {eng.name}; window {since or 'first request'} .. {until or 'last request'}")

# %% [markdown]
# ## Per-bucket counts
#
# One row per 5-minute bucket with requests, 5XX, 460s and latency-SLI counts. Buckets without
# requests are absent in the query result; put them back as zeros so quiet time counts as quiet.

# %%
buckets = eng.query("slo_buckets", bucket="5m", latency_threshold=LATENCY_THRESHOLD, **WINDOW)
grid = buckets.set_index("bucket_start").resample("5min").sum()
if since is not None or until is not None:  # a given window: the grid covers all of it
    lo = (since or grid.index.min()).floor("5min")
    hi = (until - pd.Timedelta(microseconds=1)).floor("5min") if until is not None else grid.index.max()
    grid = grid.reindex(
        pd.date_range(min(lo, grid.index.min()), max(hi, grid.index.max()), freq="5min", tz="UTC"), fill_value=0
    )
grid["bad"] = grid["errors_5xx"]
print(f"{len(grid)} buckets of 5 minutes")
grid.head()

# %% [markdown]
# ## Availability and the error budget

# %%
requests, bad = int(grid["requests"].sum()), int(grid["bad"].sum())
success_rate = 1 - bad / requests
allowed = (1 - SLO) * requests
remaining_fraction = (allowed - bad) / allowed
burn_window = (bad / requests) / (1 - SLO)
pd.Series(
    {
        "requests": requests,
        "bad requests (5XX)": bad,
        "success rate": f"{success_rate:.4%}",
        "SLO": f"{SLO:.2%}",
        "met": success_rate >= SLO,
        "budget allowed": round(allowed, 1),
        "budget used": bad,
        "budget remaining": f"{remaining_fraction:.1%}",
        "burn rate over the window": round(burn_window, 3),
    }
)


# %% [markdown]
# ## Burn rates over time
#
# Rolling sums over the grid give the burn rate of the last hour (12 buckets) and the last 6 hours
# (72 buckets) at every 5-minute step. The worst 1 h window is where the budget went fastest.


# %%
def burn(n_buckets, target=SLO):
    """Burn rate of the window of n_buckets ending with each bucket (NaN until the window is full)."""
    r = grid[["requests", "bad"]].rolling(n_buckets).sum()
    return (r["bad"] / r["requests"].where(r["requests"] > 0)) / (1 - target)


burn_1h, burn_6h, burn_5m, burn_30m = burn(12), burn(72), burn(1), burn(6)
worst_1h_end = burn_1h.idxmax() + pd.Timedelta(minutes=5)
print(f"worst 1 h: burn rate {burn_1h.max():.2f}, {worst_1h_end - pd.Timedelta(hours=1)} .. {worst_1h_end}")
print(f"worst 6 h: burn rate {burn_6h.max():.2f}" if burn_6h.notna().any() else "less than 6 h of data")

# the SRE-workbook multiwindow alerts: long AND short window above the threshold
page_1h = (burn_1h > 14.4) & (burn_5m > 14.4)
page_6h = (burn_6h > 6) & (burn_30m > 6)
print(
    f"1h/5m page (14.4): {'fired' if page_1h.any() else 'quiet'}; "
    f"6h/30m page (6): {'fired' if page_6h.any() else 'quiet'}"
)

# %% [markdown]
# The left chart is albstats' own `plots.burn_down` (budget remaining over the window, from
# `albstats.slo.burn_down`), drawn into an `Axes` of our figure; the right one is drawn by hand from the
# rolling burn rates, with the alert thresholds.

# %%
import matplotlib.dates as mdates
from matplotlib.figure import Figure

from albstats import plots, slo

fig = Figure(figsize=(12, 4), layout="constrained")
left, right = fig.subplots(1, 2)
plots.burn_down(slo.burn_down(buckets, SLO, start=since, end=until), ax=left)
step = pd.Timedelta(minutes=5)  # a rolling window labelled by its last bucket ends 5 minutes later
right.plot(burn_1h.index + step, burn_1h, label="1 h window", color="#c0392b")
right.plot(burn_6h.index + step, burn_6h, label="6 h window", color="#2980b9")
for thr, label in ((14.4, "page: 14.4"), (6, "page: 6"), (1, "budget pace: 1")):
    right.axhline(thr, ls="--", lw=1, color="grey")
    right.annotate(label, (burn_1h.index[0], thr), fontsize="small", va="bottom")
right.set_yscale("log")
locator = mdates.AutoDateLocator(tz="UTC")
right.xaxis.set_major_locator(locator)
right.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC"))
right.set_title("burn rate (window ending at t)")
right.legend(loc="upper right")
fig

# %% [markdown]
# ### What if the SLO were 99.9 %?
#
# The same failures against a ten times smaller budget: a burn rate ten times higher. An incident that
# a 99 % SLO absorbs can page at 99.9 %. Which alert pairs would have fired, and for how long?

# %%
STRICT = 0.999
strict = {}
for name, long, short, threshold in (("1h/5m", 12, 1, 14.4), ("6h/30m", 72, 6, 6.0), ("3d/6h", 864, 72, 1.0)):
    firing = (burn(long, STRICT) > threshold) & (burn(short, STRICT) > threshold)
    strict[name] = {
        "fired": bool(firing.any()),
        "minutes firing": 5 * int(firing.sum()),
        "first fired": firing.idxmax() + pd.Timedelta(minutes=5) if firing.any() else None,
    }
pd.DataFrame(strict).T

# %% [markdown]
# ## The latency SLO
#
# Among requests that reached a target (no `-1` timing), the share whose total time is under the
# threshold. With `--latency-slo 1s@95` the report holds it against 95 %.

# %%
latency_share = grid["latency_good"].sum() / grid["latency_requests"].sum()
print(f"{latency_share:.2%} of dispatched requests took under {LATENCY_THRESHOLD:g} s")

# %% [markdown]
# ## The same numbers as `report.json`
#
# Write the report exactly as `albstats report -o DIR` does, read its `report.json` back, and
# compare every SLO number computed above.

# %%
import json
import tempfile
from pathlib import Path

from albstats import render
from albstats.report import Options, build

opts = Options(
    slo=SLO,
    latency_threshold=LATENCY_THRESHOLD,
    since=since.to_pydatetime() if since is not None else None,
    until=until.to_pydatetime() if until is not None else None,
)
out = Path(tempfile.mkdtemp(prefix="albstats-report-"))
written = render.write(build(eng, opts), out / "report")
rep = json.loads(written["report.json"].read_text())
print(sorted(written))
print({k: rep[k] for k in ("requests", "bad_requests", "success_rate")}, rep["error_budget"])

# %%
import math


def same(a, b):
    return (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


assert rep["requests"] == requests and rep["bad_requests"] == bad
assert same(rep["success_rate"], success_rate) and rep["slo"]["met"] == (success_rate >= SLO)
assert same(rep["error_budget"]["allowed"], allowed) and rep["error_budget"]["used"] == bad
assert same(rep["error_budget"]["remaining_fraction"], remaining_fraction)
assert same(rep["burn_rate"]["window"], burn_window)
assert same(rep["burn_rate"]["worst_1h"]["burn_rate"], float(burn_1h.max()))
assert rep["burn_rate"]["worst_1h"]["end"] == worst_1h_end.strftime("%Y-%m-%dT%H:%M:%SZ")
if burn_6h.notna().any():
    assert same(rep["burn_rate"]["worst_6h"]["burn_rate"], float(burn_6h.max()))
alerts = {a["name"]: a for a in rep["burn_rate"]["alerts"]}
assert alerts["1h/5m"]["fired"] == bool(page_1h.any()) and alerts["6h/30m"]["fired"] == bool(page_6h.any())
assert alerts["1h/5m"]["minutes_firing"] == 5 * int(page_1h.sum())
assert same(rep["latency"]["slo"]["share"], float(latency_share))
# the stricter SLO, against albstats' own alert evaluation on the same buckets (3d/6h needs 3 days of data)
for a in slo.availability(buckets, STRICT, start=since, end=until).alerts:
    if a.evaluated:
        assert (a.fired, a.minutes_firing) == (strict[a.name]["fired"], strict[a.name]["minutes firing"]), a
        assert a.first_fired == (strict[a.name]["first fired"] if a.fired else None), a
print(
    f"OK: success rate {success_rate:.4%}, budget remaining {remaining_fraction:.1%}, "
    f"worst 1 h burn {burn_1h.max():.2f} = report.json"
)
eng.close()
