"""A journal export's data objects cut into ranges of blocks, the backfill's unit of work. Pure.

An object can be hundreds of MB; read as one unit, all its revisions would be in flight at
once (Flink's Python operators take a function's whole output without a bound: issue 25).
A binary Ion object is cut without parsing it: ``split_object`` walks only the framing
of its top-level values (a type descriptor and a length, then a skip: a seek in a file, a
read-and-discard on S3) and closes a range after the block that takes it past
``RANGE_BYTES``. Each range is read on its own (``ExportStore.open_range``), so it
carries what a reader needs in front of its bytes:

- the Ion version marker and the local symbol tables in effect where reading starts
  (``context``): a top-level struct annotated ``$ion_symbol_table`` (symbol 3) is a
  symbol table, which replaces the current one, or appends to it when it has
  ``imports: $ion_symbol_table``; a version marker resets to the system table. QLDB's
  exports and the simulator's (job/cli/tools/simulate/export.py: a marker and a table in
  front of every block) both begin with a marker; symbol tables can come anywhere.
  System values (markers, symbol tables, NOP padding) are not blocks;
- the start of the block before the range (``lead``): the reader parses that block
  first and only for what the object's reader knew at that point, the chain link
  ``backfill --verify`` checks the range's first block against and the place a dead
  letter says the Ion stopped parsing after.

What is bounded: a binary object's ranges, each a few blocks. What is not: an
``ION_TEXT`` or ``JSON`` object (text cannot be framed without parsing it), an object
that does not start with a version marker, that holds no block or is missing, is one
range, the whole object, read as before ranges. An object whose framing breaks
part-way (truncated) is cut up to the break and its last range runs to the end, where
the reader meets the same parse error it met reading the whole object. Content that
is framed but does not parse (a bad UTF-8 string) costs the rest of its range only,
where reading whole objects lost the rest of the object.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import BinaryIO, Optional

from connectors.formats.ion_framing import BVM, BadFraming, var_uint

# A range closes after the block that takes it to this many bytes. The range reader's
# output for one range (its revisions, decoded, and their rows) is what is in flight
# between the reader and the writer: 2 MB of Ion is about 12 blocks of 100 KB
# documents, small against the 512 MB heap and cheap against the per-range costs (an
# S3 GET, one block parsed twice for the chain).
RANGE_BYTES = 2 * 2 ** 20

_SYMBOL_TABLE_SID = 3  # $ion_symbol_table
_IMPORTS_SID = 6  # imports


@dataclass(frozen=True)
class ObjectRange:
    """Blocks ``index``.. of object ``key``: its bytes ``start``..``end`` (the ranges of
    an object tile it); ``end`` -1: the whole object, read as one stream."""

    key: str
    index: int = 0  # the first block's place in the object, from 0
    start: int = 0
    end: int = -1
    lead: int = 0  # where reading starts: the block before the range's start (index > 0), else start
    context: bytes = b""  # version marker and symbol tables in effect at lead
    final: bool = True  # the object's last range
    size: int = -1  # the object's size (-1: whole, not measured)

    @property
    def whole(self) -> bool:
        return self.end < 0


def whole_object(key: str) -> ObjectRange:
    return ObjectRange(key)


class _Source:
    """Reads at absolute positions, forward only: a seek when the stream can, else reads
    that are thrown away (an S3 body), keeping only what is being looked at."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._seekable = False
        try:
            self._seekable = stream.seekable()
        except Exception:  # noqa: BLE001 - a stream that cannot say cannot seek
            pass
        self._size: Optional[int] = None
        if self._seekable:
            self._size = stream.seek(0, io.SEEK_END)
        self._base = 0  # not seekable: _buf holds the bytes from _base on
        self._buf = b""

    def peek(self, pos: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``pos`` (fewer at the end); ``pos`` never goes back."""
        if self._seekable:
            self._stream.seek(pos)
            return self._fill(b"", n, exact=True)
        drop = pos - self._base
        if drop >= len(self._buf):
            remaining = drop - len(self._buf)
            self._base, self._buf = self._base + len(self._buf), b""
            while remaining:
                chunk = self._stream.read(min(remaining, 1 << 20))
                if not chunk:
                    return b""
                self._base += len(chunk)
                remaining -= len(chunk)
        else:
            self._buf, self._base = self._buf[drop:], pos
        self._buf = self._fill(self._buf, n)
        return self._buf[:n]

    def _fill(self, data: bytes, n: int, exact: bool = False) -> bytes:
        while len(data) < n:
            chunk = self._stream.read(n - len(data) if exact else max(n - len(data), 1 << 16))
            if not chunk:
                break
            data += chunk
        return data

    def at_end(self, pos: int) -> bool:
        return pos >= self._size if self._size is not None else not self.peek(pos, 1)

    def reaches(self, end: int) -> bool:
        """The data holds every byte before ``end``."""
        return end <= self._size if self._size is not None else end == 0 or bool(self.peek(end - 1, 1))

    def size(self) -> int:
        """The stream's size (read to its end when it is not known)."""
        if self._size is None:
            self._base += len(self._buf)
            self._buf = b""
            while True:
                chunk = self._stream.read(1 << 20)
                if not chunk:
                    break
                self._base += len(chunk)
            self._size = self._base
        return self._size


def _header(data: bytes, pos: int = 0) -> tuple:
    """(type, low nibble, where the value's body starts, its length) of the value at
    ``pos`` of ``data`` (which holds at least its header)."""
    if pos >= len(data):
        raise BadFraming("a value's type descriptor is missing")
    descriptor = data[pos]
    kind, low = descriptor >> 4, descriptor & 0x0F
    pos += 1
    if kind == 0xF:
        raise BadFraming(f"reserved type descriptor 0x{descriptor:02x}")
    if low == 0xF or kind == 0x1:  # a null, a bool: the descriptor is the whole value
        return kind, low, pos, 0
    if low == 0xE or (kind == 0xD and low == 1):
        length, pos = var_uint(data, pos, len(data))
        return kind, low, pos, length
    return kind, low, pos, low


def _is_append(table: bytes) -> bool:
    """The symbol table (an annotated struct, whole) has ``imports: $ion_symbol_table``."""
    _, _, pos, length = _header(table)
    annotations, pos = var_uint(table, pos, len(table))
    pos += annotations
    kind, low, pos, length = _header(table, pos)
    end = pos + length
    while pos < end:
        field, pos = var_uint(table, pos, len(table))
        kind, low, body, length = _header(table, pos)
        if field == _IMPORTS_SID:
            return kind == 0x7 and table[body:body + length].lstrip(b"\x00") == bytes([_SYMBOL_TABLE_SID])
        pos = body + length
    return False


# Enough for any top-level header: a descriptor, a 9-byte length, an annotation wrapper's
# lengths and first annotation, the wrapped value's descriptor.
_HEADER_BYTES = 32


def split_object(stream: BinaryIO, key: str, range_bytes: int = RANGE_BYTES) -> list:
    """The ranges of one data object (its stream, read from the start), in order; one
    whole-object range when it cannot be cut (see the module's note)."""
    source = _Source(stream)
    if source.peek(0, 4) != BVM:
        return [whole_object(key)]
    context = [BVM]
    ranges: list = []
    blocks = 0
    previous = None  # (start, context) of the block before
    opened = None  # the range being filled: (index, start, lead, context at lead)
    start = 0  # where the next range starts
    pos = 4
    broken = False
    while not source.at_end(pos):
        head = source.peek(pos, _HEADER_BYTES)
        if head[:4] == BVM:
            context = [BVM]
            pos += 4
            continue
        try:
            kind, low, body, length = _header(head)
        except BadFraming:
            broken = True
            break
        end = pos + body + length
        if kind == 0xE and _is_symbol_table(head, body):
            table = source.peek(pos, end - pos)
            if len(table) < end - pos:
                broken = True
                break
            try:
                context = context + [table] if _is_append(table) else [BVM, table]
            except (BadFraming, IndexError):
                broken = True
                break
            pos = end
            continue
        if not source.reaches(end):
            broken = True
            break
        if kind == 0x0 and low != 0xF:  # NOP padding
            pos = end
            continue
        if opened is None:
            opened = (blocks, start) + ((previous[0], b"".join(previous[1])) if previous else (start, b""))
        previous = (pos, context)
        blocks += 1
        pos = end
        if pos - opened[1] >= range_bytes:
            index, first, lead, lead_context = opened
            ranges.append(ObjectRange(key, index, first, pos, lead, lead_context, final=False))
            start, opened = pos, None
    if blocks == 0:
        return [whole_object(key)]
    size = source.size() if broken else pos
    if opened is None and broken:  # the break opens a last range without a whole block
        opened = (blocks, start, previous[0], b"".join(previous[1]))
    if opened is not None:
        index, first, lead, lead_context = opened
        ranges.append(ObjectRange(key, index, first, size, lead, lead_context, final=False))
    # Trailing system values belong to the last range; it, and only it, is final.
    ranges[-1] = replace(ranges[-1], end=size, final=True)
    return [replace(r, size=size) for r in ranges]


def _is_symbol_table(head: bytes, body: int) -> bool:
    """An annotation wrapper whose first annotation is $ion_symbol_table around a struct."""
    try:
        annotations, pos = var_uint(head, body, len(head))
        first, after = var_uint(head, pos, len(head))
        wrapped = head[pos + annotations] if pos + annotations < len(head) else None
    except BadFraming:
        return False
    return first == _SYMBOL_TABLE_SID and after <= pos + annotations and wrapped is not None \
        and wrapped >> 4 == 0xD
