"""`albstats sql show` with --since/--until prints the same ``day`` partition bounds the Athena engine adds
(issue 12 item 7): pasted into the Athena console, the query scans only the days of its window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlglot
from sqlglot import exp
from typer.testing import CliRunner

from albstats import queries
from albstats.cli import app
from albstats.engines.athena import AthenaEngine
from albstats.engines.base import bind


def _day_bounds(sql: str) -> list[tuple[str, str]]:
    """(low, high) of every ``day BETWEEN`` around a read of the log table, in order."""
    tree = sqlglot.parse_one(sql, read="trino")
    out = []
    for t in tree.find_all(exp.Table):
        if t.name not in ("alb_logs", "logs_tbl"):
            continue
        where = t.find_ancestor(exp.Select).args.get("where")
        between = where.this if where is not None else None
        assert isinstance(between, exp.Between) and between.this.name == "day", f"no day bound on {t.sql()}"
        out.append((between.args["low"].name, between.args["high"].name))
    return out


@pytest.mark.parametrize("name", queries.names())
@pytest.mark.parametrize(
    ("since", "until"), [("2026-11-16", "2026-11-17"), ("2026-11-16T22:30:00Z", "2026-11-18T00:00:01Z")]
)
def test_sql_show_has_the_engines_day_bounds(name: str, since: str, until: str) -> None:
    res = CliRunner().invoke(app, ["sql", "show", name, "--since", since, "--until", until])
    assert res.exit_code == 0, res.output
    shown = _day_bounds(res.stdout)
    q = queries.get(name)
    values, window = bind(q, since=since, until=until)
    sent = AthenaEngine(
        database="db", table="logs_tbl", workgroup="primary", output_location="s3://results-bucket/x/"
    ).prepare(q.sql, values, window, name)
    assert shown and shown == _day_bounds(sent)


def test_sql_show_error_rate_literal_bounds() -> None:
    res = CliRunner().invoke(app, ["sql", "show", "error_rate", "--since", "2026-11-16", "--until", "2026-11-17"])
    assert res.exit_code == 0
    assert "day BETWEEN '2026/11/16' AND '2026/11/17'" in res.stdout
    assert "from_iso8601_timestamp('2026-11-16T00:00:00.000Z')" in res.stdout
    # since alone: until now, as the engine does
    res = CliRunner().invoke(app, ["sql", "show", "error_rate", "--since", "2026-11-16"])
    today = datetime.now(UTC).strftime("%Y/%m/%d")
    assert "day BETWEEN '2026/11/16' AND '" in res.stdout and res.exit_code == 0
    assert _day_bounds(res.stdout)[0][1] >= today


def test_sql_show_without_since_says_it_is_unbounded() -> None:
    res = CliRunner().invoke(app, ["sql", "show", "error_rate", "--until", "2026-11-17"])
    assert res.exit_code == 0
    assert "day BETWEEN" not in res.stdout
    assert "no day bound" in res.stderr
    res = CliRunner().invoke(app, ["sql", "show", "error_rate"])  # placeholders for the console: unchanged
    assert res.exit_code == 0 and "?" in res.stdout and "day BETWEEN" not in res.stdout and not res.stderr
