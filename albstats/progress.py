"""Progress display: rich bars on a terminal, nothing under cron, CI, pipes or --quiet."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Ticker(Protocol):
    def advance(self, n: int = 1, **info: Any) -> None: ...
    def total(self, n: int | None) -> None: ...


class _Null:
    def advance(self, n: int = 1, **info: Any) -> None:
        pass

    def total(self, n: int | None) -> None:
        pass


def enabled(quiet: bool = False) -> bool:
    """Bars only when a person is watching: stderr is a terminal and neither --quiet nor CI is set."""
    return not quiet and sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def bar(description: str, total: int | None = None, *, quiet: bool = False) -> Iterator[Ticker]:
    """A progress bar on stderr, or a no-op ticker when progress is disabled."""
    if not enabled(quiet):
        yield _Null()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        transient=True,
        console=Console(stderr=True),
    ) as p:
        task = p.add_task(description, total=total, info="")

        class _T:
            def advance(self, n: int = 1, **info: Any) -> None:
                p.update(task, advance=n, info=" ".join(f"{k}={v}" for k, v in info.items()))

            def total(self, n: int | None) -> None:
                p.update(task, total=n)

        yield _T()
