"""albstats.output (atomic writes in three formats) and albstats.progress (bars only for a person)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from albstats import progress
from albstats.errors import UsageError
from albstats.output import atomic_path, write_batches

SCHEMA = pa.schema([("client_ip", pa.string()), ("elb_status_code", pa.int32()), ("t", pa.float64())])


def _batches():
    yield pa.record_batch(
        [pa.array(["1.2.3.4", "::1"]), pa.array([200, None], pa.int32()), pa.array([0.5, float("nan")])], schema=SCHEMA
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_each_format_round_trips(tmp_path, fmt):
    out = tmp_path / f"x.{fmt}"
    write_batches(_batches(), SCHEMA, fmt, str(out))
    if fmt == "jsonl":
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        assert rows[1] == {"client_ip": "::1", "elb_status_code": None, "t": None}  # NaN -> null, valid JSON
    elif fmt == "csv":
        assert pcsv.read_csv(out).column("client_ip").to_pylist() == ["1.2.3.4", "::1"]
    else:
        assert pq.read_table(out).schema == SCHEMA
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_error_midway_leaves_nothing(tmp_path):
    out = tmp_path / "x.jsonl"

    def failing():
        yield from _batches()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_batches(failing(), SCHEMA, "jsonl", str(out))
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    out = tmp_path / "report.json"
    out.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert out.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_bad_format_and_parquet_to_stdout_are_usage_errors():
    with pytest.raises(UsageError, match="--format"):
        write_batches(_batches(), SCHEMA, "xml", None)
    with pytest.raises(UsageError, match="-o FILE"):
        write_batches(_batches(), SCHEMA, "parquet", None)


def test_progress_is_quiet_without_a_person(monkeypatch):
    # pytest captures stderr (not a terminal); CI and --quiet also disable bars
    assert progress.enabled() is False
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert progress.enabled() is True  # a person at a terminal
    assert progress.enabled(quiet=True) is False
    monkeypatch.setenv("CI", "true")
    assert progress.enabled() is False
    with progress.bar("x", total=3) as tick:
        tick.advance(1, lines=10)
        tick.total(5)
