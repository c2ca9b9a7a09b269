"""The dataset writer (albstats.dataset.DatasetSink): what a part file holds, whatever order the rows came in."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from albstats.dataset import DatasetSink, is_sorted
from albstats.schema import ACCESS

FIELDS = ["time", "elb", "request_url"]
SCHEMA = ACCESS.arrow_schema(FIELDS)
NAME = "AWSLogs/1/elasticloadbalancing/r/2024/01/02/x.log.gz"  # S3 layout: every row in day 2024/01/02


def _batch(times: list[str], urls: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(times, pa.string()), pa.array(["app/x"] * len(times), pa.string()), pa.array(urls, pa.string())],
        schema=SCHEMA,
    )


def test_is_sorted_across_chunks_with_ties_and_nulls():
    assert is_sorted(pa.chunked_array([["a", "b"], ["b", "c"]], pa.string()))
    assert is_sorted(pa.chunked_array([["a"]], pa.string()))
    assert is_sorted(pa.chunked_array([], pa.string()))
    assert not is_sorted(pa.chunked_array([["a", "c"], ["b"]], pa.string()))  # out of order at the boundary
    assert not is_sorted(pa.chunked_array([["b", "a"]], pa.string()))
    assert not is_sorted(pa.chunked_array([["a", None, "b"]], pa.string()))  # a sort moves the null to the end


def _written(tmp_path, batches: list[pa.RecordBatch]) -> pa.Table:
    sink = DatasetSink(str(tmp_path), SCHEMA)
    parts = sink.write(batches, [(NAME, sum(b.num_rows for b in batches))])
    assert [p.day for p in parts] == ["2024/01/02"]
    return pq.read_table(tmp_path / parts[0].path)


def test_rows_out_of_order_are_sorted_stably(tmp_path):
    """Equal times keep their line order, in one batch or across batches (the sort is stable)."""
    t = _written(
        tmp_path,
        [
            _batch(["2024-01-02T00:00:03Z", "2024-01-02T00:00:01Z"], ["/c", "/a1"]),
            _batch(["2024-01-02T00:00:01Z", "2024-01-02T00:00:02Z"], ["/a2", "/b"]),
        ],
    )
    assert t.column("time").to_pylist() == [
        "2024-01-02T00:00:01Z",
        "2024-01-02T00:00:01Z",
        "2024-01-02T00:00:02Z",
        "2024-01-02T00:00:03Z",
    ]
    assert t.column("request_url").to_pylist() == ["/a1", "/a2", "/b", "/c"]


def test_rows_in_order_are_written_as_they_came(tmp_path):
    times = ["2024-01-02T00:00:01Z", "2024-01-02T00:00:01Z", "2024-01-02T00:00:05Z"]
    t = _written(tmp_path, [_batch(times[:2], ["/x", "/y"]), _batch(times[2:], ["/z"])])
    assert t.schema == SCHEMA
    assert t.column("time").to_pylist() == times
    assert t.column("request_url").to_pylist() == ["/x", "/y", "/z"]
