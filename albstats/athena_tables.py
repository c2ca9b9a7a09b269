"""Athena table set-up and compaction: ``albstats athena create-table`` and ``albstats athena compact``.

Why a module of its own: these run DDL and data-moving statements through the engine
(:class:`~albstats.engines.athena.AthenaEngine`) and touch S3 and the Glue catalog, which the
query engine never does.

Compaction. The raw-log table reads gzip text through a regex, so every query scans (and bills)
the whole text of its days. ``compact`` has Athena itself copy days into the Parquet table
(:class:`~albstats.athena_ddl.ParquetSpec`), one ``INSERT INTO ... SELECT ... WHERE day = '...'``
per day, so the work scales with Athena, not with this machine. Re-running a day replaces it:
the day's folder ``LOCATION/day=YYYY/MM/DD/`` is emptied first (only in a table whose catalog
entry says albstats created it as the Parquet copy), then the day is inserted again. While a day
is being replaced, queries on the Parquet table see that day empty or partly written; a day whose
insert failed stays empty until compact runs again for it (the error says so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from albstats import progress
from albstats.athena_ddl import (
    PARQUET_MARK,
    ParquetSpec,
    TableSpec,
    check_identifier,
    compact_day_sql,
    day_location,
    parquet_statements,
    statements,
)
from albstats.engines.athena import AthenaEngine, QueryStats, human_bytes
from albstats.errors import AwsError, UsageError

#: Most days one compact run copies (a typo in --since should not start a year of inserts).
MAX_DAYS = 400


def _run_all(stmts: list[str], database: str, table: str, engine_options: dict[str, Any]) -> list[QueryStats]:
    eng = AthenaEngine(database=database, table=table, **engine_options)
    try:
        for s in stmts:
            eng.run_statement(s, label=" ".join(s.split()[:2]).lower())
    finally:
        eng.close()
    return eng.history


def create_table(spec: TableSpec, *, replace: bool = False, dry_run: bool = False, **engine_options: Any) -> list[str]:
    """Create the database and the raw-log table (``albstats athena create-table``); returns the statements.

    Idempotent: ``IF NOT EXISTS`` everywhere; ``replace`` drops the table first (the data in S3 is
    untouched, an external table is only metadata). ``dry_run`` returns the statements unsent.
    """
    stmts = statements(spec, replace=replace)
    if not dry_run:
        _run_all(stmts, spec.database, spec.table, engine_options)
    return stmts


def create_parquet_table(
    raw: TableSpec, spec: ParquetSpec, *, replace: bool = False, dry_run: bool = False, **engine_options: Any
) -> list[str]:
    """The raw-log table (if missing) and the compacted Parquet table (``create-table --format parquet``).

    Why both: compact copies from the raw-log table, so it must exist. ``replace`` drops only the
    Parquet table first (its files in S3 stay, and the new table reads them).
    """
    if raw.database != spec.database:
        raise UsageError("the raw-log table and the Parquet table must be in one database")
    stmts = [*statements(raw), *parquet_statements(spec, replace=replace)[1:]]
    if not dry_run:
        _run_all(stmts, spec.database, spec.table, engine_options)
    return stmts


# --- compaction ---------------------------------------------------------------------------------


def compact_days(since: datetime, until: datetime | None, now: datetime | None = None) -> list[str]:
    """The ``day`` values (``yyyy/MM/dd``) from since's day to the day holding the last instant before until."""
    end = until or now or datetime.now(UTC)
    first = since.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    if last < first:
        raise UsageError("--since and --until cover no day")
    n = (last - first).days + 1
    if n > MAX_DAYS:
        raise UsageError(f"--since/--until cover {n} days; compact at most {MAX_DAYS} days per run")
    return [(first + timedelta(days=i)).strftime("%Y/%m/%d") for i in range(n)]


@dataclass
class DayResult:
    """One compacted day."""

    day: str
    location: str
    removed: int  # objects of the previous copy of the day that were deleted (in a dry run: present)
    query: QueryStats | None = None  # None in a dry run

    def line(self) -> str:
        if self.query is None:
            return f"{self.day}: would empty {self.location} ({self.removed} objects) and insert the day"
        return (
            f"{self.day}: {human_bytes(self.query.scanned_bytes)} scanned, {self.removed} old objects replaced "
            f"(Athena query {self.query.query_id}, {self.query.elapsed_s:.0f} s)"
        )


@dataclass
class CompactResult:
    """What ``albstats athena compact`` did (or, in a dry run, would do)."""

    source: str
    target: str
    days: list[DayResult] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)

    @property
    def scanned_bytes(self) -> int:
        return sum(d.query.scanned_bytes for d in self.days if d.query is not None)

    def line(self) -> str:
        return (
            f"compacted {len(self.days)} day{'s' if len(self.days) != 1 else ''} of {self.source} into "
            f"{self.target}; Athena scanned {human_bytes(self.scanned_bytes)}"
        )


def _parquet_template(glue: Any, database: str, table: str) -> str:
    """The Parquet table's ``storage.location.template``, after checking the catalog says albstats made it.

    Why: compact deletes a day's files before inserting it again; that must never happen in a
    table holding anything else.
    """
    from albstats.s3_client import aws_error

    try:
        t = glue.get_table(DatabaseName=database, Name=table)["Table"]
    except Exception as e:
        code = (getattr(e, "response", None) or {}).get("Error", {}).get("Code", "")
        if code == "EntityNotFoundException":
            raise AwsError(
                f"table {database}.{table} does not exist; create it with `albstats athena create-table "
                f"--format parquet --location s3://BUCKET/PREFIX/`"
            ) from None
        raise aws_error(e, f"Glue GetTable {database}.{table}") from None
    params = t.get("Parameters") or {}
    template = params.get("storage.location.template", "")
    if params.get(PARQUET_MARK) != "parquet" or "${day}" not in template:
        raise UsageError(
            f"--table {table}: {database}.{table} is not a table made by `albstats athena create-table "
            f"--format parquet`; compact replaces days only in such a table"
        )
    return template


def _empty_prefix(s3: Any, url: str) -> int:
    """Delete every object under ``s3://bucket/prefix/`` (a day folder); the number deleted."""
    from albstats.s3 import parse_url
    from albstats.s3_client import aws_error

    bucket, prefix = parse_url(url)
    if not prefix.endswith("/") or "day=" not in prefix:
        raise AwsError(f"refusing to delete {url}: not a day folder of the Parquet table")
    n = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            for i in range(0, len(keys), 1000):
                batch = keys[i : i + 1000]
                resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
                errs = resp.get("Errors") or []
                if errs:
                    e = errs[0]
                    raise AwsError(f"deleting s3://{bucket}/{e.get('Key')}: {e.get('Code')}: {e.get('Message')}")
                n += len(batch)
    except AwsError:
        raise
    except Exception as e:
        raise aws_error(e, f"emptying {url}") from None
    return n


def compact(
    since: datetime,
    until: datetime | None = None,
    *,
    database: str | None = None,
    table: str | None = None,
    source: str | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    on_day: Callable[[DayResult], None] | None = None,
    s3: Any = None,
    glue: Any = None,
    now: datetime | None = None,
    **engine_options: Any,
) -> CompactResult:
    """Copy the days of ``[since, until)`` from the raw-log table ``source`` into the Parquet table ``table``.

    Per day: empty the day's folder, then ``INSERT INTO ... SELECT`` (see the module docstring).
    ``engine_options`` go to :class:`AthenaEngine` (workgroup, output_location, region, profile, ...);
    ``s3``/``glue`` are boto3 clients to use instead of ones from the standard chain.
    """
    from albstats import s3 as s3mod
    from albstats.s3_client import aws_error, client

    days = compact_days(since, until, now)
    eng = AthenaEngine(database=database, table=table or "alb_logs_parquet", quiet=quiet, **engine_options)
    db, dst = eng.database, eng.table
    assert db is not None and dst is not None  # AthenaEngine.__post_init__ resolves both
    src = check_identifier(source or "alb_logs", "source-table")
    if src == dst:
        raise UsageError(f"--source-table and --table are both {src}; the copy needs two tables")
    try:
        glue = glue or client("glue", profile=eng.profile, region=eng.region)
        s3 = s3 or client("s3", profile=eng.profile, region=eng.region)
        template = _parquet_template(glue, db, dst)
        result = CompactResult(f"{db}.{src}", f"{db}.{dst}")
        with progress.bar("compacting days", total=len(days), quiet=quiet) as tick:
            for day in days:
                sql = compact_day_sql(db, src, dst, day)
                result.statements.append(sql)
                loc = day_location(template, day)
                if dry_run:
                    bucket, prefix = s3mod.parse_url(loc)
                    try:
                        present = int(s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0))
                    except Exception as e:
                        raise aws_error(e, f"listing {loc}") from None
                    res = DayResult(day, loc, present)
                else:
                    removed = _empty_prefix(s3, loc)
                    try:
                        st = eng.run_statement(sql, label=f"compact {day}")
                    except AwsError as e:
                        raise AwsError(
                            f"{e}; day {day} of {result.target} is empty now: run compact for it again "
                            f"(--since {day.replace('/', '-')})"
                        ) from None
                    res = DayResult(day, loc, removed, st)
                result.days.append(res)
                if on_day is not None:
                    on_day(res)
                tick.advance(1, scanned=human_bytes(result.scanned_bytes))
    finally:
        eng.close()
    return result
