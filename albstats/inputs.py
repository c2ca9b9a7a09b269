"""How albstats speaks about the user's input: sources as given, "no log files", damaged input.

Why a module of its own: ``report``, ``weekly``, ``parse`` and ``query`` must say the same thing in
the same words when there is nothing to read or when part of the input was damaged, skipped or
malformed, and under cron that message is all a user gets. Keeping it here (no pandas, no parser
import) lets the fast CLI paths use it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

#: The file names a folder is searched for (albstats.sources.LOG_SUFFIXES), for messages.
LOG_NAMES = "*.log, *.log.gz, *.gz"
#: How many sources, files or lines a one-line message names before "and N more".
FIRST_FEW = 3


class _Stats(Protocol):  # albstats.parse.ParseStats, without importing the parser
    @property
    def files(self) -> Sequence[Any]: ...


def _iso(dt: datetime) -> str:
    dt = dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if dt.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def first_few(items: Sequence[str], limit: int = FIRST_FEW, sep: str = ", ") -> str:
    """``a, b, c and 4 more``: a list in one line that stays one line however long the list is."""
    shown = sep.join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def engine_sources(engine: Any) -> list[str]:
    """What an engine reads, as the user named it: the paths given (local) or the Athena table."""
    paths = getattr(engine, "paths", None)
    if paths:
        return [os.fspath(p) for p in paths]
    table = getattr(engine, "table", None)
    if getattr(engine, "name", "") == "athena" and table:
        return [f"Athena table {getattr(engine, 'database', '?')}.{table}"]
    return [str(getattr(engine, "name", "engine"))]


def as_given(name: str, paths: Iterable[str]) -> str:
    """A file name as the user would recognise it: an absolute path under a path they gave spelled
    with their prefix again (``/home/me/logs/x.log.gz`` -> ``logs/x.log.gz`` when they gave ``logs``).

    Why: the local engine keys its cache on absolute paths, but a report that someone mails around
    should not carry the machine's directory layout, and the user should find the file they named.
    """
    if name.startswith("s3://") or not os.path.isabs(name):
        return name
    for p in paths:
        if p.startswith("s3://") or p == "-":
            continue
        ap = os.path.abspath(p)
        if name == ap:
            return p
        if name.startswith(ap.rstrip(os.sep) + os.sep):
            return os.path.join(p, name[len(ap.rstrip(os.sep)) + 1 :])
    return name


def window_text(start: datetime | None, end: datetime | None) -> str:
    """``between A and B``, ``since A``, ``before B``, or ``""`` without bounds: never ``None .. None``."""
    if start is not None and end is not None:
        return f"between {_iso(start)} and {_iso(end)}"
    if start is not None:
        return f"since {_iso(start)}"
    if end is not None:
        return f"before {_iso(end)}"
    return ""


def no_log_files(
    paths: Sequence[str], stats: _Stats | None, since: datetime | None = None, until: datetime | None = None
) -> str | None:
    """The one-line warning when ``stats`` show that no log file was read from ``paths`` (else None).

    Folders holding only other files, other log kinds, or S3-layout day folders outside the window
    all end here: the command ran, read nothing, and must say so rather than print an empty answer.
    """
    if stats is None:
        return None
    files = list(stats.files)
    read = [f for f in files if not getattr(f, "skipped", None)]
    if read:
        return None
    where = first_few([os.fspath(p) for p in paths]) or "the input"
    when = "" if since is None and until is None else f" {window_text(since, until)}"
    if not files:
        return f"no log files ({LOG_NAMES}) in {where}{when}: nothing was read"
    skipped = [f"{as_given(f.name, paths)} ({f.skipped})" for f in files]
    return f"no ALB log files in {where}{when}: {len(files)} skipped: {first_few(skipped, sep='; ')}"


@dataclass
class Problems:
    """Damaged, skipped and malformed input of one read, with names as the user gave them."""

    damaged: list[str] = field(default_factory=list)  # "file: what stopped it"
    skipped: list[str] = field(default_factory=list)  # "file: why it was not read"
    malformed_lines: int = 0
    malformed_files: list[str] = field(default_factory=list)  # "file (N lines)"

    def __bool__(self) -> bool:
        return bool(self.damaged or self.skipped or self.malformed_lines)

    def counts(self) -> str:
        """``1 damaged file, 3 skipped files, 6 malformed lines in 1 file``."""
        parts = []
        if self.damaged:
            parts.append(f"{len(self.damaged)} damaged file{'s' * (len(self.damaged) != 1)}")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped file{'s' * (len(self.skipped) != 1)}")
        if self.malformed_lines:
            n = len(self.malformed_files)
            parts.append(
                f"{self.malformed_lines:,} malformed line{'s' * (self.malformed_lines != 1)}"
                + (f" in {n} file{'s' * (n != 1)}" if n else "")
            )
        return ", ".join(parts)

    def lines(self) -> list[str]:
        """The headline's detail: one line per kind, naming the first few files."""
        out = []
        if self.damaged:
            out.append("damaged: " + first_few(self.damaged, sep="; "))
        if self.skipped:
            out.append("skipped: " + first_few(self.skipped, sep="; "))
        if self.malformed_files:
            out.append("malformed lines in: " + first_few(self.malformed_files, sep="; "))
        return out

    def short(self) -> str:
        """One line for stderr and ``--strict``: the counts and the first file (the headline has the rest)."""
        if not self:
            return ""
        first = (self.damaged or self.skipped or self.malformed_files)[0]
        return f"input problems: {self.counts()} (first: {first})"


def problems(stats: _Stats | None, paths: Sequence[str]) -> Problems:
    """Damaged, skipped and malformed input from an engine's parse statistics (None: not known, e.g. Athena)."""
    if stats is None:
        return Problems()
    p = Problems()
    for f in stats.files:
        name = as_given(f.name, paths)
        if getattr(f, "error", None):
            p.damaged.append(f"{name}: {f.error}")
        if getattr(f, "skipped", None):
            p.skipped.append(f"{name}: {f.skipped}")
        bad = getattr(f, "bad_lines", 0) or 0
        if bad:
            p.malformed_lines += bad
            p.malformed_files.append(f"{name} ({bad:,} line{'s' * (bad != 1)})")
    return p
