"""Security findings from ALB-native fields: scanners, attack patterns, desync, WAF, weak TLS, plain HTTP.

The detection runs in SQL (the saved query ``sql/security_findings.sql``), so it runs the same on the
local engine and on Athena and scales with the engine, not with Python. This module only names the
findings, gives them a severity and turns the query's rows into :class:`Finding` objects. The rule
behind each finding is documented in the query's header and in :data:`FINDINGS`; the fixture
``fixtures/security/security-log.txt`` plants each attack next to benign look-alikes that must not match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from albstats.engines.base import Engine

SEVERITIES = ("high", "medium", "low", "info")
URL_MAX = 120
UA_MAX = 80


@dataclass(frozen=True)
class FindingKind:
    title: str
    severity: str
    rule: str


#: Every finding the query can return, with its severity and the rule in one sentence.
FINDINGS: dict[str, FindingKind] = {
    "path_traversal": FindingKind(
        "Path traversal attempts",
        "high",
        "'..' of literal or %-encoded dots followed by a slash or backslash (also double-encoded), "
        "or /etc/passwd, win.ini, /proc/self/ in the URL",
    ),
    "sql_injection": FindingKind(
        "SQL injection attempts",
        "high",
        "SQL syntax in the URL: UNION SELECT, quote + OR/AND + comparison, quote + comment, "
        "; + statement, sleep()/benchmark()/waitfor delay, information_schema; SQL words alone do not match",
    ),
    "shell_injection": FindingKind(
        "Command injection attempts",
        "high",
        "; | && ` $( followed by a shell command, /bin/sh, cmd.exe, ${jndi: (Log4Shell) in the URL, "
        "or Shellshock/JNDI in the User-Agent",
    ),
    "desync_severe": FindingKind(
        "HTTP desync: Severe requests",
        "high",
        "classification Severe (the load balancer's desync mitigation flagged the request)",
    ),
    "dotfile_probe": FindingKind(
        "Secret-file probes (.env, .git, ...)",
        "medium",
        "a path segment that is exactly .env, .git, .svn, .hg, .aws, .ssh, .htaccess, .htpasswd or .DS_Store",
    ),
    "scanner_user_agent": FindingKind(
        "Scanner user agents",
        "medium",
        "the User-Agent names a scanning tool as a word (sqlmap, nikto, nuclei, zgrab, masscan, nmap, "
        "gobuster, dirbuster, wpscan, ...)",
    ),
    "desync_ambiguous": FindingKind("HTTP desync: Ambiguous requests", "medium", "classification Ambiguous"),
    "weak_tls": FindingKind("TLS below 1.2", "medium", "ssl_protocol SSLv3, TLSv1 or TLSv1.1"),
    "plain_http": FindingKind(
        "Plain HTTP served without redirect", "medium", "type http answered with a non-3XX after a forward action"
    ),
    "admin_probe": FindingKind(
        "Admin-panel probes",
        "low",
        "a path segment that is exactly wp-admin, wp-login.php, xmlrpc.php, phpmyadmin, pma, myadmin, "
        "administrator, admin, admin.php or manager/html",
    ),
    "many_4xx_client": FindingKind(
        "Clients with many 4XX",
        "low",
        "a client with at least min_client_4xx 4XX answers making up at least half of its requests",
    ),
    "waf_block": FindingKind(
        "Requests blocked by AWS WAF", "info", "actions_executed ends with waf (WAF was the final action)"
    ),
}


@dataclass
class Example:
    """One client of a finding and its first matching request."""

    client_ip: str
    requests: int
    time: datetime | None
    verb: str
    url: str  # truncated to URL_MAX characters
    user_agent: str  # truncated to UA_MAX characters
    status: int | None


@dataclass
class Finding:
    """One kind of suspicious traffic over the window."""

    name: str
    title: str
    severity: str
    count: int
    clients: int
    ok_responses: int  # matching requests answered 2XX: worth a look for injection findings
    first_seen: datetime | None
    last_seen: datetime | None
    rule: str
    examples: list[Example] = field(default_factory=list)


def _trunc(s: Any, n: int) -> str:
    s = "" if s is None else str(s)
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def _dt(v: Any) -> datetime | None:
    if v is None:
        return None
    try:
        import pandas as pd

        if pd.isna(v):
            return None
        return pd.Timestamp(v).to_pydatetime()
    except (TypeError, ValueError):
        return None


def _status(value: Any) -> int | None:
    """The example's status code; None where the row has none (NULL, NaN or NA)."""
    import pandas as pd

    try:
        return None if value is None or pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return None


def _rows(df: pd.DataFrame) -> list[Any]:
    """The frame's rows as named tuples (their values untyped: the query's declared columns say what they are)."""
    return list(df.itertuples())


def from_frame(df: pd.DataFrame) -> list[Finding]:
    """Findings from the rows of ``security_findings``, most severe first, then by count."""
    out: list[Finding] = []
    if df is None or not len(df):
        return out
    for name, g in df.groupby("finding", sort=False):
        g = g.sort_values("client_rank")
        first: Any = g.iloc[0]
        kind = FINDINGS.get(str(name), FindingKind(str(name), "info", "(unknown finding)"))
        examples = [
            Example(
                client_ip=str(r.client_ip),
                requests=int(r.client_requests),
                time=_dt(r.example_time),
                verb=str(r.example_verb),
                url=_trunc(r.example_url, URL_MAX),
                user_agent=_trunc(r.example_user_agent, UA_MAX),
                status=_status(r.example_status),
            )
            for r in _rows(g)
        ]
        out.append(
            Finding(
                name=str(name),
                title=kind.title,
                severity=kind.severity,
                count=int(first.requests),
                clients=int(first.clients),
                ok_responses=int(first.ok_responses),
                first_seen=_dt(first.first_seen),
                last_seen=_dt(first.last_seen),
                rule=kind.rule,
                examples=examples,
            )
        )
    out.sort(key=lambda f: (SEVERITIES.index(f.severity), -f.count, f.name))
    return out


def findings(
    engine: Engine, *, since: Any = None, until: Any = None, examples: int = 5, min_client_4xx: int = 100
) -> list[Finding]:
    """Run ``security_findings`` on an engine and return the findings (empty list: nothing found)."""
    df = engine.query("security_findings", since=since, until=until, limit=examples, min_client_4xx=min_client_4xx)
    return from_frame(df)
