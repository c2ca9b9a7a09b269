"""The local DuckDB engine: every saved query against an independent pandas computation, the ingest
cache, and bound (never pasted) parameters.

Data: a small generated log set (the flaky-hospital profile, so there are plenty of 5XX and slow
requests) plus a hand-written file of edge cases (IPv6 targets, UUID/hash/nested-id paths, an
older 24-field line, an unparseable line).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import albstats
from albstats.engines.local import LocalEngine, translate, translate_saved
from albstats.errors import UsageError
from albstats.generate import generate
from albstats.logformat import format_line
from albstats.queries import all_queries, get

EDGE_NAME = "123456789012_elasticloadbalancing_us-east-1_app.edge.1234_20261116T0100Z_10.0.0.9_edge.log"


def _edge_line(**kw: object) -> str:
    base: dict[str, object] = {
        "type": "https",
        "time": "2026-11-16T00:30:00.250000Z",
        "elb": "app/edge/1234",
        "client_ip": "2001:db8::7",
        "client_port": 5555,
        "target_ip": "2001:db8::1",
        "target_port": 8080,
        "request_processing_time": 0.002,
        "target_processing_time": 1.5,
        "response_processing_time": 0.001,
        "elb_status_code": 502,
        "target_status_code": "502",
        "received_bytes": 10,
        "sent_bytes": 20,
        "request_verb": "GET",
        "request_url": "https://edge.example:443/a/1/2/3/4?q=5",
        "request_proto": "HTTP/1.1",
        "user_agent": 'curl/8 \\"quoted\\"',
        "ssl_cipher": "TLS_AES_128_GCM_SHA256",
        "ssl_protocol": "TLSv1.3",
        "target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/edge/1",
        "trace_id": "Root=1-edge-1",
        "domain_name": "edge.example",
        "chosen_cert_arn": "session-reused",
        "matched_rule_priority": "1",
        "request_creation_time": "2026-11-16T00:29:58.000000Z",
        "actions_executed": "forward",
        "redirect_url": "-",
        "lambda_error_reason": "TargetResponseError",
        "target_port_list": "[2001:db8::1]:8080",
        "target_status_code_list": "502",
        "classification": "Ambiguous",
        "classification_reason": "UndefinedContentLengthSemantics",
    }
    base.update(kw)
    return format_line(base)


EDGE_LINES = [
    _edge_line(),
    _edge_line(
        time="2026-11-16T00:31:00.000001Z",
        request_url="https://edge.example:443/u/123e4567-e89b-12d3-a456-426614174000/f/deadbeefdeadbeef0011?x",
        trace_id="Root=1-edge-2",
        elb_status_code=503,
        target_status_code="-",
        target_ip="",
        target_port=None,
        target_processing_time=-1.0,
        response_processing_time=-1.0,
        lambda_error_reason="-",
    ),
    _edge_line(
        time="2026-11-16T00:32:00.000000Z",
        request_url="https://edge.example:443/pets/0042/",
        elb_status_code=200,
        target_status_code="200",
        target_ip="10.9.9.9",
        target_port=80,
        trace_id="Root=1-edge-3",
        target_processing_time=19.75,
    ),
    "this is not an ALB line",
    # an older (2018, 24-token) line: classification and later fields are NULL
    format_line(
        {
            "type": "http",
            "time": "2026-11-16T00:33:00.000000Z",
            "elb": "app/edge/1234",
            "client_ip": "10.1.1.1",
            "client_port": 1,
            "target_ip": "10.9.9.9",
            "target_port": 80,
            "request_processing_time": 0.0,
            "target_processing_time": 0.1,
            "response_processing_time": 0.0,
            "elb_status_code": 500,
            "target_status_code": "500",
            "received_bytes": 1,
            "sent_bytes": 2,
            "request_verb": "POST",
            "request_url": "http://edge.example:80/pets/7",
            "request_proto": "HTTP/1.1",
            "user_agent": "old",
            "ssl_cipher": "-",
            "ssl_protocol": "-",
            "target_group_arn": "arn:tg/old",
            "trace_id": "Root=1-old",
            "domain_name": "-",
            "chosen_cert_arn": "-",
        },
        ntokens=24,
    ),
]


def _make_logs(root: Path, kind: str) -> Path:
    if kind == "generated":
        generate(root / "gen", days=1 / 12, lines=4000, profile="hosp", seed=7, nodes=2, control_file=True)
    else:
        from conftest import FIXTURES

        shutil.copytree(FIXTURES / "AWSLogs", root / "gen" / "AWSLogs")
    edge = root / "edge"
    edge.mkdir()
    (edge / EDGE_NAME).write_text("\n".join(EDGE_LINES) + "\n")
    return root


@pytest.fixture(scope="session", params=["generated", "bundled"])
def logs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two data sets for the parity tests, each with the edge file: a generated flaky-hospital log set
    (many 5XX and slow requests), and the bundled fixtures/AWSLogs day."""
    return _make_logs(tmp_path_factory.mktemp("logs"), request.param)


@pytest.fixture(scope="session")
def small_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated set only: for the cache tests, which copy and re-read it."""
    return _make_logs(tmp_path_factory.mktemp("small"), "generated")


@pytest.fixture(scope="session")
def frame(logs: Path) -> pd.DataFrame:
    """The independent side: albstats.read_logs, turned into plain pandas/numpy columns."""
    df = albstats.read_logs([str(logs)])
    out = pd.DataFrame({c: df[c].astype(object).where(df[c].notna(), None) for c in df.columns})
    for c in ("request_processing_time", "target_processing_time", "response_processing_time"):
        out[c] = df[c].astype("float64")
    out["elb_status_code"] = df["elb_status_code"].astype("float64")
    out["ts"] = df["time"].astype("datetime64[us, UTC]")
    out["epoch"] = out["ts"].astype("int64") / 1e6
    return out


@pytest.fixture(scope="session")
def engine(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> LocalEngine:
    eng = LocalEngine([str(logs)], db=tmp_path_factory.mktemp("db") / "cache.duckdb")
    yield eng
    eng.close()


def _bucket(frame: pd.DataFrame, seconds: int) -> pd.Series:
    return pd.to_datetime((frame["epoch"] // seconds) * seconds, unit="s", utc=True).astype("datetime64[ns, UTC]")


def _is5(s: pd.Series) -> pd.Series:
    return (s >= 500) & (s <= 599)


def _target5(frame: pd.DataFrame) -> pd.Series:
    return frame["target_status_code"].map(lambda v: bool(v and re.fullmatch(r"5..", v)))


def _target(frame: pd.DataFrame) -> pd.Series:
    def one(ip: object, port: object) -> str:
        if not ip:
            return "-"
        p = "" if port is None or (isinstance(port, float) and math.isnan(port)) else str(int(port))
        return f"[{ip}]:{p}" if ":" in str(ip) else f"{ip}:{p}"

    return pd.Series([one(i, p) for i, p in zip(frame["target_ip"], frame["target_port"])], index=frame.index)


def normalise_path(url: object) -> str:
    """Independent of the SQL: split into segments and classify each one."""
    u = "-" if url is None else str(url)
    p = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", "", u)
    p = re.split(r"[?#]", p, maxsplit=1)[0] or "/"
    segs = p.split("/")
    for i in range(1, len(segs)):
        s = segs[i]
        if re.fullmatch(r"[0-9]+", s):
            segs[i] = "{id}"
        elif re.fullmatch(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}", s):
            segs[i] = "{uuid}"
        elif re.fullmatch(r"[0-9A-Fa-f]{16,}", s):
            segs[i] = "{hash}"
    return "/".join(segs)


def _assert_frames(got: pd.DataFrame, want: pd.DataFrame, *, rel: float = 1e-9) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want), (got, want)
    for c in got.columns:
        g, w = got[c].tolist(), want[c].tolist()
        for i, (a, b) in enumerate(zip(g, w)):
            if isinstance(b, float) and not isinstance(a, str):
                assert (
                    (a is None and math.isnan(b))
                    or math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
                    or (math.isnan(a) and math.isnan(b))
                ), (c, i, a, b)
            else:
                a = None if a is pd.NA or (isinstance(a, float) and math.isnan(a)) else a
                b = None if b is pd.NA or (isinstance(b, float) and math.isnan(b)) else b
                if hasattr(a, "item") and not isinstance(a, pd.Timestamp):
                    a = a.item()
                if hasattr(b, "item") and not isinstance(b, pd.Timestamp):
                    b = b.item()
                assert a == b, (c, i, a, b)


# --- the data really contains what the tests need --------------------------------------------


def test_the_test_data_has_5xx_slow_and_edge_cases(frame: pd.DataFrame, engine: LocalEngine) -> None:
    assert len(frame) > 3000
    assert _is5(frame["elb_status_code"]).sum() > 50
    assert (frame["target_processing_time"] == -1).sum() > 0
    assert frame["classification"].isna().sum() >= 1  # the 24-field line
    engine.query("error_rate")
    assert engine.parse_stats().bad_lines == 1  # the unparseable edge line, counted


# --- every saved query: runs, and has the declared columns and dtypes -------------------------


@pytest.mark.parametrize("name", sorted(all_queries()))
def test_every_saved_query_runs_with_its_declared_columns(engine: LocalEngine, name: str) -> None:
    q = get(name)
    df = engine.query(name, bucket="1h")
    assert list(df.columns) == q.column_names
    for c in q.columns:
        kind = str(df[c.name].dtype)
        expect = {
            "timestamp": ("datetime64[ns, UTC]",),
            "bigint": ("int64", "Int64"),
            "int": ("int64", "Int64"),
            "double": ("float64",),
            "string": ("object",),
            "boolean": ("bool", "object", "boolean"),
        }[c.type]
        assert kind in expect, (c.name, kind)


@pytest.mark.parametrize("name", sorted(all_queries()))
def test_open_bounds_give_the_rows_of_bounds_around_all_data(engine: LocalEngine, name: str) -> None:
    """Without --since/--until the time comparisons are left out (see translate._drop_open_bounds); the
    answer must be the one the comparisons give for bounds around all the data."""
    kw = {"bucket": "1h"} if get(name).param("bucket") is not None else {}
    open_ = engine.query(name, **kw)
    bounded = engine.query(name, since="2000-01-01T00:00:00Z", until="2100-01-01T00:00:00Z", **kw)
    pd.testing.assert_frame_equal(open_, bounded)


def test_open_bounds_do_not_read_time() -> None:
    """The point of leaving them out: a query that needs `time` only for the window does not read it."""
    q = get("tls_mix")
    assert "time" in (translate_saved(q).columns or ())
    both = translate_saved(q, frozenset({"since", "until"}))
    assert "time" not in (both.columns or ()) and not both.uses_ts and "since" not in both.params
    # where `time` is read anyway (for the other bound, or for buckets) the comparisons stay
    assert set(translate_saved(q, frozenset({"until"})).params) == {"since", "until", "limit"}
    assert {"since", "until"} <= set(translate_saved(get("slo_buckets"), frozenset({"since", "until"})).params)


# --- parity with pandas, query by query -------------------------------------------------------


@pytest.mark.parametrize("bucket", ["5m", "1h"])
def test_error_rate_matches_pandas(engine: LocalEngine, frame: pd.DataFrame, bucket: str) -> None:
    secs = {"5m": 300, "1h": 3600}[bucket]
    f = frame.assign(bucket_start=_bucket(frame, secs), e5=_is5(frame["elb_status_code"]), t5=_target5(frame))
    f["l5"] = f["e5"] & ~f["t5"]
    g = (
        f.groupby("bucket_start")
        .agg(requests=("e5", "size"), errors_5xx=("e5", "sum"), elb_5xx=("l5", "sum"), target_5xx=("t5", "sum"))
        .reset_index()
    )
    g["success_rate"] = 1 - g["errors_5xx"] / g["requests"]
    got = engine.query("error_rate", bucket=bucket)
    assert list(got.columns) == ["bucket_start", "requests", "errors_5xx", "elb_5xx", "target_5xx", "success_rate"]
    _assert_frames(got, g)
    assert got["elb_5xx"].sum() > 0 and got["target_5xx"].sum() > 0


def test_error_rate_window_is_since_inclusive_until_exclusive(engine: LocalEngine, frame: pd.DataFrame) -> None:
    ts = frame["ts"].sort_values().reset_index(drop=True)
    since, until = ts.iloc[100], ts.iloc[len(ts) // 2]
    got = engine.query("error_rate", since=since.isoformat(), until=until.to_pydatetime(), bucket="1d")
    n = ((frame["ts"] >= since) & (frame["ts"] < until)).sum()
    # bound timestamps carry milliseconds (Athena's precision): compare on the ms-truncated window
    s_ms, u_ms = since.floor("ms"), until.floor("ms")
    n_ms = ((frame["ts"] >= s_ms) & (frame["ts"] < u_ms)).sum()
    assert got["requests"].sum() == n_ms
    assert abs(n - n_ms) <= 2


def test_latency_percentiles_matches_pandas_quantiles(engine: LocalEngine, frame: pd.DataFrame) -> None:
    got = engine.query("latency_percentiles", bucket="1h")
    assert list(got.columns) == ["bucket_start", "metric", "requests", "p50", "p90", "p95", "p99", "max"]
    f = frame.assign(bucket_start=_bucket(frame, 3600))
    rp, tp, sp = f["request_processing_time"], f["target_processing_time"], f["response_processing_time"]
    valid = (rp >= 0) & (tp >= 0) & (sp >= 0)
    f["total_time"] = (rp + tp + sp).where(valid)
    rows = []
    for metric in sorted(
        ["request_processing_time", "target_processing_time", "response_processing_time", "total_time"]
    ):
        v = f[["bucket_start", metric]].rename(columns={metric: "v"})
        v = v[v["v"] >= 0]
        for b, grp in v.groupby("bucket_start"):
            q = grp["v"].quantile([0.5, 0.9, 0.95, 0.99])  # linear interpolation, like quantile_cont
            rows.append((b, metric, len(grp), *q.tolist(), grp["v"].max()))
    want = pd.DataFrame(rows, columns=list(got.columns)).sort_values(["bucket_start", "metric"]).reset_index(drop=True)
    # The local engine computes exact percentiles, so the tolerance is float noise, well inside the 1 % the
    # issue allows (Athena's approx_percentile is the approximate one).
    _assert_frames(got, want, rel=1e-9)
    assert (got.loc[got.metric == "target_processing_time", "max"] > 2).any()


def test_errors_by_target_matches_pandas(engine: LocalEngine, frame: pd.DataFrame) -> None:
    f = frame.assign(target=_target(frame), e5=_is5(frame["elb_status_code"]), t5=_target5(frame))
    f["l5"] = f["e5"] & ~f["t5"]
    g = f.groupby(["target", "target_group_arn"], dropna=False).agg(
        requests=("e5", "size"), errors_5xx=("e5", "sum"), elb_5xx=("l5", "sum"), target_5xx=("t5", "sum")
    )
    g = g.reset_index()
    g = g[g["errors_5xx"] > 0].copy()
    g["error_rate"] = g["errors_5xx"] / g["requests"]
    g = g.sort_values(["errors_5xx", "target", "target_group_arn"], ascending=[False, True, True])
    g = g.reset_index(drop=True)
    got = engine.query("errors_by_target", limit=1000)
    _assert_frames(got, g)
    assert "[2001:db8::1]:8080" in set(got["target"]) and "-" in set(got["target"])
    top = engine.query("errors_by_target", limit=2)
    _assert_frames(top, g.head(2))


def test_errors_by_path_collapses_ids_and_matches_pandas(engine: LocalEngine, frame: pd.DataFrame) -> None:
    f = frame.assign(
        path=frame["request_url"].map(normalise_path), e5=_is5(frame["elb_status_code"]), t5=_target5(frame)
    )
    f["l5"] = f["e5"] & ~f["t5"]
    g = (
        f.groupby("path")
        .agg(requests=("e5", "size"), errors_5xx=("e5", "sum"), elb_5xx=("l5", "sum"), target_5xx=("t5", "sum"))
        .reset_index()
    )
    g = g[g["errors_5xx"] > 0].copy()
    g["error_rate"] = g["errors_5xx"] / g["requests"]
    g = g.sort_values(["errors_5xx", "path"], ascending=[False, True]).reset_index(drop=True)
    got = engine.query("errors_by_path", limit=1000)
    _assert_frames(got, g)
    paths = set(got["path"])
    assert "/a/{id}/{id}/{id}/{id}" in paths  # consecutive ids, query string dropped
    assert "/u/{uuid}/f/{hash}" in paths
    assert "/pets/{id}" in paths  # /pets/7 from the old line
    assert not any(re.search(r"/[0-9]+(/|$)", p) for p in paths)


def test_errors_by_reason_matches_pandas(engine: LocalEngine, frame: pd.DataFrame) -> None:
    f = frame[_is5(frame["elb_status_code"])]
    g = (
        f.groupby(["elb_status_code", "lambda_error_reason", "classification"], dropna=False)
        .size()
        .rename("requests")
        .reset_index()
    )
    g["share"] = g["requests"] / len(f)
    g["elb_status_code"] = g["elb_status_code"].astype("int64")
    key = g["classification"].map(lambda v: (v is None, v or ""))
    g = g.assign(_c=key, _r=g["lambda_error_reason"].map(lambda v: (v is None, v or "")))
    g = g.sort_values(["requests", "elb_status_code", "_r", "_c"], ascending=[False, True, True, True])
    g = g.drop(columns=["_c", "_r"]).reset_index(drop=True)
    got = engine.query("errors_by_reason", limit=1000)
    _assert_frames(got, g)
    assert got["classification"].isna().any()  # the old-format line groups as NULL, not dropped
    assert math.isclose(got["share"].sum(), 1.0)


def test_status_codes_matches_pandas(engine: LocalEngine, frame: pd.DataFrame) -> None:
    f = frame.assign(bucket_start=_bucket(frame, 3600), elb_status_code=frame["elb_status_code"].astype("int64"))
    g = f.groupby(["bucket_start", "elb_status_code"]).size().rename("requests").reset_index()
    g["share"] = g["requests"] / g.groupby("bucket_start")["requests"].transform("sum")
    got = engine.query("status_codes", bucket="1h")
    _assert_frames(got, g)


def test_slowest_requests_matches_pandas_and_filters_by_path(engine: LocalEngine, frame: pd.DataFrame) -> None:
    rp, tp, sp = frame["request_processing_time"], frame["target_processing_time"], frame["response_processing_time"]
    f = frame[(rp >= 0) & (tp >= 0) & (sp >= 0)].copy()
    f["total_time"] = f["request_processing_time"] + f["target_processing_time"] + f["response_processing_time"]
    f["target"] = _target(f)
    f["time"] = f["ts"].astype("datetime64[ns, UTC]")
    f["elb_status_code"] = f["elb_status_code"].astype("int64")
    cols = get("slowest_requests").column_names
    want = f.sort_values(["total_time", "time", "trace_id"], ascending=[False, True, True])[cols].head(15)
    got = engine.query("slowest_requests", limit=15)
    _assert_frames(got, want.reset_index(drop=True))
    assert got["trace_id"].str.startswith("Root=").all()
    pets = engine.query("slowest_requests", limit=100_000, path_prefix="/pets/")
    raw = f["request_url"].map(
        lambda u: re.split(r"[?#]", re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", "", u or "-"), maxsplit=1)[0]
    )
    assert len(pets) == raw.str.startswith("/pets/").sum() > 0


def test_top_clients_matches_pandas(engine: LocalEngine, frame: pd.DataFrame) -> None:
    f = frame.assign(
        e4=(frame["elb_status_code"] >= 400) & (frame["elb_status_code"] <= 499),
        e5=_is5(frame["elb_status_code"]),
        rb=frame["received_bytes"].astype("int64"),
        sb=frame["sent_bytes"].astype("int64"),
    )
    g = (
        f.groupby("client_ip")
        .agg(
            requests=("e5", "size"),
            errors_4xx=("e4", "sum"),
            errors_5xx=("e5", "sum"),
            received_bytes=("rb", "sum"),
            sent_bytes=("sb", "sum"),
            first_seen=("ts", "min"),
            last_seen=("ts", "max"),
        )
        .reset_index()
    )
    for c in ("first_seen", "last_seen"):
        g[c] = g[c].astype("datetime64[ns, UTC]")
    g = g.sort_values(["requests", "client_ip"], ascending=[False, True]).head(25).reset_index(drop=True)
    _assert_frames(engine.query("top_clients", limit=25), g)


def test_tls_mix_matches_pandas(engine: LocalEngine, frame: pd.DataFrame) -> None:
    g = (
        frame.groupby(["ssl_protocol", "ssl_cipher"])
        .agg(requests=("client_ip", "size"), clients=("client_ip", "nunique"))
        .reset_index()
    )
    g["share"] = g["requests"] / len(frame)
    g = g.sort_values(["requests", "ssl_protocol", "ssl_cipher"], ascending=[False, True, True]).reset_index(drop=True)
    got = engine.query("tls_mix", limit=1000)
    _assert_frames(got, g)
    assert "TLSv1.3" in set(got["ssl_protocol"]) and "-" in set(got["ssl_protocol"])


def test_latency_by_path_matches_pandas(engine: LocalEngine, frame: pd.DataFrame) -> None:
    rp, tp, sp = frame["request_processing_time"], frame["target_processing_time"], frame["response_processing_time"]
    f = frame[(rp >= 0) & (tp >= 0) & (sp >= 0)].copy()
    f["total"] = f["request_processing_time"] + f["target_processing_time"] + f["response_processing_time"]
    f["path"] = f["request_url"].map(normalise_path)
    rows = []
    for p, grp in f.groupby("path"):
        if len(grp) >= 5:
            rows.append((p, len(grp), *grp["total"].quantile([0.5, 0.9, 0.95, 0.99]).tolist(), grp["total"].max()))
    want = pd.DataFrame(rows, columns=get("latency_by_path").column_names)
    want = want.sort_values(["p99", "path"], ascending=[False, True]).reset_index(drop=True)
    got = engine.query("latency_by_path", limit=1000, min_requests=5)
    assert len(got) >= 3
    _assert_frames(got, want)


def test_report_queries_match_pandas(engine: LocalEngine, frame: pd.DataFrame) -> None:
    """The saved queries the report reads (written for the report issue) get the same parity check."""
    span = engine.query("data_span")
    assert span["requests"].iloc[0] == len(frame)
    assert span["first_request"].iloc[0] == frame["ts"].min() and span["last_request"].iloc[0] == frame["ts"].max()

    rp, tp, sp = frame["request_processing_time"], frame["target_processing_time"], frame["response_processing_time"]
    valid = (rp >= 0) & (tp >= 0) & (sp >= 0)
    total = (rp + tp + sp).where(valid)
    rows = []
    for metric, v in sorted(
        {
            "request_processing_time": rp,
            "target_processing_time": tp,
            "response_processing_time": sp,
            "total_time": total,
        }.items()
    ):
        v = v[v >= 0]
        rows.append((metric, len(v), *v.quantile([0.5, 0.9, 0.95, 0.99]).tolist(), v.max()))
    _assert_frames(engine.query("latency_summary"), pd.DataFrame(rows, columns=get("latency_summary").column_names))

    f = frame.assign(
        bucket_start=_bucket(frame, 300),
        e5=_is5(frame["elb_status_code"]),
        t5=_target5(frame),
        s460=frame["elb_status_code"] == 460,
        lat=valid,
        good=valid & ((rp + tp + sp) < 0.5),
    )
    f["l5"] = f["e5"] & ~f["t5"]
    g = (
        f.groupby("bucket_start")
        .agg(
            requests=("e5", "size"),
            errors_5xx=("e5", "sum"),
            status_460=("s460", "sum"),
            elb_5xx=("l5", "sum"),
            target_5xx=("t5", "sum"),
            latency_requests=("lat", "sum"),
            latency_good=("good", "sum"),
        )
        .reset_index()
    )
    _assert_frames(engine.query("slo_buckets", bucket="5m", latency_threshold=0.5), g)


# --- parameters are bound, never pasted -------------------------------------------------------

EVIL = ["'; DROP TABLE alb_logs; --", "x' OR '1'='1", "/pets/'); DELETE FROM access_rows; --", '"; SELECT 1; --']


@pytest.mark.parametrize("value", EVIL)
def test_sql_fragments_in_string_parameters_are_just_values(engine: LocalEngine, value: str) -> None:
    before = engine.query("error_rate", bucket="1d")["requests"].sum()
    assert engine.query("slowest_requests", path_prefix=value).empty
    n = engine.sql("SELECT count(*) AS n FROM alb_logs WHERE client_ip = :ip OR request_url = :ip", {"ip": value})
    assert n["n"].iloc[0] == 0
    assert engine.query("error_rate", bucket="1d")["requests"].sum() == before


@pytest.mark.parametrize(
    "kw",
    [
        {"bucket": "1h; DROP TABLE alb_logs"},
        {"since": "2026-01-01'; --"},
        {"limit": "5; DROP TABLE alb_logs"},
        {"min_requests": "1 OR 1=1"},
    ],
)
def test_typed_parameters_reject_sql_fragments(engine: LocalEngine, kw: dict) -> None:
    name = "latency_by_path" if "min_requests" in kw or "limit" in kw else "error_rate"
    with pytest.raises(UsageError, match=f"--(param )?{next(iter(kw))}"):
        engine.query(name, **kw)


@pytest.mark.parametrize(
    "sql",
    ["DROP TABLE alb_logs", "SELECT 1; DROP TABLE alb_logs", "DELETE FROM access_rows", "CREATE TABLE x AS SELECT 1"],
)
def test_adhoc_sql_runs_only_one_select(engine: LocalEngine, sql: str) -> None:
    with pytest.raises(UsageError):
        engine.sql(sql)
    assert engine.sql("SELECT count(*) AS n FROM alb_logs")["n"].iloc[0] > 0


def test_unknown_query_and_parameter_names_are_usage_errors(engine: LocalEngine) -> None:
    with pytest.raises(UsageError, match="unknown query 'nope'"):
        engine.query("nope")
    with pytest.raises(UsageError, match="--param path_prefix"):
        engine.query("error_rate", path_prefix="/x")
    with pytest.raises(UsageError, match="--param x"):
        engine.sql("SELECT :x AS v FROM alb_logs LIMIT 1")


# --- the relation itself ----------------------------------------------------------------------


def test_alb_logs_has_exactly_the_athena_columns_and_values(engine: LocalEngine, logs: Path) -> None:
    from albstats.parse import read_table
    from albstats.schema import ACCESS

    got = engine.sql("SELECT * FROM alb_logs")
    assert list(got.columns) == ACCESS.names
    want = read_table([str(logs)]).to_pandas()
    key = ["time", "trace_id", "client_ip", "client_port"]
    got = got.sort_values(key).reset_index(drop=True)
    want = want.sort_values(key).reset_index(drop=True)
    assert len(got) == len(want)

    def norm(v: object) -> object:
        return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v

    for c in ACCESS.names:
        assert [norm(v) for v in got[c].tolist()] == [norm(v) for v in want[c].tolist()], c


def test_translation_handles_trino_functions() -> None:
    t = translate(
        "SELECT approx_percentile(x, 0.9) AS p, regexp_replace(u, '/([0-9]+)', '/{id}$1') AS r, "
        "to_unixtime(from_iso8601_timestamp(time)) AS e FROM alb_logs WHERE a = :since"
    )
    low = t.sql.lower()
    assert "quantile_cont(" in low and "'/{id}\\1'" in t.sql and "'g'" in t.sql and "epoch(" in low
    assert t.params == ("since",)
    # x, u and a are not alb_logs columns; time is read only through the precomputed parsed time
    assert t.columns == () and t.uses_ts and "__time_ts" in t.sql
    raw = translate("SELECT min(time) AS t FROM alb_logs")
    assert raw.columns == ("time",) and not raw.uses_ts


def test_no_cache_gives_the_same_results_and_cleans_up(logs: Path, engine: LocalEngine) -> None:
    with LocalEngine([str(logs)], cache=False) as eng:
        for name in ("error_rate", "errors_by_path", "latency_percentiles"):
            pd.testing.assert_frame_equal(eng.query(name), engine.query(name))
        tmp = eng._tmpdir
        assert tmp and os.path.isdir(tmp)
        assert eng.parse_stats().bad_lines == 1
    assert not os.path.exists(tmp)


# --- the ingest cache -------------------------------------------------------------------------


def _copy(small_logs: Path, dst: Path) -> Path:
    shutil.copytree(small_logs, dst)
    return dst


def test_second_query_parses_nothing(small_logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _copy(small_logs, tmp_path / "data")
    db = tmp_path / "c.duckdb"
    with LocalEngine([str(data)], db=db) as eng:
        first = eng.query("error_rate")
        assert eng.last_ingest.parsed == eng.last_ingest.files > 10
    import albstats.parse

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(albstats.parse, "_iter", boom)
    with LocalEngine([str(data)], db=db) as eng:
        again = eng.query("error_rate")
        assert (eng.last_ingest.parsed, eng.last_ingest.cached) == (0, eng.last_ingest.files)
        assert eng.parse_stats().bad_lines == 1  # malformed counts come from the cache
        assert eng.summary()[0].startswith(f"{eng.last_ingest.files} files")
    pd.testing.assert_frame_equal(first, again)


def test_the_translation_cache_is_used_only_when_its_key_matches(tmp_path: Path, monkeypatch) -> None:
    """Cached DuckDB SQL is found by a checksum of the key and kept only if the stored key is equal, so a
    checksum collision (simulated by editing the key) is a miss, not another query's SQL."""
    from albstats.engines import local
    from albstats.queries import get

    monkeypatch.setenv("ALBSTATS_CACHE_DB", str(tmp_path / "c.duckdb"))
    q = get("error_rate")
    first = local.translate_saved(q)
    (path,) = list((tmp_path / "sql").glob("*.json"))
    d = json.loads(path.read_text())
    assert d["sql"] == first.sql and q.name in d["key"] and q.sql in d["key"]
    path.write_text(json.dumps({**d, "sql": "SELECT 'from the cache'"}))
    assert local.translate_saved(q).sql == "SELECT 'from the cache'"  # a hit reads the file
    path.write_text(json.dumps({**d, "key": d["key"] + " ", "sql": "SELECT 'another query'"}))
    assert local.translate_saved(q).sql == first.sql  # key differs: translated again
    assert json.loads(path.read_text())["sql"] == first.sql  # and the file rewritten


def test_changed_file_is_parsed_again(small_logs: Path, tmp_path: Path) -> None:
    data = _copy(small_logs, tmp_path / "data")
    db = tmp_path / "c.duckdb"
    with LocalEngine([str(data)], db=db) as eng:
        n0 = eng.query("error_rate", bucket="1d")["requests"].sum()
    target = next((data / "gen").rglob("*.log.gz"))
    with gzip.open(target, "rt") as fh:
        lines = fh.read().splitlines()
    with gzip.open(target, "wt") as fh:
        fh.write("\n".join(lines[:-3]) + "\n")
    with LocalEngine([str(data)], db=db) as eng:
        n1 = eng.query("error_rate", bucket="1d")["requests"].sum()
        # the changed file, and the other files of its day and folder for that day (their part is rebuilt)
        assert 1 <= eng.last_ingest.parsed < eng.last_ingest.files
    assert n1 == n0 - 3  # the old copy's rows are gone
    with LocalEngine([str(data)], db=db) as eng:
        assert eng.query("error_rate", bucket="1d")["requests"].sum() == n1
        assert eng.last_ingest.parsed == 0


def test_a_touched_file_is_parsed_again(small_logs: Path, tmp_path: Path) -> None:
    # same size, new mtime: the listing's stat must still tell the file changed
    data = _copy(small_logs, tmp_path / "data")
    db = tmp_path / "c.duckdb"
    with LocalEngine([str(data)], db=db) as eng:
        n0 = eng.query("error_rate", bucket="1d")["requests"].sum()
    target = next((data / "gen").rglob("*.log.gz"))
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with LocalEngine([str(data)], db=db) as eng:
        assert eng.query("error_rate", bucket="1d")["requests"].sum() == n0
        assert 1 <= eng.last_ingest.parsed < eng.last_ingest.files
        assert eng.parse_stats().bad_lines == 1
    with LocalEngine([str(data)], db=db) as eng:
        eng.query("error_rate", bucket="1d")
        assert eng.last_ingest.parsed == 0


def test_query_covers_exactly_the_given_files(small_logs: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    with LocalEngine([str(small_logs)], db=db) as eng:
        eng.query("error_rate")
    edge = small_logs / "edge" / EDGE_NAME
    with LocalEngine([str(edge)], db=db) as eng:
        got = eng.query("error_rate", bucket="1d")
        assert eng.last_ingest.parsed == 0
        assert got["requests"].sum() == 4  # the 4 parseable edge lines, nothing else from the cache
        assert eng.sql("SELECT count(DISTINCT elb) AS n FROM alb_logs")["n"].iloc[0] == 1
        assert eng.parse_stats().files_read == 1


def test_cache_location_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from albstats.engines.local import default_db_path

    monkeypatch.delenv("ALBSTATS_CACHE_DB", raising=False)
    monkeypatch.delenv("ALBSTATS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "albstats" / "dataset"
    monkeypatch.setenv("ALBSTATS_CACHE_DB", str(tmp_path / "x"))
    assert default_db_path() == tmp_path / "x"
    monkeypatch.setenv("ALBSTATS_CACHE_DIR", str(tmp_path / "y"))
    assert default_db_path() == tmp_path / "y"


def test_connect_api_and_errors(small_logs: Path, tmp_path: Path) -> None:
    with albstats.connect(str(small_logs / "edge"), db=tmp_path / "c.duckdb") as eng:
        assert eng.name == "local"
        assert eng.query("error_rate", bucket="1d")["requests"].sum() == 4
    with pytest.raises(UsageError, match="--engine"):
        albstats.connect([], engine="bigquery")
    with pytest.raises(UsageError, match="no such file"):
        with albstats.connect([str(tmp_path / "missing")], cache=False) as eng:
            eng.query("error_rate")


def test_a_failed_ingest_leaves_a_consistent_cache(small_logs: Path, tmp_path: Path) -> None:
    from albstats.errors import InputError

    classic = tmp_path / "classic.log"
    classic.write_text(
        "2015-05-13T23:39:43.945958Z my-lb 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 "
        '0.000057 200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -\n'
    )
    db = tmp_path / "c.duckdb"
    with LocalEngine([str(small_logs / "edge"), str(classic)], db=db) as eng:
        with pytest.raises(InputError, match="Classic"):
            eng.query("error_rate")
    with LocalEngine([str(small_logs / "edge")], db=db) as eng:
        assert eng.query("error_rate", bucket="1d")["requests"].sum() == 4
    from albstats.cache import Cache

    info = Cache(db).info()
    assert info.debris == 0 and info.rows == info.lines - info.bad_lines == 4  # nothing of the failed fill


def test_a_window_reads_only_the_day_folders_it_needs(tmp_path: Path) -> None:
    root = tmp_path / "three-days"
    generate(root, days=3, lines=864, nodes=1, seed=5)
    with LocalEngine([str(root)], db=tmp_path / "c.duckdb") as eng:
        got = eng.query("error_rate", since="2026-11-18T06:00:00Z", until="2026-11-18T12:00:00Z", bucket="1d")
        # day folders 2026/11/18 and 2026/11/19 (until's day plus one), not the 16th and 17th
        assert 0 < eng.last_ingest.files <= 288 + 1
        days = {Path(f.name).parent.name for f in eng.parse_stats().files}
        assert days <= {"18", "19"}
    with LocalEngine([str(root)], cache=False) as eng:
        everything = eng.query("error_rate", bucket="1d")
        assert eng.last_ingest.files == len(list(root.rglob("*.log.gz")))
    full = albstats.read_logs([str(root)])
    t = full["time"].astype("datetime64[us, UTC]")
    want = ((t >= pd.Timestamp("2026-11-18T06:00:00Z")) & (t < pd.Timestamp("2026-11-18T12:00:00Z"))).sum()
    assert got["requests"].sum() == want > 0
    assert everything["requests"].sum() == len(full)


def test_a_file_that_is_not_a_cache_is_a_clear_error(small_logs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "notes.duckdb"
    bad.write_text("not a cache\n")
    with pytest.raises(UsageError, match="is a file; the cache is a folder"):
        with LocalEngine([str(small_logs / "edge")], db=bad) as eng:
            eng.query("error_rate")
    assert bad.read_text() == "not a cache\n"  # left alone
