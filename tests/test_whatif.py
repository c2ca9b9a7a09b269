"""whatif: predictions from observed outcomes under a retry policy, with the assumption stated."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from albstats.cli import app
from albstats.logformat import format_line
from albstats.proxy.policy import make_policy
from albstats.whatif import whatif


def write_log(path, n=2000, fail=0.1, verb="GET", seed=3, status=503):
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        bad = rng.random() < fail
        lines.append(
            format_line(
                {
                    "type": "http",
                    "time": "2026-11-27T10:00:00.000000Z",
                    "elb": "app/x/1",
                    "client_ip": "10.0.0.1",
                    "client_port": 1000 + i,
                    "target_ip": "10.0.1.1",
                    "target_port": 80,
                    "request_processing_time": 0.001,
                    "target_processing_time": 0.5 if bad else rng.uniform(0.04, 0.06),
                    "response_processing_time": 0.0,
                    "elb_status_code": status if bad else 200,
                    "target_status_code": str(status) if bad else "200",
                    "received_bytes": 100,
                    "sent_bytes": 200,
                    "request_verb": verb,
                    "request_url": "http://x:80/a",
                    "request_proto": "HTTP/1.1",
                    "user_agent": "t",
                    "trace_id": "-",
                    "request_creation_time": "2026-11-27T10:00:00.000000Z",
                    "actions_executed": "forward",
                    "target_port_list": "10.0.1.1:80",
                    "target_status_code_list": str(status) if bad else "200",
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_predicts_independent_retries(tmp_path):
    log = write_log(tmp_path / "a.log")
    r = whatif([str(log)], make_policy(backoff_base=0.01), simulations=20_000)
    assert abs(r.observed["success_rate"] - 0.9) < 0.02
    p = r.observed["retryable_failure_rate"]
    # independence: failure after 3 attempts ~ p**3, load ~ 1 + p + p**2
    assert r.predicted["success_rate"] > 0.995
    assert abs(r.predicted["upstream_requests_per_request"] - (1 + p + p * p)) < 0.02
    assert r.predicted["latency_p99"] >= r.observed["latency_p90"]
    assert any("independent" in a for a in r.assumptions)
    assert set(r.attempts_histogram) <= {"1", "2", "3"}


def test_budget_posts_and_non_retryable_statuses(tmp_path):
    log = write_log(tmp_path / "b.log", fail=0.5)
    r = whatif([str(log)], make_policy(), simulations=5000)
    # the budget caps load: 20 % of requests plus the floor of 10 per window, per observed request
    assert r.predicted["upstream_requests_per_request"] <= 1.2 + 10 / r.requests_observed + 1e-9
    posts = write_log(tmp_path / "p.log", verb="POST")
    rp = whatif([str(posts)], make_policy(), simulations=5000)
    assert abs(rp.predicted["success_rate"] - rp.observed["success_rate"]) < 0.02
    assert rp.predicted["upstream_requests_per_request"] == 1.0
    e500 = write_log(tmp_path / "e.log", status=500)
    assert whatif([str(e500)], make_policy(), simulations=5000).predicted["upstream_requests_per_request"] == 1.0
    seed = whatif([str(e500)], make_policy("seed"), simulations=5000)
    assert seed.predicted["success_rate"] > 0.999  # the seed profile retries 500 (and POSTs)
    assert seed.predicted["latency_p99"] >= 3.0  # ... 3 s apart


def test_cli(tmp_path):
    log = write_log(tmp_path / "c.log")
    res = CliRunner().invoke(app, ["whatif", str(log), "--policy", "recommended", "--simulations", "2000"])
    assert res.exit_code == 0, res.output
    assert "assumptions" in res.output and "independently" in res.output and "predicted" in res.output
    js = CliRunner().invoke(app, ["whatif", str(log), "--format", "json", "--simulations", "2000", "--tries", "2"])
    data = json.loads(js.output)
    assert data["policy"].startswith("recommended: 2 attempts") and data["predicted"]["success_rate"] > 0.97
    bad = CliRunner().invoke(app, ["whatif", str(tmp_path / "missing.log")])
    assert bad.exit_code != 0


@pytest.mark.integration  # slow: 2,000 requests through the proxy
def test_prediction_falls_inside_what_the_proxy_measures(tmp_path):
    """whatif, from a one-try "before" log of the flaky scenario (10 % 502/503/504), predicts the success
    rate and upstream attempts per request that the recommended policy then gives through the real proxy,
    within the 95 % interval of the measurement (bench/bench_whatif.py runs all three scenarios)."""
    import asyncio

    from albstats.whatif_check import check_whatif

    # one request at a time, seeded simulator and jitter: the same attempts fail on every run
    r = asyncio.run(check_whatif("flaky", tmp_path, before=1000, after=1000, concurrency=1))
    assert r.before_requests == r.after_requests == 1000
    assert 1.05 < r.measured_attempts < 1.2 and r.measured_success > 0.99  # the retries did something
    assert r.success_inside and r.attempts_inside, r.render()
