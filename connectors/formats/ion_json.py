"""Ion values to JSON-ready Python values, losing nothing MySQL's JSON type would lose.

MySQL stores a JSON number with a fraction as a DOUBLE and an integer outside 64 bits
as a DOUBLE too, so those two go into JSON as strings to stay exact. README.md has the
same table, with examples ("How Ion values land in MySQL").

| Ion                | JSON                                                          |
| ------------------ | ------------------------------------------------------------- |
| null, null.<type>  | null                                                          |
| bool               | true / false                                                  |
| int (signed 64-bit)| number                                                        |
| int (beyond)       | string of the exact digits                                    |
| decimal            | string, exact, plain notation (`1.10`, `-0`, `120000`);       |
|                    | exponents beyond +-100 in scientific notation (`1E+300`)      |
| float              | number (`nan`, `+inf`, `-inf` as strings)                     |
| timestamp          | string in Ion text form: precision and offset kept            |
| string             | string                                                        |
| symbol             | string (its text; a symbol with unknown text is an error)     |
| blob, clob         | string, base64                                                |
| list, sexp         | array                                                         |
| struct             | object (a repeated field name: the last value wins)           |
| annotations        | dropped (the value is kept)                                   |

A value that cannot be mapped raises ``IonMappingError`` naming where it is.
"""
from __future__ import annotations

import base64
import copy
import datetime as _dt
import decimal
import math
from collections.abc import Mapping
from typing import Any, Optional

from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyNull

from connectors.rows.tags import BLOB_TAG, DECIMAL_TAG, TIMESTAMP_TAG

INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1
# Decimals whose exponent is within this are written out in full ("0.000001", "1000");
# beyond it plain notation would be a wall of zeros, so scientific notation (still exact).
PLAIN_DECIMAL_EXPONENT = 100


class IonMappingError(ValueError):
    """An Ion value with no faithful JSON form; the message names where it is."""


class _Unmappable(Exception):
    # Raised deep inside the mapping; the path is added while it unwinds, so the common
    # case (nothing wrong) builds no path strings at all.
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.parts: list = []


def is_ion_null(value: Any) -> bool:
    """True for a missing value and for every Ion null (``null``, ``null.struct``, ...)."""
    return value is None or isinstance(value, IonPyNull)


def ion_to_json(value: Any, *, max_depth: Optional[int] = None, path: str = "$") -> Any:
    """Map an Ion value (as ``simpleion`` loads it, or plain Python) to JSON-ready Python.

    ``max_depth`` limits how many containers (structs, lists) may nest, the outermost
    counting as one; deeper is an ``IonMappingError``. ``path`` names the value in errors.
    """
    try:
        return _map(value, max_depth, 0)
    except _Unmappable as exc:
        where = path + "".join(reversed(exc.parts))
        if len(where) > 120:  # deeply nested: the two ends say enough
            where = f"{where[:50]}...{where[-50:]}"
        raise IonMappingError(f"{where}: {exc.message}") from None


def _map(value: Any, max_depth: Optional[int], depth: int) -> Any:
    if value is None or isinstance(value, IonPyNull):
        return None
    ion_type = getattr(value, "ion_type", None)
    if ion_type is IonType.STRING or (ion_type is None and isinstance(value, str)):
        return str(value)
    # IonPyBool subclasses int, so booleans are decided before integers.
    if ion_type is IonType.BOOL or (ion_type is None and isinstance(value, bool)):
        return bool(value)
    if ion_type is IonType.INT or (ion_type is None and isinstance(value, int)):
        number = int(value)
        if INT64_MIN <= number <= INT64_MAX:
            return number
        try:
            return str(number)
        except ValueError:  # Python refuses int -> str beyond sys.get_int_max_str_digits()
            raise _Unmappable(f"integer of {number.bit_length()} bits is too long to write as text") from None
    if ion_type is IonType.STRUCT or (ion_type is None and isinstance(value, Mapping)):
        depth = _deeper(depth, max_depth)
        out = {}
        for key, item in value.items():
            if key is None:
                raise _Unmappable("field name with unknown text (a symbol ID without text)")
            name = key if type(key) is str else str(getattr(key, "text", key))
            try:
                out[name] = _map(item, max_depth, depth)
            except _Unmappable as exc:
                exc.parts.append(f".{name}")
                raise
        return out
    if ion_type is IonType.DECIMAL or isinstance(value, decimal.Decimal):
        return decimal_text(decimal.Decimal(value))
    if ion_type in (IonType.LIST, IonType.SEXP) or (ion_type is None and isinstance(value, (list, tuple))):
        depth = _deeper(depth, max_depth)
        out_list = []
        for index, item in enumerate(value):
            try:
                out_list.append(_map(item, max_depth, depth))
            except _Unmappable as exc:
                exc.parts.append(f"[{index}]")
                raise
        return out_list
    if ion_type is IonType.TIMESTAMP or isinstance(value, _dt.datetime):
        return timestamp_text(value)
    if ion_type is IonType.FLOAT or isinstance(value, float):
        number = float(value)
        if math.isnan(number):
            return "nan"
        if math.isinf(number):
            return "+inf" if number > 0 else "-inf"
        return number
    if ion_type is IonType.SYMBOL:
        text = getattr(value, "text", None)
        if text is None:
            raise _Unmappable(f"symbol with unknown text (symbol ID {getattr(value, 'sid', None)})")
        return str(text)
    if ion_type in (IonType.BLOB, IonType.CLOB) or isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise _Unmappable(f"unsupported Ion value of type {ion_type.name if ion_type else type(value).__name__}")


def top_level_tags(value: Any) -> dict:
    """Field -> column-type tag (connectors/mysql/column_types.py) of a struct's top-level
    values whose JSON form above is text standing for another type: decimals and ints
    beyond 64 bits ("decimal"), timestamps ("timestamp"), blobs and clobs ("blob"). A
    repeated field name: the last value decides, as in the JSON."""
    tags: dict = {}
    for key, item in value.items():
        name = key if type(key) is str else str(getattr(key, "text", key))
        ion_type = getattr(item, "ion_type", None)
        tag = None
        if isinstance(item, IonPyNull) or item is None:
            tag = None
        elif ion_type is IonType.DECIMAL or (ion_type is None and isinstance(item, decimal.Decimal)):
            tag = DECIMAL_TAG
        elif ion_type is IonType.INT or (ion_type is None and type(item) is int):
            tag = DECIMAL_TAG if not INT64_MIN <= int(item) <= INT64_MAX else None
        elif ion_type is IonType.TIMESTAMP or (ion_type is None and isinstance(item, _dt.datetime)):
            tag = TIMESTAMP_TAG
        elif ion_type in (IonType.BLOB, IonType.CLOB) or (ion_type is None and isinstance(item, (bytes, bytearray))):
            tag = BLOB_TAG
        if tag is None:
            tags.pop(name, None)
        else:
            tags[name] = tag
    return tags


def _deeper(depth: int, max_depth: Optional[int]) -> int:
    depth += 1
    if max_depth is not None and depth > max_depth:
        raise _Unmappable(f"nested more than {max_depth} structs/lists deep")
    return depth


def decimal_text(number: decimal.Decimal) -> str:
    """Exact text of a decimal: plain notation keeps trailing zeros ("1.10")."""
    if number.is_nan() or number.is_infinite():
        return str(number)
    if abs(number.as_tuple().exponent) > PLAIN_DECIMAL_EXPONENT:
        return str(number)
    return format(number, "f")


def timestamp_text(value: _dt.datetime) -> str:
    """Ion text of a timestamp: keeps its precision (year .. fraction) and its offset."""
    if getattr(value, "ion_type", None) is IonType.TIMESTAMP:
        if getattr(value, "ion_annotations", ()):
            value = copy.copy(value)  # annotations are dropped, here as everywhere
            value.ion_annotations = ()
        return simpleion.dumps(value, binary=False, omit_version_marker=True)
    return value.isoformat()
