"""Checks that bytes are framed like Ion before amazon-ion's C extension parses them. Pure.

Found by fuzzing (``make fuzz``): amazon-ion 0.15.0's C extension (the newest release)
never returns on some malformed inputs, holding the GIL, so a Python worker of the job
would hang for good on one bad record. Two shapes of input do it:

- binary Ion whose declared lengths run past the end of their container or of the
  data (a VarUInt length that overflows: 108 bytes of a mutated QLDB record);
- Ion text that is not UTF-8 (the 5 bytes ``'\\xff'\\xff\\xff``), or whose symbol id has
  23 digits (``$333...3'330``): Ion text is therefore parsed by the pure-Python reader
  (connectors/formats/qldb.py), after this UTF-8 check.

``check`` walks the binary framing (type descriptors and lengths, not the values:
about 20 µs for a 0.5 KB record, a fifth of its decoding) and decodes text as UTF-8;
what it refuses becomes a dead letter with the reason it raises, and only what it lets
through reaches the parser.
The pure-Python Ion reader has neither hang but is about 8 times as slow.
"""
from __future__ import annotations

BVM = b"\xe0\x01\x00\xea"
# Deeper than any document MySQL's JSON can take (31, see connectors/rows/limits.py, MAX_JSON_DEPTH)
# plus the record's own envelope; the C extension itself refuses deeper nesting anyway.
MAX_DEPTH = 200


class BadFraming(ValueError):
    pass


def check(payload: bytes) -> None:
    """Raise ``BadFraming`` unless ``payload`` is UTF-8 Ion text or framed binary Ion."""
    if payload[:4] == BVM:
        check_binary(payload)
    else:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadFraming(f"Ion text that is not valid UTF-8 (byte {exc.start})") from None


def var_uint(data: bytes, pos: int, end: int) -> tuple:
    """A VarUInt at ``pos`` that must end before ``end``: (its value, the position after it)."""
    value = 0
    for _ in range(9):  # 63 bits: more is no length a record can have
        if pos >= end:
            raise BadFraming("unexpected end of data (truncated?) in a VarUInt" if pos >= len(data)
                             else "VarUInt runs past the end of its container")
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte & 0x80:
            return value, pos
    raise BadFraming("VarUInt longer than 9 bytes")


def check_binary(data: bytes) -> None:
    """Walk every value: each declared length must end inside its container."""
    # Stack of (end of container, is a struct); the top level is a stream, not a struct.
    stack = [(len(data), False)]
    pos = 0
    while stack:
        end, in_struct = stack[-1]
        if pos == end:
            stack.pop()
            continue
        if pos > end:
            raise BadFraming("a value runs past the end of its container")
        if in_struct:
            _, pos = var_uint(data, pos, end)  # field name symbol id
            if pos >= end:
                raise BadFraming("struct field without a value")
        if len(stack) == 1 and data[pos:pos + 4] == BVM:
            pos += 4
            continue
        descriptor = data[pos]
        pos += 1
        kind, low = descriptor >> 4, descriptor & 0x0F
        if kind == 0xF:
            raise BadFraming(f"reserved type descriptor 0x{descriptor:02x}")
        if low == 0xF:  # a null of any type (0xEF is invalid: annotations need a value)
            if kind == 0xE:
                raise BadFraming("annotation wrapper with a null length")
            continue
        if kind == 0x1:  # bool: its value is in the descriptor
            continue
        if kind == 0xD and low == 1:
            length, pos = var_uint(data, pos, end)  # sorted struct: the length follows
        elif low == 0xE:
            length, pos = var_uint(data, pos, end)
        else:
            length = low
        stop = pos + length
        if stop > len(data):
            raise BadFraming(f"unexpected end of data (truncated?): a value of {length} bytes at byte {pos}")
        if stop > end:
            raise BadFraming(f"a value of {length} bytes runs past the end of its container")
        if kind in (0xB, 0xC, 0xD, 0xE):
            if len(stack) > MAX_DEPTH:
                raise BadFraming(f"values nested more than {MAX_DEPTH} deep")
            if kind == 0xE:
                if length == 0:
                    raise BadFraming("empty annotation wrapper")
                annotations, start = var_uint(data, pos, stop)
                pos = start + annotations
                if annotations == 0 or pos >= stop:
                    raise BadFraming("annotation wrapper without annotations or without a value")
                stack.append((stop, False))
                continue
            stack.append((stop, kind == 0xD))
            continue
        pos = stop
