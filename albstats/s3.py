"""ALB logs straight from S3: list only the day folders a time window needs, stream objects, mirror them.

ALB writes ``bucket[/prefix]/AWSLogs/<account>/elasticloadbalancing/<region>/yyyy/mm/dd/<file>.log.gz``
where ``yyyy/mm/dd`` is the *delivery* date (the end of the 5-minute interval). With ``since/until``
only the folders from the day of ``since`` to the day after ``until`` are listed (a row from 23:58
sits in the next day's folder), so a query over one day of a year-old bucket lists two folders, not
the bucket. Account and region folders below the given prefix are discovered with delimiter listings;
a prefix that is not in the ALB layout is listed in full and filtered by the ``yyyy/mm/dd`` in the key.

Credentials and region come from the standard boto3 chain (``--profile``, ``AWS_PROFILE``,
``AWS_ACCESS_KEY_ID``..., instance roles); ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` point at an
S3-compatible endpoint. AWS errors become :class:`~albstats.errors.AwsError` carrying AWS's code and
message; nothing secret is printed.

Objects are streamed (botocore's ``StreamingBody`` is file-like). When the reader opens files one
after the other, the next few are downloaded in the background into spooled temporary files, so
reading overlaps the network without memory growing with file size.

Faults (:mod:`albstats.s3_client`). GetObject answered with ``SlowDown`` or a 5xx is retried by botocore (adaptive mode,
``AWS_MAX_ATTEMPTS`` attempts, default 8, with exponential backoff). A body that breaks in the
middle (connection reset, cut short) is picked up where it stopped with a ranged GetObject
(``Range: bytes=N-``, ``If-Match`` the listed ETag, so a replaced object is an error, not a mix of
two), with exponential backoff and jitter, up to the same number of attempts. Then the read fails
with one :class:`~albstats.errors.AwsError` naming ``s3://bucket/key`` and AWS's own code and
message (or the connection's error when AWS sent none).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from albstats import progress
from albstats.errors import AwsError, UsageError
from albstats.logsource import CONTROL_NAME, LOG_SUFFIXES, Source, key_day
from albstats.s3_client import DEFAULT_WORKERS, ObjectReader, attempts_note, aws_error, client

#: ``.../AWSLogs/<account>/elasticloadbalancing/<region>/`` inside a key or prefix.
LAYOUT_RE = re.compile(
    r"(?:^|/)AWSLogs/(?P<account>\d{12})(?:/(?P<service>elasticloadbalancing)(?:/(?P<region>[a-z0-9-]+))?)?/?"
)
#: Listing more day folders than this per region switches to month folders (filtered by day).
MAX_DAY_PREFIXES = 62
PREFETCH = 4
#: Objects up to this size are prefetched in memory, larger ones spill to a temporary file.
SPOOL_BYTES = 8 << 20
MANIFEST_NAME = ".albstats-fetch.json"


# --- URLs (clients, errors and object reads: albstats.s3_client) ---------------------------------


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without a leading slash)."""
    m = re.match(r"s3://([^/]+)/?(.*)\Z", url, re.DOTALL)
    if not m or not m[1]:
        raise UsageError(f"{url}: not an s3://bucket/prefix URL")
    return m[1], m[2]


# --- which prefixes to list -------------------------------------------------------------------


def _day_range(since: datetime | None, until: datetime | None, today: date) -> tuple[date | None, date | None]:
    """The delivery days that can hold rows with ``since <= time < until``: until's day plus one."""
    first = since.astimezone(UTC).date() if since else None
    last = None
    if until is not None:
        last = (until.astimezone(UTC) - timedelta(microseconds=1)).date() + timedelta(days=1)
    elif since is not None:
        last = today + timedelta(days=1)
    return first, last


def _as_datetime(v: Any, name: str) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    from albstats.timeparse import parse_time

    return parse_time(v, name=name)


def day_prefixes(root: str, first: date, last: date) -> list[tuple[str, Callable[[date], bool] | None]]:
    """Prefixes under a region root covering ``first..last``: day folders, or month folders plus a day filter."""
    days = (last - first).days + 1
    if days <= 0:
        return []
    if days <= MAX_DAY_PREFIXES:
        return [(f"{root}{(first + timedelta(d)).strftime('%Y/%m/%d')}/", None) for d in range(days)]
    out: list[tuple[str, Callable[[date], bool] | None]] = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append((f"{root}{y:04d}/{m:02d}/", lambda d: first <= d <= last))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


@dataclass
class _Lister:
    s3: Any
    bucket: str
    url: str

    def children(self, prefix: str) -> list[str]:
        """Sub-folders of ``prefix`` (delimiter listing)."""
        out: list[str] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            ):
                out.extend(cp["Prefix"] for cp in page.get("CommonPrefixes", []))
        except Exception as e:
            raise aws_error(e, f"listing s3://{self.bucket}/{prefix}{attempts_note(e)}") from None
        return out

    def objects(self, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                out.extend(page.get("Contents", []))
        except Exception as e:
            raise aws_error(e, f"listing s3://{self.bucket}/{prefix}{attempts_note(e)}") from None
        return out

    def region_roots(self, prefix: str) -> list[str] | None:
        """``.../AWSLogs/<acct>/elasticloadbalancing/<region>/`` folders at or below ``prefix``, or None
        when ``prefix`` is below the region level or not in the ALB layout."""
        m = LAYOUT_RE.search(prefix)
        if m is None:
            base = prefix if (prefix == "" or prefix.endswith("/")) else prefix + "/"
            if not any(c == base + "AWSLogs/" for c in self.children(base)):
                return None
            accounts = [c for c in self.children(base + "AWSLogs/") if re.search(r"/\d{12}/\Z", c)]
            return [r for a in accounts for r in self.children(a + "elasticloadbalancing/")]
        rest = prefix[m.end() :]
        if m["region"]:
            return [prefix[: m.end()].rstrip("/") + "/"] if not rest else None
        if rest:
            return None
        acct_root = prefix[: m.end()].rstrip("/") + "/"
        if m["service"]:
            return self.children(acct_root)
        return self.children(acct_root + "elasticloadbalancing/")


def _wanted(key: str) -> bool:
    base = key.rsplit("/", 1)[-1]
    return base != CONTROL_NAME and base.endswith(LOG_SUFFIXES)


@dataclass
class S3Object:
    """One listed object (what fetch and sources need)."""

    key: str
    size: int
    etag: str


def list_objects(
    url: str,
    *,
    since: Any = None,
    until: Any = None,
    profile: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    max_workers: int = DEFAULT_WORKERS,
    quiet: bool = True,
    s3: Any = None,
    today: date | None = None,
) -> tuple[Any, str, list[S3Object]]:
    """List the log objects under ``url`` that a ``since``/``until`` window needs; (client, bucket, objects)."""
    bucket, prefix = parse_url(url)
    s3 = s3 or client("s3", profile=profile, region=region, endpoint_url=endpoint_url, max_pool=max_workers * 2)
    t_since, t_until = _as_datetime(since, "since"), _as_datetime(until, "until")
    first, last = _day_range(t_since, t_until, today or datetime.now(UTC).date())
    lister = _Lister(s3, bucket, url)
    roots = lister.region_roots(prefix)
    jobs: list[tuple[str, Callable[[date], bool] | None]] = []
    if roots is not None and first is not None and last is not None:
        for root in roots:
            jobs.extend(day_prefixes(root, first, last))
    else:
        # whole prefix (or each region root); day filter applied to the keys when a window is given
        def in_window(d: date) -> bool:
            return (first is None or d >= first) and (last is None or d <= last)

        filt: Callable[[date], bool] | None = in_window if (first or last) else None
        jobs = [(r, filt) for r in roots] if roots is not None else [(prefix, filt)]
    found: list[S3Object] = []
    with progress.bar(f"listing {url}", total=len(jobs), quiet=quiet) as tick:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(jobs) or 1))) as pool:
            futures = [(pool.submit(lister.objects, p), filt) for p, filt in jobs]
            for fut, filt in futures:
                for o in fut.result():
                    key = o["Key"]
                    if not _wanted(key):
                        continue
                    if filt is not None:
                        d = key_day(key)
                        if d is None or not filt(d):
                            continue
                    found.append(S3Object(key, int(o.get("Size", 0)), str(o.get("ETag", "")).strip('"')))
                tick.advance(1, objects=len(found))
    if not found and roots is None and prefix and not prefix.endswith("/") and first is None and last is None:
        # maybe the URL names one object
        try:
            head = s3.head_object(Bucket=bucket, Key=prefix)
            found.append(S3Object(prefix, int(head["ContentLength"]), str(head.get("ETag", "")).strip('"')))
        except Exception as e:
            from botocore.exceptions import ClientError

            if not (isinstance(e, ClientError) and e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey")):
                raise aws_error(e, f"reading {url}{attempts_note(e)}") from None
    if not found:
        try:
            probe = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except Exception as e:
            raise aws_error(e, f"listing {url}{attempts_note(e)}") from None
        if not probe.get("KeyCount") and not probe.get("Contents"):
            raise UsageError(f"{url}: no objects under this S3 prefix")
    found.sort(key=lambda o: o.key)
    return s3, bucket, found


# --- sources for the local engine ---------------------------------------------------------------


class _Prefetcher:
    """Downloads the next few objects while the reader parses the current one (only on sequential reads)."""

    def __init__(self, s3: Any, bucket: str, objects: list[S3Object], ahead: int, workers: int) -> None:
        self.s3, self.bucket, self.objects, self.ahead = s3, bucket, objects, ahead
        self.workers = workers
        self.pool: ThreadPoolExecutor | None = None
        self.futures: dict[int, Future[BinaryIO]] = {}
        self.last_opened = -2
        self.lock = threading.Lock()

    def _download(self, i: int) -> BinaryIO:
        o = self.objects[i]
        buf = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        try:
            with ObjectReader(self.s3, self.bucket, o.key, o.etag) as body:
                while chunk := body.read(1 << 20):
                    buf.write(chunk)
        except BaseException as e:
            buf.close()
            if isinstance(e, AwsError):
                raise
            raise aws_error(e, f"reading s3://{self.bucket}/{o.key}") from None
        buf.seek(0)
        return buf  # type: ignore[return-value]

    def _stream(self, i: int) -> BinaryIO:
        o = self.objects[i]
        reader = ObjectReader(self.s3, self.bucket, o.key, o.etag)
        reader._open()  # a missing object or AWS's refusal shows when the file is opened
        return reader  # type: ignore[return-value]

    def open(self, i: int) -> BinaryIO:
        with self.lock:
            sequential = i == self.last_opened + 1
            self.last_opened = i
            fut = self.futures.pop(i, None)
            if sequential and self.ahead > 0:
                if self.pool is None:
                    self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="albstats-s3")
                for j in range(i + 1, min(i + 1 + self.ahead, len(self.objects))):
                    if j not in self.futures:
                        self.futures[j] = self.pool.submit(self._download, j)
        if fut is not None:
            return fut.result()
        return self._stream(i)


def list_sources(
    url: str,
    since: Any = None,
    until: Any = None,
    *,
    profile: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    max_workers: int = DEFAULT_WORKERS,
    prefetch: int = PREFETCH,
    quiet: bool = True,
    **_ignored: Any,
) -> list[Source]:
    """Sources for the log objects under ``s3://bucket/prefix`` that ``since``/``until`` need.

    Each :class:`~albstats.sources.Source` carries the object's size and ETag; opening it streams the
    object (or hands over a background download when files are read in order).
    """
    s3, bucket, objects = list_objects(
        url,
        since=since,
        until=until,
        profile=profile,
        region=region,
        endpoint_url=endpoint_url,
        max_workers=max_workers,
        quiet=quiet,
    )
    pre = _Prefetcher(s3, bucket, objects, prefetch, max(1, min(max_workers, prefetch)))
    return [Source(f"s3://{bucket}/{o.key}", partial(pre.open, i), o.size, o.etag) for i, o in enumerate(objects)]


# --- fetch: mirror raw files locally ----------------------------------------------------------


@dataclass
class FetchSummary:
    """What ``albstats fetch`` did."""

    out_dir: str
    listed: int = 0
    downloaded: int = 0
    skipped: int = 0  # already present with the same size and ETag
    bytes: int = 0
    failed: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.listed} objects listed, {self.downloaded} downloaded ({self.bytes / 1e6:.1f} MB), "
            f"{self.skipped} already present, into {self.out_dir}"
        )


def _load_manifest(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged manifest only costs a re-download
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _write_manifest(path: Path, url: str, files: dict[str, dict[str, Any]]) -> None:
    """Atomically: a crash leaves the old manifest or the new one, never half of one."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"source": url, "files": files}, indent=0, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _relative(prefix: str, key: str) -> str:
    """The local path of ``key`` below the URL's prefix (a folder; a URL naming one object keeps its name)."""
    base = prefix.strip("/") + "/" if prefix.strip("/") else ""
    rel = key[len(base) :] if key.startswith(base) else key.rsplit("/", 1)[-1]
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise AwsError(f"s3 key {key!r} cannot be mirrored safely as a local path")
    return "/".join(parts)


def fetch(
    url: str,
    out_dir: str | os.PathLike[str],
    *,
    since: Any = None,
    until: Any = None,
    profile: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    max_workers: int = DEFAULT_WORKERS,
    quiet: bool = False,
) -> FetchSummary:
    """Mirror the log objects a window needs into ``out_dir``, keeping their layout below the URL's prefix.

    Resumable: a file already present with the size and ETag recorded in ``out_dir/.albstats-fetch.json``
    is skipped. Each file is written to ``NAME.part`` and renamed when complete; the manifest is
    rewritten atomically as files complete, and once more at the end or on Ctrl-C.
    """
    out = Path(out_dir)
    s3, bucket, objects = list_objects(
        url,
        since=since,
        until=until,
        profile=profile,
        region=region,
        endpoint_url=endpoint_url,
        max_workers=max_workers,
        quiet=quiet,
    )
    _, prefix = parse_url(url)
    out.mkdir(parents=True, exist_ok=True)
    mpath = out / MANIFEST_NAME
    manifest = _load_manifest(mpath)
    summary = FetchSummary(str(out), listed=len(objects))
    todo: list[tuple[S3Object, str]] = []
    for o in objects:
        rel = _relative(prefix, o.key)
        local = out / rel
        rec = manifest.get(rel)
        if (
            rec
            and rec.get("etag") == o.etag
            and rec.get("size") == o.size
            and local.is_file()
            and local.stat().st_size == o.size
        ):
            summary.skipped += 1
        else:
            todo.append((o, rel))
    lock = threading.Lock()

    def one(o: S3Object, rel: str) -> int:
        local = out / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(local.name + ".part")
        try:
            n = 0
            with ObjectReader(s3, bucket, o.key, o.etag) as body, open(part, "wb") as f:
                while chunk := body.read(1 << 20):
                    f.write(chunk)
                    n += len(chunk)
        except BaseException as e:
            part.unlink(missing_ok=True)
            if isinstance(e, KeyboardInterrupt | AwsError):
                raise
            raise aws_error(e, f"downloading s3://{bucket}/{o.key}") from None
        if n != o.size:
            part.unlink(missing_ok=True)
            raise AwsError(f"downloading s3://{bucket}/{o.key}: got {n} bytes, expected {o.size}")
        os.replace(part, local)
        with lock:
            manifest[rel] = {"etag": o.etag, "size": o.size}
        return n

    errors: list[AwsError] = []
    pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="albstats-fetch")
    try:
        with progress.bar("fetching", total=len(todo), quiet=quiet) as tick:
            futs = [pool.submit(one, o, rel) for o, rel in todo]
            for i, fut in enumerate(futs):
                try:
                    summary.bytes += fut.result()
                    summary.downloaded += 1
                except AwsError as e:
                    errors.append(e)
                    summary.failed.append(str(e))
                tick.advance(1, MB=f"{summary.bytes / 1e6:.1f}")
                if i % 50 == 49:
                    with lock:
                        _write_manifest(mpath, url, dict(manifest))
    finally:
        # on Ctrl-C: drop the queued downloads; the running ones finish their file (or remove their .part)
        pool.shutdown(wait=True, cancel_futures=True)
        with lock:
            _write_manifest(mpath, url, dict(manifest))
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise AwsError(f"{errors[0]}{more}; {summary.downloaded} files were fetched, run again to resume")
    return summary


def keys_of(sources: Iterable[Source]) -> list[str]:
    """The S3 keys of sources (for messages and tests)."""
    return [parse_url(s.name)[1] for s in sources if s.name.startswith("s3://")]
