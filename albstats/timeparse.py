"""Times and durations as users write them (``7d``, ``2024-05-01T12:00Z``, ``now``, ``5m``), parsed once.

Every place that takes a time from a user goes through here: query parameters (:mod:`albstats.engines.base`),
S3 listing windows (:mod:`albstats.s3`), the CLI's ``--since``/``--until``/``--bucket``. A module of its own
because both the engines and the readers need it, and neither should import the other for it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from albstats.errors import UsageError

_REL_RE = re.compile(r"(\d+)\s*([smhdw])\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any, *, name: str = "bucket") -> int:
    """``5m``/``1h``/``1d``/``90s``/``3600`` -> whole seconds (>= 1); anything else is a UsageError naming ``name``."""
    if isinstance(value, timedelta):
        secs = value.total_seconds()
    elif isinstance(value, bool):
        secs = -1
    elif isinstance(value, int | float):
        secs = float(value)
    else:
        text = str(value).strip().lower()
        m = _REL_RE.match(text)
        if m:
            secs = int(m[1]) * _UNIT_SECONDS[m[2]]
        elif text.isdigit():
            secs = int(text)
        else:
            raise UsageError(f"--{name}: {value!r} is not a duration; use e.g. 5m, 1h or 1d")
    if secs < 1 or secs != int(secs) or secs > 366 * 86400:
        raise UsageError(f"--{name}: {value!r} must be a whole number of seconds between 1s and 366d")
    return int(secs)


def parse_time(value: Any, *, name: str = "since", now: datetime | None = None) -> datetime:
    """A UTC datetime from a datetime (naive = UTC), an ISO-8601 string, ``now`` or ``7d`` (= now - 7 days)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        return parse_time(value.to_pydatetime(), name=name)
    text = str(value).strip()
    now = now or datetime.now(UTC)
    if text.lower() == "now":
        return now
    m = _REL_RE.match(text.lower())
    if m:
        return now - timedelta(seconds=int(m[1]) * _UNIT_SECONDS[m[2]])
    try:
        dt = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise UsageError(
            f"--{name}: {value!r} is not a time; use ISO-8601 (2024-05-01T12:00Z) or a relative time like 7d, 12h, 30m"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def format_time(dt: datetime) -> str:
    """The bound form of a timestamp: ISO-8601 UTC with milliseconds, parsed by Trino's and DuckDB's ISO readers."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
