"""Ion Hash 1.0 (https://amazon-ion.github.io/ion-hash/docs/spec.html) over the values
``simpleion`` loads, with SHA-256 by default: what QLDB hashes revisions and
``transactionInfo`` with.

Hand-written on purpose: the PyPI ``ionhash`` package cannot be installed beside the
amazon-ion 0.15 the project pins (it needs an older amazon-ion), and the algorithm is
small. It follows the spec section by section and is tested against the spec's own
test vectors (tests/unit/data/ion_hash_vectors.ion, from amazon-ion/ion-hash-test).

    H(value)           = h(s(value))
    s(scalar)          = B || TQ || escape(representation) || E
    s(struct)          = B || TQ || escape(concat(sort(H(field1) ... H(fieldN)))) || E
    H(field)           = h(s(name as a symbol) || s(value))
    s(list) / s(sexp)  = B || TQ || s(v1) || ... || s(vN) || E
    s(annotated value) = B || 0xE0 || s(annotation1) || ... || s(value) || E

Representations are Ion binary's, in minimal form (no padding), with the spec's special
cases: ``0e0``, ``0d0`` and zero ints have none, floats are always 8 bytes, timestamps
are in UTC with their precision, a zero fraction is left out.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import hashlib
import math
import re
import struct
from collections.abc import Mapping
from typing import Any, Callable

from amazon.ion.core import IonType, TimestampPrecision

BEGIN, END, ESCAPE = 0x0B, 0x0E, 0x0C
HashFunction = Callable[[bytes], bytes]


class IonHashError(ValueError):
    """A value the spec cannot hash (a symbol with unknown text, a type Ion does not have)."""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ion_hash(value: Any, h: HashFunction = sha256) -> bytes:
    """H(value): the Ion hash of one value (annotations included)."""
    return h(serialize(value, h))


def serialize(value: Any, h: HashFunction = sha256) -> bytes:
    """s(value): the serialized bytes the hash is taken of (h hashes struct fields)."""
    annotations = getattr(value, "ion_annotations", ()) or ()
    body = _unannotated(value, h)
    if not annotations:
        return body
    return bytes([BEGIN, 0xE0]) + b"".join(_symbol_token(a, "annotation") for a in annotations) + body \
        + bytes([END])


_SPECIAL = re.compile(rb"[\x0b\x0c\x0e]")


def escape(data: bytes) -> bytes:
    # Searched and substituted in C: a loop over each byte in Python spent 90% of the time
    # hashing an export of large documents (about 0.5 s a MB).
    if b"\x0b" not in data and b"\x0c" not in data and b"\x0e" not in data:
        return data
    return _SPECIAL.sub(b"\x0c\\g<0>", data)


def _scalar(tq: int, representation: bytes = b"") -> bytes:
    return bytes([BEGIN, tq]) + escape(representation) + bytes([END])


def _symbol(text: str) -> bytes:
    return _scalar(0x70, text.encode("utf-8"))


# --- what type a loaded value is ------------------------------------------------------

def _ion_type(value: Any) -> IonType:
    ion_type = getattr(value, "ion_type", None)
    if isinstance(ion_type, IonType):
        return ion_type
    # Plain Python values (built by code rather than loaded), as simpleion would write them.
    if value is None:
        return IonType.NULL
    if isinstance(value, bool):
        return IonType.BOOL
    if isinstance(value, int):
        return IonType.INT
    if isinstance(value, float):
        return IonType.FLOAT
    if isinstance(value, decimal.Decimal):
        return IonType.DECIMAL
    if isinstance(value, _dt.datetime):
        return IonType.TIMESTAMP
    if isinstance(value, str):
        return IonType.STRING
    if isinstance(value, (bytes, bytearray)):
        return IonType.BLOB
    if isinstance(value, (list, tuple)):
        return IonType.LIST
    if isinstance(value, Mapping):
        return IonType.STRUCT
    raise IonHashError(f"cannot Ion-hash a {type(value).__name__}: not an Ion value")


_TYPE_CODE = {IonType.NULL: 0x0, IonType.BOOL: 0x1, IonType.INT: 0x2, IonType.FLOAT: 0x4, IonType.DECIMAL: 0x5,
              IonType.TIMESTAMP: 0x6, IonType.SYMBOL: 0x7, IonType.STRING: 0x8, IonType.CLOB: 0x9,
              IonType.BLOB: 0xA, IonType.LIST: 0xB, IonType.SEXP: 0xC, IonType.STRUCT: 0xD}


def _is_null(value: Any) -> bool:
    # simpleion loads typed nulls as IonPyNull (falsy, ion_type set); plain None is null.null.
    return value is None or type(value).__name__ == "IonPyNull"


def _unannotated(value: Any, h: HashFunction) -> bytes:
    ion_type = _ion_type(value)
    t = _TYPE_CODE[ion_type]
    if _is_null(value):
        return _scalar((t << 4) | 0x0F)
    if ion_type is IonType.BOOL:
        return _scalar(0x11 if value else 0x10)
    if ion_type is IonType.INT:
        number = int(value)
        return _scalar(0x30 if number < 0 else 0x20, _uint(abs(number)))
    if ion_type is IonType.FLOAT:
        return _scalar(0x40, _float(float(value)))
    if ion_type is IonType.DECIMAL:
        return _scalar(0x50, _decimal(decimal.Decimal(value)))
    if ion_type is IonType.TIMESTAMP:
        return _scalar(0x60, _timestamp(value))
    if ion_type is IonType.SYMBOL:
        return _symbol_token(value, "symbol")
    if ion_type is IonType.STRING:
        return _scalar(0x80, str(value).encode("utf-8"))
    if ion_type in (IonType.CLOB, IonType.BLOB):
        return _scalar(t << 4, bytes(value))
    if ion_type in (IonType.LIST, IonType.SEXP):
        return bytes([BEGIN, t << 4]) + b"".join(serialize(item, h) for item in value) + bytes([END])
    if ion_type is IonType.STRUCT:
        return _scalar(0xD0, b"".join(sorted(_field_hash(name, item, h) for name, item in _fields(value))))
    raise IonHashError(f"cannot Ion-hash type {ion_type}")


def _fields(struct_value: Any):
    # IonPyDict keeps repeated field names; each one is a field of its own.
    items = struct_value.iteritems() if hasattr(struct_value, "iteritems") else struct_value.items()
    return list(items)


def _field_hash(name: Any, value: Any, h: HashFunction) -> bytes:
    return h(_symbol_token(name, "field name") + serialize(value, h))


def _symbol_token(token: Any, what: str) -> bytes:
    """s(symbol) of a field name or annotation (a str or a SymbolToken)."""
    text = token if isinstance(token, str) else getattr(token, "text", None)
    if text is not None:
        return _symbol(str(text))
    # $0 is the spec's one symbol without text (Q = 1); simpleion gives a $0 field name as None.
    if token is None or getattr(token, "sid", None) == 0:
        return _scalar(0x71)
    raise IonHashError(f"{what} ${getattr(token, 'sid', '?')} has unknown text (its symbol table is missing)")


# --- Ion binary fields, minimal -------------------------------------------------------

def _uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""


def _int(n: int, negative: bool = False) -> bytes:
    """Int field: sign-and-magnitude, the sign in the first byte's high bit."""
    magnitude = _uint(abs(n))
    if not magnitude or magnitude[0] & 0x80:
        magnitude = b"\x00" + magnitude
    if negative or n < 0:
        magnitude = bytes([magnitude[0] | 0x80]) + magnitude[1:]
    return magnitude


def _varuint(n: int) -> bytes:
    groups = [n & 0x7F]
    n >>= 7
    while n:
        groups.append(n & 0x7F)
        n >>= 7
    groups.reverse()
    groups[-1] |= 0x80
    return bytes(groups)


def _varint(n: int, negative: bool = False) -> bytes:
    """VarInt: 7 bits a byte, end flag on the last, sign in the first byte's 0x40."""
    magnitude = abs(n)
    groups = [magnitude & 0x7F]
    magnitude >>= 7
    while magnitude:
        groups.append(magnitude & 0x7F)
        magnitude >>= 7
    if groups[-1] & 0x40:  # no room for the sign bit in the first byte
        groups.append(0)
    groups.reverse()
    if negative or n < 0:
        groups[0] |= 0x40
    groups[-1] |= 0x80
    return bytes(groups)


def _float(number: float) -> bytes:
    if math.isnan(number):
        return b"\x7f\xf8\x00\x00\x00\x00\x00\x00"  # one NaN, whatever its payload
    if number == 0 and math.copysign(1.0, number) > 0:
        return b""  # 0e0 has no representation; -0e0 has one
    return struct.pack(">d", number)


def _decimal(value: decimal.Decimal) -> bytes:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise IonHashError(f"decimal {value} is not finite")
    coefficient = int("".join(map(str, digits)) or "0")
    if coefficient == 0 and not sign and exponent == 0:
        return b""  # 0d0
    out = _varint(exponent)
    if coefficient or sign:  # a positive zero coefficient is left out; -0 is kept (0x80)
        out += _int(coefficient, negative=bool(sign))
    return out


def _timestamp(value: Any) -> bytes:
    precision = getattr(value, "precision", None)
    if precision is None:  # a plain datetime: to the second, with microseconds if any
        precision = TimestampPrecision.SECOND
    fraction = _fraction(value)
    offset = value.utcoffset()
    if precision >= TimestampPrecision.MINUTE and offset is not None:
        utc = (value - offset).replace(tzinfo=None)
        out = _varint(int(offset.total_seconds() // 60))
    else:
        utc = value.replace(tzinfo=None)
        out = _varint(0, negative=True)  # unknown offset (-00:00; always so below minute precision): VarInt -0
    out += _varuint(utc.year)
    if precision >= TimestampPrecision.MONTH:
        out += _varuint(utc.month)
    if precision >= TimestampPrecision.DAY:
        out += _varuint(utc.day)
    if precision >= TimestampPrecision.MINUTE:
        out += _varuint(utc.hour) + _varuint(utc.minute)
    if precision >= TimestampPrecision.SECOND:
        out += _varuint(utc.second)
        if fraction is not None:
            sign, digits, exponent = fraction.as_tuple()
            coefficient = int("".join(map(str, digits)) or "0")
            # A zero fraction with exponent >= 0 is no fraction at all (minimal form).
            if coefficient or exponent < 0:
                out += _varint(exponent)
                if coefficient:
                    out += _int(coefficient)
    return out


def _fraction(value: Any):
    seconds = getattr(value, "fractional_seconds", None)
    if seconds is not None:
        return decimal.Decimal(seconds)
    digits = getattr(value, "fractional_precision", None)
    if digits is None:
        return decimal.Decimal(value.microsecond).scaleb(-6) if value.microsecond else None
    if digits == 0:
        return None
    return (decimal.Decimal(value.microsecond) / decimal.Decimal(10 ** 6)).quantize(decimal.Decimal(1).scaleb(-digits))
