"""The public API's signatures: precise types, no ``Any``, options that match the engines they feed.

Why: ``read_logs(paths: Any, **kw: Any)`` told a notebook user nothing and let a misspelt option through
to a TypeError three calls deep. What mypy concludes about calls is in tests/api_typing_cases.py.
"""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import typing
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import albstats
from albstats import api
from albstats.engines.athena import AthenaEngine
from albstats.engines.base import Engine, QueryRows
from albstats.engines.local import LocalEngine
from albstats.errors import UsageError
from albstats.parse import FileStats, ParseStats

#: Names the annotations refer to only under TYPE_CHECKING, so typing.get_type_hints can resolve them.
_NAMES = {
    "pd": pd,
    "pa": pa,
    "Engine": Engine,
    "LocalEngine": LocalEngine,
    "AthenaEngine": AthenaEngine,
    "FileStats": FileStats,
    "QueryRows": QueryRows,
    "ParseStats": ParseStats,
}


def _mentions_any(tp: object) -> bool:
    if tp is typing.Any:
        return True
    return any(_mentions_any(a) for a in typing.get_args(tp))


def _public_functions() -> dict[str, Callable[..., object]]:
    out: dict[str, Callable[..., object]] = {}
    for name in albstats.__all__:
        obj = getattr(albstats, name)
        if callable(obj):
            out[f"albstats.{name}"] = obj
    for name, obj in vars(api).items():
        if inspect.isfunction(obj) and obj.__module__ == api.__name__ and not name.startswith("_"):
            out[f"albstats.api.{name}"] = obj
    for name, obj in vars(Engine).items():
        if inspect.isfunction(obj) and (not name.startswith("_") or name in ("__enter__", "__exit__")):
            out[f"Engine.{name}"] = obj
    for name, fn in list(out.items()):
        for i, ov in enumerate(typing.get_overloads(fn)):
            out[f"{name} (overload {i + 1})"] = ov
    return out


def test_the_public_names_are_the_typed_api_functions() -> None:
    assert albstats.read_logs is api.read_logs
    assert albstats.iter_batches is api.iter_batches
    assert albstats.connect is api.connect
    assert len(typing.get_overloads(api.connect)) == 2  # one per engine, each returning that engine's class


def test_no_public_signature_uses_any() -> None:
    funcs = _public_functions()
    assert {"albstats.read_logs", "albstats.connect (overload 2)", "Engine.query"} <= set(funcs)
    offenders = []
    for name, fn in funcs.items():
        hints = typing.get_type_hints(fn, localns=_NAMES)
        params = inspect.signature(fn).parameters
        missing = [p for p in params if p not in hints and p != "self"]
        if missing or "return" not in hints:
            offenders.append(f"{name}: not annotated: {missing or 'return'}")
        offenders += [f"{name}: {k} is {v}" for k, v in hints.items() if _mentions_any(v)]
    assert offenders == []


def test_the_any_check_finds_any() -> None:
    def loose(paths: typing.Any, **kw: dict[str, typing.Any]) -> list[typing.Any] | None:
        return None

    assert all(_mentions_any(v) for v in typing.get_type_hints(loose).values())
    assert not _mentions_any(typing.get_type_hints(api.read_logs)["paths"])


def _overload_options(engine: str) -> set[str]:
    for ov in typing.get_overloads(api.connect):
        params = inspect.signature(ov).parameters
        if params["engine"].default == engine or engine in str(params["engine"].annotation):
            return {p for p in params if p not in ("paths", "engine")}
    raise AssertionError(engine)


def test_connect_options_are_the_engines_own() -> None:
    """connect's typed keywords must exist on the engine they go to, so a renamed option fails here."""
    local = set(inspect.signature(LocalEngine.__init__).parameters)
    athena = {f.name for f in dataclasses.fields(AthenaEngine) if f.init}
    assert _overload_options("local") <= local
    assert _overload_options("athena") <= athena
    impl = set(inspect.signature(api.connect).parameters) - {"paths", "engine"}
    assert impl == _overload_options("local") | _overload_options("athena")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"engine": "athena", "db": "cache/"}, "db"),
        ({"engine": "athena", "cache": False}, "cache"),
        ({"engine": "local", "database": "albstats", "timeout": 5.0}, "database, timeout"),
    ],
)
def test_connect_names_an_option_of_the_other_engine(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(UsageError, match=f"engine='{kwargs['engine']}'.*{named} is not an option"):
        albstats.connect(**kwargs)  # type: ignore[call-overload]


@pytest.mark.parametrize("call", [albstats.read_logs, albstats.iter_batches])
def test_a_wrong_kind_is_an_error_not_auto(call: Callable[..., object], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="kind='nginx': expected one of access, connection, auto"):
        call(str(tmp_path), kind="nginx")


def test_engine_query_refuses_now_as_a_parameter(tmp_path: Path) -> None:
    """``now`` is bind()'s clock; taken from **params it would silently move the window."""
    with albstats.connect([str(tmp_path)], cache=False) as eng:
        with pytest.raises(UsageError, match="--param now"):
            eng.query("error_rate", now="2024-01-01")


def test_a_single_path_object_is_one_path(tmp_path: Path) -> None:
    log = Path(__file__).resolve().parents[1] / "fixtures"
    some = sorted(p for p in log.rglob("*.log.gz"))[0]
    by_path = albstats.read_logs(some, fields=("time", "elb_status_code"), workers=1)
    by_str = albstats.read_logs([str(some)], fields=["time", "elb_status_code"], workers=1)
    assert len(by_path) > 0 and by_path.equals(by_str)
    assert list(by_path.columns) == ["time", "elb_status_code"]
    batches = list(albstats.iter_batches(some, fields=["time"], workers=1))
    assert sum(b.num_rows for b in batches) == len(by_path)


def test_importing_albstats_stays_light() -> None:
    code = (
        "import sys, albstats\n"
        "assert albstats.__version__\n"
        "heavy = [m for m in ('pandas', 'pyarrow', 'duckdb', 'albstats.api') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert 'read_logs' in dir(albstats)\n"
        "albstats.read_logs\n"
        "assert 'albstats.api' in sys.modules\n"
        "try:\n"
        "    albstats.no_such_name\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "no attribute 'no_such_name'" in res.stdout
