"""Where log files come from: local files, folders (in the S3 key layout), globs, stdin, and s3:// prefixes.

A :class:`Source` is one log file. Folders are walked recursively in sorted order so results are
deterministic. The ``ELBAccessLogTestFile`` control object that ELB writes when logging is enabled
is skipped inside folders.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import BinaryIO

from albstats.errors import UsageError
from albstats.logsource import CONTROL_NAME, DAY_RE, KEY_RE, LOG_SUFFIXES, Source

__all__ = ["CONTROL_NAME", "DAY_RE", "KEY_RE", "LOG_SUFFIXES", "Source", "expand", "local_source", "stdin_source"]


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
