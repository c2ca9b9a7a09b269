"""Athena DDL for the ALB access- and connection-log tables, generated from :mod:`albstats.schema`.

AWS's published table uses a hand-written RegexSerDe regex that stops matching whenever AWS appends
fields (in August 2025 existing tables returned empty rows). The regex here is generated from the same
token list the local parser uses, so the table and the parser cannot drift apart:

- every era from the schema's minimum token count on matches (20 tokens for access logs: 2016 and
  later; 11 for connection logs); tokens missing at the end of an older line give NULL columns;
- tokens AWS appends later land raw in ``extra_fields`` instead of breaking the row;
- quoted fields keep backslash escapes (``\\"``) as logged, exactly as the parser keeps them;
- any token may be written quoted or bare (old docs printed target lists bare), as the parser allows;
- fields the parser validates (type, timestamps, timings, status codes, ``ip:port``) are validated by
  the regex too, so a line the parser counts as malformed is an all-NULL row on Athena, never garbage
  (one exception: a regex cannot know the calendar, so a time on February 30 passes it; the parsers
  reject it, :func:`albstats.schema.real_date`);
- ``target:port`` ``-`` gives ``target_ip`` ``''`` and ``target_port`` NULL (as AWS's regex does);
  bracketed IPv6 loses its brackets (as the parser does).

Java's regex engine (which Athena's RegexSerDe uses) recurses once per iteration of a repeated group
unless the repetition is possessive, and a StackOverflowError fails the whole query. So every
repeated group here is possessive (``*+``, iterative in Java) and written so that it never needs to
give characters back.

The table is partitioned by ``day`` (the ``yyyy/MM/dd`` delivery folder) with partition projection,
so no ``MSCK REPAIR`` is needed and a ``WHERE day BETWEEN ...`` predicate bounds the scan.

The compacted table (:class:`ParquetSpec`, ``create-table --format parquet``) has the same columns
and the same ``day`` partition, stored as zstd Parquet in Hive-style folders
``LOCATION/day=YYYY/MM/DD/`` (the layout of albstats' local cache), also with partition projection;
:func:`compact_day_sql` is the ``INSERT INTO ... SELECT`` that copies one day into it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from albstats.errors import UsageError
from albstats.schema import ACCESS, CONNECTION, VALIDATORS, LogSchema, Token

# --- identifiers and locations ----------------------------------------------------------------

#: Athena database, table and workgroup names albstats accepts: lower-case letters, digits, underscore.
IDENT_RE = re.compile(r"[a-z_][a-z0-9_]{0,127}\Z")
WORKGROUP_RE = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
#: S3 bucket naming rules (the subset valid everywhere: no dots-only, no uppercase).
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
PREFIX_RE = re.compile(r"[A-Za-z0-9!_.*()/=+-]*\Z")
ACCOUNT_RE = re.compile(r"\d{12}\Z")
REGION_RE = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d\Z")
DAY_FMT_RE = re.compile(r"\d{4}/\d{2}/\d{2}\Z")


def check_identifier(value: str, what: str = "identifier") -> str:
    """A database or table name; anything else is a UsageError naming the option (never pasted into SQL)."""
    if not IDENT_RE.match(value or ""):
        raise UsageError(
            f"--{what}: {value!r} is not a valid name; use lower-case letters, digits and _ "
            f"(starting with a letter or _)"
        )
    return value


def check_workgroup(value: str) -> str:
    if not WORKGROUP_RE.match(value or ""):
        raise UsageError(f"--workgroup: {value!r} is not a valid Athena workgroup name")
    return value


def check_bucket(value: str) -> str:
    if not BUCKET_RE.match(value or "") or ".." in value:
        raise UsageError(f"--s3-bucket: {value!r} is not a valid S3 bucket name (just the name, no s3://)")
    return value


def check_prefix(value: str | None) -> str:
    """The logging prefix without surrounding slashes; AWS forbids ``AWSLogs`` in it."""
    p = (value or "").strip("/")
    if not PREFIX_RE.match(p) or "//" in p:
        raise UsageError(f"--s3-prefix: {value!r} has characters albstats does not accept in an S3 prefix")
    if "AWSLogs" in p:
        raise UsageError(f"--s3-prefix: {value!r} must be the logging prefix, the part before /AWSLogs/")
    return p


def check_account(value: str) -> str:
    if not ACCOUNT_RE.match(value or ""):
        raise UsageError(f"--account: {value!r} is not a 12-digit AWS account id")
    return value


def check_region(value: str) -> str:
    if not REGION_RE.match(value or ""):
        raise UsageError(f"--region: {value!r} is not an AWS region name like us-east-2")
    return value


def check_from(value: str | date) -> str:
    """The first day of the projection range as ``yyyy/MM/dd``."""
    if isinstance(value, date | datetime):
        return value.strftime("%Y/%m/%d")
    v = str(value).strip().replace("-", "/")
    if DAY_FMT_RE.match(v):
        try:
            datetime.strptime(v, "%Y/%m/%d")
            return v
        except ValueError:
            pass
    raise UsageError(f"--from: {value!r} is not a date like 2024/01/01")


def check_s3_url(value: str, what: str = "output-location") -> str:
    m = re.match(r"s3://([^/]+)(/.*)?\Z", value or "")
    if not m:
        raise UsageError(f"--{what}: {value!r} is not an s3://bucket/prefix/ URL")
    if not BUCKET_RE.match(m[1]) or ".." in m[1]:
        raise UsageError(f"--{what}: {value!r} does not start with a valid S3 bucket name")
    if m[2] and not PREFIX_RE.match(m[2].strip("/")):
        raise UsageError(f"--{what}: {value!r} has characters albstats does not accept in an S3 prefix")
    return value if value.endswith("/") else value + "/"


def log_location(bucket: str, prefix: str | None, account: str, region: str) -> str:
    """``s3://B/[P/]AWSLogs/<account>/elasticloadbalancing/<region>/``, each part validated."""
    p = check_prefix(prefix)
    return (
        f"s3://{check_bucket(bucket)}/{p + '/' if p else ''}AWSLogs/{check_account(account)}/"
        f"elasticloadbalancing/{check_region(region)}/"
    )


# --- the regex --------------------------------------------------------------------------------

#: End of a token: the separating space or the end of the line.
_SEP = "(?= |$)"
#: The body of a quoted token: anything but an unescaped quote; backslash escapes kept.
_QBODY = r'[^"\\]*+(?:\\.[^"\\]*+)*+'
#: One whole token without a capture group (for the trailing ``extra_fields``).
_ANY_TOKEN = rf'(?:"{_QBODY}"{_SEP}|[^ "][^ ]*)'
#: What the parser's validators accept (one definition, :data:`albstats.schema.VALIDATORS`). ``hostport`` is
#: not among them: :func:`_hostport` also splits the token into its two columns.
_VALID = {name: pattern for name, pattern in VALIDATORS.items() if name != "hostport"}


def _validated(valid: str) -> str:
    """A token whose value must match ``valid``, quoted or bare; one group, quotes excluded."""
    return f'(?:"(?={valid}"{_SEP})|(?={valid}{_SEP}))({valid})"?'


def _plain() -> str:
    """Any token, quoted (escapes kept, spaces allowed) or bare; one group, quotes excluded."""
    return f'(?:"(?={_QBODY}"{_SEP})|(?=[^ "]))((?<="){_QBODY}(?=")|(?<!")[^ ]*{_SEP})"?'


def _hostport() -> str:
    """``ip:port``, ``[ip]:port`` or ``-`` (quoted or bare); two groups: host ('' for ``-``) and port.

    Like the parser: split on the last colon (IPv6 without brackets works), strip ``[...]``, an empty
    port is NULL once cast. The host of a quoted token may hold anything the quotes may hold.
    """
    qhost = r'[^"\\]*(?:\\.[^"\\]*)*'  # must give characters back to reach the last colon
    bhost = r"[^ ]*"
    end_q = r'[0-9]*"(?: |$)'
    end_b = r"[0-9]*(?: |$)"
    host = "|".join(
        (
            rf'(?<="\[){qhost}(?:\\(?=\]:))?(?=\]:{end_q})',  # "[host]:port"
            rf'(?<="){qhost}(?:\\(?=:))?(?=:{end_q})',  # "host:port"
            rf'(?<=\[)(?<!"\[){bhost}(?=\]:{end_b})',  # [host]:port
            rf'(?<![\["]){bhost}(?=:{end_b})',  # host:port
            r'(?<=")(?=-"(?: |$))|(?<![^ ])(?=-(?: |$))',  # - (no target), quoted or bare
        )
    )
    return f'(?:"(?={_QBODY}"{_SEP})|(?=[^ "]))\\[?({host})\\]?[:-]([0-9]*)"?'


def _request() -> str:
    """``"VERB URL PROTO"``: three groups, split at the first and the last space like the parser.

    A backslash right before a space ends a part (the parser splits at every space); the URL may
    contain spaces; a request with one space has no protocol (NULL), with none no URL. Loops are
    possessive, so Java iterates instead of recursing.
    """
    word = r'[^ "\\]*+(?:\\[^ ][^ "\\]*+)*+'  # non-space characters and escape pairs
    seg = word + r"(?:\\(?= ))?"  # ... and a lone backslash right before a separating space
    verb = f"({seg})"
    # no protocol: one part up to the closing quote; else every part but the last (possessive: Java
    # iterates instead of recursing, and there is nothing to give back)
    url = f'((?:{word}(?=")|{seg}(?: {seg}(?= ))*+(?= {word}")))'
    proto = f"({word})"
    return f'"{verb}(?: {url}(?: {proto})?)?"{_SEP}'


def token_regex(tok: Token) -> str:
    """The regex fragment for one token; its groups are the token's columns, in order."""
    if tok.regex:
        return tok.regex
    if tok.kind == "hostport":
        return _hostport()
    if tok.kind == "request":
        return _request()
    if tok.validate in _VALID:
        return _validated(_VALID[tok.validate])
    return _plain()


def input_regex(schema: LogSchema = ACCESS) -> str:
    """The full-line RegexSerDe regex: one group per column of ``schema.columns`` (``extra_fields`` last).

    Tokens up to ``schema.min_tokens`` are required; later ones are optional from the end, so an
    older line matches with NULL for the fields it lacks. Anything after the last known token is
    captured raw (a trailing space included, as the parser keeps it) in ``extra_fields``.
    """
    toks = [token_regex(t) for t in schema.tokens]
    extra = f"({_ANY_TOKEN}(?: {_ANY_TOKEN})*+ ?)"
    tail = f"(?: {extra})?"
    for frag in reversed(toks[schema.min_tokens :]):
        tail = f"(?: {frag}{tail})?"
    head = " ".join(toks[: schema.min_tokens])
    return f"{head}{tail}(?:(?<! ) )?"  # one trailing space, unless extra_fields took it


def group_count(schema: LogSchema = ACCESS) -> int:
    return re.compile(input_regex(schema)).groups


# --- DDL --------------------------------------------------------------------------------------


def hive_string(text: str) -> str:
    """A Hive DDL string literal: Athena's DDL parser un-escapes backslashes, so double them."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class TableSpec:
    """Where the logs are and what to call the table; validated on construction."""

    bucket: str
    account: str
    region: str
    prefix: str = ""
    database: str = "albstats"
    table: str = "alb_logs"
    start: str = "2024/01/01"
    kind: str = "access"  # or "connection"

    def __post_init__(self) -> None:
        check_identifier(self.database, "database")
        check_identifier(self.table, "table")
        object.__setattr__(self, "start", check_from(self.start))
        object.__setattr__(self, "prefix", check_prefix(self.prefix))
        if self.kind not in ("access", "connection"):
            raise UsageError(f"table kind {self.kind!r}: use access or connection")
        log_location(self.bucket, self.prefix, self.account, self.region)  # validates the rest

    @property
    def schema(self) -> LogSchema:
        return ACCESS if self.kind == "access" else CONNECTION

    @property
    def location(self) -> str:
        return log_location(self.bucket, self.prefix, self.account, self.region)

    @property
    def qualified(self) -> str:
        return f"`{self.database}`.`{self.table}`"


def create_database_sql(database: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS `{check_identifier(database, 'database')}`"


def drop_table_sql(spec: TableSpec) -> str:
    return f"DROP TABLE IF EXISTS {spec.qualified}"


def create_table_sql(spec: TableSpec) -> str:
    """``CREATE EXTERNAL TABLE IF NOT EXISTS`` with the generated regex and ``day`` partition projection."""
    schema = spec.schema
    width = max(len(c.name) for c in schema.columns) + 2
    cols = ",\n".join(f"  {'`' + c.name + '`':<{width}} {c.type}" for c in schema.columns)
    props = {
        "projection.enabled": "true",
        "projection.day.type": "date",
        "projection.day.range": f"{spec.start},NOW",
        "projection.day.format": "yyyy/MM/dd",
        "projection.day.interval": "1",
        "projection.day.interval.unit": "DAYS",
        "storage.location.template": spec.location + "${day}",
        "albstats.generated": "true",
    }
    tbl = ",\n".join(f"  {hive_string(k)} = {hive_string(v)}" for k, v in props.items())
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {spec.qualified} (\n{cols}\n)\n"
        f"PARTITIONED BY (`day` string)\n"
        f"ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.RegexSerDe'\n"
        f"WITH SERDEPROPERTIES (\n"
        f"  'serialization.format' = '1',\n"
        f"  'input.regex' = {hive_string(input_regex(schema))}\n"
        f")\n"
        f"LOCATION {hive_string(spec.location)}\n"
        f"TBLPROPERTIES (\n{tbl}\n)"
    )


def statements(spec: TableSpec, *, replace: bool = False) -> list[str]:
    """The statements ``albstats athena create-table`` runs, in order (each one Athena query)."""
    out = [create_database_sql(spec.database)]
    if replace:
        out.append(drop_table_sql(spec))
    out.append(create_table_sql(spec))
    return out


# --- the compacted Parquet table --------------------------------------------------------------

#: Table property marking a table albstats created as the compacted Parquet copy (compact checks it
#: before deleting a day's files).
PARQUET_MARK = "albstats.format"


@dataclass(frozen=True)
class ParquetSpec:
    """The compacted table: where its Parquet files live and what to call it; validated on construction."""

    location: str
    database: str = "albstats"
    table: str = "alb_logs_parquet"
    start: str = "2024/01/01"

    def __post_init__(self) -> None:
        check_identifier(self.database, "database")
        check_identifier(self.table, "table")
        object.__setattr__(self, "location", check_s3_url(self.location, "location"))
        object.__setattr__(self, "start", check_from(self.start))

    @property
    def qualified(self) -> str:
        return f"`{self.database}`.`{self.table}`"

    @property
    def template(self) -> str:
        """Where a day's files are: Hive-style ``day=YYYY/MM/DD`` below the location."""
        return self.location + "day=${day}/"


def day_location(template: str, day: str) -> str:
    """The S3 folder of one ``day`` value (``yyyy/MM/dd``) from a ``storage.location.template``."""
    if not DAY_FMT_RE.match(day):
        raise UsageError(f"day {day!r} is not yyyy/MM/dd")
    return template.replace("${day}", day)


def create_parquet_table_sql(spec: ParquetSpec, schema: LogSchema = ACCESS) -> str:
    """``CREATE EXTERNAL TABLE IF NOT EXISTS`` for the compacted table: the schema's columns, Parquet, ``day``."""
    width = max(len(c.name) for c in schema.columns) + 2
    cols = ",\n".join(f"  {'`' + c.name + '`':<{width}} {c.type}" for c in schema.columns)
    props = {
        "parquet.compression": "ZSTD",
        "projection.enabled": "true",
        "projection.day.type": "date",
        "projection.day.range": f"{spec.start},NOW",
        "projection.day.format": "yyyy/MM/dd",
        "projection.day.interval": "1",
        "projection.day.interval.unit": "DAYS",
        "storage.location.template": spec.template,
        "albstats.generated": "true",
        PARQUET_MARK: "parquet",
    }
    tbl = ",\n".join(f"  {hive_string(k)} = {hive_string(v)}" for k, v in props.items())
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {spec.qualified} (\n{cols}\n)\n"
        f"PARTITIONED BY (`day` string)\n"
        f"STORED AS PARQUET\n"
        f"LOCATION {hive_string(spec.location)}\n"
        f"TBLPROPERTIES (\n{tbl}\n)"
    )


def parquet_statements(spec: ParquetSpec, *, replace: bool = False) -> list[str]:
    """The statements ``albstats athena create-table --format parquet`` runs, in order."""
    out = [create_database_sql(spec.database)]
    if replace:
        out.append(f"DROP TABLE IF EXISTS {spec.qualified}")
    out.append(create_parquet_table_sql(spec))
    return out


def compact_day_sql(database: str, source: str, target: str, day: str, schema: LogSchema = ACCESS) -> str:
    """``INSERT INTO target (columns, day) SELECT columns, day FROM source WHERE day = 'yyyy/MM/dd'`` (Trino).

    Every column by name, in the schema's order, so the copy cannot shift a column; the day is
    validated (``yyyy/MM/dd``) and written as a literal by sqlglot.
    """
    from sqlglot import exp

    check_identifier(database, "database")
    check_identifier(source, "source-table")
    check_identifier(target, "table")
    if not DAY_FMT_RE.match(day):
        raise UsageError(f"day {day!r} is not yyyy/MM/dd")
    names = [*schema.names, "day"]
    select = (
        exp.select(*[exp.column(n, quoted=True) for n in names])
        .from_(exp.table_(source, db=database, quoted=True))
        .where(exp.EQ(this=exp.column("day", quoted=True), expression=exp.Literal.string(day)))
    )
    into = exp.Schema(
        this=exp.table_(target, db=database, quoted=True),
        expressions=[exp.to_identifier(n, quoted=True) for n in names],
    )
    return exp.Insert(this=into, expression=select).sql("trino")
