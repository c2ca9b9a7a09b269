"""``albstats check``: the SLO file's burn-rate alerts evaluated now, for a cron every 5 minutes.

Each run evaluates every alert of every SLO at one instant (the end of the newest data, or
``--now``), compares with the state file, and posts to the webhook only the alerts that started
firing or resolved since the last run. Silence must never mean "fine", so a lack of new log data is
an alert of its own (``no-data``, severity page), and the exit code is 3 while any page alert fires.

Why a state file and a lock: two cron runs can overlap (a slow S3 listing); without a lock both
would see the same transition and post it twice. The run holds an exclusive ``flock`` on
``STATE.lock`` from reading the state to writing it, and the state is replaced atomically (a
temporary file renamed over it), so a crash or a signal leaves the old state or the new one, never a
torn file. When the webhook fails, the state keeps the old status for those alerts, so the next
run posts them again instead of losing them.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albstats import service_slo
from albstats.errors import AlbstatsError, UsageError
from albstats.objectives import SloFile

if TYPE_CHECKING:  # pragma: no cover
    from albstats.engines.base import Engine

STATE_VERSION = 1
NO_DATA_KEY = "albstats/no-data"


@dataclass
class AlertNow:
    """One alert at the evaluation instant."""

    key: str  # service/objective/alert-name, or albstats/no-data
    service: str
    objective: str
    alert: str
    severity: str
    firing: bool
    summary: str  # one line a person reads in the chat channel


@dataclass
class Transition:
    key: str
    status: str  # "firing" or "resolved"
    alert: AlertNow


@dataclass
class CheckResult:
    at: datetime
    newest_request: datetime | None
    alerts: list[AlertNow]
    transitions: list[Transition] = field(default_factory=list)
    posted: bool = False

    @property
    def paging(self) -> list[AlertNow]:
        return [a for a in self.alerts if a.firing and a.severity == "page"]


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ceil5(dt: datetime) -> datetime:
    """The end of the 5-minute bucket holding ``dt`` (a bucket boundary stays itself)."""
    base = dt.astimezone(UTC).replace(second=0, microsecond=0)
    base -= timedelta(minutes=base.minute % 5)
    return base if base == dt else base + timedelta(minutes=5)


def evaluate(
    engine: Engine, spec: SloFile, *, now: datetime | None = None, wall_clock: datetime | None = None
) -> CheckResult:
    """Every alert at ``now`` (default: the end of the newest data's 5-minute bucket).

    ``no-data`` fires when the newest request before ``now`` (or before the wall clock when ``now`` is
    not given) is older than the file's ``noData`` limit.
    """
    longest = max((a.long for s in spec.services for a in s.alerts), default=timedelta(hours=1))
    # Athena bills by bytes scanned: look for the newest request only as far back as an alert can see
    reach = None
    if engine.name == "athena":
        reach = (now or wall_clock or datetime.now(UTC)) - longest - spec.no_data - timedelta(days=1)
    span = engine.query("data_span", since=reach, until=now)
    last = span["last_request"].iloc[0] if len(span) else None
    newest = None if last is None or last != last else last.to_pydatetime()
    reference = now or wall_clock or datetime.now(UTC)
    at = now if now is not None else (_ceil5(newest) if newest is not None else reference)
    alerts: list[AlertNow] = []
    age = None if newest is None else reference - newest
    stale = newest is None or age is None or age > spec.no_data
    mins = int(spec.no_data.total_seconds() // 60)
    alerts.append(
        AlertNow(
            NO_DATA_KEY,
            "",
            "",
            "no-data",
            "page",
            stale,
            "no log data at all"
            if newest is None
            else f"no new log file for {mins} minutes: newest request {_iso(newest)} "
            f"({int(age.total_seconds() // 60) if age is not None else '?'} minutes before {_iso(reference)})",
        )
    )
    since = at - longest - service_slo.BUCKET
    for s in spec.services:
        frames = service_slo.fetch(engine, s, since, at)
        for o in s.objectives:
            sf = service_slo.sli_frame(frames, o, since, at)
            for a in service_slo.alerts_at(sf, s.alerts, o.target, at):
                burn = "n/a" if a.long_burn is None else f"{a.long_burn:.1f}"
                sburn = "n/a" if a.short_burn is None else f"{a.short_burn:.1f}"
                alerts.append(
                    AlertNow(
                        f"{s.name}/{o.name}/{a.name}",
                        s.name,
                        o.name,
                        a.name,
                        a.severity,
                        a.fired,
                        f"{s.name} {o.name} ({o.describe()}): burn rate {burn} over {_dur(a.long_seconds)} and "
                        f"{sburn} over {_dur(a.short_seconds)}, threshold {a.threshold:g}",
                    )
                )
    return CheckResult(at, newest, alerts)


def _dur(seconds: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


# --- state --------------------------------------------------------------------------------------


class StateError(AlbstatsError):
    """The state file cannot be read or locked."""


def _read_state(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"version": STATE_VERSION, "alerts": {}}
    except OSError as e:
        raise StateError(f"--state {path}: {e.strerror}") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("alerts"), dict):
            raise ValueError("no 'alerts' object")
    except ValueError as e:
        raise StateError(
            f"--state {path}: not a state file written by albstats check ({e}); move it away to start afresh"
        ) from None
    return data


def _write_state(path: Path, data: dict[str, Any]) -> None:
    from albstats.output import atomic_path

    with atomic_path(path, "--state") as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


class _Lock:
    """An exclusive flock on ``STATE.lock``, waited for at most ``timeout`` seconds."""

    def __init__(self, state: Path, timeout: float) -> None:
        self.path = state.with_name(state.name + ".lock")
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise StateError(
                        f"--state {self.path.with_suffix('')}: another albstats check still holds "
                        f"{self.path.name} after {self.timeout:g} s"
                    ) from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def message(transitions: list[Transition], at: datetime) -> str:
    """The text posted to the webhook: one line per alert that changed."""
    lines = [f"albstats check at {_iso(at)}:"]
    for t in transitions:
        a = t.alert
        word = "FIRING" if t.status == "firing" else "RESOLVED"
        lines.append(f"[{word}] {a.severity} {a.key}: {a.summary}")
    return "\n".join(lines)


def run(
    connect: Any,
    spec: SloFile,
    *,
    state: str | os.PathLike[str],
    webhook: str | None,
    now: datetime | None = None,
    lock_timeout: float = 120.0,
    webhook_attempts: int = 3,
    webhook_timeout: float = 10.0,
) -> CheckResult:
    """Evaluate, compare with ``state``, post the transitions, save the state (all under the lock)."""
    from albstats.weekly import post_webhook

    state_path = Path(state)
    if state_path.is_dir():
        raise UsageError(f"--state {state}: is a folder; give a file name such as {state}/check-state.json")
    with _Lock(state_path, lock_timeout):
        old = _read_state(state_path)
        with connect() as eng:
            res = evaluate(eng, spec, now=now)
        prev: dict[str, Any] = old.get("alerts", {})
        new_alerts: dict[str, Any] = {}
        for a in res.alerts:
            was = bool(prev.get(a.key, {}).get("firing", False))
            if a.firing != was:
                res.transitions.append(Transition(a.key, "firing" if a.firing else "resolved", a))
            since = prev.get(a.key, {}).get("since") if a.firing == was else _iso(res.at)
            new_alerts[a.key] = {"firing": a.firing, "severity": a.severity, "since": since, "summary": a.summary}
        if res.transitions and webhook:
            text = message(res.transitions, res.at)
            body = {
                "text": text,
                "alerts": [
                    {
                        "key": t.key,
                        "status": t.status,
                        "severity": t.alert.severity,
                        "service": t.alert.service,
                        "objective": t.alert.objective,
                        "alert": t.alert.alert,
                        "summary": t.alert.summary,
                        "at": _iso(res.at),
                    }
                    for t in res.transitions
                ],
            }
            post_webhook(
                webhook,
                text,
                attempts=webhook_attempts,
                timeout=webhook_timeout,
                payload=body,
                user_agent="albstats-check",
            )
            res.posted = True
        _write_state(
            state_path,
            {
                "version": STATE_VERSION,
                "evaluated_at": _iso(res.at),
                "newest_request": _iso(res.newest_request),
                "alerts": new_alerts,
            },
        )
    return res
