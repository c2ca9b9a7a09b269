"""Retry policy as data, and the retry budget that keeps retries from turning an outage into a storm.

Two profiles:

- ``seed``: the original hospital setup (an nginx proxy retrying up to 5 times, 3 s apart, on any 5XX
  and on connection errors, whatever the method). Kept so its effect can be measured, not recommended:
  it retries POSTs (duplicates) and multiplies load by up to 5 when the upstream is down.
- ``recommended``: what nginx, Envoy, gRPC and the SRE book converge on: at most 3 attempts, only
  idempotent methods or requests carrying an ``Idempotency-Key``, only on failures that are safe and
  likely transient (connection errors, resets before a response, 502/503/504, per-try timeouts),
  capped exponential backoff with full jitter, ``Retry-After`` honoured within the deadline, and a
  retry budget (retries at most 20 % of requests in a sliding window, plus a small floor).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace

from albstats.errors import UsageError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """Everything that decides whether, when and how often a request is tried again."""

    name: str
    max_attempts: int = 3
    retry_statuses: frozenset[int] = frozenset({502, 503, 504})
    retry_connect_errors: bool = True  # refused, reset or closed before any response byte
    retry_timeouts: bool = True  # per-try timeout expired before response headers
    idempotent_only: bool = True  # else every method is retried (the seed setup)
    idempotent_methods: frozenset[str] = IDEMPOTENT_METHODS
    backoff_base: float = 0.1  # seconds; first retry waits up to this
    backoff_cap: float = 2.0  # seconds; no single wait longer than this
    jitter: bool = True  # full jitter: wait uniform(0, min(cap, base * 2**n))
    fixed_interval: float | None = None  # seed: exactly this long between tries, no growth, no jitter
    honour_retry_after: bool = True
    per_try_timeout: float | None = 25.0  # above the upstream's 20 s tail, so slow successes survive
    deadline: float = 55.0  # below ALB's default 60 s idle timeout
    budget_ratio: float | None = 0.2  # None: no budget
    budget_floor: int = 10  # retries always allowed per window, so low traffic can still retry
    budget_window: float = 10.0  # seconds
    max_replay_body: int = 1 << 20  # larger request bodies stream through and are never retried

    def method_retryable(self, method: str, headers: Mapping[str, str]) -> bool:
        """Replaying a non-idempotent request can do its side effect twice, unless the client gave a key."""
        if not self.idempotent_only:
            return True
        return method.upper() in self.idempotent_methods or "Idempotency-Key" in headers

    def status_retryable(self, status: int) -> bool:
        return status in self.retry_statuses

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first retry)."""
        if self.fixed_interval is not None:
            return self.fixed_interval
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (retry - 1)))
        return rng.uniform(0, ceiling) if self.jitter else ceiling

    def describe(self) -> str:
        """One line for logs and the startup banner."""
        wait = (
            f"{self.fixed_interval:g} s apart"
            if self.fixed_interval is not None
            else f"backoff {self.backoff_base:g}-{self.backoff_cap:g} s{' full jitter' if self.jitter else ''}"
        )
        budget = (
            f"budget {self.budget_ratio:.0%} of requests (+{self.budget_floor}/{self.budget_window:g} s)"
            if self.budget_ratio is not None
            else "no retry budget"
        )
        methods = "idempotent methods or Idempotency-Key" if self.idempotent_only else "all methods"
        codes = (
            "any 5XX"
            if self.retry_statuses >= frozenset(range(500, 600))
            else ",".join(str(s) for s in sorted(self.retry_statuses))
        )
        per_try = f"{self.per_try_timeout:g} s" if self.per_try_timeout else "none"
        return (
            f"{self.name}: {self.max_attempts} attempts, {methods}, on connection errors and {codes}; "
            f"{wait}; per-try timeout {per_try}, deadline {self.deadline:g} s; {budget}"
        )


PROFILES: dict[str, RetryPolicy] = {
    "seed": RetryPolicy(
        name="seed",
        max_attempts=5,
        retry_statuses=frozenset(range(500, 600)),
        idempotent_only=False,
        fixed_interval=3.0,
        jitter=False,
        honour_retry_after=False,
        per_try_timeout=30.0,
        deadline=175.0,
        budget_ratio=None,
    ),
    "recommended": RetryPolicy(name="recommended"),
}


def make_policy(profile: str = "recommended", **overrides: object) -> RetryPolicy:
    """A profile with some fields changed (None values are ignored, so CLI defaults pass straight through)."""
    if profile not in PROFILES:
        raise UsageError(f"unknown retry profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    known = {f.name for f in fields(RetryPolicy)}
    changes = {k: v for k, v in overrides.items() if v is not None}
    for k in changes:
        if k not in known:
            raise UsageError(f"unknown retry-policy setting {k!r}")
    if "retry_statuses" in changes:
        statuses = changes["retry_statuses"]
        if not isinstance(statuses, Iterable):
            raise UsageError(f"retry_statuses {statuses!r}: expected a set of HTTP status codes")
        changes["retry_statuses"] = frozenset(int(s) for s in statuses)
    pol = replace(PROFILES[profile], **changes)  # type: ignore[arg-type]
    if pol.max_attempts < 1:
        raise UsageError("--tries must be at least 1")
    if pol.deadline <= 0 or (pol.per_try_timeout is not None and pol.per_try_timeout <= 0):
        raise UsageError("--deadline and --per-try-timeout must be positive")
    if pol.budget_ratio is not None and not 0 <= pol.budget_ratio <= 10:
        raise UsageError("--retry-budget is a ratio of retries to requests, e.g. 0.2")
    return pol


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class RetryBudget:
    """Finagle/Envoy-style budget: retries in the last ``window`` seconds may not exceed
    ``floor + ratio * requests`` in that window. When the upstream is dead every request fails, and
    without this each one would be tried ``max_attempts`` times: load x3 exactly when it hurts most.
    """

    ratio: float | None
    floor: int = 10
    window: float = 10.0
    _requests: deque[float] = field(default_factory=deque)
    _retries: deque[float] = field(default_factory=deque)
    refusals: int = 0

    def _trim(self, now: float) -> None:
        cut = now - self.window
        while self._requests and self._requests[0] < cut:
            self._requests.popleft()
        while self._retries and self._retries[0] < cut:
            self._retries.popleft()

    def record_request(self, now: float | None = None) -> None:
        if self.ratio is None:  # no budget: nothing reads the window
            return
        now = time.monotonic() if now is None else now
        # this runs per request: only the requests' window here, the retries' is trimmed where read
        requests, cut = self._requests, now - self.window
        while requests and requests[0] < cut:
            requests.popleft()
        requests.append(now)

    def allowed(self, now: float | None = None) -> float:
        """How many retries the window allows in total right now."""
        if self.ratio is None:
            return float("inf")
        now = time.monotonic() if now is None else now
        self._trim(now)
        return self.floor + self.ratio * len(self._requests)

    def try_acquire(self, now: float | None = None) -> bool:
        """Take one retry from the budget; False (and a refusal counted) when it is spent."""
        if self.ratio is None:
            return True
        now = time.monotonic() if now is None else now
        if len(self._retries) + 1 > self.allowed(now):
            self.refusals += 1
            return False
        self._retries.append(now)
        return True
