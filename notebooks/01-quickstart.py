# %% [markdown]
# # 01 · Quickstart: open ALB logs, error rate and latency
#
# This notebook opens a set of Application Load Balancer access logs, looks at the rows, and draws the
# two charts an SRE looks at first: the **5XX rate** over time against the SLO, and **latency
# percentiles**. It runs on the bundled fixtures (one generated day, 2026-11-16, with one incident)
# without an AWS account; set `ALBSTATS_ENGINE=athena` (and the Athena variables) to run the same
# cells against your Athena table.
#
# Everything here is albstats' public Python API:
#
# - `albstats.read_logs(paths)`: the raw rows as a pandas DataFrame (one row per request);
# - `albstats.connect(paths | engine="athena")`: an engine that runs the saved queries in `sql/`
#   (`eng.query(name, since=, until=, bucket=, limit=)`) and ad-hoc SQL (`eng.sql(text, params)`);
# - `albstats.plots`: one function per chart, each takes an optional matplotlib `Axes` and returns
#   the `Figure`.

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
# ## The rows
#
# Locally, `read_logs` parses the files into one DataFrame. Columns and values are those of AWS's
# Athena table for ALB logs (`elb_status_code` is an integer, `target_status_code` a string because it
# can be `-`, a timing of `-1` means "not dispatched" and is kept), except that `time` and
# `request_creation_time` are UTC timestamps. Malformed lines are never dropped silently: they are
# counted in the `ParseStats` you pass in. On Athena the sample comes from a bounded SQL query instead.

# %%
from albstats.parse import ParseStats

if ENGINE == "local":
    stats = ParseStats()
    rows = albstats.read_logs(LOGS, stats=stats)
    if since is not None or until is not None:  # read_logs has no window: filter the frame
        rows = rows[
            (rows["time"] >= (since or rows["time"].min()))
            & (rows["time"] < (until or rows["time"].max() + pd.Timedelta(seconds=1)))
        ]
    print(stats.summary())
else:
    # ad-hoc SQL on Athena must bound the `day` partition itself (saved queries get it from since/until)
    rows = eng.sql("SELECT * FROM alb_logs WHERE day = :day LIMIT 1000", {"day": until.strftime("%Y/%m/%d")})
print(f"{len(rows):,} rows")
rows[
    [
        "time",
        "client_ip",
        "request_verb",
        "request_url",
        "elb_status_code",
        "target_status_code",
        "target_processing_time",
    ]
].head()

# %% [markdown]
# `read_logs` returns the low-cardinality strings (the request type, method, TLS protocol and
# cipher, target group, actions, error reason, classification) as pandas categoricals, and the
# rest as Arrow-backed `string[pyarrow]`. A frame from SQL (Athena) converts the same way; here
# the memory with and without:

# %%
low_cardinality = [
    "type",
    "elb",
    "request_verb",
    "request_proto",
    "ssl_cipher",
    "ssl_protocol",
    "target_group_arn",
    "target_status_code",
    "classification",
    "actions_executed",
]
cats = rows.astype({c: "category" for c in low_cardinality if c in rows.columns})
plain = rows.astype({c: "string[pyarrow]" for c in low_cardinality if c in rows.columns})
print(
    f"memory: {plain.memory_usage(deep=True).sum() / 1e6:.1f} MB as strings, "
    f"{cats.memory_usage(deep=True).sum() / 1e6:.1f} MB with categoricals"
)
cats["request_verb"].value_counts().head(8)

# %% [markdown]
# ## Who answered what
#
# `elb_status_code` is what the client got. A 5XX is the service's failure; a 4XX is the client's
# (a bad request, a missing page, a WAF block), so the availability SLO counts only 5XX as bad.

# %%
rows["elb_status_code"].floordiv(100).value_counts().sort_index().rename(index=lambda c: f"{c}XX")

# %% [markdown]
# ## Error rate over time
#
# The saved query `error_rate` counts requests and 5XX per bucket and splits the 5XX into those the
# load balancer generated (no target answered: 502/503/504 with `target_status_code` `-`) and those a
# target returned. The dashed line is the error rate the SLO allows: `1 - SLO`. Sustained time above
# it spends error budget faster than the SLO period allows.

# %%
from albstats import plots

err = eng.query("error_rate", bucket="1h", **WINDOW)
print(err.dtypes.to_string())
plots.error_rate(err, SLO)

# %% [markdown]
# ## Latency percentiles
#
# `latency_percentiles` gives p50/p90/p95/p99/max of each processing time per bucket. `total_time` is
# the sum of request, target and response processing time (requests with a `-1` among them never got a
# full answer and are left out). The median says what most users feel; p99 is where the 2 to 20 s
# responses of a sick target show up.

# %%
lat = eng.query("latency_percentiles", bucket="1h", **WINDOW)
plots.latency(lat, metric="total_time", threshold=LATENCY_THRESHOLD)

# %% [markdown]
# The plotting helpers draw into any `Axes` you give them and return the `Figure`, so they compose
# into your own layouts and can be restyled afterwards:

# %%
from matplotlib.figure import Figure

fig = Figure(figsize=(10, 6), layout="constrained")
top, bottom = fig.subplots(2, 1, sharex=True)
plots.error_rate(err, SLO, ax=top)
plots.latency_breakdown(lat, stat="p99", ax=bottom)
top.set_title("Error rate and where the time goes (p99), hourly")
top.set_ylim(top=0.05)
fig

# %% [markdown]
# ## The slowest requests
#
# Each with its `trace_id` (X-Amzn-Trace-Id), which the target received too: look it up in the
# application's logs. WebSocket upgrades (status 101) stay open for minutes and top any unfiltered
# list, so keep to the API with the query's `path_prefix` parameter.

# %%
slow = eng.query("slowest_requests", limit=5, path_prefix="/api/", **WINDOW)
slow[["time", "total_time", "target_processing_time", "elb_status_code", "target", "request_url", "trace_id"]]

# %% [markdown]
# ## The same numbers as `albstats report`
#
# `albstats report` is built from the same saved queries. The last cell checks that what this notebook
# computed (from the `error_rate` query and, locally, from the raw rows in pandas) equals the report's
# JSON for the same data.

# %%
from albstats.render.data import to_dict
from albstats.report import Options, build

# The report `albstats report --slo ... --latency-slo ...` computes, on the same engine and window.
opts = Options(
    slo=SLO,
    latency_threshold=LATENCY_THRESHOLD,
    since=since.to_pydatetime() if since is not None else None,
    until=until.to_pydatetime() if until is not None else None,
)
report = build(eng, opts)
rep = to_dict(report)  # exactly what report.json holds (without the plot file names)
print(f"report: {rep['requests']:,} requests, success rate {rep['success_rate']:.4%}, SLO met: {rep['slo']['met']}")

# %%
import math

requests, errors = int(err["requests"].sum()), int(err["errors_5xx"].sum())
success = 1 - errors / requests
assert requests == rep["requests"] and errors == rep["errors_5xx"] == rep["bad_requests"], (requests, errors)
assert math.isclose(success, rep["success_rate"], rel_tol=1e-12), (success, rep["success_rate"])
if ENGINE == "local":
    # the raw rows, counted by pandas, agree with the SQL and with the report
    assert len(rows) == requests
    assert int(rows["elb_status_code"].between(500, 599).sum()) == errors
    assert stats.bad_lines == rep["malformed_lines"]
    tpt = rows["target_processing_time"]
    p50 = float(tpt[tpt >= 0].astype(float).quantile(0.5))  # local percentiles are exact (linear)
    assert math.isclose(p50, rep["latency"]["target_processing_time"]["p50"], rel_tol=1e-9)
print(f"OK: {requests:,} requests, {errors:,} 5XX, success rate {success:.4%} = report.json")
eng.close()
