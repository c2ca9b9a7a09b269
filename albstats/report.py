"""The SLO report: computed from saved-query results on any engine, rendered elsewhere.

:func:`build` runs the saved queries (``slo_buckets``, ``latency_summary``, ``latency_percentiles``,
``security_findings``, ``data_span`` and the failure-attribution queries of the SQL library) on an
engine and assembles a :class:`Report` of plain dataclasses. Nothing here formats text or draws:
:mod:`albstats.render` turns a Report into terminal, Markdown, HTML or JSON output and
:mod:`albstats.plots` draws its charts, so a notebook can use the same numbers without the CLI.

Units everywhere: rates and targets are fractions 0..1, times are seconds, timestamps are UTC.

The module is a little over 500 lines: the report's dataclasses and :func:`build` are its one job,
and the renderers and tests read both; what is computed elsewhere (SLIs in :mod:`albstats.slo`,
findings in :mod:`albstats.security`, charts in :mod:`albstats.plots`) stays there.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from albstats import security, slo
from albstats.checks import fraction, number, whole
from albstats.errors import InputError, UsageError
from albstats.inputs import LOG_NAMES, Problems, as_given, engine_sources, first_few, problems, window_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from albstats.engines.base import Engine
    from albstats.parse import ParseStats

METRICS = ("request_processing_time", "target_processing_time", "response_processing_time", "total_time")
#: The latency a headline quotes (terminal summary, weekly post): total time, the latency SLO's measure.
HEADLINE_LATENCY = "total_time"

#: Failure-attribution tables: report key -> (saved query, title). Queries missing from sql/ are skipped.
FAILURE_TABLES: dict[str, tuple[str, str]] = {
    "by_status": ("errors_by_reason", "5XX by status, error reason and desync classification"),
    "by_target": ("errors_by_target", "5XX by target and target group"),
    "by_path": ("errors_by_path", "5XX by normalised path"),
}
#: Context tables: report key -> (saved query, title).
CONTEXT_TABLES: dict[str, tuple[str, str]] = {
    "slowest_requests": ("slowest_requests", "Slowest requests"),
    "top_clients": ("top_clients", "Top clients"),
    "tls_mix": ("tls_mix", "TLS protocols and ciphers"),
}
#: Slowest paths (latency section).
SLOW_PATHS = ("latency_by_path", "Slowest normalised paths (total time)")
#: Status mix: per-bucket status counts, summed over the window here.
STATUS_QUERY = "status_codes"

DEFAULT_ATHENA_DAYS = 7
#: Malformed lines quoted as file:line: reason.
MAX_MALFORMED_EXAMPLES = 5


@dataclass
class Options:
    """What the user asked for (the CLI's options, parsed). Rates and targets are fractions 0..1.

    Checked when made (and again by :func:`build`): ``Options(slo=99.0)`` is a ValueError naming
    ``slo`` and its range, not a report with an error budget of minus four million.
    """

    slo: float = 0.99
    latency_threshold: float = 1.0
    latency_target: float = 0.95
    latency_slo_given: bool = False  # a missed latency SLO counts as a breach only when asked for
    count_460: bool = False
    since: datetime | None = None
    until: datetime | None = None
    examples: int = 5
    top: int = 10
    min_client_4xx: int = 100
    allow_empty: bool = False  # a window without requests gives a "no data" report instead of NoData
    slo_file: Any = None  # an albstats.objectives.SloFile (--slo-file); None: --slo/--latency-slo as one service

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first option out of its range (also after fields were changed)."""
        fraction("slo", self.slo)
        fraction("latency_target", self.latency_target)
        number(
            "latency_threshold",
            self.latency_threshold,
            0.0,
            MAX_LATENCY_THRESHOLD,
            "a number of seconds above 0 and at most {hi:g}",
        )
        for name in ("examples", "top"):
            whole(name, getattr(self, name), 1, MAX_ROWS)
        whole("min_client_4xx", self.min_client_4xx, 1, MAX_ROWS)
        for name in ("latency_slo_given", "count_460", "allow_empty"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r}: expected True or False")
        for name in ("since", "until"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, datetime) or v.tzinfo is None):
                raise ValueError(f"{name}={v!r}: expected a timezone-aware datetime (UTC) or None")


#: Upper bounds of Options' numbers: beyond them a value is a typo, not a choice.
MAX_LATENCY_THRESHOLD = 3600.0  # ALB's idle timeout is at most 4000 s; a latency SLO of an hour is the limit
MAX_ROWS = 1_000_000  # the saved queries' largest limit


class NoData(InputError):
    """The window holds no request: under cron that means logs are missing, never that the SLO was met.

    ``why`` is what was (not) read, for callers that name the window their own way (weekly: the ISO week).
    """

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(message)
        self.why = why or message


@dataclass
class Window:
    start: datetime | None
    end: datetime | None
    source: str  # "given" (--since/--until), "data" (first..last request), "default" (Athena: last 7 days)


@dataclass
class Percentiles:
    requests: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None


@dataclass
class Table:
    """A result table for the report: the saved query it came from and its rows as plain dicts."""

    query: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]


@dataclass
class Latency:
    slo: slo.LatencySlo
    metrics: dict[str, Percentiles]
    slowest_paths: Table | None


@dataclass
class Failures:
    errors_5xx: int
    elb_5xx: int
    target_5xx: int
    tables: dict[str, Table]
    incidents: list[slo.Incident]
    incident_threshold_rate: float | None


@dataclass
class NodeDelivery:
    """Delivery of one load-balancer node's 5-minute files, from the file names."""

    load_balancer: str
    node_ip: str
    files: int
    first_interval_end: datetime
    last_interval_end: datetime
    missing: int
    missing_examples: list[datetime]


@dataclass
class DataQuality:
    available: bool  # False on Athena: files are not read by albstats
    files: int
    lines: int
    rows: int
    malformed_lines: int
    malformed_examples: list[str]
    damaged_files: list[str]
    skipped_files: list[str]
    first_request: datetime | None
    last_request: datetime | None
    delivery: list[NodeDelivery]
    missing_intervals: int
    malformed_files: list[str] = field(default_factory=list)  # "file (N lines)"

    @property
    def problems(self) -> Problems:
        """Damaged, skipped and malformed input: what the report's headline must name."""
        return Problems(
            list(self.damaged_files), list(self.skipped_files), self.malformed_lines, list(self.malformed_files)
        )


@dataclass
class Report:
    engine: str
    generated_at: datetime
    options: Options
    window: Window
    availability: slo.Availability
    latency: Latency
    failures: Failures
    findings: list[security.Finding]
    data_quality: DataQuality
    context: dict[str, Table]
    #: DataFrames for the plots (not serialised)
    frames: dict[str, Any] = field(default_factory=dict, repr=False)
    #: what was read, as the user named it (paths, s3:// prefixes, or the Athena table)
    sources: list[str] = field(default_factory=list)
    #: per-service SLOs (albstats.service_slo.SloResult), one per objective of the SLO file
    slos: list[Any] = field(default_factory=list)

    @property
    def no_data(self) -> bool:
        """No request in the window: nothing was measured, so no SLO was met or missed."""
        return self.availability.requests == 0

    @property
    def status(self) -> str:
        """The verdict: ``met``, ``breached`` or ``no_data`` (never ``met`` without a request)."""
        return "no_data" if self.no_data else "breached" if self.breached else "met"

    @property
    def slo_met(self) -> bool | None:
        """Whether the availability SLO was met; None when there was no request to judge it by."""
        return None if self.no_data else self.availability.met

    @property
    def breached(self) -> bool:
        """The availability SLO was missed, the latency SLO when one was asked for, or any SLO of --slo-file
        (False without data)."""
        if self.no_data:
            return False
        if self.options.slo_file is not None:
            return any(not s.met for s in self.slos)
        return (not self.availability.met) or (self.options.latency_slo_given and not self.latency.slo.met)

    @property
    def headline_latency(self) -> Percentiles | None:
        """The report's headline latency: :data:`HEADLINE_LATENCY` percentiles (weekly's p99 is this one)."""
        return self.latency.metrics.get(HEADLINE_LATENCY)

    def strict_failure(self) -> str | None:
        """Why ``--strict`` fails this report (damaged, skipped or malformed input), or None."""
        p = self.data_quality.problems
        return f"--strict: {p.short()}" if p else None


# --- helpers --------------------------------------------------------------------------------------


def _py(v: Any) -> Any:
    """A DataFrame cell as a plain Python value (timestamps as aware datetimes, NaN as None)."""
    import pandas as pd

    if v is None:
        return None
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else v.to_pydatetime()
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def table(df: pd.DataFrame, query: str, title: str) -> Table:
    return Table(
        query,
        title,
        [str(c) for c in df.columns],
        [{str(k): _py(v) for k, v in row.items()} for row in df.to_dict("records")],
    )


def plot_bucket(start: datetime | None, end: datetime | None) -> str:
    """Bucket for charts: 5 minutes up to 2 days, hourly up to 3 weeks, daily beyond."""
    if start is None or end is None:
        return "1h"
    span = end - start
    return "5m" if span <= timedelta(days=2) else "1h" if span <= timedelta(days=21) else "1d"


def _has_query(name: str) -> bool:
    from albstats import queries

    return name in queries.all_queries()


# --- data quality ---------------------------------------------------------------------------------

_KEY_END_RE = re.compile(
    r"_elasticloadbalancing_[a-z0-9-]+_(?P<lb>[^_]+)_(?P<end>\d{8}T\d{4}Z)_(?P<ip>[^_]+)_[^_./]+"
    r"\.log(?:\.gz)?$"
)


def delivery_gaps(
    names: list[str], start: datetime | None = None, end: datetime | None = None, examples: int = 5
) -> list[NodeDelivery]:
    """Missing 5-minute files per load-balancer node, where the file names follow the S3 key layout.

    For each (load balancer, node IP) every 5-minute interval end between the node's first and last
    file (clipped to the window) should have a file. A missing one is a delivery gap or an interval
    in which that node served no request (ALB writes no file then); the report says both.
    """
    seen: dict[tuple[str, str], set[datetime]] = defaultdict(set)
    for n in names:
        m = _KEY_END_RE.search(n.replace("\\", "/").rsplit("/", 1)[-1])
        if not m:
            continue
        t = datetime.strptime(m["end"], "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        if t.minute % 5:
            continue
        if start is not None and t <= start:
            continue
        if end is not None and t > end + timedelta(minutes=5):
            continue
        seen[(m["lb"], m["ip"])].add(t)
    out: list[NodeDelivery] = []
    step = timedelta(minutes=5)
    for (lb, ip), ends in sorted(seen.items()):
        first, last = min(ends), max(ends)
        missing: list[datetime] = []
        t = first
        while t <= last:
            if t not in ends:
                missing.append(t)
            t += step
        out.append(NodeDelivery(lb, ip, len(ends), first, last, len(missing), missing[:examples]))
    return out


def data_quality(
    stats: ParseStats | None, span: dict[str, Any], window: Window, paths: list[str] | None = None
) -> DataQuality:
    """Counts from the engine's parse statistics; file names as the user gave them (``paths``)."""
    if stats is None:
        return DataQuality(False, 0, 0, 0, 0, [], [], [], span.get("first_request"), span.get("last_request"), [], 0)
    given = list(paths or [])
    delivery = delivery_gaps([f.name for f in stats.files if not f.skipped], window.start, window.end)
    p = problems(stats, given)
    examples = [f"{as_given(f.name, given)}:{ln}: {reason}" for f in stats.files for ln, reason in f.bad_examples]
    return DataQuality(
        available=True,
        files=stats.files_read,
        lines=stats.lines,
        rows=stats.rows,
        malformed_lines=stats.bad_lines,
        malformed_examples=examples[:MAX_MALFORMED_EXAMPLES],
        damaged_files=p.damaged,
        skipped_files=p.skipped,
        first_request=span.get("first_request"),
        last_request=span.get("last_request"),
        delivery=delivery,
        missing_intervals=sum(d.missing for d in delivery),
        malformed_files=p.malformed_files,
    )


def no_data(window: Window, sources: list[str], stats: ParseStats | None) -> NoData:
    """:class:`NoData` in one line: which window, which sources, and what was (not) read there."""
    where = first_few(sources) or "the input"
    given = window.source != "data" and bool(window_text(window.start, window.end))
    when = f" {window_text(window.start, window.end)}" if given else ""
    if stats is None:
        why = "the table has no row there"
    elif not stats.files:
        why = f"no log files ({LOG_NAMES}) there" + (" for that window" if given else "")
    elif not stats.files_read:
        skipped = [f"{as_given(f.name, sources)} ({f.skipped})" for f in stats.files if f.skipped]
        why = f"no ALB log files there, {len(skipped):,} skipped: {first_few(skipped, sep='; ')}"
    else:
        n = stats.files_read
        why = f"{n:,} log file{'s' * (n != 1)} read, {stats.rows:,} rows, " + (
            "none in that window" if given else "no valid request"
        )
    return NoData(f"no requests{when} in {where}: {why}", why=f"{where}: {why}")


# --- building -------------------------------------------------------------------------------------


def service_slo_results(
    engine: Engine, opts: Options, since: datetime | None, until: datetime | None, buckets: Any = None
) -> list[Any]:
    """Every SLO of --slo-file (or of --slo/--latency-slo as a one-service file) over the window.

    The one-service file covers every request, so the ``slo_buckets`` rows already fetched are its
    counts: no extra query for the default report.
    """
    from albstats import objectives, service_slo

    if opts.slo_file is None and buckets is not None:
        s = objectives.one_service(
            opts.slo,
            count_460=opts.count_460,
            latency=(opts.latency_threshold, opts.latency_target) if opts.latency_slo_given else None,
        ).services[0]
        return [service_slo.evaluate({opts.latency_threshold: buckets}, s, o, since, until) for o in s.objectives]
    return service_slo.evaluate_file(engine, opts.slo_file, since, until)


def resolve_window(
    engine: Engine, opts: Options, now: datetime | None = None
) -> tuple[Window, dict[str, Any], dict[str, Any]]:
    """The report window: --since/--until, else all data (local) or the last 7 days (Athena).

    Returns (window for display and the bucket grid, data span, since/until to bind in queries:
    None where the user gave no bound and the engine reads all its data).
    """
    since, until = opts.since, opts.until
    source = "given"
    if since is None and until is None:
        if engine.name == "athena":
            until = (now or datetime.now(UTC)).replace(microsecond=0)
            since = until - timedelta(days=DEFAULT_ATHENA_DAYS)
            source = "default"
        else:
            source = "data"
    if since is not None and until is not None and since >= until:
        raise UsageError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    span_df = engine.query("data_span", since=since, until=until)
    span = {str(k): _py(v) for k, v in span_df.iloc[0].items()} if len(span_df) else {}
    start, end = since, until
    if start is None:
        start = span.get("first_request")
    if end is None:
        last = span.get("last_request")
        # exclusive end just after the last request, on a whole millisecond
        end = (
            None
            if last is None
            else last.replace(microsecond=last.microsecond // 1000 * 1000) + timedelta(milliseconds=1)
        )
        if end is None and since is not None:
            end = max(since + timedelta(milliseconds=1), (now or datetime.now(UTC)).replace(microsecond=0))
    return Window(start, end, source), span, {"since": since, "until": until}


def build(engine: Engine, opts: Options | None = None, *, now: datetime | None = None) -> Report:
    """Run the saved queries on ``engine`` and assemble the report.

    All the queries read one snapshot of the input (:meth:`Engine.snapshot`): a file that lands
    half-way through does not make the tables disagree with the headline.
    """
    with engine.snapshot():
        return _build(engine, opts, now)


def _build(engine: Engine, opts: Options | None, now: datetime | None) -> Report:
    opts = opts or Options()
    opts.validate()  # fields may have been changed since the Options was made
    window, span, q = resolve_window(engine, opts, now)
    since, until = window.start, window.end
    sources = engine_sources(engine)
    if not span.get("requests") and not opts.allow_empty:
        raise no_data(window, sources, engine.parse_stats())

    buckets = engine.query("slo_buckets", bucket="5m", latency_threshold=opts.latency_threshold, **q)
    avail = slo.availability(buckets, opts.slo, count_460=opts.count_460, start=since, end=until)
    lat_slo = slo.latency_slo(buckets, opts.latency_threshold, opts.latency_target)
    incidents, thr = slo.find_incidents(buckets, opts.slo, count_460=opts.count_460, start=since, end=until)
    burn = slo.burn_down(buckets, opts.slo, count_460=opts.count_460, start=since, end=until)

    summary = engine.query("latency_summary", **q)
    metrics: dict[str, Percentiles] = {}
    for m in METRICS:
        row = summary[summary["metric"] == m]
        if len(row):
            r = row.iloc[0]
            metrics[m] = Percentiles(int(r["requests"]), *(_py(r[c]) for c in ("p50", "p90", "p95", "p99", "max")))
        else:
            metrics[m] = Percentiles(0, None, None, None, None, None)
    pbucket = plot_bucket(since, until)
    lat_time = engine.query("latency_percentiles", bucket=pbucket, **q)

    def run(name: str, title: str) -> Table | None:
        if not _has_query(name):
            return None
        from albstats import queries

        params: dict[str, Any] = dict(q)
        if queries.get(name).param("limit") is not None:
            params["limit"] = opts.top
        return table(engine.query(name, **params), name, title)

    tables = {k: t for k, (name, title) in FAILURE_TABLES.items() if (t := run(name, title)) is not None}
    context = {k: t for k, (name, title) in CONTEXT_TABLES.items() if (t := run(name, title)) is not None}
    slow = run(*SLOW_PATHS)

    findings = security.findings(
        engine, since=q["since"], until=q["until"], examples=opts.examples, min_client_4xx=opts.min_client_4xx
    )
    dq = data_quality(engine.parse_stats(), span, window, sources)

    frames = {"buckets": buckets, "latency_over_time": lat_time, "burn_down": burn, "plot_bucket": pbucket}
    if _has_query(STATUS_QUERY):
        codes = engine.query(STATUS_QUERY, bucket="1d", **q)
        mix: pd.DataFrame = codes.groupby("elb_status_code", as_index=False, dropna=False)[["requests"]].sum()
        mix = mix.sort_values("requests", ascending=False, kind="stable").reset_index(drop=True)
        total = int(mix["requests"].sum())
        mix["share"] = mix["requests"] / total if total else 0.0
        frames["status_mix"] = mix
        context = {"status_mix": table(mix, STATUS_QUERY, "Status mix (elb_status_code) over the window"), **context}
    slos = service_slo_results(engine, opts, since, until, buckets)
    return Report(
        slos=slos,
        engine=engine.name,
        generated_at=(now or datetime.now(UTC)).replace(microsecond=0),
        options=opts,
        window=window,
        availability=avail,
        latency=Latency(lat_slo, metrics, slow),
        failures=Failures(
            avail.errors_5xx, avail.elb_5xx, avail.target_5xx, tables, incidents, None if thr != thr else thr
        ),
        findings=findings,
        data_quality=dq,
        context=context,
        frames=frames,
        sources=sources,
    )
