"""Join Parquet files written by parse workers into one Parquet file, without decoding a single value.

Why: encoding Parquet is about a third of the CPU that `albstats parse --format parquet` spends, and
pyarrow encodes one file on one core. So each worker process encodes the rows it parsed into a small,
complete Parquet file (one row group), and the parent only appends the row groups' bytes to the output
and writes a footer that lists them all. Column chunks hold no absolute file positions (pages carry
sizes only), so their bytes are copied as they are; only the footer's offsets move.

The footer is Thrift's compact protocol (parquet.thrift's ``FileMetaData``). :func:`decode` turns it
into a generic tree of ``[field_id, type, value]`` and :func:`encode` writes such a tree back byte for
byte, so fields this module does not know (statistics, newer additions) pass through untouched. The
fragments must come from one writer configuration without page indexes or encryption: both put
absolute offsets outside the footer, and :class:`ParquetJoiner` refuses fragments that carry them.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

MAGIC = b"PAR1"

# compact-protocol type codes
T_STOP, T_TRUE, T_FALSE, T_BYTE, T_I16, T_I32, T_I64, T_DOUBLE, T_BINARY, T_LIST, T_SET, T_MAP, T_STRUCT = range(13)

Struct = list  # of [field_id, type, value]


class ParquetJoinError(ValueError):
    """A fragment that cannot be joined (damaged, or written with features that hold absolute offsets)."""


# --- Thrift compact protocol ------------------------------------------------------------------

# Decoding passes the position along instead of keeping it on an object: about twice as fast in CPython,
# and each worker decodes its fragment's footer (a few thousand values).

def _varint(b: bytes, pos: int) -> tuple[int, int]:
    v = b[pos]
    if v < 0x80:
        return v, pos + 1
    result, shift = v & 0x7F, 7
    while True:
        pos += 1
        v = b[pos]
        result |= (v & 0x7F) << shift
        if v < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 70:
            raise ParquetJoinError("malformed varint in the Parquet footer")


def _value(b: bytes, pos: int, t: int) -> tuple[Any, int]:
    if t in (T_I16, T_I32, T_I64):
        n, pos = _varint(b, pos)
        return (n >> 1) ^ -(n & 1), pos
    if t == T_STRUCT:
        return _struct(b, pos)
    if t == T_BINARY:
        n, pos = _varint(b, pos)
        if pos + n > len(b):
            raise ParquetJoinError("truncated Parquet footer")
        return b[pos:pos + n], pos + n
    if t in (T_LIST, T_SET):
        h = b[pos]
        n, et = h >> 4, h & 0x0F
        pos += 1
        if n == 15:
            n, pos = _varint(b, pos)
        items = []
        for _ in range(n):
            v, pos = _value(b, pos, et)
            items.append(v)
        return (et, items), pos
    if t in (T_TRUE, T_FALSE):  # only inside containers: one byte
        return b[pos], pos + 1
    if t == T_BYTE:
        v = b[pos]
        return (v - 256 if v > 127 else v), pos + 1
    if t == T_DOUBLE:
        if pos + 8 > len(b):
            raise ParquetJoinError("truncated Parquet footer")
        return struct.unpack_from("<d", b, pos)[0], pos + 8
    if t == T_MAP:
        n, pos = _varint(b, pos)
        if n == 0:
            return (0, 0, []), pos
        kv = b[pos]
        kt, vt = kv >> 4, kv & 0x0F
        pos += 1
        pairs = []
        for _ in range(n):
            k, pos = _value(b, pos, kt)
            v, pos = _value(b, pos, vt)
            pairs.append((k, v))
        return (kt, vt, pairs), pos
    raise ParquetJoinError(f"unknown Thrift type {t} in the Parquet footer")


def _struct(b: bytes, pos: int) -> tuple[Struct, int]:
    fields: Struct = []
    last = 0
    while True:
        h = b[pos]
        pos += 1
        if h == T_STOP:
            return fields, pos
        t, delta = h & 0x0F, h >> 4
        if delta:
            fid = last + delta
        else:
            n, pos = _varint(b, pos)
            fid = (n >> 1) ^ -(n & 1)
        last = fid
        if t in (T_TRUE, T_FALSE):
            fields.append([fid, t, None])
        else:
            v, pos = _value(b, pos, t)
            fields.append([fid, t, v])


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, n: int) -> None:
        while n > 0x7F:
            self.out.append((n & 0x7F) | 0x80)
            n >>= 7
        self.out.append(n)

    def zigzag(self, n: int) -> None:
        self.varint((n << 1) ^ (n >> 63))

    def field_header(self, fid: int, last: int, t: int) -> None:
        """A field's header: its id as a delta from the previous field's when that fits in four bits."""
        delta = fid - last
        if 0 < delta <= 15:
            self.out.append(delta << 4 | t)
        else:
            self.out.append(t)
            self.zigzag(fid)

    def list_header(self, n: int, et: int) -> None:
        if n < 15:
            self.out.append(n << 4 | et)
        else:
            self.out.append(0xF0 | et)
            self.varint(n)

    def value(self, t: int, v: Any) -> None:
        if t in (T_TRUE, T_FALSE):
            self.out.append(v)
        elif t == T_BYTE:
            self.out.append(v & 0xFF)
        elif t in (T_I16, T_I32, T_I64):
            self.zigzag(v)
        elif t == T_DOUBLE:
            self.out += struct.pack("<d", v)
        elif t == T_BINARY:
            self.varint(len(v))
            self.out += v
        elif t in (T_LIST, T_SET):
            et, items = v
            self.list_header(len(items), et)
            for item in items:
                self.value(et, item)
        elif t == T_MAP:
            kt, vt, items = v
            self.varint(len(items))
            if items:
                self.out.append(kt << 4 | vt)
                for k, val in items:
                    self.value(kt, k)
                    self.value(vt, val)
        elif t == T_STRUCT:
            self.struct(v)
        else:
            raise ParquetJoinError(f"unknown Thrift type {t}")

    def fields(self, fields: Struct, last: int = 0) -> None:
        """Fields of a struct without its STOP, ids encoded as following field ``last``."""
        for fid, t, v in fields:
            self.field_header(fid, last, t)
            last = fid
            if t not in (T_TRUE, T_FALSE):
                self.value(t, v)

    def struct(self, fields: Struct) -> None:
        self.fields(fields)
        self.out.append(T_STOP)


def decode(data: bytes | memoryview) -> Struct:
    """A Thrift compact-protocol struct as a list of ``[field_id, type, value]``."""
    try:
        return _struct(bytes(data), 0)[0]
    except (IndexError, struct.error):
        raise ParquetJoinError("truncated Parquet footer") from None


def encode(fields: Struct) -> bytes:
    w = _Writer()
    w.struct(fields)
    return bytes(w.out)


def _get(fields: Struct, fid: int) -> Any:
    for f in fields:
        if f[0] == fid:
            return f[2]
    return None


# parquet.thrift field ids
_FMD_SCHEMA, _FMD_NUM_ROWS, _FMD_ROW_GROUPS = 2, 3, 4
_RG_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
_CC_FILE_OFFSET, _CC_META = 2, 3
_CC_REFUSED = {1: "a path to another file", 4: "an offset index", 6: "a column index", 8: "encryption",
               9: "encryption"}
# data_page_offset, index_page_offset, dictionary_page_offset, bloom_filter_offset
_CMD_OFFSETS = (9, 10, 11, 14)

_HOLE = "offset"
#: Where a row group holds file offsets: RowGroup.file_offset, ColumnChunk.file_offset, ColumnMetaData's.
_RG_HOLES: dict[int, Any] = {_RG_FILE_OFFSET: _HOLE,
                             _RG_COLUMNS: {_CC_FILE_OFFSET: _HOLE, _CC_META: {k: _HOLE for k in _CMD_OFFSETS}}}


class _HoleWriter(_Writer):
    """Encodes a struct as bytes with holes: the offsets named in ``spec`` come out as ints, to be encoded
    once the fragment's place in the joined file is known."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes | int] = []

    def struct_spec(self, fields: Struct, spec: dict[int, Any]) -> None:
        last = 0
        for fid, t, v in fields:
            self.field_header(fid, last, t)
            last = fid
            sub = spec.get(fid)
            if sub is _HOLE and t in (T_I64, T_I32):
                self.parts.append(bytes(self.out))
                self.out.clear()
                self.parts.append(v)
            elif isinstance(sub, dict) and t == T_STRUCT:
                self.struct_spec(v, sub)
            elif isinstance(sub, dict) and t == T_LIST and v[0] == T_STRUCT:
                self.list_header(len(v[1]), T_STRUCT)
                for item in v[1]:
                    self.struct_spec(item, sub)
            elif t not in (T_TRUE, T_FALSE):
                self.value(t, v)
        self.out.append(T_STOP)

    def done(self) -> list[bytes | int]:
        self.parts.append(bytes(self.out))
        return self.parts


def _fields_bytes(fields: Struct, last: int) -> bytes:
    """Fields of a struct (no STOP), their ids encoded as following field ``last``."""
    w = _Writer()
    w.fields(fields, last)
    return bytes(w.out)


def _zigzag_varint(n: int) -> bytes:
    w = _Writer()
    w.zigzag(n)
    return bytes(w.out)


@dataclass
class Fragment:
    """A complete Parquet file (in memory, or a file deleted once joined) and, after :meth:`prepare`,
    its footer split for joining: the fields before and after the row groups, and each row group encoded
    with holes for its offsets. Workers prepare their fragments, so the parent decodes nothing."""

    data: bytes | None = None
    path: str | None = None
    body_end: int = 0
    rows: int = 0
    head: bytes = b""
    tail: bytes = b""
    groups: list[list[bytes | int]] = field(default_factory=list)
    prepared: bool = False

    def _open(self) -> tuple[BinaryIO, int]:
        if self.data is not None:
            import io

            return io.BytesIO(self.data), len(self.data)
        assert self.path is not None
        f = open(self.path, "rb")
        return f, os.fstat(f.fileno()).st_size

    def prepare(self) -> Fragment:
        """Read and split the footer (a worker does this, in parallel with the others)."""
        if self.prepared:
            return self
        f, size = self._open()
        try:
            meta, self.body_end = _footer(f, size, self.path or "fragment")
        finally:
            f.close()
        self.rows = _get(meta, _FMD_NUM_ROWS) or 0
        if [m[0] for m in meta if m[0] < _FMD_NUM_ROWS][-1:] != [_FMD_SCHEMA]:
            raise ParquetJoinError(f"{self.path or 'fragment'}: Parquet footer without a schema")
        self.head = _fields_bytes([m for m in meta if m[0] < _FMD_NUM_ROWS], 0)
        self.tail = _fields_bytes([m for m in meta if m[0] > _FMD_ROW_GROUPS], _FMD_ROW_GROUPS) + bytes([T_STOP])
        self.groups = []
        for rg in (_get(meta, _FMD_ROW_GROUPS) or (T_STRUCT, []))[1]:
            for cc in _get(rg, _RG_COLUMNS)[1]:
                for f_ in cc:
                    if f_[0] in _CC_REFUSED:
                        raise ParquetJoinError(f"fragment has {_CC_REFUSED[f_[0]]}; it cannot be joined")
            w = _HoleWriter()
            w.struct_spec([f_ for f_ in rg if f_[0] != _RG_ORDINAL], _RG_HOLES)  # ordinals: encryption only
            self.groups.append(w.done())
        self.prepared = True
        return self

    def discard(self) -> None:
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def _footer(f: BinaryIO, size: int, name: str) -> tuple[Struct, int]:
    """The decoded footer and where it starts."""
    if size < 12:
        raise ParquetJoinError(f"{name}: too short for a Parquet file")
    f.seek(size - 8)
    tail = f.read(8)
    (flen,) = struct.unpack("<I", tail[:4])
    if tail[4:] != MAGIC or flen > size - 12:
        raise ParquetJoinError(f"{name}: not a Parquet file (or an encrypted one)")
    f.seek(0)
    if f.read(4) != MAGIC:
        raise ParquetJoinError(f"{name}: not a Parquet file")
    start = size - 8 - flen
    f.seek(start)
    return decode(f.read(flen)), start


class ParquetJoiner:
    """Append fragments' row groups to ``out`` (an open binary file at position 0); :meth:`close` writes
    the footer. Every fragment must have the same schema and key-value metadata as the first."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.pos = 0
        self.head: bytes | None = None
        self.tail = b""
        self.row_groups: list[bytes] = []
        self.rows = 0

    def append(self, frag: Fragment) -> None:
        frag.prepare()
        if self.head is None:
            self.head, self.tail = frag.head, frag.tail
            self.out.write(MAGIC)
            self.pos = 4
        elif (frag.head, frag.tail) != (self.head, self.tail):
            raise ParquetJoinError(f"{frag.path or 'fragment'}: its schema differs from the first fragment's")
        delta = self.pos - 4  # the fragment's body starts after its own magic, at 4
        for parts in frag.groups:
            self.row_groups.append(b"".join(p if isinstance(p, bytes) else _zigzag_varint(p + delta)
                                            for p in parts))
        self.rows += frag.rows
        f, _ = frag._open()
        try:
            self._copy(f, 4, frag.body_end - 4)
        finally:
            f.close()
        self.pos += frag.body_end - 4
        frag.discard()

    def _copy(self, f: BinaryIO, offset: int, count: int) -> None:
        self.out.flush()
        try:
            src, dst = f.fileno(), self.out.fileno()
        except (AttributeError, OSError, ValueError):  # in-memory fragment
            f.seek(offset)
            self.out.write(f.read(count))
            return
        sent = 0
        try:
            while sent < count:
                n = os.sendfile(dst, src, offset + sent, count - sent)
                if n == 0:
                    raise ParquetJoinError("fragment shorter than its footer says")
                sent += n
        except OSError:  # no sendfile between these files: copy through memory
            f.seek(offset + sent)
            self.out.seek(0, os.SEEK_END)
            self.out.write(f.read(count - sent))
        else:
            self.out.seek(0, os.SEEK_END)

    @property
    def empty(self) -> bool:
        return self.head is None

    def close(self) -> None:
        """Write the footer listing every row group (nothing if no fragment came: the caller writes an
        empty file with its own writer)."""
        if self.head is None:
            return
        w = _Writer()
        w.out += self.head
        w.field_header(_FMD_NUM_ROWS, _FMD_SCHEMA, T_I64)  # head ends with the schema (prepare checks)
        w.zigzag(self.rows)
        w.field_header(_FMD_ROW_GROUPS, _FMD_NUM_ROWS, T_LIST)
        w.list_header(len(self.row_groups), T_STRUCT)
        for rg in self.row_groups:
            w.out += rg
        w.out += self.tail
        footer = bytes(w.out)
        self.out.write(footer)
        self.out.write(struct.pack("<I", len(footer)))
        self.out.write(MAGIC)
        self.out.flush()
