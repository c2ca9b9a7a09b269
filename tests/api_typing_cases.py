"""What a type checker says about code using the public API; mypy checks this file with the package.

Not a pytest module: tests/test_types.py runs mypy over it. ``assert_type`` states what a call
returns. A call that must be refused carries ``# type: ignore[code]``, and the project's
``warn_unused_ignores`` makes mypy fail if the call were accepted after all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import assert_type

import pandas as pd
import pyarrow as pa

import albstats
from albstats.engines.athena import AthenaEngine
from albstats.engines.base import QueryRows
from albstats.engines.local import LocalEngine


def accepted() -> None:
    assert_type(albstats.read_logs("logs/"), pd.DataFrame)
    assert_type(albstats.read_logs([Path("a.log"), "b.log"], kind="connection", workers=2), pd.DataFrame)
    assert_type(
        albstats.read_logs("s3://bucket/AWSLogs/", since="7d", s3_options={"region": "eu-west-1"}), pd.DataFrame
    )
    assert_type(albstats.iter_batches(Path("logs"), fields=["time"], on_file=lambda fs: None), Iterator[pa.RecordBatch])
    assert_type(albstats.connect("logs/"), LocalEngine)
    assert_type(albstats.connect(engine="athena", database="albstats", region="eu-west-1"), AthenaEngine)
    with albstats.connect(["logs/"], cache=False) as eng:
        assert_type(eng, LocalEngine)
        assert_type(eng.query("error_rate", since="7d", bucket="1h", limit=10), pd.DataFrame)
        assert_type(
            eng.sql_rows("SELECT count(*) AS n FROM alb_logs WHERE client_ip = :ip", {"ip": "10.0.0.1"}), QueryRows
        )


def refused() -> None:
    albstats.read_logs("logs/", workerz=2)  # type: ignore[call-arg]
    albstats.read_logs("logs/", kind="nginx")  # type: ignore[arg-type]
    albstats.read_logs(42)  # type: ignore[arg-type]
    albstats.read_logs("s3://b/p/", s3_options={"regoin": "eu-west-1"})  # type: ignore[arg-type]
    albstats.connect(engine="athena", db="cache/")  # type: ignore[call-overload]
    albstats.connect("logs/", engine="athena")  # type: ignore[call-overload]
    albstats.connect(engine="bigquery")  # type: ignore[call-overload]
    albstats.connect("logs/").query("error_rate", since=[2024])  # type: ignore[arg-type]
    albstats.connect("logs/").sql("SELECT 1", {"ip": object()})  # type: ignore[dict-item]
