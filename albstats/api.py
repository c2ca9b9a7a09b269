"""The analyst-facing reading functions: DataFrames with proper types."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from albstats.parse import ParseStats, read_table
from albstats.schema import TIMESTAMP_COLUMNS


def to_analyst_table(table: pa.Table) -> pa.Table:
    """Turn Athena's string timestamps into UTC timestamps: the one documented difference from Athena's row."""
    for name in TIMESTAMP_COLUMNS:
        if name in table.column_names:
            col = table[name]
            # '-' and other non-timestamps become NULL rather than failing the whole read
            valid = pc.match_substring_regex(col, r"^\d{4}-\d\d-\d\dT")
            clean = pc.if_else(valid, col, pa.scalar(None, pa.string()))
            ts = pc.strptime(pc.utf8_slice_codeunits(clean, 0, 19), format="%Y-%m-%dT%H:%M:%S",
                             unit="us", error_is_null=True)
            # strptime's %S takes no fraction: add the microseconds (".123456") separately
            frac = pc.struct_field(pc.extract_regex(clean, r"^.{19}\.(?P<f>\d{1,6})"), [0])
            micros = pc.fill_null(pc.utf8_rpad(frac, width=6, padding="0").cast(pa.int64()), 0)
            ts = pc.add(ts, micros.cast(pa.duration("us"))).cast(pa.timestamp("us", tz="UTC"))
            table = table.set_column(table.column_names.index(name), name, ts)
    return table


def read_logs(paths: Any, *, fields: list[str] | None = None, kind: str = "access", strict: bool = False,
              stats: ParseStats | None = None, **kw: Any) -> pd.DataFrame:
    """Parse log files, folders, globs or ``s3://`` prefixes into a DataFrame.

    Columns follow the Athena table (see :mod:`albstats.schema`) with Arrow-backed dtypes;
    ``time`` and ``request_creation_time`` are UTC timestamps. Malformed lines are counted in
    ``stats`` (a :class:`~albstats.parse.ParseStats`) rather than dropped silently. Other keyword
    arguments go to :func:`~albstats.parse.iter_batches` (``workers=``, ``since``/``until`` for S3).

    Strings stay ``string[pyarrow]``, not categoricals: a categorical behaves differently from
    Athena's string column (groupby lists unobserved categories, concat of frames with other
    categories falls back to object, assigning a new value fails), so that choice is left to the
    analyst (``df.astype({"type": "category"})``; the notebooks show it).
    """
    if isinstance(paths, str):
        paths = [paths]
    table = read_table(paths, fields=fields, kind=kind, strict=strict, stats=stats, **kw)
    return to_analyst_table(table).to_pandas(types_mapper=pd.ArrowDtype)
