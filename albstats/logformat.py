"""Writing ALB access-log lines: the inverse of the parser, driven by the same schema.

Used by the synthetic log generator and by the retry proxy's access log, so everything albstats
writes is read back by the same parser. Values are *logged* values: quoted fields keep backslash
escapes as ALB writes them; use :func:`escape` on raw text (a real User-Agent) first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from albstats.schema import ACCESS, LogSchema


def escape(raw: str) -> str:
    """Escape raw text for a quoted field the way the parser reads it back (``\\"`` and ``\\\\``)."""
    return raw.replace("\\", "\\\\").replace('"', '\\"')


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-1" if v == -1 else f"{v:.3f}"
    return str(v)


def _hostport(ip: str | None, port: int | None) -> str:
    if not ip:
        return "-"
    return f"{ip}:{port if port is not None else ''}"


def format_line(values: Mapping[str, Any], schema: LogSchema = ACCESS, ntokens: int | None = None) -> str:
    """One log line from column values (missing or None -> ``-``).

    ``ntokens`` writes an older format era: only the first ``ntokens`` tokens (default: all the
    schema knows). ``extra_fields``, when set, is appended raw.
    """
    tokens = schema.tokens if ntokens is None else schema.tokens[:ntokens]
    out: list[str] = []
    for tok in tokens:
        cols = [values.get(c.name) for c in tok.columns]
        if tok.kind == "hostport":
            text = _hostport(cols[0], cols[1])
        elif tok.kind == "request":
            text = " ".join("-" if v is None else str(v) for v in cols)
        else:
            v = cols[0]
            text = _num(v) if tok.columns[0].type in ("double", "int", "bigint") else ("-" if v is None else str(v))
        out.append(f'"{text}"' if tok.quoted else text)
    extra = values.get("extra_fields")
    if extra:
        out.append(str(extra))
    return " ".join(out)
