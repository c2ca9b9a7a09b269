"""SLO math on hand-built bucket tables: every expected number is worked out in the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from albstats import slo
from albstats.errors import UsageError

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def buckets(rows: list[tuple[int, int, int]], *, s460: list[int] | None = None) -> pd.DataFrame:
    """rows: (minute offset, requests, 5xx); half the 5xx from the ELB, half from the target."""
    out = []
    for i, (m, r, e) in enumerate(rows):
        out.append(
            {
                "bucket_start": T0 + timedelta(minutes=m),
                "requests": r,
                "errors_5xx": e,
                "status_460": (s460 or [0] * len(rows))[i],
                "elb_5xx": e // 2,
                "target_5xx": e - e // 2,
                "latency_requests": r,
                "latency_good": r - e,
            }
        )
    return pd.DataFrame(out)


def flat(n: int, req: int = 100, err: int = 0) -> list[tuple[int, int, int]]:
    return [(5 * i, req, err) for i in range(n)]


def test_parse_options():
    assert slo.parse_slo("99.0") == pytest.approx(0.99)
    assert slo.parse_slo("99.95%") == pytest.approx(0.9995)
    for bad in ("0.99", "100", "abc", "-5"):
        with pytest.raises(UsageError, match="--slo"):
            slo.parse_slo(bad)
    assert slo.parse_latency_slo("1s@95") == (1.0, pytest.approx(0.95))
    assert slo.parse_latency_slo("250ms@99.9") == (0.25, pytest.approx(0.999))
    assert slo.parse_latency_slo("2@90") == (2.0, pytest.approx(0.9))
    for bad in ("1s", "fast@95", "1s@101", "0s@95"):
        with pytest.raises(UsageError, match="latency-slo"):
            slo.parse_latency_slo(bad)


def test_budget_and_success_rate():
    # 10 buckets x 100 requests, 4 bad in total -> 99.6 % ; 99 % allows 10, 4 used, 60 % left
    rows = flat(10)
    rows[3] = (15, 100, 4)
    a = slo.availability(buckets(rows), 0.99)
    assert (a.requests, a.bad_requests) == (1000, 4)
    assert a.success_rate == pytest.approx(0.996)
    assert a.met
    assert a.error_budget.allowed == pytest.approx(10.0)
    assert a.error_budget.used == 4
    assert a.error_budget.remaining == pytest.approx(6.0)
    assert a.error_budget.remaining_fraction == pytest.approx(0.6)
    assert a.burn_rate == pytest.approx(0.4)
    assert (a.elb_5xx, a.target_5xx) == (2, 2)


def test_460_counts_only_when_asked():
    rows = flat(4)
    df = buckets(rows, s460=[0, 5, 5, 0])
    assert slo.availability(df, 0.99).bad_requests == 0
    a = slo.availability(df, 0.99, count_460=True)
    assert a.bad_requests == 10 and a.success_rate == pytest.approx(390 / 400)
    assert not a.met  # 97.5 % < 99 %
    assert a.error_budget.remaining_fraction == pytest.approx((4 - 10) / 4)


def test_worst_windows_and_alert_pairs():
    # 8 h of 5-minute buckets, 100 requests each; 30 minutes at 50 % errors starting at 02:00
    rows = flat(96)
    for i in range(24, 30):
        rows[i] = (5 * i, 100, 50)
    a = slo.availability(buckets(rows), 0.99)
    w1 = a.worst_1h
    # best 1 h window contains all 6 bad buckets: 300 bad / 1200 requests = 25 % -> burn 25
    assert w1.burn_rate == pytest.approx(25.0)
    assert w1.bad_requests == 300 and w1.requests == 1200
    assert w1.start <= T0 + timedelta(hours=2) and w1.end >= T0 + timedelta(hours=2, minutes=30)
    assert a.worst_6h.burn_rate == pytest.approx(300 / 7200 / 0.01)
    pairs = {p.name: p for p in a.alerts}
    assert pairs["1h/5m"].fired and pairs["1h/5m"].threshold == 14.4
    # the 1h/5m pair fires once the 1 h burn passes 14.4: after 4 bad buckets (200/1200 -> 16.7)
    assert pairs["1h/5m"].first_fired == T0 + timedelta(hours=2, minutes=20)
    assert pairs["6h/30m"].evaluated and not pairs["6h/30m"].fired  # 6 h burn at most 300/7200/0.01 = 4.2
    assert not pairs["3d/6h"].evaluated  # 8 h of data cannot fill a 3-day window


def test_window_too_short():
    a = slo.availability(buckets(flat(6)), 0.99)
    assert a.worst_1h.burn_rate is None and a.worst_6h.burn_rate is None


def test_empty():
    a = slo.availability(buckets([]).reindex(columns=slo.COUNT_COLUMNS + ("bucket_start",)), 0.99)
    assert a.requests == 0 and a.success_rate is None and a.met and a.error_budget.remaining_fraction is None


def test_grid_fills_quiet_time_from_window():
    df = buckets([(0, 10, 0), (60, 10, 0)])
    g = slo.regular(df, T0 - timedelta(minutes=10), T0 + timedelta(hours=2))
    assert len(g) == 2 + 12 + 12  # 00:-10 .. 01:55
    assert int(g["requests"].sum()) == 20


def test_incidents_robust_baseline():
    # baseline 1 % errors with noise, two spikes, and a one-bucket blip of 3 errors below min_bad
    rows = [(5 * i, 100, 1 + (i % 3 == 0)) for i in range(60)]
    for i in (10, 11, 13):  # one incident (gap of one quiet bucket is merged)
        rows[i] = (5 * i, 100, 40)
    rows[40] = (200, 100, 30)
    rows[50] = (250, 4, 3)  # 75 % but only 3 bad requests
    incs, thr = slo.find_incidents(buckets(rows), 0.99)
    assert len(incs) == 2
    a, b = incs
    assert a.start == T0 + timedelta(minutes=50) and a.end == T0 + timedelta(minutes=70)
    assert a.bad_requests == 40 + 40 + rows[12][2] + 40 and a.requests == 400
    assert a.duration_seconds == 20 * 60
    assert b.start == T0 + timedelta(minutes=200) and b.bad_requests == 30
    assert 0.02 < thr < 0.3


def test_no_incident_in_steady_errors():
    rows = [(5 * i, 100, 3) for i in range(50)]
    incs, _ = slo.find_incidents(buckets(rows), 0.99)
    assert incs == []


def test_burn_down_reaches_remaining_fraction():
    rows = flat(10)
    rows[5] = (25, 100, 8)
    bd = slo.burn_down(buckets(rows), 0.99)
    assert len(bd) == 10
    assert bd["remaining_fraction"].iloc[0] == pytest.approx(1.0)
    assert bd["remaining_fraction"].iloc[-1] == pytest.approx(0.2)
    assert bd["used"].is_monotonic_increasing


def test_latency_slo():
    df = buckets(flat(4, 100, 10))
    lat = slo.latency_slo(df, 1.0, 0.95)
    assert lat.requests == 400 and lat.good == 360 and lat.share == pytest.approx(0.9) and not lat.met


# --- the saved queries behind the SLO numbers, against pandas -------------------------------------


def _lines(n: int = 240) -> list[str]:
    from albstats.logformat import format_line

    out = []
    for i in range(n):
        t = (T0 + timedelta(seconds=37 * i + (i % 5) * 0.123457)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        kind = i % 12
        elb, tgt, times = 200, "200", (0.001, 0.1 * (i % 25), 0.0)
        if kind == 1:
            elb, tgt, times = 502, "-", (-1.0, -1.0, -1.0)  # load balancer generated
        elif kind == 2:
            elb, tgt = 503, "503"  # target generated
        elif kind == 3:
            elb, tgt, times = 460, "-", (0.001, -1.0, -1.0)
        elif kind == 4:
            elb, tgt = 404, "404"
        out.append(
            format_line(
                {
                    "type": "https",
                    "time": t,
                    "elb": "app/s/1",
                    "client_ip": f"192.0.2.{i % 7}",
                    "client_port": 1,
                    "target_ip": "10.0.0.1" if tgt != "-" else None,
                    "target_port": 80,
                    "request_processing_time": times[0],
                    "target_processing_time": times[1],
                    "response_processing_time": times[2],
                    "elb_status_code": elb,
                    "target_status_code": tgt,
                    "received_bytes": 1,
                    "sent_bytes": 2,
                    "request_verb": "GET",
                    "request_url": "https://s:443/x",
                    "request_proto": "HTTP/1.1",
                    "user_agent": "ua",
                    "ssl_cipher": "-",
                    "ssl_protocol": "-",
                    "target_group_arn": "tg",
                    "trace_id": "-",
                    "domain_name": "-",
                    "chosen_cert_arn": "-",
                    "matched_rule_priority": "0",
                    "request_creation_time": t,
                    "actions_executed": "forward",
                    "redirect_url": "-",
                    "lambda_error_reason": "-",
                    "target_port_list": "-",
                    "target_status_code_list": "-",
                    "classification": "-",
                    "classification_reason": "-",
                },
                ntokens=29,
            )
        )
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    import albstats

    p = tmp_path_factory.mktemp("slo") / "s.log"
    p.write_text("\n".join(_lines()) + "\n")
    frame = albstats.read_logs(str(p))
    eng = albstats.connect([str(p)], db=str(p.parent / "c.duckdb"), quiet=True)
    yield eng, frame
    eng.close()


def test_slo_buckets_query_matches_pandas(small):
    eng, f = small
    got = eng.query("slo_buckets", bucket="5m", latency_threshold=1.0)
    st = f["elb_status_code"].astype("int64")
    tcode = f["target_status_code"].astype(str)
    parts = f[["request_processing_time", "target_processing_time", "response_processing_time"]].astype("float64")
    disp = (parts >= 0).all(axis=1)
    exp = (
        pd.DataFrame(
            {
                "bucket_start": f["time"].dt.floor("5min"),
                "requests": 1,
                "errors_5xx": st.between(500, 599).astype(int),
                "status_460": (st == 460).astype(int),
                "elb_5xx": (st.between(500, 599) & ~tcode.str.fullmatch(r"5\d\d")).astype(int),
                "target_5xx": tcode.str.fullmatch(r"5\d\d").astype(int),
                "latency_requests": disp.astype(int),
                "latency_good": (disp & (parts.sum(axis=1) < 1.0)).astype(int),
            }
        )
        .groupby("bucket_start")
        .sum()
        .reset_index()
    )
    assert list(got.columns) == list(exp.columns)
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), exp.astype({"bucket_start": "datetime64[ns, UTC]"}), check_dtype=False
    )
    assert exp["elb_5xx"].sum() > 0 and exp["target_5xx"].sum() > 0 and exp["status_460"].sum() > 0


def test_latency_summary_query_matches_numpy(small):
    import numpy as np

    eng, f = small
    got = eng.query("latency_summary").set_index("metric")
    parts = f[["request_processing_time", "target_processing_time", "response_processing_time"]].astype("float64")
    series = {c: parts[c][parts[c] >= 0] for c in parts.columns}
    series["total_time"] = parts[(parts >= 0).all(axis=1)].sum(axis=1)
    assert set(got.index) == set(series)
    for m, v in series.items():
        assert got.loc[m, "requests"] == len(v)
        for q in (50, 90, 95, 99):
            assert got.loc[m, f"p{q}"] == pytest.approx(np.percentile(v, q), rel=0.01, abs=1e-9), (m, q)
        assert got.loc[m, "max"] == pytest.approx(v.max())


def test_data_span_query_and_window(small):
    eng, f = small
    got = eng.query("data_span")
    assert got.loc[0, "requests"] == len(f)
    assert got.loc[0, "first_request"] == f["time"].min() and got.loc[0, "last_request"] == f["time"].max()
    mid = f["time"].sort_values().iloc[100]
    part = eng.query("data_span", since=mid)
    assert part.loc[0, "requests"] == int((f["time"] >= mid).sum())
