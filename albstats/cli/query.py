"""`albstats query` and `albstats sql list|show|run`: the saved Athena SQL on the local or the Athena engine.

Only argument parsing and printing live here; the work is :func:`albstats.connect` and the engine.
Heavy libraries (pandas, pyarrow, sqlglot) are imported only when a command needs them, so a query
answered from a warm cache starts fast.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from datetime import date, datetime
from typing import Annotated, Any, Literal

import typer

from albstats.cli import options
from albstats.errors import UsageError

#: The output formats of `query` and `sql run`.
Format = Literal["table", "csv", "json", "parquet"]
FormatChoice = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
Param = Annotated[
    list[str] | None, typer.Option("--param", metavar="NAME=VALUE", help="A query parameter (repeatable).")
]


def _engine(
    paths: list[str], engine: options.Engine, db: str | None, no_cache: bool, quiet: bool, athena: dict[str, Any]
) -> Any:
    from albstats.engines import connect

    if engine == "athena":
        return connect(
            paths or None, engine="athena", quiet=quiet, **{k: v for k, v in athena.items() if v is not None}
        )
    s3 = {k: athena.pop(k) for k in ("profile", "region") if athena.get(k) is not None}  # AWS: for s3:// paths
    if s3 and not any(str(p).startswith("s3://") for p in paths):
        raise UsageError(f"--{next(iter(s3))} is the AWS {next(iter(s3))}: for s3:// paths or --engine athena")
    if any(v is not None for v in athena.values()):
        given = next(k for k, v in athena.items() if v is not None)
        raise UsageError(f"--{given.replace('_', '-')} is an Athena option; add --engine athena")
    return connect(paths, engine=engine, db=db, cache=not no_cache, quiet=quiet, s3_options=s3 or None)


def _cell(v: Any) -> Any:
    """A JSON/CSV-friendly value: timestamps as ISO-8601 with Z, NaN as null."""
    if isinstance(v, datetime):
        if v.tzinfo is not None and v.utcoffset() is not None and not v.utcoffset():
            return v.replace(tzinfo=None).isoformat() + "Z"
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return _cell(v.item())
    if v is not None and type(v).__name__ in ("NAType", "NaTType"):
        return None
    return v


def _text(v: Any) -> str:
    v = _cell(v)
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e15 else repr(v)
    return str(v)


def render(columns: list[str], rows: list[tuple[Any, ...]], fmt: Format, out: str | None) -> None:
    """Write a result as an aligned table, CSV or JSON (a list of objects), to ``out`` or stdout."""
    if fmt == "table":
        cells = [[_text(v) for v in r] for r in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        numeric = [
            all(isinstance(_cell(r[i]), int | float) or _cell(r[i]) is None for r in rows) and bool(rows)
            for i in range(len(columns))
        ]

        def line(vals: list[str]) -> str:
            return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)).rstrip()

        text = "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]) + "\n"
        if not rows:
            text += "(no rows)\n"
    elif fmt == "csv":
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        w.writerows([[_cell(v) for v in r] for r in rows])
        text = buf.getvalue()
    else:
        text = (
            json.dumps(
                [{c: _cell(v) for c, v in zip(columns, r)} for r in rows], ensure_ascii=False, default=str, indent=1
            )
            + "\n"
        )
    if out in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from albstats.output import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_parquet(df: Any, out: str | None) -> None:
    if out in (None, "-"):
        raise UsageError("--format parquet needs -o FILE")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from albstats.output import atomic_path

    with atomic_path(out) as tmp:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), str(tmp), compression="zstd")


def _summary(eng: Any) -> None:
    """One stderr line on what the local engine read: files parsed or cached, lines, malformed lines."""
    summary = getattr(eng, "summary", None)
    if summary is None:
        return
    msg, examples, errors = summary()
    typer.echo(f"albstats: {msg}", err=True)
    for ex in examples:
        typer.echo(f"  malformed: {ex}", err=True)
    for err in errors:
        typer.echo(f"albstats: warning: {err}", err=True)


def _nothing_read(eng: Any, paths: list[str], since: Any = None, until: Any = None) -> None:
    """A stderr warning when the local engine read no log file from ``paths`` (even with --quiet).

    Why: an empty table from a folder without logs looks exactly like a quiet hour; only the rows
    being empty makes it worth asking the engine (so a warm query never imports the parser for it).
    """
    stats = eng.parse_stats()
    if stats is None:  # Athena: the table is the source, and an empty result is an answer
        return
    from albstats.engines.base import parse_time
    from albstats.inputs import no_log_files

    t = [parse_time(v, name=n) if v is not None else None for n, v in (("since", since), ("until", until))]
    if (msg := no_log_files(paths, stats, t[0], t[1])) is not None:
        typer.echo(f"albstats: warning: {msg}", err=True)


def _check_output(output: str | None) -> None:
    """A bad -o fails before any file is read (the write itself happens at the end)."""
    if output not in (None, "-"):
        from albstats.output import check_target

        check_target(output, "-o")


def _query_values(param: list[str] | None, **named: Any) -> dict[str, Any]:
    """``--param`` values merged with the named options (``--since`` ...): ``--param limit=5`` means ``--limit 5``.

    Why: ``albstats sql list`` and the saved queries' headers list since/until/bucket/limit among the
    parameters, so users write them either way; giving one twice is an error, not a silent pick.
    """
    from albstats.engines.base import parse_param_args

    params = parse_param_args(param)
    for k in [k for k in params if k in named]:
        if named[k] is not None:
            raise UsageError(f"--param {k}={params[k]}: also given as --{k}; give it once")
        named[k] = params.pop(k)
    return {**named, **params}


def register(app: typer.Typer) -> None:
    """Add `query` and the `sql` group."""

    @app.command("query", cls=options.Command)
    def query(
        name: Annotated[str, typer.Argument(metavar="NAME", help="Saved query name (see `albstats sql list`).")],
        paths: options.LogPaths = None,
        engine: options.EngineChoice = "local",
        since: options.Since = None,
        until: options.Until = None,
        bucket: Annotated[
            str | None,
            typer.Option(
                "--bucket",
                metavar="DURATION",
                help="Bucket width for bucketed queries: 5m, 1h, 1d (default: the query's, 1h for most).",
            ),
        ] = None,
        param: Param = None,
        limit: Annotated[
            int | None,
            typer.Option("--limit", metavar="N", help="Rows for queries with a limit (default: the query's)."),
        ] = None,
        format: FormatChoice = "table",
        output: Annotated[
            str | None,
            options.output("FILE", "Write to this file (written whole or not at all; its folder must exist)."),
        ] = None,
        db: options.Db = None,
        no_cache: options.NoCache = False,
        quiet: options.Quiet = False,
        database: options.Database = None,
        table: options.Table = None,
        workgroup: options.Workgroup = None,
        output_location: options.OutputLocation = None,
        region: options.Region = None,
        profile: options.Profile = None,
    ) -> None:
        """Run a saved query (Athena SQL from sql/) and print its result.

        The local engine parses the files with albstats' parser into a cache, so the next query over
        the same files reads no log line again; the Athena engine runs the same SQL on Athena.
        """
        from albstats.queries import get

        get(name)  # unknown names fail before any file is read
        _check_output(output)
        kw = _query_values(param, since=since, until=until, bucket=bucket, limit=limit)
        with _engine(
            paths or [],
            engine,
            db,
            no_cache,
            quiet,
            options.athena_settings(database, table, workgroup, output_location, region, profile),
        ) as eng:
            if format == "parquet":
                df = eng.query(name, **kw)
                _write_parquet(df, output)
                empty = len(df) == 0
            else:
                res = eng.query_rows(name, **kw)
                render(res.columns, res.rows, format, output)
                empty = not res.rows
            if not quiet:
                _summary(eng)
            if empty:
                _nothing_read(eng, paths or [], kw.get("since"), kw.get("until"))

    sql_app = typer.Typer(
        help="The saved Athena SQL: list, show (to paste into the Athena console), run ad-hoc SQL.",
        no_args_is_help=True,
    )
    app.add_typer(sql_app, name="sql")

    @sql_app.command("list", cls=options.Command)
    def sql_list() -> None:
        """List the saved queries with their parameters."""
        from albstats.queries import all_queries

        qs = all_queries()
        width = max((len(n) for n in qs), default=0)
        for q in qs.values():
            params = " ".join(f"[--{p.name}]" for p in q.params if p.name in ("since", "until", "bucket", "limit"))
            extra = " ".join(
                f"[--param {p.name}=...]" for p in q.params if p.name not in ("since", "until", "bucket", "limit")
            )
            typer.echo(f"{q.name.ljust(width)}  {q.summary}")
            typer.echo(f"{'':{width}}    {' '.join(x for x in (params, extra) if x)}")

    @sql_app.command("show", cls=options.Command)
    def sql_show(
        name: Annotated[str, typer.Argument(metavar="NAME", help="Saved query name.")],
        since: Annotated[
            str | None,
            typer.Option("--since", metavar="TIME", help="Window start: fills in :since (otherwise ? placeholders)."),
        ] = None,
        until: Annotated[
            str | None, typer.Option("--until", metavar="TIME", help="Window end (exclusive): fills in :until.")
        ] = None,
        bucket: Annotated[
            str | None,
            typer.Option("--bucket", metavar="DURATION", help="Bucket width: fills in :bucket (5m, 1h, 1d)."),
        ] = None,
        limit: Annotated[int | None, typer.Option("--limit", metavar="N", help="Rows: fills in :limit.")] = None,
        param: Annotated[
            list[str] | None,
            typer.Option("--param", metavar="NAME=VALUE", help="A query parameter: fills in :NAME (repeatable)."),
        ] = None,
    ) -> None:
        """Print a saved query as Athena SQL to paste into the Athena console.

        Without values the named placeholders become ? (the console asks for them, in the order listed in
        the first comment line). With --since/--until/--bucket/--limit/--param every placeholder is
        filled with a validated, escaped literal of the parameter's type, and --since adds the same
        day partition bounds as --engine athena (the day of --since to the day after --until).
        """
        from albstats.queries import console_sql, get

        q = get(name)
        values = None
        window: tuple[Any, Any] = (None, None)
        if any(v is not None for v in (since, until, bucket, limit)) or param:
            from albstats.engines.base import bind

            values, window = bind(q, **_query_values(param, since=since, until=until, bucket=bucket, limit=limit))
        text = console_sql(q, values)
        if values is not None and window[0] is not None:
            from albstats.athena_sql import console_day_bounds

            text = console_day_bounds(text, window[0], window[1])
        elif values is not None:
            typer.echo(
                "albstats: note: without --since the SQL has no day bound; Athena scans every day folder", err=True
            )
        typer.echo(text, nl=False)

    @sql_app.command("run", cls=options.Command)
    def sql_run(
        text: Annotated[
            str,
            typer.Argument(metavar="SQL", help="One SELECT over alb_logs (Athena SQL); :name placeholders allowed."),
        ],
        paths: options.LogPaths = None,
        engine: options.EngineChoice = "local",
        param: Annotated[
            list[str] | None,
            typer.Option(
                "--param", metavar="NAME=VALUE", help="A query parameter: binds :NAME to VALUE (text), repeatable."
            ),
        ] = None,
        format: FormatChoice = "table",
        output: Annotated[str | None, options.output("FILE", "Write to this file (its folder must exist).")] = None,
        db: options.Db = None,
        no_cache: options.NoCache = False,
        quiet: options.Quiet = False,
        database: options.Database = None,
        table: options.Table = None,
        workgroup: options.Workgroup = None,
        output_location: options.OutputLocation = None,
        region: options.Region = None,
        profile: options.Profile = None,
    ) -> None:
        """Run ad-hoc Athena SQL over the alb_logs relation (the same columns as the Athena table)."""
        from albstats.engines.base import parse_param_args

        params = parse_param_args(param)
        _check_output(output)
        with _engine(
            paths or [],
            engine,
            db,
            no_cache,
            quiet,
            options.athena_settings(database, table, workgroup, output_location, region, profile),
        ) as eng:
            if format == "parquet":
                df = eng.sql(text, params)
                _write_parquet(df, output)
                empty = len(df) == 0
            else:
                res = eng.sql_rows(text, params)
                render(res.columns, res.rows, format, output)
                empty = not res.rows
            if not quiet:
                _summary(eng)
            # an aggregate over nothing still gives a row (count 0): ask the engine whether it read any file
            if empty or getattr(getattr(eng, "last_ingest", None), "files", None) == 0:
                _nothing_read(eng, paths or [])
