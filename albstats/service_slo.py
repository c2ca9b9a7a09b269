"""Per-service SLOs from an SLO file: fetch each service's bucket counts, then budgets, burn rates, alerts.

The counts come from the saved query ``service_buckets`` (selection values are bound parameters,
so the same SQL runs on DuckDB and Athena and a service name or regex can never change the SQL).
Every objective becomes an *SLI frame*: per 5-minute bucket, ``requests`` (the events the SLI
counts) and ``bad`` (the events that spend the budget). Availability counts every request of the
service and 5XX (plus 460 when asked) as bad; latency counts dispatched requests and those not
under the threshold as bad. From there one code path serves every objective: budget, burn rate and
the multiwindow alerts of the file's policy, evaluated over a report window (:func:`evaluate`) or
at one instant (:func:`alerts_at`, for ``albstats check``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from albstats import slo
from albstats.objectives import BurnAlert, Objective, Service, SloFile

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from albstats.engines.base import Engine

BUCKET = slo.BUCKET


def fetch(engine: Engine, service: Service, since: datetime | None, until: datetime | None) -> dict[float, Any]:
    """The service's ``service_buckets`` rows per latency threshold (one query per distinct threshold).

    Availability reads any of them (the counts other than ``latency_good`` do not depend on it).
    """
    thresholds = sorted({o.threshold_seconds for o in service.objectives if o.threshold_seconds is not None}) or [1.0]
    return {
        t: engine.query(
            "service_buckets", since=since, until=until, bucket="5m", latency_threshold=t, **service.selector.params()
        )
        for t in thresholds
    }


def sli_frame(
    frames: dict[float, Any], objective: Objective, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Per 5-minute bucket on a complete grid: ``requests`` (events of the SLI) and ``bad`` (budget spent)."""
    import pandas as pd

    if objective.kind == "latency":
        if objective.threshold_seconds is None:
            raise ValueError(f"objective {objective.name!r}: a latency objective needs threshold_seconds")
        b = frames[objective.threshold_seconds]
    else:
        b = next(iter(frames.values()))
    grid = slo.regular(b, start, end)
    if objective.kind == "latency":
        out = pd.DataFrame(
            {"requests": grid["latency_requests"], "bad": grid["latency_requests"] - grid["latency_good"]},
            index=grid.index,
        )
    else:
        out = pd.DataFrame(
            {"requests": grid["requests"], "bad": slo.bad_column(grid, objective.count_460)}, index=grid.index
        )
    out["errors_5xx"] = grid["errors_5xx"]
    out["elb_5xx"] = grid["elb_5xx"]
    out["target_5xx"] = grid["target_5xx"]
    return out


@dataclass
class AlertResult:
    """One burn-rate alert of one SLO, over a window (fired?) or at one instant (firing?)."""

    name: str
    severity: str
    long_seconds: int
    short_seconds: int
    threshold: float
    evaluated: bool  # False when the data is shorter than the long window
    fired: bool
    first_fired: datetime | None = None
    minutes_firing: int = 0
    long_burn: float | None = None  # worst over a window; at the instant for alerts_at
    short_burn: float | None = None


@dataclass
class SloResult:
    """One (service, objective) over its compliance window clipped to the report window."""

    service: str
    objective: str
    kind: str
    description: str
    selector: str
    window: str
    start: datetime | None
    end: datetime | None
    target: float
    requests: int
    bad: int
    achieved: float | None
    met: bool
    budget_allowed: float
    budget_remaining_fraction: float | None
    burn_rate: float | None
    worst_burn: float | None  # worst burn rate over the shortest page alert's long window (1 h by default)
    worst_burn_window_seconds: int
    worst_burn_start: datetime | None
    alerts: list[AlertResult] = field(default_factory=list)
    incidents: list[slo.Incident] = field(default_factory=list)

    @property
    def alerts_fired(self) -> list[str]:
        return [f"{a.severity} {a.name}" for a in self.alerts if a.fired]


def _burns(sf: pd.DataFrame, alert: BurnAlert, target: float) -> tuple[pd.Series, pd.Series]:
    nl, ns = int(alert.long / BUCKET), int(alert.short / BUCKET)
    err = 1.0 - target
    lr, sr = sf["requests"].rolling(nl).sum(), sf["requests"].rolling(ns).sum()
    lb = (sf["bad"].rolling(nl).sum() / lr.where(lr > 0)) / err
    sb = (sf["bad"].rolling(ns).sum() / sr.where(sr > 0)) / err
    return lb, sb


def window_alerts(sf: pd.DataFrame, alerts: tuple[BurnAlert, ...], target: float) -> list[AlertResult]:
    """Each alert evaluated at every 5-minute step whose long window lies inside the data."""
    out: list[AlertResult] = []
    for a in alerts:
        base = partial(
            AlertResult,
            name=a.name,
            severity=a.severity,
            long_seconds=int(a.long.total_seconds()),
            short_seconds=int(a.short.total_seconds()),
            threshold=a.burn_rate,
        )
        if len(sf) < int(a.long / BUCKET):
            out.append(base(evaluated=False, fired=False))
            continue
        lb, sb = _burns(sf, a, target)
        firing = (lb > a.burn_rate) & (sb > a.burn_rate)
        first = firing[firing].index.min() if firing.any() else None
        out.append(
            base(
                evaluated=True,
                fired=bool(firing.any()),
                first_fired=None if first is None else (first + BUCKET).to_pydatetime(),
                minutes_firing=int(firing.sum()) * 5,
                long_burn=None if lb.notna().sum() == 0 else float(lb.max()),
                short_burn=None if sb.notna().sum() == 0 else float(sb.max()),
            )
        )
    return out


def alerts_at(sf: pd.DataFrame, alerts: tuple[BurnAlert, ...], target: float, at: datetime) -> list[AlertResult]:
    """Each alert at the instant ``at``: burn rates over the long and short windows that end there.

    ``sf`` must be on a grid reaching ``at``; a window with no events has no burn rate and does not fire.
    A long window reaching before the first data is evaluated over the data it has (a new service pages
    on a fast burn right away rather than after three days).
    """
    import pandas as pd

    out: list[AlertResult] = []
    t = pd.Timestamp(at)
    for a in alerts:

        def burn(length: timedelta) -> float | None:
            w = sf[(sf.index >= t - length) & (cast("pd.DatetimeIndex", sf.index) + BUCKET <= t)]
            req = float(w["requests"].sum())
            return None if req <= 0 else float(w["bad"].sum()) / req / (1.0 - target)

        lb, sb = burn(a.long), burn(a.short)
        firing = lb is not None and sb is not None and lb > a.burn_rate and sb > a.burn_rate
        out.append(
            AlertResult(
                a.name,
                a.severity,
                int(a.long.total_seconds()),
                int(a.short.total_seconds()),
                a.burn_rate,
                True,
                firing,
                long_burn=lb,
                short_burn=sb,
            )
        )
    return out


def evaluate(
    frames: dict[float, Any], service: Service, objective: Objective, start: datetime | None, end: datetime | None
) -> SloResult:
    """The objective over its compliance window ending at ``end``, not before ``start`` (the report window)."""
    win_start = start
    if end is not None:
        ws = service.window.start(end)
        win_start = ws if start is None else max(start, ws)
    sf = sli_frame(frames, objective, win_start, end)
    if len(sf) and win_start is not None:
        import pandas as pd

        sf = sf[sf.index >= pd.Timestamp(win_start).floor("5min")]
    requests = int(sf["requests"].sum()) if len(sf) else 0
    bad = int(sf["bad"].sum()) if len(sf) else 0
    achieved = None if requests == 0 else (requests - bad) / requests
    allowed = (1.0 - objective.target) * requests
    pages = [a for a in service.alerts if a.severity == "page"] or list(service.alerts)
    wlen = min((a.long for a in pages), default=timedelta(hours=1))
    worst = slo.worst_window(sf, sf["bad"], wlen, objective.target) if len(sf) else None
    incidents: list[slo.Incident] = []
    if len(sf):
        incidents, _ = slo.incidents_from(
            sf["requests"], sf["bad"], sf["elb_5xx"], sf["target_5xx"], 1.0 - objective.target
        )
    return SloResult(
        service=service.name,
        objective=objective.name,
        kind=objective.kind,
        description=objective.describe(),
        selector=service.selector.describe(),
        window=service.window.describe(),
        start=win_start,
        end=end,
        target=objective.target,
        requests=requests,
        bad=bad,
        achieved=achieved,
        met=requests == 0 or (achieved is not None and achieved >= objective.target),
        budget_allowed=allowed,
        budget_remaining_fraction=None if allowed <= 0 else (allowed - bad) / allowed,
        burn_rate=None if requests == 0 else bad / requests / (1.0 - objective.target),
        worst_burn=None if worst is None else worst.burn_rate,
        worst_burn_window_seconds=int(wlen.total_seconds()),
        worst_burn_start=None if worst is None else worst.start,
        alerts=window_alerts(sf, service.alerts, objective.target) if len(sf) else [],
        incidents=incidents,
    )


def evaluate_file(
    engine: Engine, spec: SloFile, start: datetime | None, end: datetime | None, *, query_since: datetime | None = None
) -> list[SloResult]:
    """Every SLO of the file over the report window; ``query_since`` widens the read for rolling windows."""
    out: list[SloResult] = []
    for s in spec.services:
        frames = fetch(engine, s, query_since if query_since is not None else start, end)
        out += [evaluate(frames, s, o, start, end) for o in s.objectives]
    return out
