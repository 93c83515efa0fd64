"""Ion values to JSON-ready Python values, losing nothing MySQL's JSON type would lose.

MySQL stores a JSON number with a fraction as a DOUBLE and an integer outside 64 bits
as a DOUBLE too, so those two go into JSON as strings to stay exact.

| Ion                | JSON                                                   |
| ------------------ | ------------------------------------------------------ |
| null, null.<type>  | null                                                   |
| bool               | true / false                                           |
| int (64-bit)       | number                                                 |
| int (beyond)       | string of the exact digits                             |
| decimal            | string of the exact decimal text (`1.10`, `-0.5`)      |
| float              | number (`nan`, `+inf`, `-inf` as strings)              |
| timestamp          | string in Ion text form: precision and offset kept     |
| string, symbol     | string                                                 |
| blob, clob         | string, base64                                         |
| list, sexp         | array                                                  |
| struct             | object (a repeated field name: the last value wins)    |
| annotations        | dropped (the value is kept)                            |
"""
from __future__ import annotations

import base64
import datetime as _dt
import decimal
import math
from collections.abc import Mapping
from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyNull

INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1


def is_ion_null(value: Any) -> bool:
    """True for a missing value and for every Ion null (``null``, ``null.struct``, ...)."""
    return value is None or isinstance(value, IonPyNull)


def ion_to_json(value: Any) -> Any:
    if is_ion_null(value):
        return None
    ion_type = getattr(value, "ion_type", None)
    if isinstance(value, bool) or ion_type is IonType.BOOL:
        return bool(value)
    if ion_type is IonType.INT or (ion_type is None and isinstance(value, int)):
        number = int(value)
        return number if INT64_MIN <= number <= INT64_MAX else str(number)
    if ion_type is IonType.DECIMAL or isinstance(value, decimal.Decimal):
        return _decimal_text(decimal.Decimal(value))
    if ion_type is IonType.FLOAT or isinstance(value, float):
        number = float(value)
        if math.isnan(number):
            return "nan"
        if math.isinf(number):
            return "+inf" if number > 0 else "-inf"
        return number
    if ion_type is IonType.TIMESTAMP or isinstance(value, _dt.datetime):
        return timestamp_text(value)
    if ion_type in (IonType.STRING, IonType.SYMBOL) or isinstance(value, str):
        text = getattr(value, "text", None)
        return str(text if text is not None else value)
    if ion_type in (IonType.BLOB, IonType.CLOB) or isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if ion_type is IonType.STRUCT or isinstance(value, Mapping):
        return {str(k): ion_to_json(v) for k, v in value.items()}
    if ion_type in (IonType.LIST, IonType.SEXP) or isinstance(value, (list, tuple)):
        return [ion_to_json(v) for v in value]
    raise TypeError(f"unsupported Ion value of type {ion_type or type(value).__name__}")


def _decimal_text(number: decimal.Decimal) -> str:
    # Plain notation keeps trailing zeros ("1.10") and avoids exponents MySQL would misread.
    if number.is_nan() or number.is_infinite():
        return str(number)
    return format(number, "f")


def timestamp_text(value: _dt.datetime) -> str:
    """Ion text of a timestamp: keeps its precision (year .. fraction) and its offset."""
    if getattr(value, "ion_type", None) is IonType.TIMESTAMP:
        return simpleion.dumps(value, binary=False, omit_version_marker=True)
    return value.isoformat()
