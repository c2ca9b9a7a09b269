"""The Athena engine: the saved Trino SQL on Amazon Athena through pyathena, with bounded scans.

Configuration (keyword options win over environment variables)::

    option            environment                          default
    database          ALBSTATS_ATHENA_DATABASE             albstats
    table             ALBSTATS_ATHENA_TABLE                alb_logs
    workgroup         ALBSTATS_ATHENA_WORKGROUP            primary (Athena's default)
    output_location   ALBSTATS_ATHENA_OUTPUT_LOCATION      the workgroup's result location (GetWorkGroup)
    region            ALBSTATS_ATHENA_REGION               the boto3 chain (AWS_REGION, AWS_DEFAULT_REGION, profile)
    profile           ALBSTATS_ATHENA_PROFILE              the boto3 chain (AWS_PROFILE, default credentials)
    timeout           ALBSTATS_ATHENA_TIMEOUT              1800 seconds, then the query is cancelled
    scan_all          ALBSTATS_ATHENA_SCAN_ALL=1           off: see "Bounded scans"

Result location. Without ``output_location`` the engine asks Athena (GetWorkGroup) for the
workgroup's own result location before the first query; a workgroup without one (and without
Athena-managed results) is a one-line :class:`~albstats.errors.UsageError` naming ``--output-location``,
before anything is submitted. When the caller may not call GetWorkGroup, the query is submitted
and Athena's own answer is what the user sees.

Bounded scans. The table is partitioned by ``day``, the ``yyyy/MM/dd`` delivery folder. Every
reference to ``alb_logs`` in the SQL is replaced (with sqlglot, on the parsed query) by
``(SELECT * FROM "db"."table" WHERE day BETWEEN :from AND :to) AS alb_logs`` with the values bound,
where the range runs from the day of ``since`` to the day *after* ``until`` (rows from just before
midnight are delivered into the next day's folder). Without ``since`` the engine refuses to run
rather than scan (and bill) the whole bucket, unless the SQL filters on ``day`` itself or
``scan_all`` is set. ``since`` without ``until`` means until now.

While a query runs, a progress line (on a terminal only) shows its state, elapsed time, the data
scanned and the cost at USD 5 per TB scanned. A timeout or Ctrl-C stops the query in Athena
(StopQueryExecution). A FAILED or CANCELLED query raises :class:`~albstats.errors.AwsError` with
Athena's StateChangeReason. Throttling (ThrottlingException, TooManyRequestsException) is retried
with exponential backoff and jitter. Results come from GetQueryResults, typed by pyathena's
converter, into a pandas DataFrame.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from albstats import progress
from albstats.athena_ddl import check_identifier, check_s3_url, check_workgroup
from albstats.athena_sql import DAY_FROM, DAY_TO, day_range, references_day, rewrite
from albstats.engines.base import Engine, to_pyformat
from albstats.errors import AwsError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from albstats.queries import SavedQuery

#: USD per TB (10**12 bytes) scanned, Athena's SQL price in most regions.
USD_PER_TB = 5.0
THROTTLE_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded", "SlowDown"}
)
DEFAULT_TIMEOUT = 1800.0
DEFAULT_WORKGROUP = "primary"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def _env(name: str) -> str | None:
    v = os.environ.get(f"ALBSTATS_ATHENA_{name.upper()}")
    return v if v else None


def cost_usd(scanned_bytes: int) -> float:
    return scanned_bytes / 1e12 * USD_PER_TB


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


@dataclass
class QueryStats:
    """One Athena query as it ran: for progress lines, summaries and tests."""

    query_id: str
    sql: str
    state: str = "QUEUED"
    scanned_bytes: int = 0
    elapsed_s: float = 0.0
    reason: str = ""

    @property
    def cost_usd(self) -> float:
        return cost_usd(self.scanned_bytes)

    def line(self) -> str:
        return (
            f"Athena query {self.query_id}: {self.state}, {self.elapsed_s:.1f} s, "
            f"{human_bytes(self.scanned_bytes)} scanned, ~${self.cost_usd:.4f}"
        )


# --- the engine -------------------------------------------------------------------------------


@dataclass
class AthenaEngine(Engine):
    """Runs the saved queries on Athena; see the module docstring for options and scan bounds."""

    database: str | None = None
    table: str | None = None
    workgroup: str | None = None
    output_location: str | None = None
    region: str | None = None
    profile: str | None = None
    timeout: float | None = None
    scan_all: bool | None = None
    quiet: bool = False
    poll_interval: float = 0.5
    max_poll_interval: float = 5.0
    max_attempts: int = 8
    retry_base_delay: float = 0.5
    endpoint_url: str | None = None
    client: Any = None  # a boto3 Athena client to use instead of pyathena's (tests, custom sessions)
    sleep: Callable[[float], None] = time.sleep
    history: list[QueryStats] = field(default_factory=list)
    name: str = "athena"

    def __post_init__(self) -> None:
        self.database = check_identifier(self.database or _env("database") or "albstats", "database")
        self.table = check_identifier(self.table or _env("table") or "alb_logs", "table")
        self.workgroup = check_workgroup(self.workgroup or _env("workgroup") or DEFAULT_WORKGROUP)
        out = self.output_location or _env("output_location")
        self.output_location = check_s3_url(out) if out else None
        self.region = self.region or _env("region")
        self.profile = self.profile or _env("profile")
        if self.timeout is None:
            t = _env("timeout")
            try:
                self.timeout = float(t) if t else DEFAULT_TIMEOUT
            except ValueError:
                raise UsageError(f"ALBSTATS_ATHENA_TIMEOUT={t!r} is not a number of seconds") from None
        if self.timeout <= 0:
            raise UsageError(f"timeout {self.timeout} must be positive seconds")
        if self.scan_all is None:
            self.scan_all = (_env("scan_all") or "").lower() in ("1", "true", "yes")
        self._conn: Any = None
        self._location_checked = self.output_location is not None

    # connection --------------------------------------------------------------------------
    @property
    def athena(self) -> Any:
        """The boto3 Athena client (pyathena's connection makes it: profile, region, credentials chain)."""
        if self.client is None:
            import pyathena
            from botocore.config import Config

            kw: dict[str, Any] = dict(
                schema_name=self.database,
                work_group=self.workgroup,
                config=Config(retries={"mode": "standard", "max_attempts": 2}),
            )
            if self.output_location:
                kw["s3_staging_dir"] = self.output_location
            if self.region:
                kw["region_name"] = self.region
            if self.profile:
                kw["profile_name"] = self.profile
            if self.endpoint_url:
                kw["endpoint_url"] = self.endpoint_url
            try:
                self._conn = pyathena.connect(**kw)
            except Exception as e:
                from albstats.s3_client import aws_error

                raise aws_error(e, "connecting to Athena") from None
            self.client = self._conn.client
        return self.client

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing must not hide the real error
                pass
            self._conn = None

    def _call(self, op: str, **kw: Any) -> Any:
        """One Athena API call; throttling is retried with exponential backoff and jitter."""
        from botocore.exceptions import ClientError

        from albstats.s3_client import aws_error

        fn = getattr(self.athena, op)
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn(**kw)
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code in THROTTLE_CODES and attempt < self.max_attempts:
                    delay = min(30.0, self.retry_base_delay * 2 ** (attempt - 1))
                    self.sleep(delay * (0.5 + random.random() / 2))
                    continue
                what = f"Athena {op}" + (f" (gave up after {attempt} attempts)" if code in THROTTLE_CODES else "")
                raise aws_error(e, what) from None
            except Exception as e:
                raise aws_error(e, f"Athena {op}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    # running -----------------------------------------------------------------------------
    def check_result_location(self) -> str | None:
        """The workgroup's own result location when no ``output_location`` was given (GetWorkGroup).

        Why: Athena refuses a query without a result location, and its refusal names neither the
        workgroup nor albstats' option. Checked once, before the first query is submitted. Returns
        the location in use (None when Athena manages the results or the check was not allowed).
        """
        if self._location_checked:
            return self.output_location
        from botocore.exceptions import ClientError

        try:
            wg = self.athena.get_work_group(WorkGroup=self.workgroup).get("WorkGroup")
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("AccessDeniedException", "AccessDenied"):
                self._location_checked = True  # no permission to look: Athena's own answer will tell
                return None
            from albstats.s3_client import aws_error

            raise aws_error(e, f"Athena GetWorkGroup {self.workgroup}") from None
        except Exception as e:
            from albstats.s3_client import aws_error

            raise aws_error(e, f"Athena GetWorkGroup {self.workgroup}") from None
        if not wg:
            raise AwsError(
                f"Athena workgroup {self.workgroup!r} does not exist; give an existing one with "
                f"--workgroup (or ALBSTATS_ATHENA_WORKGROUP)"
            )
        cfg = wg.get("Configuration") or {}
        loc = (cfg.get("ResultConfiguration") or {}).get("OutputLocation")
        managed = (cfg.get("ManagedQueryResultsConfiguration") or {}).get("Enabled")
        if not loc and not managed:
            raise UsageError(
                f"Athena workgroup {self.workgroup!r} has no query result location: give "
                f"--output-location s3://BUCKET/PREFIX/ (or ALBSTATS_ATHENA_OUTPUT_LOCATION), "
                f"or set one on the workgroup"
            )
        self._location_checked = True
        return loc or None

    def _start(self, sql: str) -> str:
        self.check_result_location()
        kw: dict[str, Any] = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if self.output_location:
            kw["ResultConfiguration"] = {"OutputLocation": self.output_location}
        return self._call("start_query_execution", **kw)["QueryExecutionId"]

    def _stop(self, qid: str) -> None:
        try:
            self._call("stop_query_execution", QueryExecutionId=qid)
        except AwsError:
            pass  # the original problem (timeout, Ctrl-C) is what the user needs to see

    def run_statement(self, sql: str, label: str = "query") -> QueryStats:
        """Start one statement and wait for it, with progress, timeout and Ctrl-C cancelling it in Athena."""
        qid = self._start(sql)
        st = QueryStats(qid, sql)
        self.history.append(st)
        t0 = time.monotonic()
        interval = self.poll_interval
        with progress.bar(f"athena {label}", total=None, quiet=self.quiet) as tick:
            try:
                while True:
                    qe = self._call("get_query_execution", QueryExecutionId=qid)["QueryExecution"]
                    status = qe.get("Status", {})
                    st.state = status.get("State", "UNKNOWN")
                    st.reason = status.get("StateChangeReason", "") or ""
                    err = status.get("AthenaError") or {}
                    if err.get("ErrorMessage") and err["ErrorMessage"] not in st.reason:
                        st.reason = (st.reason + " " if st.reason else "") + err["ErrorMessage"]
                    st.scanned_bytes = int(qe.get("Statistics", {}).get("DataScannedInBytes") or 0)
                    st.elapsed_s = time.monotonic() - t0
                    tick.advance(
                        0,
                        state=st.state,
                        elapsed=f"{st.elapsed_s:.0f}s",
                        scanned=human_bytes(st.scanned_bytes),
                        cost=f"${st.cost_usd:.4f}",
                    )
                    if st.state in TERMINAL:
                        break
                    if st.elapsed_s >= self.timeout:
                        self._stop(qid)
                        st.state = "CANCELLED"
                        raise AwsError(
                            f"Athena query {qid} ({label}) did not finish within {self.timeout:g} s "
                            f"and was cancelled; {human_bytes(st.scanned_bytes)} scanned so far. "
                            f"Narrow --since/--until or raise ALBSTATS_ATHENA_TIMEOUT"
                        )
                    self.sleep(min(interval, max(0.0, self.timeout - st.elapsed_s)))
                    interval = min(self.max_poll_interval, interval * 1.5)
            except KeyboardInterrupt:
                self._stop(qid)
                st.state = "CANCELLED"
                raise
        if st.state != "SUCCEEDED":
            raise AwsError(f"Athena query {qid} ({label}) {st.state}: {st.reason or 'no reason given'}")
        if progress.enabled(self.quiet):
            import sys

            print(f"albstats: {st.line()}", file=sys.stderr)
        return st

    def _results(self, qid: str) -> pd.DataFrame:
        """GetQueryResults pages -> DataFrame, values typed by pyathena's converter."""
        import pandas as pd
        from pyathena.converter import DefaultTypeConverter

        conv = DefaultTypeConverter()
        cols: list[str] = []
        types: list[str] = []
        rows: list[list[Any]] = []
        token: str | None = None
        first = True
        while True:
            kw: dict[str, Any] = {"QueryExecutionId": qid, "MaxResults": 1000}
            if token:
                kw["NextToken"] = token
            page = self._call("get_query_results", **kw)
            rs = page.get("ResultSet", {})
            if first:
                info = rs.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                cols = [c.get("Label") or c["Name"] for c in info]
                types = [c.get("Type", "varchar") for c in info]
            data = rs.get("Rows", [])
            for i, r in enumerate(data):
                vals = [d.get("VarCharValue") for d in r.get("Data", [])]
                if first and i == 0 and vals == cols:
                    continue  # Athena's header row
                rows.append([conv.convert(t, v) for t, v in zip(types, vals)])
            first = False
            token = page.get("NextToken")
            if not token:
                break
        return pd.DataFrame(rows, columns=cols)

    def prepare(
        self, sql: str, params: dict[str, Any], window: tuple[datetime | None, datetime | None], label: str = "query"
    ) -> str:
        """The exact text sent to Athena: table mapped, ``day`` predicate added, values bound by pyathena."""
        from pyathena.formatter import DefaultParameterFormatter

        since, until = window
        values = dict(params)
        if since is not None:
            values[DAY_FROM], values[DAY_TO] = day_range(since, until)
            text = rewrite(sql, self.database, self.table, day_predicate=True)
        else:
            if not self.scan_all and not references_day(sql):
                hint = "--until alone is not enough: " if until is not None else ""
                raise UsageError(
                    f"{label}: {hint}Athena would scan (and bill) every day folder of the bucket; "
                    "give --since (and --until), or filter on the partition in the SQL (WHERE day "
                    "BETWEEN '2026/11/01' AND '2026/11/08'), or set ALBSTATS_ATHENA_SCAN_ALL=1"
                )
            text = rewrite(sql, self.database, self.table, day_predicate=False)
        pyformat = to_pyformat(text)
        try:
            return DefaultParameterFormatter().format(pyformat, values)
        except KeyError as e:
            raise UsageError(f"{label}: no value for parameter :{e.args[0]}") from None

    def _execute(
        self,
        sql: str,
        params: dict[str, Any],
        *,
        query: SavedQuery | None,
        window: tuple[datetime | None, datetime | None],
    ) -> pd.DataFrame:
        label = query.name if query is not None else "sql"
        text = self.prepare(sql, params, window, label)
        st = self.run_statement(text, label)
        df = self._results(st.query_id)
        if query is not None:
            df = self._conformed(df, query, st.query_id)
        return df

    @staticmethod
    def _conformed(df: pd.DataFrame, query: SavedQuery, qid: str) -> pd.DataFrame:
        """The result cast to the query's declared columns, or one line naming the query id and what is wrong.

        Why: a result that does not fit its header (a changed table, a hand-edited query) is a
        problem with this one Athena query, to be looked up by its id, not a crash with a stack.
        """
        from albstats.engines.base import conform

        missing = [c for c in query.column_types if c not in df.columns]
        if missing:
            raise AwsError(
                f"Athena query {qid} ({query.name}): the result lacks the declared column"
                f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}; it has "
                f"{', '.join(map(str, df.columns)) or 'no columns'}"
            )
        try:
            return conform(df, query.column_types)
        except (ValueError, TypeError) as e:
            raise AwsError(
                f"Athena query {qid} ({query.name}): a result column does not have its declared "
                f"type: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from None

    @property
    def last_query(self) -> QueryStats | None:
        return self.history[-1] if self.history else None

    @property
    def scanned_bytes(self) -> int:
        return sum(st.scanned_bytes for st in self.history)

    def summary(self) -> tuple[str, list[str], list[str]]:
        """The stderr line after a command: what Athena scanned (its statistics), so a table's saving shows.

        Same shape as the local engine's summary (message, examples, warnings) for the CLI.
        """
        n = len(self.history)
        ids = ", ".join(st.query_id for st in self.history[:3]) + (", ..." if n > 3 else "")
        msg = (
            f"Athena scanned {human_bytes(self.scanned_bytes)} (~${cost_usd(self.scanned_bytes):.4f}) in "
            f"{n} quer{'y' if n == 1 else 'ies'} of {self.database}.{self.table}" + (f": {ids}" if n else "")
        )
        return msg, [], []
