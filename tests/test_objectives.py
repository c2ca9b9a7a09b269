"""SLO files: the bundled example, every mistake reported with its line, selection bound safely on both engines."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from albstats import objectives, service_slo
from albstats.cli import app
from albstats.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "fixtures" / "slo.yaml"
LOGS = ROOT / "fixtures" / "AWSLogs"


def test_example_file_reads():
    spec = objectives.load(EXAMPLE)
    assert [s.name for s in spec.services] == ["petclinic-api", "petclinic-web", "petclinic-grpc"]
    api = spec.services[0]
    assert api.selector.target_group == "petclinic-api"
    assert api.objectives[0].count_460 and api.objectives[0].target == pytest.approx(0.9965)
    assert api.objectives[1].threshold_seconds == 1.0
    assert [(a.name, a.severity, a.burn_rate) for a in api.alerts] == [
        ("1h/5m", "page", 14.4),
        ("6h/30m", "page", 6.0),
        ("3d/6h", "ticket", 1.0),
    ]
    assert spec.services[1].window.calendar == "month"
    assert spec.services[2].window.rolling == timedelta(days=7)
    assert spec.no_data == timedelta(minutes=20)


def test_windows():
    end = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday
    assert objectives.Window(None, "week").start(end) == datetime(2026, 11, 16, tzinfo=UTC)
    assert objectives.Window(None, "month").start(end) == datetime(2026, 11, 1, tzinfo=UTC)
    # the first instant of a month still belongs to the month that just ended
    assert objectives.Window(None, "month").start(datetime(2026, 12, 1, tzinfo=UTC)) == datetime(
        2026, 11, 1, tzinfo=UTC
    )
    assert objectives.Window(timedelta(days=28)).start(end) == end - timedelta(days=28)


BAD = textwrap.dedent("""\
    apiVersion: albstats/v1
    kind: SLOFile
    services:
      - name: api
        selector:
          hostname: api.example.com
          pathPrefix: api/
        objectives:
          - sli: availability
            objective: 0.999
          - sli: latency
            objective: 99
      - name: web
        window: 2 weeks
        objectives:
          - {sli: speed, objective: 99}
        alerting:
          page:
            - {long: 1h, short: 2h, burnRate: 14.4}
            - {long: 7m, short: 5m, burnRate: 2}
    """)


def test_every_mistake_has_its_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    with pytest.raises(UsageError) as e:
        objectives.load(p)
    lines = str(e.value).splitlines()
    got = {int(x.split(":")[1]): x.split(":", 2)[2] for x in lines}
    assert all(x.startswith(f"{p}:") for x in lines)
    assert "unknown key 'hostname'" in got[6] and "host" in got[6]
    assert "must start with /" in got[7]
    assert "percentage" in got[10] and "not a fraction" in got[10]
    assert "needs a threshold" in got[11]
    assert "not a window" in got[14]
    assert "use availability or latency" in got[16]
    assert "short window must be shorter" in got[19]
    assert "multiples of 5m" in got[20]
    assert len(lines) == 8


@pytest.mark.parametrize(
    "text,line,msg",
    [
        ("apiVersion: albstats/v1\nkind: SLOFile\nservices: [\n", 4, "not valid YAML"),
        ("", 1, "empty"),
        (
            "apiVersion: openslo/v1\nkind: SLOFile\nservices:\n  - {name: a, objectives: [{sli: availability, "
            "objective: 99}]}\n",
            1,
            "this albstats reads apiVersion: albstats/v1",
        ),
        (
            "apiVersion: albstats/v1\nkind: SLOFile\nservices:\n  - name: a\n    selector: {pathRegex: '(?<=x)y'}\n"
            "    objectives: [{sli: availability, objective: 99}]\n",
            5,
            "share",
        ),
        (
            "apiVersion: albstats/v1\nkind: SLOFile\nservices:\n  - name: a\n    objectives: [{sli: availability, "
            "objective: 99}]\n  - name: a\n    objectives: [{sli: availability, objective: 99}]\n",
            6,
            "defined twice",
        ),
    ],
)
def test_single_mistakes(text, line, msg):
    with pytest.raises(UsageError, match=msg) as e:
        objectives.loads(text, "f.yaml")
    assert str(e.value).startswith(f"f.yaml:{line}:")


def test_validate_cli(tmp_path):
    r = CliRunner().invoke(app, ["slo", "validate", str(EXAMPLE)], prog_name="albstats")
    assert r.exit_code == 0, r.output
    assert "valid, 3 services, 5 SLOs" in r.output
    assert "petclinic-api/availability: 99.65 % of requests without 5XX or 460" in r.output
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    r = CliRunner().invoke(app, ["slo", "validate", str(p)], prog_name="albstats")
    assert r.exit_code == 2
    assert f"albstats: error: {p}:6: service 'api': selector: unknown key 'hostname'" in r.output
    r = CliRunner().invoke(app, ["slo", "validate", str(tmp_path / "nope.yaml")], prog_name="albstats")
    assert r.exit_code == 2 and "no such file" in r.output


# --- selection ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    import albstats

    with albstats.connect([str(LOGS)], cache=False, quiet=True) as eng:
        yield eng


@pytest.fixture(scope="module")
def rows():
    from albstats.api import read_logs

    return read_logs([str(LOGS)])


def _expected(rows, *, tg=None, port=None, proto=None, prefix=None, regex=None, host=None):
    df = rows
    url = df["request_url"].fillna("")
    hostcol = url.str.extract(r"^[A-Za-z0-9+.-]+://([^/:?#]+)", expand=False).fillna("").str.lower()
    path = url.str.extract(r"^[A-Za-z0-9+.-]+://[^/?#]*([^?#]*)", expand=False).fillna("")
    portcol = url.str.extract(r"^[A-Za-z0-9+.-]+://[^/?#]*:([0-9]+)", expand=False).fillna("")
    m = pd_true(df)
    if tg:
        m &= df["target_group_arn"].fillna("").str.contains(f"targetgroup/{tg}/", regex=False)
    if port:
        m &= portcol == port
    if proto:
        m &= df["type"].isin(["http", "ws"]) == (proto == "http")
    if prefix:
        m &= path.str.startswith(prefix)
    if regex:
        m &= path.str.contains(regex, regex=True)
    if host:
        m &= hostcol == host
    return df[m]


def pd_true(df):
    import pandas as pd

    return pd.Series(True, index=df.index)


@pytest.mark.parametrize(
    "sel,kw",
    [
        (objectives.Selector(target_group="petclinic-api"), dict(tg="petclinic-api")),
        (
            objectives.Selector(target_group="petclinic-web", listener="HTTPS:443"),
            dict(tg="petclinic-web", port="443", proto="https"),
        ),
        (objectives.Selector(path_prefix="/api/v1/", listener="80"), dict(prefix="/api/v1/", port="80")),
        (objectives.Selector(path_regex=r"^/hospital\.v1\.[A-Z]"), dict(regex=r"^/hospital\.v1\.[A-Z]")),
        (objectives.Selector(host="PetClinic.Example.com".lower()), dict(host="petclinic.example.com")),
    ],
)
@pytest.mark.integration  # slow: 5 s under load
def test_selection_matches_a_direct_filter(engine, rows, sel, kw):
    b = engine.query("service_buckets", **sel.params())
    exp = _expected(rows, **kw)
    assert len(exp) > 50
    assert int(b["requests"].sum()) == len(exp)
    assert int(b["errors_5xx"].sum()) == int(exp["elb_status_code"].between(500, 599).sum())


@pytest.mark.parametrize("value", ["x' OR '1'='1", "'; DROP TABLE alb_logs; --", "petclinic-api' --"])
def test_selection_values_are_values(engine, value):
    for key in ("host", "path_prefix", "path_regex", "target_group", "listener_port"):
        b = engine.query("service_buckets", **{key: value})
        assert int(b["requests"].sum()) == 0, key


def test_service_buckets_parses_as_trino():
    import sqlglot

    from albstats.queries import get

    sqlglot.parse_one(get("service_buckets").sql, read="trino")


def test_evaluate_example_over_the_day(engine):
    spec = objectives.load(EXAMPLE)
    end = datetime(2026, 11, 17, tzinfo=UTC)
    res = service_slo.evaluate_file(engine, spec, datetime(2026, 11, 16, tzinfo=UTC), end)
    by = {(r.service, r.objective): r for r in res}
    api = by[("petclinic-api", "availability")]
    assert not api.met and api.budget_remaining_fraction < 0
    assert {a.name for a in api.alerts if a.fired} == {"1h/5m", "6h/30m"}
    fired = next(a for a in api.alerts if a.name == "1h/5m")
    assert fired.first_fired == datetime(2026, 11, 16, 11, 45, tzinfo=UTC)
    assert any(i.start <= datetime(2026, 11, 16, 11, 30, tzinfo=UTC) < i.end for i in api.incidents)
    web = by[("petclinic-web", "latency")]
    assert web.met and web.requests > 10000 and web.window == "calendar month"
    assert web.start == datetime(2026, 11, 16, tzinfo=UTC)  # the month, clipped to the report window
