"""albstats.read_logs: Arrow-backed dtypes, UTC timestamps, and otherwise Athena's values."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pandas as pd
import pytest
from conftest import load_jsonl

import albstats
from albstats.api import CATEGORICAL_COLUMNS
from albstats.parse import ParseStats, parse_line
from albstats.schema import ACCESS, CONNECTION, TIMESTAMP_COLUMNS

LINES = [s["line"] for s in load_jsonl("alb_access_samples.jsonl")]


@pytest.fixture
def logfile(tmp_path):
    p = tmp_path / "x.log.gz"
    p.write_bytes(gzip.compress(("\n".join(LINES + ["not a log line"]) + "\n").encode()))
    return p


def test_dtypes_are_arrow_backed_and_times_utc(logfile):
    df = albstats.read_logs(str(logfile))
    assert list(df.columns) == ACCESS.names
    for name, t in df.dtypes.items():
        if name in CATEGORICAL_COLUMNS:
            assert isinstance(t, pd.CategoricalDtype), name
        else:
            assert isinstance(t, pd.ArrowDtype), name
    plain = albstats.read_logs(str(logfile), categorical=False)
    assert all(isinstance(t, pd.ArrowDtype) for t in plain.dtypes)
    for name in CATEGORICAL_COLUMNS:
        if name in df.columns:
            assert (
                df[name].astype(object).where(df[name].notna(), None).tolist()
                == plain[name].astype(object).where(plain[name].notna(), None).tolist()
            ), name
    for name in TIMESTAMP_COLUMNS:
        assert str(df[name].dtype) == "timestamp[us, tz=UTC][pyarrow]"
    assert str(df["elb_status_code"].dtype) == "int32[pyarrow]"
    assert str(df["received_bytes"].dtype) == "int64[pyarrow]"
    assert str(df["target_processing_time"].dtype) == "double[pyarrow]"
    assert str(df["target_status_code"].dtype) == "string[pyarrow]"
    assert df["time"].iloc[0] == pd.Timestamp(datetime(2018, 7, 2, 22, 23, 0, 186641, tzinfo=UTC))


def test_values_are_athena_values_except_the_timestamps(logfile):
    stats = ParseStats()
    df = albstats.read_logs([str(logfile)], stats=stats)
    assert stats.bad_lines == 1 and len(df) == len(LINES)
    for i, line in enumerate(LINES):
        want = dict(zip(ACCESS.names, parse_line(line)))
        got = df.iloc[i]
        for name in ACCESS.names:
            v, w = got[name], want[name]
            if name in TIMESTAMP_COLUMNS:
                if w is None or w == "-":
                    assert pd.isna(v)
                else:
                    assert v == pd.Timestamp(w)  # the same instant, as a UTC timestamp
            elif w is None:
                assert pd.isna(v), name
            else:
                assert v == w, name
    # '-' stays '-', -1 stays -1.0 (categoricals compare like Athena's strings)
    assert (df["target_status_code"] == "-").any()
    assert (df["request_processing_time"] == -1.0).any()


def test_fields_and_connection_kind(tmp_path):
    lines = [s["line"] for s in load_jsonl("alb_connection_samples.jsonl")]
    p = tmp_path / "conn_log_123456789012_elasticloadbalancing_us-east-2_app.x.1_20240101T0000Z_1.2.3.4_a.log"
    p.write_text("\n".join(lines) + "\n")
    df = albstats.read_logs(str(p), kind="connection")
    assert list(df.columns) == CONNECTION.names and len(df) == len(lines)
    assert str(df["time"].dtype) == "timestamp[us, tz=UTC][pyarrow]"
    part = albstats.read_logs(str(p), kind="connection", fields=["client_ip", "time"])
    assert list(part.columns) == ["client_ip", "time"]


def test_empty_input_gives_typed_empty_frame(tmp_path):
    p = tmp_path / "empty.log"
    p.write_text("")
    df = albstats.read_logs(str(p))
    assert len(df) == 0 and list(df.columns) == ACCESS.names
    assert str(df["time"].dtype) == "timestamp[us, tz=UTC][pyarrow]"


def test_iter_batches_streams(logfile):
    batches = list(albstats.iter_batches(str(logfile), fields=["time", "elb_status_code"]))
    assert sum(b.num_rows for b in batches) == len(LINES)
    assert batches[0].schema.names == ["time", "elb_status_code"]
