"""`albstats weekly`: ISO-week boundaries, deltas, a real webhook on 127.0.0.1, and exit codes."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import _webhook
import pytest
from typer.testing import CliRunner

from albstats import weekly
from albstats.cli import app
from albstats.logformat import format_line

SECRET = "T0000/B0000/XsecretXtokenX"


# --- week boundaries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now,label,start",
    [
        ("2026-03-09T00:00:00Z", "2026-W10", "2026-03-02"),  # Monday 00:00:00 exactly: the week that just ended
        ("2026-03-08T23:59:00Z", "2026-W09", "2026-02-23"),  # Sunday 23:59: that week is not over yet
        ("2026-03-09T00:00:00.000001Z", "2026-W10", "2026-03-02"),
        ("2026-03-11T12:00:00Z", "2026-W10", "2026-03-02"),
        ("2027-01-04T00:00:00Z", "2026-W53", "2026-12-28"),  # 2026 has 53 ISO weeks
        ("2027-01-11T06:00:00Z", "2027-W01", "2027-01-04"),
        ("2026-01-05T00:00:00Z", "2026-W01", "2025-12-29"),  # ISO week 1 of 2026 starts in 2025
        ("2026-03-09T01:00:00+02:00", "2026-W09", "2026-02-23"),  # 2026-03-08T23:00Z: still in W10
    ],
)
def test_previous_week(now, label, start):
    w = weekly.previous_week(datetime.fromisoformat(now.replace("Z", "+00:00")))
    assert w.label == label
    assert w.start == datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert w.end - w.start == timedelta(days=7)
    assert w.start.weekday() == 0 and w.start.hour == 0


# --- data: two weeks of small logs ---------------------------------------------------------------


def lines(start: datetime, n: int, bad: int) -> list[str]:
    out = []
    for i in range(n):
        t = (start + timedelta(minutes=7 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        status = 502 if i < bad else 200
        out.append(
            format_line(
                {
                    "type": "https",
                    "time": t,
                    "elb": "app/w/1",
                    "client_ip": "192.0.2.1",
                    "client_port": 1000 + i,
                    "target_ip": "10.0.0.1",
                    "target_port": 80,
                    "request_processing_time": 0.001,
                    "target_processing_time": 0.2,
                    "response_processing_time": 0.0,
                    "elb_status_code": status,
                    "target_status_code": str(status),
                    "received_bytes": 100,
                    "sent_bytes": 200,
                    "request_verb": "GET",
                    "request_url": f"https://w.example:443/pets/{i}",
                    "request_proto": "HTTP/1.1",
                    "user_agent": "ua",
                    "ssl_cipher": "c",
                    "ssl_protocol": "TLSv1.2",
                    "target_group_arn": "tg",
                    "trace_id": "-",
                    "domain_name": "-",
                    "chosen_cert_arn": "-",
                    "matched_rule_priority": "0",
                    "request_creation_time": t,
                    "actions_executed": "forward",
                    "redirect_url": "-",
                    "lambda_error_reason": "-",
                    "target_port_list": "10.0.0.1:80",
                    "target_status_code_list": str(status),
                    "classification": "-",
                    "classification_reason": "-",
                },
                ntokens=29,
            )
        )
    return out


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    d = tmp_path_factory.mktemp("weekly")
    # W09: 100 requests, none bad; W10 (2026-03-02 .. 03-09): 200 requests, 1 bad (99.5 %)
    (d / "w09.log").write_text("\n".join(lines(datetime(2026, 2, 24, tzinfo=UTC), 100, 0)) + "\n")
    (d / "w10.log").write_text("\n".join(lines(datetime(2026, 3, 3, tzinfo=UTC), 200, 1)) + "\n")
    return d


# --- a real webhook --------------------------------------------------------------------------------


def Hook(statuses: list[int]) -> _webhook.Hook:  # noqa: N802 - reads as the class it returns
    """The webhook at a Slack-like path holding :data:`SECRET`, answering ``statuses`` in turn."""
    return _webhook.Hook(statuses, path=f"/services/{SECRET}")


def invoke(args: list[str], tmp_path) -> object:
    return CliRunner().invoke(app, ["weekly", *args, "--db", str(tmp_path / "c.duckdb")])


@pytest.mark.integration  # slow: 6 s under load
def test_met_with_retried_webhook(logs, tmp_path):
    out = tmp_path / "reports"
    with Hook([500, 200]) as hook:
        res = invoke(
            [
                str(logs),
                "--now",
                "2026-03-09T00:00:00Z",
                "-o",
                str(out),
                "--webhook",
                hook.url,
                "--webhook-retries",
                "2",
            ],
            tmp_path,
        )
    assert res.exit_code == 0, res.output
    assert len(hook.bodies) == 2  # first answered 500, retried, then 200
    assert hook.paths == [f"/services/{SECRET}"] * 2
    text = hook.bodies[-1]["text"]
    assert set(hook.bodies[-1]) == {"text"}
    assert "2026-W10" in text and "met" in text and "99.500 %" in text and "200 requests" in text
    assert "+100.0 %" in text  # requests vs W09 (100 -> 200)
    assert SECRET not in res.output and "127.0.0.1" not in res.output
    assert "\u2501" not in res.output  # no progress bar without a terminal
    wk = out / "2026-W10"
    rep = json.loads((wk / "report.json").read_text())
    assert rep["requests"] == 200 and rep["bad_requests"] == 1
    assert rep["window"] == {"start": "2026-03-02T00:00:00Z", "end": "2026-03-09T00:00:00Z", "source": "given"}
    wj = json.loads((wk / "weekly.json").read_text())
    assert wj["week"] == "2026-W10" and wj["previous_week"] == "2026-W09"
    assert wj["deltas"]["requests"] == 100 and wj["deltas"]["bad_requests"] == 1
    assert wj["deltas"]["success_rate"] == pytest.approx(0.995 - 1.0)
    assert wj["previous"]["requests"] == 100
    assert (wk / "report.html").exists() and list(wk.glob("*.png"))


def test_breached_exits_3(logs, tmp_path):
    with Hook([200]) as hook:
        res = invoke([str(logs), "--now", "2026-03-10T08:00:00Z", "--slo", "99.9", "--webhook", hook.url], tmp_path)
    assert res.exit_code == 3, res.output
    assert "BREACHED" in hook.bodies[0]["text"]
    assert "SLO breached" in res.output


@pytest.mark.integration  # slow: 3 s under load
def test_webhook_failure_exits_1_without_the_url(logs, tmp_path):
    with Hook([500]) as hook:
        res = invoke(
            [str(logs), "--now", "2026-03-09T00:00:00Z", "--webhook", hook.url, "--webhook-retries", "1"], tmp_path
        )
    assert res.exit_code == 1, res.output
    assert len(hook.bodies) == 2  # bounded: 1 try + 1 retry
    assert "webhook failed after 2 attempts: HTTP 500" in res.output
    assert SECRET not in res.output and "127.0.0.1" not in res.output


@pytest.mark.integration  # slow: 3 s under load
def test_webhook_4xx_not_retried(logs, tmp_path):
    with Hook([404]) as hook:
        res = invoke([str(logs), "--now", "2026-03-09T00:00:00Z", "--webhook", hook.url], tmp_path)
    assert res.exit_code == 1 and len(hook.bodies) == 1
    assert "HTTP 404" in res.output and SECRET not in res.output


def test_connection_refused_redacted(logs, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}/services/{SECRET}"
    res = invoke([str(logs), "--now", "2026-03-09T00:00:00Z", "--webhook", url, "--webhook-retries", "0"], tmp_path)
    assert res.exit_code == 1, res.output
    assert "webhook failed after 1 attempt:" in res.output and SECRET not in res.output


def test_webhook_from_environment(logs, tmp_path):
    with Hook([200]) as hook:
        res = CliRunner().invoke(
            app,
            ["weekly", str(logs), "--now", "2026-03-09T00:00:00Z", "--db", str(tmp_path / "c.duckdb"), "--quiet"],
            env={"ALBSTATS_WEBHOOK_URL": hook.url},
        )
    assert res.exit_code == 0, res.output
    assert len(hook.bodies) == 1 and res.output == ""


def test_week_without_data_is_an_error(logs, tmp_path):
    res = invoke([str(logs), "--now", "2026-05-04T00:00:00Z"], tmp_path)
    assert res.exit_code == 1
    assert "no requests in 2026-W18" in res.output


def test_post_webhook_backoff_bounded():
    sleeps: list[float] = []
    with Hook([503]) as hook:
        with pytest.raises(weekly.WebhookError, match="after 4 attempts: HTTP 503"):
            weekly.post_webhook(hook.url, "hi", attempts=4, backoff=0.5, sleep=sleeps.append, timeout=5)
    assert sleeps == [0.5, 1.0, 2.0] and len(hook.bodies) == 4


@pytest.mark.parametrize("url", [f"http://[::1/{SECRET}", f"http://127.0.0.1:1/a b/{SECRET}", f"ftp://x/{SECRET}"])
def test_invalid_webhook_url_never_echoed(url):
    with pytest.raises(weekly.WebhookError) as e:
        weekly.post_webhook(url, "hi", attempts=1, timeout=2)
    assert SECRET not in str(e.value)


# --- never silent when it fails (issue 12 item 5) -----------------------------------------------------


def test_week_without_data_posts_a_failure_notice(logs, tmp_path):
    with Hook([200]) as hook:
        res = invoke(
            [str(logs), "--now", "2026-05-04T00:00:00Z", "--webhook", hook.url, "-o", str(tmp_path / "r")], tmp_path
        )
    assert res.exit_code == 1, res.output
    assert len(hook.bodies) == 1 and set(hook.bodies[0]) == {"text"}
    text = hook.bodies[0]["text"]
    assert text.startswith("albstats weekly 2026-W18 (2026-04-27 to 2026-05-03 UTC) FAILED: no requests in 2026-W18")
    assert "\n" not in text and SECRET not in text and len(text) <= weekly.MAX_FAILURE_TEXT + 80
    assert "no requests in 2026-W18" in res.stderr and not (tmp_path / "r").exists()


@pytest.mark.integration  # slow: 3 s under load
def test_error_while_writing_posts_a_failure_notice(logs, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "2026-W10").write_text("a file where the week's folder goes")
    with Hook([200]) as hook:
        res = invoke([str(logs), "--now", "2026-03-09T00:00:00Z", "--webhook", hook.url, "-o", str(out)], tmp_path)
    assert res.exit_code in (1, 2), res.output
    assert len(hook.bodies) == 1, hook.bodies  # the notice, not the summary
    text = hook.bodies[0]["text"]
    assert text.startswith("albstats weekly 2026-W10 (2026-03-02 to 2026-03-08 UTC) FAILED: ")
    assert "2026-W10" in text[60:] and SECRET not in text


def test_bad_option_posts_a_failure_notice(logs, tmp_path):
    with Hook([200]) as hook:
        res = invoke([str(logs), "--now", "2026-03-09T00:00:00Z", "--webhook", hook.url, "--slo", "0.99"], tmp_path)
    assert res.exit_code == 2, res.output
    assert len(hook.bodies) == 1
    assert hook.bodies[0]["text"].startswith("albstats weekly 2026-W10 (2026-03-02 to 2026-03-08 UTC) FAILED: --slo")


@pytest.mark.integration  # slow: 2 s under load
def test_failure_notice_that_cannot_be_posted_is_said(logs, tmp_path):
    with Hook([503]) as hook:
        res = invoke(
            [str(logs), "--now", "2026-05-04T00:00:00Z", "--webhook", hook.url, "--webhook-retries", "1"], tmp_path
        )
    assert res.exit_code == 1, res.output
    assert len(hook.bodies) == 2  # the notice, tried twice
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no requests in 2026-W18" in lines[0]
    assert "the failure notice was not posted either: webhook failed after 2 attempts: HTTP 503" in lines[0]
    assert SECRET not in res.output


def test_failure_notice_for_an_unexpected_error(logs, tmp_path):
    from albstats.report import Options

    class Boom(RuntimeError):
        pass

    def connect():
        raise Boom("the engine fell over")

    with Hook([200]) as hook:
        with pytest.raises(Boom):
            weekly.run(connect, Options(), now=datetime(2026, 3, 9, tzinfo=UTC), webhook=hook.url, webhook_attempts=1)
    assert hook.bodies[0]["text"] == (
        "albstats weekly 2026-W10 (2026-03-02 to 2026-03-08 UTC) FAILED: unexpected Boom: the engine fell over"
    )


@pytest.mark.integration  # slow: 4 s under load
def test_summary_p99_is_the_reports_headline_latency(logs, tmp_path):
    out = tmp_path / "r"
    with Hook([200]) as hook:
        res = invoke([str(logs), "--now", "2026-03-09T00:00:00Z", "--webhook", hook.url, "-o", str(out)], tmp_path)
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "2026-W10" / "report.json").read_text())
    p99 = rep["latency"]["total_time"]["p99"]
    assert p99 == pytest.approx(0.201)  # 0.001 request + 0.2 target + 0 response: total, not target time
    assert f"total time p99 {p99:.3f} s" in hook.bodies[0]["text"]
    wj = json.loads((out / "2026-W10" / "weekly.json").read_text())
    assert wj["deltas"]["total_time_p99"] == pytest.approx(0.0)
    assert "target_processing_time_p99" not in wj["deltas"]


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://x/{SECRET}",
        f"hooks.slack.com/{SECRET}",
        f"http://[::1/{SECRET}",
        f"https://exa mple/{SECRET}",
        "http:///nohost",
    ],
)
def test_bad_webhook_url_from_the_environment_named_as_the_variable(logs, tmp_path, url):
    res = CliRunner().invoke(
        app,
        ["weekly", str(logs), "--now", "2026-03-09T00:00:00Z", "--db", str(tmp_path / "c.duckdb")],
        env={"ALBSTATS_WEBHOOK_URL": url},
    )
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("albstats: error: ALBSTATS_WEBHOOK_URL ")
    assert "--webhook" not in res.output and SECRET not in res.output
    given = CliRunner().invoke(
        app,
        ["weekly", str(logs), "--now", "2026-03-09T00:00:00Z", "--webhook", url, "--db", str(tmp_path / "c.duckdb")],
    )
    assert given.exit_code == 2 and given.stderr.startswith("albstats: error: --webhook ")
    assert "ALBSTATS_WEBHOOK_URL" not in given.output and SECRET not in given.output


def test_bad_now_still_posts_a_notice_without_a_week(logs, tmp_path):
    with Hook([200]) as hook:
        res = invoke([str(logs), "--now", "last tuesday", "--webhook", hook.url], tmp_path)
    assert res.exit_code == 2, res.output
    assert hook.bodies[0]["text"].startswith("albstats weekly FAILED: ") and "now" in hook.bodies[0]["text"]
