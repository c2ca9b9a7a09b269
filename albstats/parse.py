"""The public names of :mod:`albstats.parsing` where they have always been importable (``albstats.parse``).

Nothing is defined here: the code lives in the :mod:`albstats.parsing` package, one module per job. The
name stays for library callers and for modules that import ``albstats.parse`` (``_iter`` is
:func:`albstats.parsing.read.iter_parsed`, which :mod:`albstats.cache` calls).
"""

from albstats.parsing import (
    ENGINES,
    FORMAT_NAMES,
    MAX_BAD_EXAMPLES,
    BadLine,
    FileStats,
    ParseStats,
    describe_other,
    detect_format,
    iter_batches,
    iter_chunks,
    iter_file_rows,
    parse_files,
    parse_line,
    read_table,
    resolve_engine,
    tokenize,
)
from albstats.parsing.read import iter_parsed as _iter

__all__ = [
    "ENGINES",
    "FORMAT_NAMES",
    "MAX_BAD_EXAMPLES",
    "BadLine",
    "FileStats",
    "ParseStats",
    "_iter",
    "describe_other",
    "detect_format",
    "iter_batches",
    "iter_chunks",
    "iter_file_rows",
    "parse_files",
    "parse_line",
    "read_table",
    "resolve_engine",
    "tokenize",
]
