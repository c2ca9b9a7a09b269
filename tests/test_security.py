"""Security findings: planted attacks are found, benign look-alikes are not.

The fixture is fixtures/security/security-log.txt, written by fixtures/security/make_security_log.py
(which lists, per line, the findings it must produce). The query runs here on DuckDB directly
(sqlglot-translated, parameters bound by DuckDB), independent of the local engine, and again
through ``albstats.connect`` so both paths are covered.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import sqlglot

from albstats import queries, security
from albstats.engines.base import bind
from albstats.parse import read_table

ROOT = Path(__file__).resolve().parents[1]
SEC = ROOT / "fixtures" / "security"


def _maker():
    spec = importlib.util.spec_from_file_location("make_security_log", SEC / "make_security_log.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_security_log"] = mod
    spec.loader.exec_module(mod)
    return mod


MAKER = _maker()


def run_duckdb(name: str, paths: list[Path], **params) -> pd.DataFrame:
    """A saved query on plain DuckDB over the parser's Athena-equal table (not through albstats.engines)."""
    q = queries.get(name)
    values, _ = bind(q, **params)
    sql = sqlglot.transpile(q.sql, read="trino", write="duckdb")[0]
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.register("alb_logs", read_table([str(p) for p in paths]))
    return con.execute(sql, values).df()


def expected() -> dict[str, set[str]]:
    """finding -> client ips that must be reported for it (from the generator's case list)."""
    exp: dict[str, set[str]] = defaultdict(set)
    for i, (_label, o, finds) in enumerate(MAKER.CASES):
        for f in finds:
            exp[f].add(o.get("client", f"203.0.113.{i + 1}"))
    return exp


def expected_counts() -> dict[str, int]:
    n: dict[str, int] = defaultdict(int)
    for _label, _o, finds in MAKER.CASES:
        for f in finds:
            n[f] += 1
    return n


def test_fixture_is_what_the_script_writes():
    assert (SEC / "security-log.txt").read_text(encoding="utf-8") == MAKER.render()


def test_every_finding_kind_is_planted():
    assert set(expected()) == set(security.FINDINGS)


@pytest.fixture(scope="module")
def found() -> pd.DataFrame:
    return run_duckdb("security_findings", [SEC / "security-log.txt"], limit=1000, min_client_4xx=3)


def test_attacks_found_and_lookalikes_not(found):
    got: dict[str, set[str]] = defaultdict(set)
    for r in found.itertuples():
        got[r.finding].add(r.client_ip)
    exp = expected()
    labels = {o.get("client", f"203.0.113.{i + 1}"): label for i, (label, o, _) in enumerate(MAKER.CASES)}
    for f in sorted(set(exp) | set(got)):
        missed = {labels[c] for c in exp[f] - got[f]}
        false = {labels[c] for c in got[f] - exp[f]}
        assert not missed, f"{f}: planted attacks not found: {missed}"
        assert not false, f"{f}: false positives: {false}"


def test_counts_totals_and_ranks(found):
    counts = expected_counts()
    for f, g in found.groupby("finding"):
        assert set(g["requests"]) == {counts[f]}, f
        assert set(g["clients"]) == {len(expected()[f])}
        assert list(g["client_rank"]) == list(range(1, len(g) + 1))
        assert g["client_requests"].sum() == counts[f]
    m4 = found[found.finding == "many_4xx_client"]
    assert m4.iloc[0].client_requests == 4 and m4.iloc[0].example_url.endswith("/api/owners/0")


def test_limit_keeps_totals():
    df = run_duckdb("security_findings", [SEC / "security-log.txt"], limit=2, min_client_4xx=3)
    sc = df[df.finding == "scanner_user_agent"]
    assert len(sc) == 2 and set(sc["requests"]) == {expected_counts()["scanner_user_agent"]}


def test_min_client_4xx_threshold():
    df = run_duckdb("security_findings", [SEC / "security-log.txt"], limit=10, min_client_4xx=5)
    assert "many_4xx_client" not in set(df.finding)


def test_from_frame_orders_and_truncates(found):
    fs = security.from_frame(found)
    sev = [security.SEVERITIES.index(f.severity) for f in fs]
    assert sev == sorted(sev)
    by = {f.name: f for f in fs}
    assert by["path_traversal"].severity == "high" and by["waf_block"].severity == "info"
    assert all(len(e.url) <= security.URL_MAX for f in fs for e in f.examples)
    assert by["sql_injection"].count == expected_counts()["sql_injection"]
    ex = by["desync_severe"].examples[0]
    assert ex.status == 400 and ex.time is not None and ex.time.tzinfo is not None
    assert security.from_frame(found.iloc[0:0]) == []


def test_query_parses_as_trino():
    sqlglot.parse_one(queries.get("security_findings").sql, read="trino")


# --- the regular expressions mean the same in Trino (java.util.regex) and DuckDB (RE2) -------------

JAVA_FIND = r"""
import java.nio.file.*; import java.util.*; import java.util.regex.*;
public class FindCheck {
  public static void main(String[] a) throws Exception {
    List<String> pats = Files.readAllLines(Paths.get(a[0]));
    List<String> strs = Files.readAllLines(Paths.get(a[1]));
    StringBuilder out = new StringBuilder();
    for (String p : pats) {
      Pattern c = Pattern.compile(p);
      for (String s : strs) out.append(c.matcher(s).find() ? '1' : '0');
      out.append('\n');
    }
    System.out.print(out);
  }
}
"""


def _patterns() -> list[str]:
    tree = sqlglot.parse_one(queries.get("security_findings").sql, read="trino")
    pats = [node.expression.this for node in tree.find_all(sqlglot.exp.RegexpLike)]
    assert len(pats) >= 7 and all(isinstance(p, str) for p in pats)
    return pats


@pytest.mark.integration  # the JDK
def test_java_and_duckdb_regex_agree(tmp_path):
    import shutil
    import subprocess

    assert shutil.which("java"), "needs a JDK (java on PATH): apt-get install default-jdk-headless"
    t = read_table([str(SEC / "security-log.txt")]).to_pandas()
    strings = sorted(
        {s for col in ("request_url", "user_agent", "actions_executed") for s in t[col].astype(str)}
        | {u.split("?", 1)[0] for u in t["request_url"]}
    )
    strings = [s.lower() for s in strings if "\n" not in s]
    pats = _patterns()
    (tmp_path / "p.txt").write_text("\n".join(pats) + "\n", encoding="utf-8")
    (tmp_path / "s.txt").write_text("\n".join(strings) + "\n", encoding="utf-8")
    (tmp_path / "FindCheck.java").write_text(JAVA_FIND)
    res = subprocess.run(
        ["java", str(tmp_path / "FindCheck.java"), str(tmp_path / "p.txt"), str(tmp_path / "s.txt")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    java = res.stdout.split()
    con = duckdb.connect()
    con.execute("CREATE TABLE s (i INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO s VALUES (?, ?)", list(enumerate(strings)))
    for k, p in enumerate(pats):
        rows = con.execute("SELECT i, regexp_matches(v, ?) FROM s ORDER BY i", [p]).fetchall()
        duck = "".join("1" if m else "0" for _, m in rows)
        diff = [strings[i] for i in range(len(strings)) if duck[i] != java[k][i]]
        assert not diff, f"pattern {k} ({p[:60]}...) differs between DuckDB and Java on {diff[:3]}"
        assert "1" in duck, f"pattern {k} matches nothing in the fixture"
