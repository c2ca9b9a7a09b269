"""Parquet fragments joined without re-encoding (albstats.parquet_join), and `albstats parse --format
parquet`, whose worker processes encode fragments that the parent joins."""

from __future__ import annotations

import gzip
import io
import os
import struct
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, load_jsonl

from albstats import parse as P
from albstats.errors import InputError
from albstats.output import parquet_fragment, parquet_options, write_parquet_parts
from albstats.parquet_join import Fragment, ParquetJoiner, ParquetJoinError, decode, encode

LINES = [s["line"] for s in load_jsonl("alb_access_samples.jsonl")]


def _table(start: int, n: int) -> pa.Table:
    """Every kind of column the log schema has, plus a few it has not, with nulls and repeats."""
    ids = range(start, start + n)
    return pa.table({
        "i32": pa.array([i % 600 for i in ids], pa.int32()),
        "i64": pa.array([None if i % 7 == 0 else i * 1000 for i in ids], pa.int64()),
        "f": pa.array([-1.0 if i % 11 == 0 else i / 3 for i in ids], pa.float64()),
        "cat": pa.array([f"c{i % 5}" for i in ids]),  # dictionary-encoded
        "text": pa.array([None if i % 13 == 0 else f"row {i} \u00e9" * (i % 4) for i in ids]),
        "time": pa.array([f"2026-11-{1 + i % 28:02d}T00:00:{i % 60:02d}.000000Z" for i in ids]),
        "flag": pa.array([i % 2 == 0 for i in ids]),
        "tags": pa.array([[str(i), "x"] if i % 3 else None for i in ids], pa.list_(pa.string())),
    })


def _file_bytes(table: pa.Table, **kw) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kw)
    return sink.getvalue()


def _footer_bytes(data: bytes) -> bytes:
    (n,) = struct.unpack("<I", data[-8:-4])
    return data[-8 - n:-8]


@pytest.mark.parametrize("kw", [
    {},
    {"compression": "snappy", "data_page_version": "1.0", "use_dictionary": False},
    {"write_statistics": False, "row_group_size": 700},
    {"write_page_index": True},
])
def test_footer_decodes_and_encodes_back_byte_for_byte(kw):
    data = _file_bytes(_table(0, 2000), **kw)
    footer = _footer_bytes(data)
    assert encode(decode(footer)) == footer


def _fragments(sizes: list[int], tmp_path: Path | None = None) -> tuple[list[Fragment], pa.Table]:
    frags, tables, start = [], [], 0
    for k, n in enumerate(sizes):
        t = _table(start, n)
        start += n
        tables.append(t)
        path = str(tmp_path / f"f{k}.parquet") if tmp_path is not None and k % 2 else None
        frags.append(parquet_fragment(t.to_batches(max_chunksize=400), t.schema, path))
    return frags, pa.concat_tables(tables)


def test_joined_file_reads_back_as_the_concatenation(tmp_path):
    frags, whole = _fragments([1500, 1, 3000, 777], tmp_path)
    stats_before = [pq.ParquetFile(io.BytesIO(f.data) if f.data else f.path).metadata.row_group(0)
                    for f in frags]
    stats_before = [{c: rg.column(i).statistics.to_dict() if rg.column(i).statistics else None
                     for i, c in enumerate(whole.column_names[:3])} for rg in stats_before]
    out = tmp_path / "joined.parquet"
    write_parquet_parts(iter(frags), whole.schema, str(out))
    assert not any(os.path.exists(f.path) for f in frags if f.path)  # on-disk fragments removed once joined
    pf = pq.ParquetFile(out)
    assert pf.metadata.num_rows == whole.num_rows and pf.metadata.num_row_groups == 4
    assert pf.read().equals(whole)
    assert pf.schema_arrow == whole.schema
    for k in range(4):  # each row group is its fragment's, statistics included
        rg = pf.metadata.row_group(k)
        assert {c: rg.column(i).statistics.to_dict() if rg.column(i).statistics else None
                for i, c in enumerate(whole.column_names[:3])} == stats_before[k]
    assert pf.read_row_group(2).equals(whole.slice(1501, 3000))
    # another reader, which follows the offsets itself and prunes row groups on statistics
    got = duckdb.sql(f"SELECT count(*), sum(i64), count(text), count(DISTINCT cat), max(time) "
                     f"FROM read_parquet('{out}') WHERE i32 >= 0").fetchall()[0]
    exp = (whole.num_rows, sum(v for v in whole["i64"].to_pylist() if v is not None),
           whole.num_rows - whole["text"].null_count, 5, max(whole["time"].to_pylist()))
    assert got == exp
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}') WHERE time = '2026-11-28T00:00:03.000000Z'"
                      ).fetchall()[0][0] == sum(t == "2026-11-28T00:00:03.000000Z" for t in whole["time"].to_pylist())


def test_more_than_fifteen_row_groups(tmp_path):
    frags, whole = _fragments([50 + k for k in range(20)])
    out = tmp_path / "many.parquet"
    write_parquet_parts(frags, whole.schema, str(out))
    pf = pq.ParquetFile(out)
    assert pf.metadata.num_row_groups == 20 and pf.read().equals(whole)


def test_no_fragment_gives_an_empty_file_with_the_schema(tmp_path):
    schema = _table(0, 1).schema
    out = tmp_path / "empty.parquet"
    write_parquet_parts([], schema, str(out))
    t = pq.read_table(out)
    assert t.num_rows == 0 and t.schema == schema


def test_fragments_that_cannot_be_joined_are_refused():
    t = _table(0, 100)
    with_index = Fragment(data=_file_bytes(t, write_page_index=True))
    with pytest.raises(ParquetJoinError, match="index"):
        ParquetJoiner(io.BytesIO()).append(with_index)
    j = ParquetJoiner(io.BytesIO())
    j.append(parquet_fragment(t.to_batches(), t.schema))
    other = t.drop_columns(["flag"])
    with pytest.raises(ParquetJoinError, match="schema differs"):
        j.append(parquet_fragment(other.to_batches(), other.schema))
    with pytest.raises(ParquetJoinError, match="not a Parquet file"):
        ParquetJoiner(io.BytesIO()).append(Fragment(data=b"PAR1" + b"x" * 40))


def test_writer_options_hold_no_page_index():
    assert parquet_options(_table(0, 1).schema)["write_page_index"] is False


# --- the parse pipeline --------------------------------------------------------------------------

def _expected(paths: list[str]) -> pa.Table:
    return P.read_table(paths, engine="python")


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_parse_to_parquet_in_many_fragments_equals_the_reference(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("ALBSTATS_WORKERS_KIND", kind)
    monkeypatch.setattr(P, "FRAGMENT_BYTES", 256 << 10)  # many small fragments
    src = sorted(str(p) for p in (FIXTURES / "AWSLogs").rglob("*.log.gz"))[:120]
    out = tmp_path / "o.parquet"
    stats = P.parse_files(src, fmt="parquet", output=str(out), quiet=True)
    pf = pq.ParquetFile(out)
    assert pf.metadata.num_row_groups > 3
    got, exp = pf.read(), _expected(src)
    assert stats.rows == got.num_rows == exp.num_rows
    assert got.equals(exp)


def test_parse_to_parquet_with_fields_and_the_python_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("ALBSTATS_PARSER", "python")
    src = sorted(str(p) for p in (FIXTURES / "AWSLogs").rglob("*.log.gz"))[:10]
    out = tmp_path / "o.parquet"
    P.parse_files(src, fmt="parquet", output=str(out), fields=["time", "elb_status_code", "request_url"], quiet=True)
    got = pq.read_table(out)
    assert got.column_names == ["time", "elb_status_code", "request_url"]
    assert got.equals(_expected(src).select(got.column_names))


def test_failed_parse_leaves_neither_output_nor_fragments(tmp_path, monkeypatch):
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(P, "_spill_dir", lambda: str(spill))
    monkeypatch.setattr(P, "FRAGMENT_BYTES", 64 << 10)
    logs = tmp_path / "logs"
    logs.mkdir()
    for k in range(40):
        lines = LINES[:20] + (["http this is not a log line"] if k == 33 else [])
        (logs / f"f{k:02d}.log.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    out = tmp_path / "o.parquet"
    with pytest.raises(InputError, match=r"f33\.log\.gz:21: malformed line"):
        P.parse_files([str(logs)], fmt="parquet", output=str(out), strict=True, quiet=True)
    assert not out.exists() and list(tmp_path.glob("*.part")) == []
    assert list(spill.iterdir()) == []


def test_stdin_to_parquet_is_encoded_in_the_parent_in_row_groups(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from albstats import output
    from albstats.cli import app

    monkeypatch.setattr(output, "ROW_GROUP_ROWS", 500)  # stdin is read in blocks of about 4 MB: one group each
    src = sorted(str(p) for p in (FIXTURES / "AWSLogs").rglob("*.log.gz"))
    text = b"".join(gzip.decompress(Path(p).read_bytes()) for p in src)
    out = tmp_path / "stdin.parquet"
    r = CliRunner().invoke(app, ["parse", "-", "--format", "parquet", "-o", str(out), "-q"], input=text)
    assert r.exit_code == 0, r.output
    pf = pq.ParquetFile(out)
    assert pf.metadata.num_row_groups > 2
    assert pf.read().equals(P.read_table(src))
