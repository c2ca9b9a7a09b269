"""Reading ALB logs: sources in, Arrow record batches with the Athena columns out.

The package, by job (each module's docstring says more):

- :mod:`~albstats.parsing.lines`: the reference line parser and format detection (what a row *is*);
- :mod:`~albstats.parsing.stats`: what a read found, per file and in total;
- :mod:`~albstats.parsing.reading`: bytes of a source, gunzipped, as whole lines; salvage of damaged gzip;
- :mod:`~albstats.parsing.native`: the bridge to the compiled tokenizer (albstats/_albparse.c), the engine choice;
- :mod:`~albstats.parsing.pool`: the C engine over many files in worker processes, with shared-memory hand-over;
- :mod:`~albstats.parsing.workers`: how those workers end with their parent;
- :mod:`~albstats.parsing.read`: :func:`iter_batches`, the library's entry point;
- :mod:`~albstats.parsing.convert`: :func:`parse_files`, what ``albstats parse`` does.

Two engines give identical rows and statistics: the compiled tokenizer (``c``) and the reference line
parser (``python``), which runs where the optional extension was not built and says so once on stderr.
"""

from albstats.parsing.convert import parse_files
from albstats.parsing.lines import FORMAT_NAMES, BadLine, describe_other, detect_format, parse_line, tokenize
from albstats.parsing.native import ENGINES, resolve_engine
from albstats.parsing.read import iter_batches, iter_file_rows, iter_parsed, read_table
from albstats.parsing.reading import iter_chunks
from albstats.parsing.stats import MAX_BAD_EXAMPLES, FileStats, ParseStats

__all__ = [
    "ENGINES",
    "FORMAT_NAMES",
    "MAX_BAD_EXAMPLES",
    "BadLine",
    "FileStats",
    "ParseStats",
    "describe_other",
    "detect_format",
    "iter_batches",
    "iter_chunks",
    "iter_file_rows",
    "iter_parsed",
    "parse_files",
    "parse_line",
    "read_table",
    "resolve_engine",
    "tokenize",
]
