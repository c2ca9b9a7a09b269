"""Writes the notebooks in this folder from the cell texts below (stored without outputs).

Edit the cells here, then run ``.venv/bin/python notebooks/_build.py``; ``tests/test_notebooks.py``
checks that the committed ``.ipynb`` files equal what this script writes, and executes each of them.
Cell ids are fixed so the files do not change between runs.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

Cell = tuple[str, str]  # ("md" | "code" | "params", text)


def md(text: str) -> Cell:
    return ("md", textwrap.dedent(text).strip("\n"))


def code(text: str) -> Cell:
    return ("code", textwrap.dedent(text).strip("\n"))


def params(text: str) -> Cell:
    return ("params", textwrap.dedent(text).strip("\n"))


# --- shared cells ---------------------------------------------------------------------------------

PARAMS = params('''
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
''')

OPEN = code('''
    %matplotlib inline
    import re

    import pandas as pd

    import albstats


    def utc(value):
        """ISO-8601 text or an age such as 7d / 12h / 30m (= that long before now) -> UTC Timestamp."""
        if not value:
            return None
        m = re.fullmatch(r"(\\d+)([smhdw])", value.strip().lower())
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
''')

REPORT = code('''
    from albstats.render.data import to_dict
    from albstats.report import Options, build

    # The report `albstats report --slo ... --latency-slo ...` computes, on the same engine and window.
    opts = Options(slo=SLO, latency_threshold=LATENCY_THRESHOLD,
                   since=since.to_pydatetime() if since is not None else None,
                   until=until.to_pydatetime() if until is not None else None)
    report = build(eng, opts)
    rep = to_dict(report)  # exactly what report.json holds (without the plot file names)
    print(f"report: {rep['requests']:,} requests, success rate {rep['success_rate']:.4%}, SLO met: {rep['slo']['met']}")
''')


# --- 01 quickstart --------------------------------------------------------------------------------

NB01: list[Cell] = [
    md('''
        # 01 · Quickstart: open ALB logs, error rate and latency

        This notebook opens a set of Application Load Balancer access logs, looks at the rows, and draws the
        two charts an SRE looks at first: the **5XX rate** over time against the SLO, and **latency
        percentiles**. It runs on the bundled fixtures (one generated day, 2026-11-16, with one incident)
        without an AWS account; set `ALBSTATS_ENGINE=athena` (and the Athena variables) to run the same
        cells against your Athena table.

        Everything here is albstats' public Python API:

        - `albstats.read_logs(paths)`: the raw rows as a pandas DataFrame (one row per request);
        - `albstats.connect(paths | engine="athena")`: an engine that runs the saved queries in `sql/`
          (`eng.query(name, since=, until=, bucket=, limit=)`) and ad-hoc SQL (`eng.sql(text, params)`);
        - `albstats.plots`: one function per chart, each takes an optional matplotlib `Axes` and returns
          the `Figure`.
    '''),
    PARAMS,
    OPEN,
    md('''
        ## The rows

        Locally, `read_logs` parses the files into one DataFrame. Columns and values are those of AWS's
        Athena table for ALB logs (`elb_status_code` is an integer, `target_status_code` a string because it
        can be `-`, a timing of `-1` means "not dispatched" and is kept), except that `time` and
        `request_creation_time` are UTC timestamps. Malformed lines are never dropped silently: they are
        counted in the `ParseStats` you pass in. On Athena the sample comes from a bounded SQL query instead.
    '''),
    code('''
        from albstats.parse import ParseStats

        if ENGINE == "local":
            stats = ParseStats()
            rows = albstats.read_logs(LOGS, stats=stats)
            if since is not None or until is not None:  # read_logs has no window: filter the frame
                rows = rows[(rows["time"] >= (since or rows["time"].min()))
                            & (rows["time"] < (until or rows["time"].max() + pd.Timedelta(seconds=1)))]
            print(stats.summary())
        else:
            # ad-hoc SQL on Athena must bound the `day` partition itself (saved queries get it from since/until)
            rows = eng.sql("SELECT * FROM alb_logs WHERE day = :day LIMIT 1000", {"day": until.strftime("%Y/%m/%d")})
        print(f"{len(rows):,} rows")
        rows[["time", "client_ip", "request_verb", "request_url", "elb_status_code", "target_status_code",
              "target_processing_time"]].head()
    '''),
    md('''
        `read_logs` returns the low-cardinality strings (the request type, method, TLS protocol and
        cipher, target group, actions, error reason, classification) as pandas categoricals, and the
        rest as Arrow-backed `string[pyarrow]`. A frame from SQL (Athena) converts the same way; here
        the memory with and without:
    '''),
    code('''
        low_cardinality = ["type", "elb", "request_verb", "request_proto", "ssl_cipher", "ssl_protocol",
                           "target_group_arn", "target_status_code", "classification", "actions_executed"]
        cats = rows.astype({c: "category" for c in low_cardinality if c in rows.columns})
        plain = rows.astype({c: "string[pyarrow]" for c in low_cardinality if c in rows.columns})
        print(f"memory: {plain.memory_usage(deep=True).sum() / 1e6:.1f} MB as strings, "
              f"{cats.memory_usage(deep=True).sum() / 1e6:.1f} MB with categoricals")
        cats["request_verb"].value_counts().head(8)
    '''),
    md('''
        ## Who answered what

        `elb_status_code` is what the client got. A 5XX is the service's failure; a 4XX is the client's
        (a bad request, a missing page, a WAF block), so the availability SLO counts only 5XX as bad.
    '''),
    code('''
        rows["elb_status_code"].floordiv(100).value_counts().sort_index().rename(index=lambda c: f"{c}XX")
    '''),
    md('''
        ## Error rate over time

        The saved query `error_rate` counts requests and 5XX per bucket and splits the 5XX into those the
        load balancer generated (no target answered: 502/503/504 with `target_status_code` `-`) and those a
        target returned. The dashed line is the error rate the SLO allows: `1 - SLO`. Sustained time above
        it spends error budget faster than the SLO period allows.
    '''),
    code('''
        from albstats import plots

        err = eng.query("error_rate", bucket="1h", **WINDOW)
        print(err.dtypes.to_string())
        plots.error_rate(err, SLO)
    '''),
    md('''
        ## Latency percentiles

        `latency_percentiles` gives p50/p90/p95/p99/max of each processing time per bucket. `total_time` is
        the sum of request, target and response processing time (requests with a `-1` among them never got a
        full answer and are left out). The median says what most users feel; p99 is where the 2 to 20 s
        responses of a sick target show up.
    '''),
    code('''
        lat = eng.query("latency_percentiles", bucket="1h", **WINDOW)
        plots.latency(lat, metric="total_time", threshold=LATENCY_THRESHOLD)
    '''),
    md('''
        The plotting helpers draw into any `Axes` you give them and return the `Figure`, so they compose
        into your own layouts and can be restyled afterwards:
    '''),
    code('''
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 6), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True)
        plots.error_rate(err, SLO, ax=top)
        plots.latency_breakdown(lat, stat="p99", ax=bottom)
        top.set_title("Error rate and where the time goes (p99), hourly")
        top.set_ylim(top=0.05)
        fig
    '''),
    md('''
        ## The slowest requests

        Each with its `trace_id` (X-Amzn-Trace-Id), which the target received too: look it up in the
        application's logs. WebSocket upgrades (status 101) stay open for minutes and top any unfiltered
        list, so keep to the API with the query's `path_prefix` parameter.
    '''),
    code('''
        slow = eng.query("slowest_requests", limit=5, path_prefix="/api/", **WINDOW)
        slow[["time", "total_time", "target_processing_time", "elb_status_code", "target", "request_url", "trace_id"]]
    '''),
    md('''
        ## The same numbers as `albstats report`

        `albstats report` is built from the same saved queries. The last cell checks that what this notebook
        computed (from the `error_rate` query and, locally, from the raw rows in pandas) equals the report's
        JSON for the same data.
    '''),
    REPORT,
    code('''
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
    '''),
]


# --- 02 SLO and error budget ----------------------------------------------------------------------

NB02: list[Cell] = [
    md('''
        # 02 · SLO, error budget and burn rates

        **The SLO.** "99 % of requests succeed" (`SLO = 0.99`) over the window. A request is *bad* when the
        load balancer answered it with a 5XX: the service failed it. 4XX answers are the client's (a wrong
        URL, a missing token, a WAF block) and do not count against the service. (`--count-460` in the CLI
        also counts 460, "the client gave up", usually on a slow target.)

        **The error budget** is the failure the SLO allows: `(1 - SLO) x requests` bad requests. At 99 %
        and 40,000 requests that is 400 failures. *Remaining fraction* 1 means untouched, 0 spent, below 0
        overspent.

        **The burn rate** is how fast the budget goes: `(bad / requests) / (1 - SLO)` over some window.
        A burn rate of 1 spends exactly the whole budget over the SLO period; 14.4 sustained for one hour
        spends 2 % of a 30-day budget. The SRE workbook alerts when **both** a long and a short window burn
        above a threshold: 1 h and 5 min above 14.4 (page), 6 h and 30 min above 6 (page), 3 days and 6 h
        above 1 (ticket). The long window proves it is significant, the short one that it is still happening.

        This notebook computes all of that in pandas from per-5-minute counts (the saved query `slo_buckets`)
        and checks it equals `albstats report`'s `report.json`.
    '''),
    PARAMS,
    OPEN,
    md('''
        ## Per-bucket counts

        One row per 5-minute bucket with requests, 5XX, 460s and latency-SLI counts. Buckets without
        requests are absent in the query result; put them back as zeros so quiet time counts as quiet.
    '''),
    code('''
        buckets = eng.query("slo_buckets", bucket="5m", latency_threshold=LATENCY_THRESHOLD, **WINDOW)
        grid = buckets.set_index("bucket_start").resample("5min").sum()
        if since is not None or until is not None:  # a given window: the grid covers all of it
            lo = (since or grid.index.min()).floor("5min")
            hi = ((until - pd.Timedelta(microseconds=1)).floor("5min") if until is not None else grid.index.max())
            grid = grid.reindex(pd.date_range(min(lo, grid.index.min()), max(hi, grid.index.max()),
                                              freq="5min", tz="UTC"), fill_value=0)
        grid["bad"] = grid["errors_5xx"]
        print(f"{len(grid)} buckets of 5 minutes")
        grid.head()
    '''),
    md('''
        ## Availability and the error budget
    '''),
    code('''
        requests, bad = int(grid["requests"].sum()), int(grid["bad"].sum())
        success_rate = 1 - bad / requests
        allowed = (1 - SLO) * requests
        remaining_fraction = (allowed - bad) / allowed
        burn_window = (bad / requests) / (1 - SLO)
        pd.Series({"requests": requests, "bad requests (5XX)": bad, "success rate": f"{success_rate:.4%}",
                   "SLO": f"{SLO:.2%}", "met": success_rate >= SLO, "budget allowed": round(allowed, 1),
                   "budget used": bad, "budget remaining": f"{remaining_fraction:.1%}",
                   "burn rate over the window": round(burn_window, 3)})
    '''),
    md('''
        ## Burn rates over time

        Rolling sums over the grid give the burn rate of the last hour (12 buckets) and the last 6 hours
        (72 buckets) at every 5-minute step. The worst 1 h window is where the budget went fastest.
    '''),
    code('''
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
        print(f"1h/5m page (14.4): {'fired' if page_1h.any() else 'quiet'}; "
              f"6h/30m page (6): {'fired' if page_6h.any() else 'quiet'}")
    '''),
    md('''
        The left chart is albstats' own `plots.burn_down` (budget remaining over the window, from
        `albstats.slo.burn_down`), drawn into an `Axes` of our figure; the right one is drawn by hand from the
        rolling burn rates, with the alert thresholds.
    '''),
    code('''
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
    '''),
    md('''
        ### What if the SLO were 99.9 %?

        The same failures against a ten times smaller budget: a burn rate ten times higher. An incident that
        a 99 % SLO absorbs can page at 99.9 %. Which alert pairs would have fired, and for how long?
    '''),
    code('''
        STRICT = 0.999
        strict = {}
        for name, long, short, threshold in (("1h/5m", 12, 1, 14.4), ("6h/30m", 72, 6, 6.0), ("3d/6h", 864, 72, 1.0)):
            firing = (burn(long, STRICT) > threshold) & (burn(short, STRICT) > threshold)
            strict[name] = {"fired": bool(firing.any()), "minutes firing": 5 * int(firing.sum()),
                            "first fired": firing.idxmax() + pd.Timedelta(minutes=5) if firing.any() else None}
        pd.DataFrame(strict).T
    '''),
    md('''
        ## The latency SLO

        Among requests that reached a target (no `-1` timing), the share whose total time is under the
        threshold. With `--latency-slo 1s@95` the report holds it against 95 %.
    '''),
    code('''
        latency_share = grid["latency_good"].sum() / grid["latency_requests"].sum()
        print(f"{latency_share:.2%} of dispatched requests took under {LATENCY_THRESHOLD:g} s")
    '''),
    md('''
        ## The same numbers as `report.json`

        Write the report exactly as `albstats report -o DIR` does, read its `report.json` back, and
        compare every SLO number computed above.
    '''),
    code('''
        import json
        import tempfile
        from pathlib import Path

        from albstats import render
        from albstats.report import Options, build

        opts = Options(slo=SLO, latency_threshold=LATENCY_THRESHOLD,
                       since=since.to_pydatetime() if since is not None else None,
                       until=until.to_pydatetime() if until is not None else None)
        out = Path(tempfile.mkdtemp(prefix="albstats-report-"))
        written = render.write(build(eng, opts), out / "report")
        rep = json.loads(written["report.json"].read_text())
        print(sorted(written))
        print({k: rep[k] for k in ("requests", "bad_requests", "success_rate")}, rep["error_budget"])
    '''),
    code('''
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
        print(f"OK: success rate {success_rate:.4%}, budget remaining {remaining_fraction:.1%}, "
              f"worst 1 h burn {burn_1h.max():.2f} = report.json")
        eng.close()
    '''),
]


# --- 03 where do 5XX come from --------------------------------------------------------------------

NB03: list[Cell] = [
    md('''
        # 03 · Where do the 5XX come from?

        A success rate says *whether* the service fails; fixing it needs *where*. ALB logs answer four ways:

        1. **Who generated it.** A 5XX with `target_status_code` `-` was made by the load balancer (no
           healthy target, connection refused or reset, timeout): look at capacity, health checks and
           network. A 5XX the target returned (`target_status_code` 5XX) is the application's.
        2. **Which target** (instance, container, IP) and target group: one bad host among healthy ones
           is a deploy or a node problem, all of them is a dependency.
        3. **Which path**: one failing endpoint is a bug; every endpoint is an outage.
        4. **When**: incidents, runs of 5-minute buckets far above the baseline, and what failed inside them.

        4XX are left out: they are the clients' errors, not the service's.
    '''),
    PARAMS,
    OPEN,
    code('''
        err = eng.query("error_rate", bucket="1h", **WINDOW)
        totals = err[["requests", "errors_5xx", "elb_5xx", "target_5xx"]].sum()
        totals
    '''),
    md('''
        ## Load balancer or target?
    '''),
    code('''
        ALL = 1_000_000  # the saved queries cap rows (default 20): ask for all of them
        reasons = eng.query("errors_by_reason", limit=ALL, **WINDOW)
        reasons.head(12)
    '''),
    md('''
        ## By target and target group

        The target `-` collects the 5XX no target answered. A target whose error rate is several times its
        neighbours' is the first thing to drain.
    '''),
    code('''
        targets = eng.query("errors_by_target", limit=ALL, **WINDOW)
        targets["target_group"] = targets["target_group_arn"].fillna("-").str.extract(r"targetgroup/([^/]+)/",
                                                                                       expand=False).fillna("-")
        targets[["target", "target_group", "requests", "errors_5xx", "elb_5xx", "target_5xx", "error_rate"]].head(10)
    '''),
    code('''
        by_group = targets.groupby("target_group")[["requests", "errors_5xx", "elb_5xx", "target_5xx"]].sum()
        by_group["error_rate"] = by_group["errors_5xx"] / by_group["requests"]
        by_group.sort_values("errors_5xx", ascending=False)
    '''),
    code('''
        from matplotlib.figure import Figure

        top = targets.head(12).iloc[::-1]
        labels = top["target"].replace({"-": "no target (load balancer)"})
        fig = Figure(figsize=(9, 4.5), layout="constrained")
        ax = fig.subplots()
        ax.barh(labels, top["target_5xx"], label="returned by the target", color="#c0392b")
        ax.barh(labels, top["elb_5xx"], left=top["target_5xx"], label="generated by the load balancer",
                color="#7f8c8d")
        ax.set_xlabel("5XX responses")
        ax.set_title("5XX by target")
        ax.legend(loc="lower right")
        fig
    '''),
    md('''
        ## By path

        Paths are normalised (`/owners/123/pets` and `/owners/456/pets` are one row, `/owners/{id}/pets`), so
        an endpoint's failures add up instead of scattering over ids.
    '''),
    code('''
        paths = eng.query("errors_by_path", limit=ALL, **WINDOW)
        paths.head(10)
    '''),
    md('''
        ## Incidents

        The report's incident finder marks 5-minute buckets whose bad-request rate is far above the baseline
        (more than 3 x the median and the median + 5 robust standard deviations, and above what the SLO
        allows, with at least 5 failures) and joins neighbouring ones. The chart is `plots.error_rate` on
        5-minute buckets, restyled: incidents shaded.
    '''),
    code('''
        from albstats import plots
        from albstats.render.data import to_dict
        from albstats.report import Options, build

        opts = Options(slo=SLO, latency_threshold=LATENCY_THRESHOLD,
                       since=since.to_pydatetime() if since is not None else None,
                       until=until.to_pydatetime() if until is not None else None)
        report = build(eng, opts)
        rep = to_dict(report)
        incidents = pd.DataFrame(rep["failures"]["incidents"])
        incidents
    '''),
    code('''
        buckets = eng.query("slo_buckets", bucket="5m", **WINDOW)
        fig = plots.error_rate(buckets, SLO)
        ax = fig.axes[0]
        for inc in report.failures.incidents:
            ax.axvspan(inc.start, inc.end, color="#f39c12", alpha=0.3, lw=0)
        ax.set_title(f"5XX rate per 5 minutes, {len(report.failures.incidents)} incident(s) shaded")
        fig
    '''),
    md('''
        What failed during each incident: the same saved queries, with the incident as the window.
    '''),
    code('''
        for inc in report.failures.incidents:
            t = eng.query("errors_by_target", since=inc.start, until=inc.end, limit=ALL)
            t["target_group"] = t["target_group_arn"].fillna("-").str.extract(r"targetgroup/([^/]+)/",
                                                                               expand=False).fillna("-")
            g = t.groupby("target_group")[["requests", "errors_5xx"]].sum().sort_values("errors_5xx",
                                                                                       ascending=False)
            print(f"{inc.start:%H:%M}-{inc.end:%H:%M} UTC: {inc.bad_requests} bad of {inc.requests} "
                  f"({inc.error_rate:.1%}), {inc.budget_fraction or 0:.0%} of the window's error budget")
            print(g.head(3).to_string(), end="\\n\\n")
    '''),
    md('''
        ## Every 5XX is accounted for

        Each breakdown must add up to the same total, and to the report's: by target, by path, by reason,
        and split between the load balancer and the targets. Incidents must hold exactly the bad requests of
        their buckets.
    '''),
    code('''
        total = int(totals["errors_5xx"])
        assert total == rep["errors_5xx"] and int(totals["requests"]) == rep["requests"]
        assert int(totals["elb_5xx"]) == rep["elb_5xx"] and int(totals["target_5xx"]) == rep["target_5xx"]
        assert int(totals["elb_5xx"]) + int(totals["target_5xx"]) == total  # ALB passes a target's 5XX through
        for name, df in (("target", targets), ("path", paths)):
            assert int(df["errors_5xx"].sum()) == total, name
            assert int(df["elb_5xx"].sum()) == rep["elb_5xx"] and int(df["target_5xx"].sum()) == rep["target_5xx"]
        assert int(reasons["requests"].sum()) == total and math.isclose(reasons["share"].sum(), 1.0)
        report_top = rep["failures"]["tables"]["by_target"]["rows"][0]
        assert (report_top["target"], report_top["errors_5xx"]) == (targets["target"][0], targets["errors_5xx"][0])
        for inc in report.failures.incidents:
            inside = buckets[(buckets["bucket_start"] >= inc.start) & (buckets["bucket_start"] < inc.end)]
            assert int(inside["errors_5xx"].sum()) == inc.bad_requests
            assert int(inside["requests"].sum()) == inc.requests
        print(f"OK: {total:,} 5XX = by target = by path = by reason = report.json "
              f"({rep['elb_5xx']} from the load balancer, {rep['target_5xx']} from targets); "
              f"{len(report.failures.incidents)} incident(s)")
        eng.close()
    '''),
]
# the assertion cell uses math
NB03[-1] = code("import math\n\n" + NB03[-1][1])


# --- 04 retry before/after ------------------------------------------------------------------------

NB04: list[Cell] = [
    md('''
        # 04 · Did the retry proxy help? Help and harm, before and after, with confidence intervals

        The original fix for the flaky vet-hospital system was a retrying reverse proxy: 5 tries, 3 s apart,
        whatever the method (the **seed** policy). Retries raise the success rate a client sees, at a price:
        a POST that failed may already have done its work upstream, so repeating it can book a visit twice;
        against a dead upstream every request becomes 5 requests (a retry storm); and a request rescued by
        the third try has waited 6 s for it. This notebook measures the help *and* the harm of the seed
        policy side by side with the **recommended** one (at most 3 attempts, idempotent methods only,
        jittered backoff, a retry budget).

        `albstats compare BEFORE AFTER [AFTER ...]` measures a change from log sets: success rate (Wilson
        intervals, Newcombe for the difference), error-budget burn, latency percentiles (bootstrap intervals),
        upstream requests per client request, and the harm: non-idempotent requests sent more than once,
        upstream requests per failed request, and the wait retries add to successful requests. It only says
        "better" when the 95 % interval of the change excludes zero, and lists every significant harm as a
        trade-off.

        By default this notebook makes the log sets itself, on 127.0.0.1: albstats' flaky-upstream simulator
        (10 % 502/503/504) behind the proxy with one try (**before**: a pass-through that logs like an ALB),
        with the seed policy and with the recommended policy; a quarter of the requests are POSTs. To compare
        your own periods instead, point `ALBSTATS_BEFORE` and `ALBSTATS_AFTER` at two log sets (folders, files
        or `s3://` prefixes: `compare` streams the files itself, on either engine setting).
    '''),
    params('''
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
    '''),
    md('''
        ## Making the log sets (simulator + proxy on 127.0.0.1)

        Every run sends the same requests (GETs, and every fourth one a POST with a body) to a fresh
        simulator with the same seed, so the upstream fails the same sequence of attempts in each run. The
        proxy writes one ALB-format access-log line per client request; `target:port_list` and
        `target_status_code_list` list every upstream attempt, so the logs show the retries. The simulator
        also counts, per request id, every attempt that *arrived*: the ground truth for duplicated POSTs.

        The seed policy keeps its real 3 s spacing here (that wait is one of the harms being measured);
        the recommended policy's backoff is shortened to milliseconds so the notebook runs in seconds.
    '''),
    code('''
        %matplotlib inline
        import tempfile
        from pathlib import Path

        import pandas as pd

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
            for name, log, pol in (("before", BEFORE, one_try), ("recommended", AFTER, recommended),
                                   ("seed", SEED, seed_policy)):
                # the seed's 3 s waits hold a client slot each: more in parallel keeps the run short
                upstream[name] = await run_scenario("flaky", pol, log, REQUESTS, post_share=0.25,
                                                    concurrency=100 if name == "seed" else 25)
            print({k: (v["requests"], v["attempts"]) for k, v in upstream.items()}, "(requests, upstream attempts)")
    '''),
    md('''
        ## Compare: help and harm side by side

        Read each cell as: the estimate, its 95 % interval, the change against *before* and what it means.
        The harm rows: `non_idempotent_repeated` (share of POSTs sent upstream more than once),
        `upstream_requests_per_failed_request` (what a failure costs the upstream) and
        `retry_wait_per_success` (mean time successful requests spent on earlier attempts and waits).
    '''),
    code('''
        from albstats.compare import compare, render_side_by_side, render_table

        if simulated:
            results = {"seed": compare(BEFORE, SEED, slo=SLO), "recommended": compare(BEFORE, AFTER, slo=SLO)}
            print(render_side_by_side(results))
            result = results["recommended"]
        else:
            result = compare(BEFORE, AFTER, slo=SLO)
            results = {"after": result}
            print(render_table(result))
    '''),
    code('''
        metrics = pd.concat({name: pd.DataFrame([{"metric": m.name, "before": m.before, "after": m.after,
                                                   "change": m.change, "change_lo": m.change_ci[0],
                                                   "change_hi": m.change_ci[1], "verdict": m.verdict}
                                                  for m in r.metrics]).set_index("metric")
                             for name, r in results.items()}, axis=1)
        metrics
    '''),
    md('''
        The success rate of each log set with its interval, and how many upstream attempts a client request
        took (the retry histogram):
    '''),
    code('''
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
        share.update({name: {k: r.histogram.get(str(k), {"after": [0, 0.0]})["after"][1] for k in attempts}
                      for name, r in results.items()})
        pd.DataFrame(share).plot.bar(ax=right, rot=0)
        right.set_xlabel("upstream attempts per client request")
        right.set_ylabel("share of requests")
        right.set_yscale("log")
        right.set_title("retries")
        fig
    '''),
    md('''
        ## Harm 1: duplicated POSTs, counted at the upstream

        The seed policy retries a POST after a 5XX. The upstream may well have done the work before it
        failed (a timeout in the answer path, a crash after the commit), so every repeat is a possible second
        visit booked. The simulator counts what actually arrived, per request id; the proxy's log gives the
        same count, so `compare` finds it from logs alone. The recommended policy does not repeat a request
        without an `Idempotency-Key`.
    '''),
    code('''
        if simulated:
            dup = pd.DataFrame({name: dict(zip(("POSTs", "POSTs arriving more than once", "extra POST executions"),
                                               duplicated_posts(upstream[name]))) for name in upstream}).T
            dup["repeated in the log (compare)"] = [
                0 if name == "before" else results[name].harm["after"]["non_idempotent_repeated"] for name in dup.index]
            display(dup)
    '''),
    md('''
        ## Harm 2: the retry storm, with the upstream down

        Nothing listens at the upstream address: every attempt is refused. Each policy gets the same
        requests. The seed policy turns each into 5 attempts: the load on the recovering service is five
        times the real traffic, exactly when it can least take it. The recommended policy's budget allows
        retries of at most 20 % of requests (plus a floor of 10 per 10 s), so the load stays near 1.2x. The
        seed's spacing is shortened to 50 ms here: the wait changes how long each request takes, not how many
        attempts it makes.
    '''),
    code('''
        storm = {}
        if simulated:
            down_logs = {k: str(work / f"down-{k}.log") for k in ("before", "seed", "recommended")}
            for name, pol in (("before", one_try), ("seed", make_policy("seed", fixed_interval=0.05)),
                              ("recommended", recommended)):
                await run_scenario("down", pol, down_logs[name], 300, concurrency=50)
            storm = {k: compare(down_logs["before"], down_logs[k], slo=SLO) for k in ("seed", "recommended")}
            display(pd.DataFrame({k: {"success rate": r.metric("success_rate").after,
                                      "upstream attempts per request": r.metric("upstream_requests_per_request").after,
                                      "95 % CI low": r.metric("upstream_requests_per_request").after_ci[0],
                                      "95 % CI high": r.metric("upstream_requests_per_request").after_ci[1]}
                                  for k, r in storm.items()}).T)
    '''),
    md('''
        ## Harm 3: what the spacing costs the requests it rescues

        A request that succeeds on its second try under the seed policy has waited 3 s before that try; on its
        third, 6 s. `retry_wait_per_success` averages that over all successes; the harm summary gives the wait
        of the rescued ones. The recommended policy's jittered backoff starts at milliseconds.
    '''),
    code('''
        if simulated:
            waits = pd.DataFrame({name: {k: r.harm["after"][k] for k in ("successes_after_retry", "retry_wait_p50",
                                                                          "retry_wait_p90", "retry_wait_max")}
                                  for name, r in results.items()}).T
            waits["p99 latency of all requests (s)"] = [r.metric("latency_p99").after for r in results.values()]
            display(waits)
    '''),
    md('''
        ## The SLO view of each period

        The same logs through `albstats report`'s computation: did the change turn a breached SLO into a
        met one, and how much error budget did each period burn?
    '''),
    code('''
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
        pd.DataFrame({k: {"requests": r["requests"], "success rate": r["success_rate"], "SLO met": r["slo"]["met"],
                          "budget remaining": r["error_budget"]["remaining_fraction"],
                          "burn rate": r["burn_rate"]["window"],
                          "p99 total time (s)": r["latency"]["total_time"]["p99"]} for k, r in periods.items()})
    '''),
    md('''
        ## What would a policy have done? (`whatif`)

        `whatif` replays the *before* log's outcomes under a policy to predict the *after*, assuming attempts
        fail independently (real outages cluster, so real retries help less). Here the prediction can be
        checked against what the proxy actually did (`bench/bench_whatif.py` checks three scenarios).
    '''),
    code('''
        from albstats.whatif import whatif

        predicted = whatif(BEFORE, recommended if simulated else make_policy("recommended"), simulations=5000)
        pd.DataFrame({"observed before": predicted.observed, "predicted after": predicted.predicted,
                      "measured after": {"success_rate": sr.after,
                                         "upstream_requests_per_request":
                                             result.metric("upstream_requests_per_request").after}}).dropna(how="all")
    '''),
    md('''
        ## Verdict

        The recommended policy is *better* only if the success rate's 95 % interval of the change lies above
        zero; the success rates `compare` reports are the same ones `albstats report` gives each period. The
        seed policy may be "better" on success rate too: its harm is what the other rows show.
    '''),
    code('''
        import math

        assert result.verdict == "better", render_table(result)
        assert sr.change_ci[0] > 0 and sr.after > sr.before
        for side, value, count in (("before", sr.before, result.before_requests),
                                   ("after", sr.after, result.after_requests)):
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
        print(f"OK: verdict {result.verdict}: success rate {sr.before:.2%} -> {sr.after:.2%} "
              f"(change {sr.change * 100:+.2f} pp, 95 % CI {lo * 100:+.2f} to {hi * 100:+.2f})")
        if simulated:
            print(f"seed policy: {dup_seed} of {posts} POSTs executed more than once; 5.0 upstream attempts per "
                  f"request with the upstream down; rescued requests waited {wait:.1f} s (median) before the answer")
    '''),
]


NOTEBOOKS = {
    "01-quickstart.ipynb": NB01,
    "02-slo-and-error-budget.ipynb": NB02,
    "03-where-do-5xx-come-from.ipynb": NB03,
    "04-retry-before-after.ipynb": NB04,
}


def build(cells: list[Cell], prefix: str) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, text) in enumerate(cells):
        if kind == "md":
            cell = new_markdown_cell(text)
        else:
            cell = new_code_cell(text)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]  # papermill's convention
        cell.id = f"{prefix}-{i:02d}"
        nb.cells.append(cell)
    return nb


def render_all() -> dict[str, str]:
    """File name -> notebook JSON text, as stored."""
    out = {}
    for name, cells in NOTEBOOKS.items():
        nb = build(cells, "nb" + name[:2])
        nbformat.validate(nb)
        out[name] = nbformat.writes(nb) + "\n"
    return out


def main() -> None:
    for name, text in render_all().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote notebooks/{name}")


if __name__ == "__main__":
    main()
