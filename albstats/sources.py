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
from functools import partial
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
    st = path.stat()
    return _stat_source(name, st)


def _open_binary(name: str) -> BinaryIO:
    """A module-level opener, so a local Source pickles (worker processes receive them)."""
    return open(name, "rb")


def _stat_source(name: str, st: os.stat_result) -> Source:
    return Source(name, partial(_open_binary, name), st.st_size, local_path=name, mtime_ns=st.st_mtime_ns)


def stdin_source() -> Source:
    return Source("<stdin>", lambda: sys.stdin.buffer, None)


def _walk_sources(folder: str | os.PathLike[str]) -> list[Source]:
    """The log files under ``folder`` as sources, in the order ``os.walk`` gives with sorted names (a
    folder's files, then its subfolders, recursively; symlinked folders not followed, unreadable ones
    skipped; ``ELBAccessLogTestFile`` left out). One ``os.scandir`` per folder and one stat per file
    (the size and mtime the cache keys on); names are spelled as ``pathlib`` joins them."""
    base = str(Path(folder))
    out: list[Source] = []

    def walk(path: str, prefix: str) -> None:
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:
            return
        files: list[os.DirEntry[str]] = []
        dirs: list[str] = []
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                try:
                    if not e.is_symlink():
                        dirs.append(e.name)
                except OSError:
                    pass
            elif e.name.endswith(LOG_SUFFIXES):
                files.append(e)
        for f in sorted(files, key=lambda e: e.name):
            out.append(_stat_source(prefix + f.name, f.stat()))
        for d in sorted(dirs):
            walk(prefix + d, prefix + d + os.sep)

    walk(base, "" if base == "." else base if base.endswith(os.sep) else base + os.sep)
    return out


def expand(
    paths: Iterable[str | os.PathLike[str]],
    *,
    s3_options: dict | None = None,
    since: object = None,
    until: object = None,
) -> list[Source]:
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
            out.extend(_walk_sources(p))
        elif os.path.isfile(p):
            out.append(local_source(Path(p)))
        elif glob.has_magic(p):
            matches = sorted(glob.glob(p, recursive=True))
            if not matches:
                raise UsageError(f"{p}: no files match this pattern")
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    out.extend(_walk_sources(mp))
                else:
                    out.append(local_source(mp))
        else:
            raise UsageError(f"{p}: no such file or directory")
    return out
