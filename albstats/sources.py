"""Where log files come from: local files, folders (in the S3 key layout), globs, stdin, and s3:// prefixes.

A :class:`Source` is one log file. Folders are walked recursively in sorted order so results are
deterministic. The ``ELBAccessLogTestFile`` control object that ELB writes when logging is enabled
is skipped inside folders.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

from albstats.errors import UsageError

#: ``..._app.my-lb.50dc6c495c0c9188_20140215T2340Z_172.160.1.192_20sg8hgm.log.gz``
KEY_RE = re.compile(
    r"(?P<conn>conn_log_)?(?P<account>\d{12})_elasticloadbalancing_(?P<region>[a-z0-9-]+)_"
    r"(?P<lb>[^_]+)_(?P<end>\d{8}T\d{4}Z)_(?P<ip>[^_]+)_(?P<rand>[^_.]+)\.log(?:\.gz)?$"
)
#: ``.../elasticloadbalancing/us-east-2/2016/05/01/`` -> the delivery day
DAY_RE = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)")
CONTROL_NAME = "ELBAccessLogTestFile"
LOG_SUFFIXES = (".log", ".log.gz", ".gz")


@dataclass(slots=True)
class Source:
    """One log file, local or remote."""

    name: str  # what messages call it: a path or an s3:// URL
    opener: Callable[[], BinaryIO]
    size: int | None = None
    etag: str | None = None  # S3 ETag (quotes removed), so caches and fetch can tell a changed object
    local_path: str | None = None  # set for local files: worker processes can open them by path

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
        m = DAY_RE.search(self.name.replace(os.sep, "/"))
        if not m:
            return None
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return None

    def open(self) -> BinaryIO:
        return self.opener()


def local_source(path: Path) -> Source:
    name = str(path)
    return Source(name, lambda p=name: open(p, "rb"), path.stat().st_size, local_path=name)


def stdin_source() -> Source:
    return Source("<stdin>", lambda: sys.stdin.buffer, None)


def _walk(folder: Path) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            if f == CONTROL_NAME or f.endswith(LOG_SUFFIXES):
                yield Path(root) / f


def expand(paths: Iterable[str | os.PathLike[str]], *, s3_options: dict | None = None,
           since: object = None, until: object = None) -> list[Source]:
    """Turn user-given paths into sources, in a stable order.

    Raises :class:`UsageError` naming the argument when a path matches nothing.
    ``s3://`` paths are listed by :mod:`albstats.s3` (only the day folders needed for since/until).
    """
    out: list[Source] = []
    for raw in paths:
        p = os.fspath(raw)
        if p == "-":
            out.append(stdin_source())
        elif p.startswith("s3://"):
            from albstats import s3

            out.extend(s3.list_sources(p, since=since, until=until, **(s3_options or {})))
        elif os.path.isdir(p):
            found = [local_source(f) for f in _walk(Path(p))]
            out.extend(s for s in found if not s.is_control)
        elif os.path.isfile(p):
            out.append(local_source(Path(p)))
        elif glob.has_magic(p):
            matches = sorted(glob.glob(p, recursive=True))
            if not matches:
                raise UsageError(f"{p}: no files match this pattern")
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    out.extend(s for s in (local_source(f) for f in _walk(mp)) if not s.is_control)
                else:
                    out.append(local_source(mp))
        else:
            raise UsageError(f"{p}: no such file or directory")
    return out
