"""S3 clients, AWS errors in one line, and one object read reliably (the "Faults" of :mod:`albstats.s3`).

Why a module of its own: every AWS caller (S3 reads, fetch, the Athena engine, compaction) needs the
same client settings and the same one-line errors; the reader that survives broken bodies is the
one piece of S3 I/O with its own retry logic.
"""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Callable
from typing import Any

from albstats.errors import AwsError, UsageError

DEFAULT_WORKERS = 8
#: Attempts per request (botocore's retries) and per object body, unless AWS_MAX_ATTEMPTS says otherwise.
DEFAULT_MAX_ATTEMPTS = 8
#: First delay before a broken body is read again; doubled each attempt (with jitter), at most BODY_RETRY_MAX.
BODY_RETRY_BASE = 0.5
BODY_RETRY_MAX = 20.0


def aws_error(exc: BaseException, context: str) -> AwsError:
    """An AwsError with AWS's own code and message (or botocore's reason), prefixed by what was being done."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError, ProfileNotFound

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code") or "Error"
        msg = err.get("Message") or ""
        if code in ("404", "NoSuchKey") and not msg:
            msg = "Not Found"
        if code == "403" and not msg:
            code, msg = "AccessDenied", "Forbidden"
        return AwsError(f"{context}: {code}: {msg}".rstrip(": "))
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AwsError(
            f"{context}: no AWS credentials found; use --profile, AWS_PROFILE or "
            f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, ProfileNotFound):
        return AwsError(f"{context}: {exc}")
    return AwsError(f"{context}: {type(exc).__name__}: {exc}")


def session(profile: str | None = None, region: str | None = None) -> Any:
    """A boto3 session from the standard chain; a missing profile is an AwsError naming it."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.session.Session(profile_name=profile or None, region_name=region or None)
    except ProfileNotFound as e:
        raise AwsError(f"--profile {profile}: {e}") from None


def client(
    service: str,
    *,
    profile: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    max_pool: int = DEFAULT_WORKERS * 2,
) -> Any:
    """A boto3 client with adaptive retries (throttling backs off) and a pool big enough for our threads."""
    from botocore.config import Config

    cfg = Config(retries={"total_max_attempts": max_attempts(), "mode": "adaptive"}, max_pool_connections=max_pool)
    try:
        return session(profile, region).client(service, endpoint_url=endpoint_url or None, config=cfg)
    except Exception as e:  # NoRegionError and friends
        if isinstance(e, AwsError):
            raise
        raise aws_error(e, f"{service} client") from None


def max_attempts() -> int:
    """Attempts per S3 request and per object body: ``AWS_MAX_ATTEMPTS`` (the AWS CLI's variable) or 8."""
    v = os.environ.get("AWS_MAX_ATTEMPTS")
    if not v:
        return DEFAULT_MAX_ATTEMPTS
    try:
        n = int(v)
    except ValueError:
        n = 0
    if not 1 <= n <= 100:
        raise UsageError(f"AWS_MAX_ATTEMPTS={v!r} is not a number of attempts between 1 and 100")
    return n


def attempts_note(exc: BaseException) -> str:
    """`` (gave up after N attempts)`` when botocore retried the request, else ``""``."""
    meta = getattr(exc, "response", None) or {}
    n = (meta.get("ResponseMetadata") or {}).get("RetryAttempts") or 0
    return f" (gave up after {n + 1} attempts)" if n else ""


class ObjectReader(io.RawIOBase):
    """One S3 object as a binary file that survives a body broken mid-stream (see "Faults" above).

    Why: botocore retries a request whose answer is an error, but not a body that stops halfway;
    before, a reset connection surfaced as a damaged gzip (an OSError) or a traceback.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        etag: str = "",
        *,
        attempts: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.s3, self.bucket, self.key, self.etag = s3, bucket, key, etag
        self.attempts = attempts or max_attempts()
        self.sleep = sleep
        self.pos = 0
        self.retries = 0  # bodies read again after a break (for tests and messages)
        self._body: Any = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        kw: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.pos:
            kw["Range"] = f"bytes={self.pos}-"
        if self.etag:
            kw["IfMatch"] = f'"{self.etag}"'
        try:
            self._body = self.s3.get_object(**kw)["Body"]
        except Exception as e:
            raise aws_error(e, f"reading {self.url}{attempts_note(e)}") from None

    def _drop(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            try:
                body.close()
            except Exception:  # noqa: BLE001 - the connection is broken already
                pass

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        want = None if size is None or size < 0 else size
        if want == 0:
            return b""
        for attempt in range(1, self.attempts + 1):
            if self._body is None:
                self._open()  # AWS's own errors (after botocore's retries) end the read here
            try:
                data = self._body.read(want)
            except Exception as e:
                if isinstance(e, AwsError):
                    raise
                self._drop()
                if attempt >= self.attempts:
                    raise AwsError(
                        f"reading {self.url}: the connection broke after {self.pos} bytes "
                        f"(gave up after {attempt} attempts): {_reason(e)}"
                    ) from None
                self.retries += 1
                delay = min(BODY_RETRY_MAX, BODY_RETRY_BASE * 2 ** (attempt - 1))
                self.sleep(delay * (0.5 + random.random() / 2))
                continue
            self.pos += len(data)
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._drop()
        super().close()


def _reason(exc: BaseException) -> str:
    """One line: the exception's own text (botocore and urllib3 messages can span lines)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
