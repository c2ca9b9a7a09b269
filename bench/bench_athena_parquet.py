"""Benchmark: bytes Athena would scan per saved query, raw-log table vs the compacted Parquet table.

Run by hand (not part of the tests), from the repository root:

    .venv/bin/python bench/bench_athena_parquet.py              # 1 day, 300,000 lines
    .venv/bin/python bench/bench_athena_parquet.py --lines 1000000 --days 7

No AWS is involved, so the figures are an estimate of what Athena bills; the method says how. It
generates ALB logs with `albstats generate` into bench/data/ (gitignored) and parses them with
albstats. Then, per day, it runs the very `INSERT INTO ... SELECT` that `albstats athena compact`
submits. It runs on DuckDB (translated like the tests), and each day is written as zstd Parquet into
`day=YYYY/MM/DD/` folders.

How the scanned bytes are estimated:

- Raw table (gzip text through a regex): Athena reads every compressed byte of the window's days,
  so the estimate is the size of the `.gz` files.
- Parquet table: Athena reads the column chunks of the columns a query uses, so the estimate is the
  compressed size of those chunks, taken from the Parquet footers. The columns a query uses are the
  schema's columns its Trino SQL names (all of them for a ``*``).

Both figures are for the whole window (a query's `day` bounds select the same days in both tables).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--days", type=float, default=1.0)
    args = ap.parse_args()

    import duckdb
    import pyarrow.parquet as pq
    import sqlglot

    from albstats import queries
    from albstats.athena_ddl import compact_day_sql
    from albstats.engines import connect
    from albstats.engines.local import translate
    from albstats.schema import ACCESS, DUCKDB_TYPES

    data = ROOT / "bench" / "data" / f"athena-{args.lines}-{args.days:g}d"
    if not data.exists():
        print(f"generating {args.lines} lines into {data} ...", file=sys.stderr)
        exe = Path(sys.executable).with_name("albstats")
        subprocess.run(
            [str(exe), "generate", "-o", str(data), "--lines", str(args.lines), "--days", str(args.days), "-q"],
            check=True,
        )
    gz = sorted(data.rglob("*.log.gz"))
    gz_bytes = sum(p.stat().st_size for p in gz)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="albstats-bench-") as tmp:
        with connect([str(data)], db=os.path.join(tmp, "c.duckdb"), quiet=True) as eng:
            df = eng.sql("SELECT * FROM alb_logs")
        df["day"] = df["time"].str[:10].str.replace("-", "/")
        con = duckdb.connect()
        con.register("parsed", df)
        typed = ", ".join(f'CAST("{c.name}" AS {DUCKDB_TYPES[c.type]}) AS "{c.name}"' for c in ACCESS.columns)
        con.execute("CREATE SCHEMA albstats")
        con.execute(f"CREATE TABLE albstats.alb_logs AS SELECT {typed}, day FROM parsed")
        cols = ", ".join(f'"{c.name}" {DUCKDB_TYPES[c.type]}' for c in ACCESS.columns)
        con.execute(f"CREATE TABLE albstats.alb_logs_parquet ({cols}, day VARCHAR)")
        days = [r[0] for r in con.execute("SELECT DISTINCT day FROM albstats.alb_logs ORDER BY 1").fetchall()]
        root = Path(tmp) / "parquet"
        for day in days:
            insert = sqlglot.parse_one(compact_day_sql("albstats", "alb_logs", "alb_logs_parquet", day), read="trino")
            con.execute(f"INSERT INTO {insert.this.sql('duckdb')} {translate(insert.expression.sql('trino')).sql}")
            folder = root / f"day={day}"
            folder.mkdir(parents=True)
            con.execute(
                f"COPY (SELECT * EXCLUDE (day) FROM albstats.alb_logs_parquet WHERE day = ? ORDER BY time) "
                f"TO '{folder / 'part-0.parquet'}' (FORMAT parquet, COMPRESSION zstd)",
                [day],
            )
        chunk: dict[str, int] = dict.fromkeys(ACCESS.names, 0)
        files = sorted(root.rglob("*.parquet"))
        for f in files:
            md = pq.ParquetFile(f).metadata
            for rg in range(md.num_row_groups):
                for ci in range(md.num_columns):
                    col = md.row_group(rg).column(ci)
                    chunk[col.path_in_schema] += col.total_compressed_size
        pq_bytes = sum(p.stat().st_size for p in files)
        elapsed = time.perf_counter() - t0
        print(
            f"input: {len(df)} lines in {len(gz)} .gz files, {gz_bytes / 1e6:.1f} MB; {len(days)} day(s); "
            f"Parquet (zstd) {pq_bytes / 1e6:.1f} MB = {pq_bytes / gz_bytes:.2f} x the .gz "
            f"(built in {elapsed:.1f} s, load average {os.getloadavg()[0]:.2f})"
        )
        print(f"{'query':22} {'raw MB':>9} {'parquet MB':>11} {'parquet/raw':>12}  columns read")
        for name in queries.names():
            tree = sqlglot.parse_one(queries.get(name).sql, read="trino")
            star = any(
                isinstance(e, sqlglot.exp.Star) or (isinstance(e, sqlglot.exp.Column) and e.is_star)
                for sel in tree.find_all(sqlglot.exp.Select)
                for e in sel.expressions
            )
            names = {c.name for c in tree.find_all(sqlglot.exp.Column)}
            used_cols = ACCESS.names if star else [c for c in ACCESS.names if c in names]
            b = sum(chunk[c] for c in used_cols)
            print(f"{name:22} {gz_bytes / 1e6:9.1f} {b / 1e6:11.2f} {b / gz_bytes:12.3f}  {len(used_cols)}")


if __name__ == "__main__":
    main()
