"""What the retry proxy does to one HTTP message, without the server: which headers are hop-by-hop,
the trace header, the origin-form target, header sizes, and the ``--listen``/``--upstream`` values.

Pure functions, apart from :mod:`albstats.proxy.server` so the server module keeps to serving (the
guide's ~500 lines); every name stays importable from ``albstats.proxy.server``.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from albstats.errors import UsageError

#: RFC 9110 7.6.1 hop-by-hop headers (plus Proxy-*, handled by prefix) never forwarded in either direction.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
_TRACE_ROOT = re.compile(r"(?:^|;)\s*Root=1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24}(?:;|$)")
#: Never sent upstream: hop-by-hop headers, and ``Expect`` (the proxy answers ``100-continue`` itself).
#: ``Content-Length`` too when the body is streamed (aiohttp frames a stream itself).
NOT_UPSTREAM = HOP_BY_HOP | {"expect"}
NOT_UPSTREAM_STREAMED = NOT_UPSTREAM | {"content-length"}


def parse_listen(value: str, default_port: int = 8080) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host.strip("[]") or "127.0.0.1"
    try:
        p = int(port) if port else default_port
    except ValueError:
        raise UsageError(f"--listen {value!r}: expected HOST:PORT") from None
    if not 0 <= p <= 65535:
        raise UsageError(f"--listen {value!r}: port out of range")
    return host, p


def parse_upstream(value: str) -> URL:
    """The upstream origin (scheme, host, port); a path prefix is allowed, query and fragment are not."""
    url = URL(value if "://" in value else f"http://{value}")
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"--upstream {value!r}: expected http://HOST:PORT")
    if url.query_string or url.fragment:
        raise UsageError(f"--upstream {value!r}: must not have a query or fragment")
    return url


class _TraceIds:
    """X-Ray style roots, ``Root=1-<8 hex epoch seconds>-<24 hex>``, made cheaply.

    Trace ids must be unique, not secret: the 24 hex digits are 64 random bits drawn from the OS
    once per process and a 32-bit counter, so two ids of one process differ in the counter (it
    would have to wrap within one second to repeat) and two processes differ in the random part.
    ``Root=1-<epoch>-<random 64>`` is formatted once per second; per request only the counter is."""

    __slots__ = ("_n", "_prefix", "_rand", "_sec")

    def __init__(self) -> None:
        self._rand = f"{secrets.randbits(64):016x}"
        self._n = secrets.randbits(32)
        self._sec = -1
        self._prefix = ""

    def __call__(self, now: float | None = None) -> str:
        sec = int(time.time() if now is None else now)
        if sec != self._sec:
            self._sec = sec
            self._prefix = f"Root=1-{sec & 0xFFFFFFFF:08x}-{self._rand}"
        n = self._n = (self._n + 1) & 0xFFFFFFFF
        return f"{self._prefix}{n:08x}"


#: one id source per process; the server takes ids from it directly
_TRACE_IDS = _TraceIds()


def new_trace_root(now: float | None = None) -> str:
    """An X-Ray style root: ``Root=1-<8 hex epoch seconds>-<24 hex>``, unique per request."""
    return _TRACE_IDS(now)


def trace_header(value: str | None, now: float | None = None) -> str:
    """Keep a client's trace header when it carries a well-formed Root, else create one."""
    if value and _TRACE_ROOT.search(value) and len(value) <= 1024:
        return value
    return _TRACE_IDS(now)


def origin_form(raw: str) -> str:
    """The path and query to send upstream. An absolute-form target (``http://other/x``) keeps only its
    path and query; anything else not starting with ``/`` (``*``, authority-form) becomes ``/``."""
    if raw.startswith("/"):
        return raw
    if "://" in raw:
        try:
            return URL(raw, encoded=True).raw_path_qs or "/"
        except ValueError:
            return "/"
    return "/"


def path_and_query(raw: str) -> tuple[str, str]:
    """The request target's path and query to send upstream (:func:`origin_form`), without a
    fragment (aiohttp's server leaves one in ``raw_path``; a client must not send it). In parts, for
    ``URL.build``: building from parts took 0.65 µs, parsing the joined string 1.65 µs."""
    path, _, query = origin_form(raw).partition("#")[0].partition("?")
    return path, query


def connection_tokens(headers: CIMultiDict[str] | object) -> set[str]:
    vals = headers.getall("Connection", []) if hasattr(headers, "getall") else []
    return {t.strip().lower() for v in vals for t in v.split(",") if t.strip()}


def to_drop(headers: CIMultiDict[str] | CIMultiDictProxy[str], drop: frozenset[str]) -> frozenset[str]:
    """The names (lower case) among ``headers`` not to forward: those in ``drop``, ``Proxy-*`` ones,
    and the ones a ``Connection`` header lists (when ``drop`` has ``connection``).

    Found with a few string and set operations over all the names at once, so the caller copies the
    headers whole and removes only these (nearly every message has none, or a ``Connection:
    keep-alive``). For a browser's dozen request headers this takes 1.9 µs where a test per header
    took 3.0 µs; for the four of a small response, the same as before."""
    joined = "\n".join(headers.keys()).lower()
    names = joined.split("\n")
    found = drop.intersection(names)
    if "connection" in found:
        found |= connection_tokens(headers)
    if "proxy-" in joined:
        found |= {n for n in names if n.startswith("proxy-")}
    return found


def lines_size(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> int:
    """Header lines, ``Name: value\r\n`` each: in bytes for a request's ``raw_headers``, in
    characters for a multidict's ``items()`` (not its ``keys()``, which give a repeated name such as
    ``Set-Cookie`` once). The longest line is no longer than all of them together, so only a large
    total needs :func:`_header_sizes`."""
    return sum([len(k) + len(v) + 4 for k, v in pairs])


def _header_sizes(raw: tuple[tuple[bytes, bytes], ...]) -> tuple[int, int]:
    """(all request header lines, the longest one) in bytes, ``Name: value\r\n`` each."""
    sizes = [len(k) + len(v) + 4 for k, v in raw]
    return sum(sizes), max(sizes, default=0)
