"""albstats: answers from AWS Application Load Balancer access logs.

The public API is small and lazy (importing albstats does not import pandas or DuckDB):

- :func:`read_logs` -> pandas DataFrame of parsed log rows
- :func:`iter_batches` -> streaming Arrow record batches
- :func:`connect` -> an engine (local DuckDB or Athena) that runs the saved queries in ``sql/``

They are defined, with their typed options, in :mod:`albstats.api`; the first use of one imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

#: The one place the version is written: pyproject.toml reads it (``[tool.setuptools.dynamic]``).
__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from albstats.api import connect, iter_batches, read_logs

__all__ = ["__version__", "read_logs", "iter_batches", "connect"]

_LAZY = ("read_logs", "iter_batches", "connect")


def __getattr__(name: str) -> object:
    """``albstats.read_logs`` and the others import :mod:`albstats.api` (pandas, pyarrow) on first use only."""
    if name in _LAZY:
        from albstats import api

        value = getattr(api, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'albstats' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
