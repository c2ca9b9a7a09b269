"""Query engines: one interface (:class:`~albstats.engines.base.Engine`), one module per engine.

- ``local`` (:mod:`albstats.engines.local`): DuckDB over files, folders, globs or ``s3://`` paths,
  parsed by albstats' own parser into an ingest cache.
- ``athena`` (:mod:`albstats.engines.athena`): the same SQL on Amazon Athena through pyathena.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from albstats.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from albstats.engines.base import Engine

ENGINES = ("local", "athena")


def connect(paths: Any = None, *, engine: str = "local", **options: Any) -> Engine:
    """Open an engine. Use it as a context manager (or call ``close()``).

    ``engine="local"``: ``paths`` are log files, folders, globs or ``s3://`` prefixes (a str or a
    list); options are those of :class:`albstats.engines.local.LocalEngine` (``db``: cache folder,
    ``cache``: False for no cache, ``quiet``: no progress bar, ``s3_options``).

    ``engine="athena"``: ``paths`` must be empty; options go to
    :class:`albstats.engines.athena.AthenaEngine` (database, table, workgroup, output_location,
    region, profile, ...; see that module).
    """
    if isinstance(paths, str):
        paths = [paths]
    if engine == "local":
        from albstats.engines.local import LocalEngine

        return LocalEngine(list(paths or []), **options)
    if engine == "athena":
        if paths:
            raise UsageError(
                f"--engine athena reads the Athena table; do not give log paths (got {', '.join(map(str, paths))})"
            )
        from albstats.engines.athena import AthenaEngine

        return AthenaEngine(**options)
    raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
