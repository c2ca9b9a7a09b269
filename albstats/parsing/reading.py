"""Reading sources: their bytes, gunzipped, as whole lines; damage costs only what follows it.

:func:`gunzip` is ISA-L's streaming decompressor (about 1.6x faster than zlib, same results), member by
member, for a small file read whole and for a big one or stdin read in chunks alike. A small file that is
one sound member (what ALB writes) is first tried in one call (:func:`gunzip_whole`), which leaves anything
else to :func:`gunzip` by checking what the decompressor itself reports, not by guessing. When a member
turns out damaged, :func:`_salvage` decompresses it again in small steps with plain zlib to keep what came
before the damage (the streaming call that meets it returns nothing), for members of up to
:data:`SALVAGE_MAX` compressed bytes; beyond that only what was already yielded is kept, so memory stays
bounded on an endless stream.
"""

from __future__ import annotations

import io
import sys
import zlib
from collections.abc import Iterator
from typing import BinaryIO, cast

from isal import igzip_lib, isal_zlib

from albstats.errors import InputError
from albstats.parsing.lines import LOOKAHEAD_LINES
from albstats.parsing.stats import FileStats
from albstats.sources import Source

#: What a damaged gzip stream raises: ISA-L's and zlib's errors, or EOFError when it ends early.
ZLIB_ERRORS: tuple[type[BaseException], ...] = (zlib.error, cast("type[BaseException]", isal_zlib.error))
#: What ends a read early but keeps what came before: damaged gzip, or (reading line by line) a failing read.
DAMAGE: tuple[type[BaseException], ...] = (EOFError, *ZLIB_ERRORS)
READ_ERRORS: tuple[type[BaseException], ...] = (*DAMAGE, OSError)
#: Sources bigger than this (compressed) or of unknown size are streamed block by block.
STREAM_OVER = 32 << 20
#: About this much decompressed text is parsed at once (small files are grouped into blocks this big).
BLOCK_BYTES = 4 << 20
#: Compressed bytes read per step.
CHUNK = 1 << 20
#: A damaged member up to this size (compressed) is salvaged up to the damage; beyond, what came out before.
SALVAGE_MAX = STREAM_OVER

_GZIP = 16 + zlib.MAX_WBITS


def gunzip(raw: BinaryIO, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream chunk by chunk; damage raises after the good part.

    A file of at most ``chunk_size`` bytes is one read and one call that gives its whole text as one piece.
    """
    d = isal_zlib.decompressobj(_GZIP)
    member: list[bytes] | None = []  # this member's compressed bytes so far, for _salvage
    kept = given = 0  # their size; the text this member gave so far
    pending = ended = False  # inside a member; after at least one whole member
    while chunk := raw.read(chunk_size):
        while chunk:
            if ended and not pending and not (chunk := chunk.lstrip(b"\0")):
                break  # zero padding after a member, skipped as gzip and Python's GzipFile do
            pending = True
            if member is not None:
                member.append(chunk)
                kept += len(chunk)
                if kept > SALVAGE_MAX:
                    member = None
            try:
                out = d.decompress(chunk)
            except ZLIB_ERRORS:
                if member is not None and (rest := _salvage(b"".join(member))[given:]):
                    yield rest
                raise
            if out:
                given += len(out)
                yield out
            if d.eof:  # the next member, if any, starts in what is left
                chunk, pending, ended = d.unused_data, False, True
                d = isal_zlib.decompressobj(_GZIP)
                member, kept, given = [], 0, 0
            else:
                chunk = b""
    if pending:
        raise EOFError("gzip stream ends before its end marker")


def _salvage(member: bytes, step: int = 1024) -> bytes:
    """What a damaged gzip member yields before the damage, fed in small steps (rare, so plain zlib)."""
    d = zlib.decompressobj(_GZIP)
    got: list[bytes] = []
    view = memoryview(member)
    for k in range(0, len(view), step):
        try:
            got.append(d.decompress(view[k : k + step]))
        except zlib.error:
            break
        if d.eof:
            break
    return b"".join(got)


def iter_chunks(src: Source) -> Iterator[bytes]:
    """The decompressed bytes of one source, in chunks; damage raises after the good part was yielded."""
    raw = src.open()
    try:
        if src.is_gzip:
            yield from gunzip(raw)
        else:
            while chunk := raw.read(CHUNK):
                yield chunk
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def damage(e: BaseException, n: int) -> str:
    """The ``FileStats.error`` of a file whose gzip data broke off after ``n`` good lines."""
    what = "is truncated" if isinstance(e, EOFError) else f"is corrupt ({e})"
    return f"gzip data {what} after line {n}; the {n} lines before it were kept"


def iter_lines(src: Source, fs: FileStats) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) from one source; a damaged gzip stops early with ``fs.error`` set."""
    n = 0
    rest = b""
    try:
        for chunk in iter_chunks(src):
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for b in parts:
                n += 1
                yield n, b.decode("utf-8", "replace").rstrip("\r")
    except READ_ERRORS as e:
        fs.error = damage(e, n)
        return
    if rest:
        n += 1
        yield n, rest.decode("utf-8", "replace").rstrip("\r")


def gunzip_whole(raw: bytes) -> bytes | None:
    """The text of a whole gzip file in one call, when it is one sound member (zero padding after it allowed);
    None for anything else (several members, damage), which :func:`gunzip` then reads member by member.

    The output is sized from the member's trailer (ISIZE, the text's length mod 2**32), so it is made in one
    piece: the streaming decompressor grows its output by copying it several times, and that cost about a
    sixth of the decompression of small log files. A wrong size only costs that growth again."""
    if len(raw) < 18:  # smaller than an empty member: let gunzip say what is wrong
        return None
    size = int.from_bytes(raw[-4:], "little")
    d = igzip_lib.IgzipDecompressor(igzip_lib.DECOMP_GZIP)
    try:
        text = d.decompress(raw, size or -1)
        if not d.eof and not d.needs_input:  # the size was too small (several members, or 4 GB of text)
            text += d.decompress(b"")
    except DAMAGE:
        return None
    if not d.eof or d.unused_data.strip(b"\0"):
        return None
    return text


def read_whole(src: Source, fs: FileStats) -> bytes:
    """The decompressed text of a small source, whole lines only (after damage, up to its last whole line)."""
    pieces: list[bytes] = []
    err: BaseException | None = None
    try:
        with src.open() as fh:
            if src.is_gzip:
                raw = fh.read()
                text = gunzip_whole(raw)
                if text is not None:
                    pieces.append(text)
                else:
                    try:
                        for piece in gunzip(io.BytesIO(raw)):
                            pieces.append(piece)
                    except DAMAGE as e:
                        err = e
            else:
                pieces.append(fh.read())
    except OSError as e:
        raise InputError(f"{src.name}: {e.strerror or e}") from None
    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    if err is not None:
        data = data[: data.rfind(b"\n") + 1]  # the partial last line is dropped
        fs.error = damage(err, data.count(b"\n"))
    elif data and not data.endswith(b"\n"):
        data += b"\n"
    return data


def stream_blocks(src: Source, fs: FileStats) -> Iterator[tuple[bytes, int]]:
    """(whole-lines block, line number of its first line) of a big or unsized source, about BLOCK_BYTES each."""
    pending: list[bytes] = []
    size = 0
    line_no = 1
    err: BaseException | None = None
    try:
        for chunk in iter_chunks(src):
            pending.append(chunk)
            size += len(chunk)
            if size >= BLOCK_BYTES:
                data = b"".join(pending)
                start = 0
                while len(data) - start >= BLOCK_BYTES:
                    cut = data.rfind(b"\n", start, start + BLOCK_BYTES) + 1
                    if cut <= start:  # a line longer than a block
                        cut = data.find(b"\n", start + BLOCK_BYTES) + 1
                        if not cut:
                            break
                    yield data[start:cut], line_no
                    line_no += data.count(b"\n", start, cut)
                    start = cut
                pending, size = [data[start:]], len(data) - start
    except READ_ERRORS as e:
        err = e
    data = b"".join(pending)
    if err is not None:
        cut = data.rfind(b"\n") + 1
        fs.error = damage(err, line_no - 1 + data.count(b"\n", 0, cut))
        data = data[:cut]
    elif data and not data.endswith(b"\n"):
        data += b"\n"
    if data:
        yield data, line_no


def first_line(data: bytes) -> str | None:
    """The first non-blank line of a block, decoded as the line-by-line engine does."""
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        line = data[pos:end].decode("utf-8", "replace").rstrip("\r")
        if line.strip():
            return line
        pos = end + 1
    return None


def lines_after_first(data: bytes) -> list[str]:
    """The LOOKAHEAD_LINES lines after the first non-blank one, for :func:`~albstats.parsing.lines.check_format`."""
    start = len(data) - len(data.lstrip(b"\r\n\t "))
    pos = data.find(b"\n", start)
    if pos < 0:
        return []
    ends = pos + 1
    for _ in range(LOOKAHEAD_LINES):
        nxt = data.find(b"\n", ends)
        ends = len(data) if nxt < 0 else nxt + 1
        if nxt < 0:
            break
    return data[pos + 1 : ends].decode("utf-8", "replace").splitlines()
