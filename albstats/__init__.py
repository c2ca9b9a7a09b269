"""albstats: answers from AWS Application Load Balancer access logs.

The public API is small and lazy (importing albstats does not import pandas or DuckDB):

- :func:`read_logs` -> pandas DataFrame of parsed log rows
- :func:`iter_batches` -> streaming Arrow record batches
- :func:`connect` -> an engine (local DuckDB or Athena) that runs the saved queries in ``sql/``
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["__version__", "read_logs", "iter_batches", "connect"]


def read_logs(paths: Any, **kw: Any) -> pd.DataFrame:
    """Parse log files into a DataFrame (see :func:`albstats.api.read_logs`)."""
    from albstats.api import read_logs as _read_logs

    return _read_logs(paths, **kw)


def iter_batches(paths: Any, **kw: Any) -> Any:
    """Stream Arrow record batches (see :func:`albstats.parse.iter_batches`)."""
    from albstats.parse import iter_batches as _iter

    return _iter(paths if not isinstance(paths, str) else [paths], **kw)


def connect(*args: Any, **kw: Any) -> Any:
    """Open an engine that runs saved queries (see :func:`albstats.engines.connect`)."""
    from albstats.engines import connect as _connect

    return _connect(*args, **kw)
