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

PyAthena runs each query: ``PandasCursor`` submits it, polls its state every ``poll_interval``
seconds, and reads the result: the CSV file Athena wrote to the result location, typed by PyAthena
into a pandas DataFrame (GetQueryResults, paged by PyAthena, when Athena manages the results).
Statements whose rows are not wanted (``create-table``, ``compact``) run on PyAthena's plain
``Cursor``. Throttled Athena calls (ThrottlingException, TooManyRequestsException) are retried by
PyAthena's ``RetryConfig``: ``max_attempts`` attempts, exponential back-off from ``retry_base_delay``
seconds with jitter; giving up is one line with AWS's message.

While a query runs, a progress line (on a terminal only) shows its state, elapsed time, the data
scanned and the cost at USD 5 per TB scanned, from PyAthena's poll callback. A timeout stops the
query in Athena (StopQueryExecution, through the cursor's ``cancel``); Ctrl-C and SIGTERM (which
:mod:`albstats.shutdown` turns into a KeyboardInterrupt) are stopped by PyAthena itself
(``kill_on_interrupt``), which waits until Athena says CANCELLED. A FAILED or CANCELLED query raises
:class:`~albstats.errors.AwsError` with Athena's StateChangeReason. The saved queries' results are
then cast to their declared columns (timestamps in UTC, integers as int64), as the local engine does.
"""

from __future__ import annotations

import os
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


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
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


class _TimedOut(Exception):
    """Raised from PyAthena's poll callback when the engine's timeout has passed (the query is then cancelled)."""


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
    poll_interval: float = 1.0  # seconds between two GetQueryExecution calls (PyAthena's poll_interval)
    max_attempts: int = 8  # of one Athena API call while it is throttled (PyAthena's RetryConfig.attempt)
    retry_base_delay: float = 0.5  # first back-off in seconds, doubling, plus jitter (RetryConfig.multiplier)
    endpoint_url: str | None = None
    session: Any = None  # a boto3 Session to connect with instead of the standard chain (custom credentials)
    on_poll: Callable[[QueryStats], None] | None = None  # called after each status poll (progress, tests)
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
        if self.max_attempts < 1:
            raise UsageError(f"max_attempts {self.max_attempts} must be at least 1")
        if self.scan_all is None:
            self.scan_all = (_env("scan_all") or "").lower() in ("1", "true", "yes")
        self._conn: Any = None
        self._location_checked = self.output_location is not None

    # connection --------------------------------------------------------------------------
    @property
    def retry_config(self) -> Any:
        """PyAthena's retry policy for every Athena call: throttling retried with exponential back-off and jitter.

        botocore's own retries (two attempts, standard mode) sit inside each of these attempts and
        cover dropped connections and 5XX answers.
        """
        from pyathena.util import RetryConfig

        return RetryConfig(
            exceptions=sorted(THROTTLE_CODES),
            attempt=self.max_attempts,
            multiplier=self.retry_base_delay,  # type: ignore[arg-type]  # a float works: tenacity multiplies
            max_delay=30,
        )

    @property
    def connection(self) -> Any:
        """The PyAthena connection (profile, region, credentials chain, workgroup, retry policy), made once."""
        if self._conn is None:
            import logging

            import pyathena
            from botocore.config import Config

            # PyAthena logs a traceback (Python's last-resort handler prints it on stderr) for each error
            # it then raises; the engine turns that error into one line, so the log adds only noise. A
            # NullHandler keeps the records for an application that configured logging itself.
            logging.getLogger("pyathena").addHandler(logging.NullHandler())
            kw: dict[str, Any] = dict(
                schema_name=self.database,
                catalog_name=None,  # Athena's default catalog, as the console does
                work_group=self.workgroup,
                poll_interval=self.poll_interval,
                kill_on_interrupt=True,  # Ctrl-C and SIGTERM (albstats.shutdown) stop the query in Athena
                retry_config=self.retry_config,
                config=Config(retries={"mode": "standard", "max_attempts": 2}),
            )
            if self.output_location:
                kw["s3_staging_dir"] = self.output_location
            if self.session is not None:
                kw["session"] = self.session
            if self.region:
                kw["region_name"] = self.region
            if self.profile and self.session is None:
                kw["profile_name"] = self.profile
            if self.endpoint_url:
                kw["endpoint_url"] = self.endpoint_url
            try:
                self._conn = pyathena.connect(**kw)
            except Exception as e:
                from albstats.s3_client import aws_error

                raise aws_error(e, "connecting to Athena") from None
        return self._conn

    @property
    def athena(self) -> Any:
        """The boto3 Athena client of the PyAthena connection (for the calls a cursor does not make)."""
        return self.connection.client

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing must not hide the real error
                pass
            self._conn = None

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
        from pyathena.util import retry_api_call

        from albstats.s3_client import aws_error

        try:
            wg = retry_api_call(self.athena.get_work_group, self.retry_config, WorkGroup=self.workgroup)
            wg = wg.get("WorkGroup")
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("AccessDeniedException", "AccessDenied"):
                self._location_checked = True  # no permission to look: Athena's own answer will tell
                return None
            raise aws_error(e, f"Athena GetWorkGroup {self.workgroup}" + self._gave_up(e)) from None
        except AwsError:
            raise
        except Exception as e:
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

    def _gave_up(self, e: BaseException) -> str:
        """The note ``(gave up after N attempts)`` when ``e`` is throttling that outlasted the retry policy."""
        code = (getattr(e, "response", None) or {}).get("Error", {}).get("Code", "")
        return f" (gave up after {self.max_attempts} attempts)" if code in THROTTLE_CODES else ""

    def _run(self, sql: str, label: str, cursor_class: Any) -> tuple[QueryStats, Any]:
        """Run one statement on a PyAthena cursor of ``cursor_class``; the statistics and the cursor.

        PyAthena submits, polls, retries throttled calls and, on Ctrl-C or SIGTERM (a
        KeyboardInterrupt), stops the query in Athena. Its poll callback feeds the progress line and
        enforces the timeout (then the query is stopped here). Every failure is one AwsError line.
        """
        from pyathena.error import Error as PyAthenaError

        from albstats.s3_client import aws_error

        self.check_result_location()
        timeout = self.timeout
        assert timeout is not None  # __post_init__ sets it (the field's None means "the environment's or default")
        st: QueryStats | None = None
        timed_out = False
        t0 = time.monotonic()

        def started(qid: str) -> None:
            nonlocal st
            st = QueryStats(qid, sql)
            self.history.append(st)

        with progress.bar(f"athena {label}", total=None, quiet=self.quiet) as tick:

            def polled(qe: Any) -> None:
                nonlocal timed_out
                if st is None:  # pragma: no cover - PyAthena reports the id before it polls
                    return
                st.state = qe.state or "UNKNOWN"
                st.reason = qe.state_change_reason or ""
                if qe.error_message and qe.error_message not in st.reason:
                    st.reason = (st.reason + " " if st.reason else "") + qe.error_message
                st.scanned_bytes = int(qe.data_scanned_in_bytes or 0)
                st.elapsed_s = time.monotonic() - t0
                tick.advance(
                    0,
                    state=st.state,
                    elapsed=f"{st.elapsed_s:.0f}s",
                    scanned=human_bytes(st.scanned_bytes),
                    cost=f"${st.cost_usd:.4f}",
                )
                if self.on_poll is not None:
                    self.on_poll(st)
                if st.state not in TERMINAL and st.elapsed_s >= timeout and not timed_out:
                    timed_out = True  # once: the wait for a cancelled query polls on
                    raise _TimedOut

            cursor = self.connection.cursor(cursor_class, on_poll=polled)
            try:
                try:
                    cursor.execute(sql, on_start_query_execution=started)
                except _TimedOut:
                    assert st is not None
                    try:
                        cursor.cancel()
                    except PyAthenaError:
                        pass  # the timeout is what the user needs to see
                    st.state = "CANCELLED"
                    raise AwsError(
                        f"Athena query {st.query_id} ({label}) did not finish within {self.timeout:g} s "
                        f"and was cancelled; {human_bytes(st.scanned_bytes)} scanned so far. "
                        f"Narrow --since/--until or raise ALBSTATS_ATHENA_TIMEOUT"
                    ) from None
                except KeyboardInterrupt:
                    if st is not None and st.state not in TERMINAL:
                        st.state = "CANCELLED"  # PyAthena has stopped it (kill_on_interrupt)
                    raise
                except PyAthenaError as e:
                    cause = e.__cause__
                    if st is None:  # StartQueryExecution itself failed
                        what = "Athena StartQueryExecution"
                        raise aws_error(cause or e, what + self._gave_up(cause or e)) from None
                    if st.state in ("FAILED", "CANCELLED"):
                        raise AwsError(
                            f"Athena query {st.query_id} ({label}) {st.state}: {st.reason or 'no reason given'}"
                        ) from None
                    what = f"Athena query {st.query_id} ({label})"
                    what += ": reading the result" if st.state == "SUCCEEDED" else ": GetQueryExecution"
                    raise aws_error(cause or e, what + self._gave_up(cause or e)) from None
                except Exception as e:
                    if st is None or st.state != "SUCCEEDED":
                        raise
                    # a result PyAthena cannot read (say, column metadata without a field it expects)
                    raise aws_error(e, f"Athena query {st.query_id} ({label}): reading the result") from None
            except BaseException:
                cursor.close()
                raise
        assert st is not None
        if progress.enabled(self.quiet):
            import sys

            print(f"albstats: {st.line()}", file=sys.stderr)
        return st, cursor

    def run_statement(self, sql: str, label: str = "query") -> QueryStats:
        """Run one statement whose rows are not wanted (DDL, INSERT) on PyAthena's plain cursor."""
        from pyathena.cursor import Cursor

        st, cursor = self._run(sql, label, Cursor)
        cursor.close()
        return st

    def prepare(
        self, sql: str, params: dict[str, Any], window: tuple[datetime | None, datetime | None], label: str = "query"
    ) -> str:
        """The exact text sent to Athena: table mapped, ``day`` predicate added, values bound by pyathena."""
        from pyathena.formatter import DefaultParameterFormatter

        since, until = window
        database, table = self.database, self.table
        assert database is not None and table is not None  # __post_init__ resolves both (None: the default)
        values = dict(params)
        if since is not None:
            values[DAY_FROM], values[DAY_TO] = day_range(since, until)
            text = rewrite(sql, database, table, day_predicate=True)
        else:
            if not self.scan_all and not references_day(sql):
                hint = "--until alone is not enough: " if until is not None else ""
                raise UsageError(
                    f"{label}: {hint}Athena would scan (and bill) every day folder of the bucket; "
                    "give --since (and --until), or filter on the partition in the SQL (WHERE day "
                    "BETWEEN '2026/11/01' AND '2026/11/08'), or set ALBSTATS_ATHENA_SCAN_ALL=1"
                )
            text = rewrite(sql, database, table, day_predicate=False)
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
        from pyathena.pandas.cursor import PandasCursor

        st, cursor = self._run(text, label, PandasCursor)
        try:
            df = cursor.as_pandas()
        finally:
            cursor.close()
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
