"""`albstats check`: alerts post once per change to a real webhook on 127.0.0.1, state under a lock, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _webhook
import pytest
from typer.testing import CliRunner

from albstats.cli import app

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "fixtures" / "AWSLogs"
SLO_FILE = ROOT / "fixtures" / "slo.yaml"
PAGE = "petclinic-api/availability/1h/5m"


class Hook(_webhook.Hook):
    """The webhook, answering ``status``; ``events`` lists one alert's posted transitions."""

    def __init__(self, status: int = 200):
        super().__init__([status])

    def events(self, key: str) -> list[str]:
        return [a["status"] for b in self.bodies for a in b["alerts"] if a["key"] == key]


def check(tmp_path, hook_url: str | None, now: str | None, *extra: str):
    args = [
        "check",
        str(LOGS),
        "--slo-file",
        str(SLO_FILE),
        "--state",
        str(tmp_path / "state.json"),
        "--db",
        str(tmp_path / "cache.duckdb"),
        "--quiet",
    ]
    if hook_url:
        args += ["--webhook", hook_url]
    if now:
        args += ["--now", now]
    return CliRunner().invoke(app, [*args, *extra], prog_name="albstats")


@pytest.mark.integration  # slow: several CLI runs (~2-17 s)
def test_stepping_through_the_incident_posts_firing_then_resolved_once(tmp_path):
    t = datetime(2026, 11, 16, 10, 30, tzinfo=UTC)
    codes: dict[str, int] = {}
    with Hook() as hook:
        while t <= datetime(2026, 11, 16, 13, 0, tzinfo=UTC):
            r = check(tmp_path, hook.url, t.strftime("%Y-%m-%dT%H:%M:%SZ"))
            assert r.exit_code in (0, 3), r.output
            codes[t.strftime("%H:%M")] = r.exit_code
            t += timedelta(minutes=5)
    assert hook.events(PAGE) == ["firing", "resolved"]
    assert hook.events("petclinic-api/availability/6h/30m") == ["firing", "resolved"]
    firing_body = next(b for b in hook.bodies if any(a["key"] == PAGE and a["status"] == "firing" for a in b["alerts"]))
    assert firing_body["alerts"][0]["at"] == "2026-11-16T11:45:00Z"
    assert "[FIRING] page petclinic-api/availability/1h/5m" in firing_body["text"]
    # exit 3 exactly while a page alert fires (11:45 to 12:25), 0 before and after
    assert codes["11:40"] == 0 and codes["11:45"] == 3 and codes["12:25"] == 3 and codes["12:30"] == 0
    assert all(b["text"].startswith("albstats check at ") for b in hook.bodies)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["alerts"][PAGE]["firing"] is False


@pytest.mark.integration  # slow: 6 s under load
def test_unchanged_data_posts_once(tmp_path):
    with Hook() as hook:
        r1 = check(tmp_path, hook.url, None)  # at the newest data: 2026-11-17T00:00Z
        r2 = check(tmp_path, hook.url, None)
    assert r1.exit_code == r2.exit_code
    assert len(hook.bodies) == 1  # the first run's changes (a ticket alert firing); nothing new the second time
    assert "2026-11-17T00:00:00Z" in hook.bodies[0]["text"]


@pytest.mark.integration  # slow: several CLI runs (~2-17 s)
def test_no_new_log_data_pages(tmp_path):
    with Hook() as hook:
        r = check(tmp_path, hook.url, "2026-11-17T00:30:00Z")
        assert r.exit_code == 3
        assert "albstats/no-data" in r.output
        assert hook.events("albstats/no-data") == ["firing"]
        text = hook.bodies[0]["text"]
        assert "no new log file for 20 minutes: newest request 2026-11-16T23:59:" in text
        r = check(tmp_path, hook.url, "2026-11-16T23:30:00Z")  # data again: resolved
        assert hook.events("albstats/no-data") == ["firing", "resolved"]


@pytest.mark.integration  # slow: several CLI runs (~2-17 s)
def test_webhook_failure_keeps_the_change_for_the_next_run(tmp_path):
    with Hook(status=500) as bad:
        r = check(tmp_path, bad.url, "2026-11-16T11:45:00Z", "--lock-timeout", "5")
    assert r.exit_code == 1
    assert "webhook failed" in r.output and "secret-token" not in r.output
    assert not (tmp_path / "state.json").exists()
    with Hook() as hook:
        r = check(tmp_path, hook.url, "2026-11-16T11:50:00Z")
    assert r.exit_code == 3
    assert hook.events(PAGE) == ["firing"]


def test_damaged_state_is_one_line(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    r = check(tmp_path, None, "2026-11-16T11:45:00Z")
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and "state.json: not a state file written by albstats check" in r.output


@pytest.mark.integration  # slow: several CLI runs (~2-17 s)
def test_overlapping_runs_post_once(tmp_path):
    """Two processes at once on one state file: the lock makes the second see the first's state."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with Hook() as hook:
        args = [
            sys.executable,
            "-c",
            "from albstats.cli import main; main()",
            "check",
            str(LOGS),
            "--slo-file",
            str(SLO_FILE),
            "--state",
            str(tmp_path / "state.json"),
            "--no-cache",
            "--quiet",
            "--webhook",
            hook.url,
            "--now",
            "2026-11-16T11:45:00Z",
        ]
        procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [3, 3], outs
    assert hook.events(PAGE) == ["firing"]
    assert len(hook.bodies) == 1
    assert not list(tmp_path.glob(".state.json.*"))  # no temporary file left behind


def test_bad_options(tmp_path):
    r = check(tmp_path, None, "yesterday-ish")
    assert r.exit_code == 2 and "--now" in r.output
    r = CliRunner().invoke(
        app,
        ["check", str(LOGS), "--slo-file", str(tmp_path / "none.yaml"), "--state", str(tmp_path / "s.json")],
        prog_name="albstats",
    )
    assert r.exit_code == 2 and "none.yaml: no such file" in r.output
    r = CliRunner().invoke(
        app, ["check", str(LOGS), "--slo-file", str(SLO_FILE), "--state", str(tmp_path)], prog_name="albstats"
    )
    assert r.exit_code == 2 and "is a folder" in r.output


@pytest.mark.parametrize(
    "when,firing", [("2026-11-16T11:40:00Z", False), ("2026-11-16T11:45:00Z", True), ("2026-11-16T12:05:00Z", False)]
)
@pytest.mark.integration  # slow: 4 s under load
def test_evaluate_library(when, firing):
    import albstats
    from albstats import check as chk
    from albstats.objectives import load

    with albstats.connect([str(LOGS)], cache=False) as eng:
        res = chk.evaluate(eng, load(SLO_FILE), now=datetime.fromisoformat(when.replace("Z", "+00:00")))
    a = next(x for x in res.alerts if x.key == PAGE)
    assert a.firing is firing
    assert "burn rate" in a.summary and "over 1h" in a.summary
