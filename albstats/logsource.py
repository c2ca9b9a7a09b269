"""The :class:`Source` type, one log file local or remote, and what ALB log file names look like.

A module of its own so that :mod:`albstats.s3` (which lists S3 sources) and :mod:`albstats.sources` (which
turns user paths, ``s3://`` ones included, into sources) share it without importing each other both ways.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO

#: ``..._app.my-lb.50dc6c495c0c9188_20140215T2340Z_172.160.1.192_20sg8hgm.log.gz``
KEY_RE = re.compile(
    r"(?P<conn>conn_log_)?(?P<account>\d{12})_elasticloadbalancing_(?P<region>[a-z0-9-]+)_"
    r"(?P<lb>[^_]+)_(?P<end>\d{8}T\d{4}Z)_(?P<ip>[^_]+)_(?P<rand>[^_.]+)\.log(?:\.gz)?$"
)
#: ``.../elasticloadbalancing/us-east-2/2016/05/01/`` -> the delivery day
DAY_RE = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)")
CONTROL_NAME = "ELBAccessLogTestFile"
LOG_SUFFIXES = (".log", ".log.gz", ".gz")


def key_day(key: str) -> date | None:
    """The yyyy/mm/dd folder of an S3 key or ``/``-separated path (the delivery date), if it has one."""
    m = DAY_RE.search(key)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


@dataclass(slots=True)
class Source:
    """One log file, local or remote."""

    name: str  # what messages call it: a path or an s3:// URL
    opener: Callable[[], BinaryIO]
    size: int | None = None
    etag: str | None = None  # S3 ETag (quotes removed), so caches and fetch can tell a changed object
    local_path: str | None = None  # set for local files: worker processes can open them by path
    mtime_ns: int | None = None  # local files: modification time from the listing's stat (the cache key)

    @property
    def basename(self) -> str:
        return self.name.rstrip("/").rsplit("/", 1)[-1]

    @property
    def is_gzip(self) -> bool:
        return self.name.endswith(".gz")

    @property
    def is_connection_log(self) -> bool:
        return self.basename.startswith("conn_log_")

    @property
    def is_control(self) -> bool:
        return self.basename == CONTROL_NAME

    @property
    def delivery_day(self) -> date | None:
        """The yyyy/mm/dd folder the file sits in (the delivery date), if it is in the S3 key layout."""
        return key_day(self.name.replace(os.sep, "/"))

    def open(self) -> BinaryIO:
        return self.opener()
