"""`albstats cache info|prune|clear`: look after the local cache (see albstats.cache)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from albstats.cli import options

if TYPE_CHECKING:
    from albstats.cache import Cache


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def register(app: typer.Typer) -> None:
    """Add the `cache` group."""
    cache = typer.Typer(no_args_is_help=True, help="The local cache of parsed rows: info, prune, clear.")
    app.add_typer(cache, name="cache")

    def _open(db: str | None) -> Cache:  # albstats.cache is imported lazily (only when a command runs)
        from albstats.cache import Cache, default_dir

        return Cache(db if db is not None else default_dir())

    @cache.command("info", cls=options.Command)
    def info(db: options.Db = None) -> None:
        """What the cache holds: log files, rows, days, size on disk against the logs' size."""
        st = _open(db).info()
        ratio = f" ({st.bytes / st.source_bytes:.2f}x the logs' {_size(st.source_bytes)})" if st.source_bytes else ""
        days = f"{st.days} days, {st.first_day} .. {st.last_day}" if st.days else "no days"
        typer.echo(f"cache:   {st.root}")
        typer.echo(f"files:   {st.files} log files, {st.lines} lines, {st.bad_lines} malformed, {st.damaged} damaged")
        typer.echo(f"rows:    {st.rows} in {st.parts} Parquet files, {days}")
        typer.echo(f"size:    {_size(st.bytes)}{ratio}")
        if st.debris:
            typer.echo(f"debris:  {st.debris} files no longer used (removed by the next fill, prune or clear)")

    @cache.command("prune", cls=options.Command)
    def prune(
        older_than: Annotated[
            str, typer.Option("--older-than", metavar="AGE", help="Drop days older than this, e.g. 30d.")
        ],
        db: options.Db = None,
    ) -> None:
        """Drop the rows of days older than AGE (log files are parsed again if asked for later)."""
        from datetime import timedelta

        from albstats.engines.base import parse_duration

        secs = parse_duration(older_than, name="older-than")
        parts, files = _open(db).prune(timedelta(seconds=secs))
        typer.echo(f"albstats: pruned {parts} Parquet files ({files} log files) older than {older_than}", err=True)

    @cache.command("clear", cls=options.Command)
    def clear(db: options.Db = None) -> None:
        """Forget every log file and delete the Parquet files (those in use by a running albstats go later)."""
        parts, waiting = _open(db).clear()
        msg = f"albstats: cleared the cache ({parts} Parquet files)"
        if waiting:
            msg += f"; {waiting} still in use by a running albstats are deleted by the next fill or clear"
        typer.echo(msg, err=True)
