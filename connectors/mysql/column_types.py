"""Which MySQL type a typed column gets, and each value as that type. Pure: no server.

The ``document`` JSON keeps every value exactly as the source gave it (exact decimals,
big integers and timestamps as text, bytes as base64: connectors/formats/ion_json.py). A
JSON string alone does not say whether it was a string, a decimal or a timestamp in the
source, so each decoder reports, per top-level field, the source type of the values
whose JSON form is text standing for something else: a *tag* (``DECIMAL_TAG``,
``TIMESTAMP_TAG``, ``BLOB_TAG``: connectors/rows/tags.py, where the row's tags are kept
beside its document, ``RowImage.types``; each format's decoder has its rule).

Column types, by value (the README's "Column types" says the same, with the reasons):

| value                                   | column                                   |
| --------------------------------------- | ---------------------------------------- |
| true / false                            | BOOLEAN                                  |
| integer (JSON number, signed 64-bit)    | BIGINT                                   |
| float (JSON number with a fraction)     | DOUBLE                                   |
| string                                  | LONGTEXT                                 |
| decimal tag (decimal, int > 64 bits,    | DECIMAL(p,s): p and s from the data      |
|   DynamoDB N, DSQL numeric)             |   (``decimal_column``), widened later    |
| timestamp tag                           | DATETIME(6), in UTC                      |
| blob tag (base64 text)                  | LONGBLOB (the bytes)                     |

A value never goes into a column that would round it: a decimal that fits no DECIMAL
(more than 65 digits, or more than 30 after the point), a timestamp outside DATETIME's
range or with digits below the column's fraction, stay in the JSON only, reported once.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import decimal
import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from connectors.rows.limits import PLAIN_NAME
from connectors.rows.tags import BLOB_TAG, DECIMAL_TAG, TIMESTAMP_TAG

BOOLEAN, BIGINT, DOUBLE, LONGTEXT, LONGBLOB = "BOOLEAN", "BIGINT", "DOUBLE", "LONGTEXT", "LONGBLOB"
DECIMAL, DATETIME = "DECIMAL", "DATETIME"  # families; a column's type is e.g. DECIMAL(20,2), DATETIME(6)
# MySQL 8 and MariaDB both take 65 digits; MySQL 8 allows 30 after the point, MariaDB 38:
# the stricter one decides, so one table definition works on both (Aurora MySQL 3 is MySQL 8).
MAX_DECIMAL_DIGITS = 65
MAX_DECIMAL_SCALE = 30
# InnoDB stores a DECIMAL in groups of 9 digits (4 bytes) on each side of the point, so
# integer digits rounded up to a multiple of 9 cost no space: the room to spare.
DECIMAL_GROUP = 9
MIN_INTEGER_DIGITS = 18  # every amount a BIGINT could hold, before any widening
DATETIME_PRECISION = 6  # microseconds, DATETIME's finest
# DATETIME's documented range (MySQL 8 and MariaDB alike), in UTC.
DATETIME_MIN = _dt.datetime(1000, 1, 1)
DATETIME_MAX = _dt.datetime(9999, 12, 31, 23, 59, 59, 999999)

_BY_JSON_TYPE = {bool: BOOLEAN, int: BIGINT, float: DOUBLE, str: LONGTEXT}
_TAGGED = {DECIMAL_TAG: DECIMAL, TIMESTAMP_TAG: DATETIME, BLOB_TAG: LONGBLOB}
_DECIMAL_TYPE = re.compile(r"DECIMAL\((\d+),(\d+)\)")
_DATETIME_TYPE = re.compile(r"DATETIME\(([0-6])\)")


class Unfit(ValueError):
    """A value that the column cannot hold exactly; the message says why (for the log)."""


class TypeMismatch(Unfit):
    """The value is of another kind than the column (a number where a string was first seen)."""


# --- column types -------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def family(column_type: str) -> str:
    """DECIMAL(20,2) -> DECIMAL, DATETIME(6) -> DATETIME, others as they are."""
    return column_type.split("(", 1)[0]


@functools.lru_cache(maxsize=256)
def decimal_args(column_type: str) -> tuple:
    """(precision, scale) of a DECIMAL(p,s) column type."""
    match = _DECIMAL_TYPE.fullmatch(column_type)
    if not match:
        raise ValueError(f"not a DECIMAL(p,s) type: {column_type!r}")
    return int(match.group(1)), int(match.group(2))


@functools.lru_cache(maxsize=64)
def datetime_precision(column_type: str) -> int:
    match = _DATETIME_TYPE.fullmatch(column_type)
    if not match:
        raise ValueError(f"not a DATETIME(n) type: {column_type!r}")
    return int(match.group(1))


def decimal_type(integer_digits: int, scale: int) -> str:
    return f"DECIMAL({integer_digits + scale},{scale})"


def decimal_shape(text: str) -> tuple:
    """(the Decimal, its integer digits, its digits after the point) of exact decimal text;
    ``Unfit`` for text that is not a finite decimal."""
    try:
        number = decimal.Decimal(text)
    except (decimal.InvalidOperation, TypeError, ValueError):
        raise Unfit(f"{str(text)[:40]!r} is not a decimal number") from None
    if not number.is_finite():
        raise Unfit(f"{text!r} is not a finite number")
    exponent = number.as_tuple().exponent
    scale = max(0, -exponent)
    integer_digits = max(0, number.adjusted() + 1) if number else 0
    return number, integer_digits, scale


def _spare(integer_digits: int) -> int:
    """Integer digits of a new or widened column: at least one more than the value needs,
    rounded up to a multiple of 9, at least 18."""
    needed = integer_digits + 1
    return max(MIN_INTEGER_DIGITS, -(-needed // DECIMAL_GROUP) * DECIMAL_GROUP)


def decimal_column(integer_digits: int, scale: int, held: Optional[str] = None) -> Optional[str]:
    """The DECIMAL type for a value of this shape: for a new column (``held`` None), or the
    widened type of ``held`` (never narrower on either side of the point); None when no
    DECIMAL can hold it (more than 30 digits after the point, 65 in all)."""
    held_integer, held_scale = (0, 0)
    if held is not None:
        precision, held_scale = decimal_args(held)
        held_integer = precision - held_scale
    scale = max(scale, held_scale)
    if scale > MAX_DECIMAL_SCALE or max(integer_digits, held_integer) + scale > MAX_DECIMAL_DIGITS:
        return None
    integer = max(held_integer, min(_spare(integer_digits), MAX_DECIMAL_DIGITS - scale))
    integer = max(integer, 1)  # DECIMAL(0,0) is no type
    return decimal_type(integer, scale)


def fits_decimal(column_type: str, integer_digits: int, scale: int) -> bool:
    precision, column_scale = decimal_args(column_type)
    return integer_digits <= precision - column_scale and scale <= column_scale


_TIMESTAMP = re.compile(
    r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?"  # Ion: 2007T, 2007-02T, 2007-02-23(T)
    r"(?:[Tt ](?:([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"([Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?)?")


def timestamp_value(text: str, precision: int = DATETIME_PRECISION) -> _dt.datetime:
    """Timestamp text (Ion's, or PostgreSQL's ISO output) as a naive UTC datetime for a
    DATETIME(``precision``) column; ``Unfit`` when it is not one, is outside DATETIME's
    range in UTC, or has digits below the column's fraction (never rounded). An unknown
    offset (Ion's -00:00) or none (PostgreSQL's timestamp without time zone) is UTC."""
    match = _TIMESTAMP.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise Unfit(f"{str(text)[:40]!r} is not a timestamp")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    fraction = fraction or ""
    if fraction[precision:].strip("0"):
        raise Unfit(f"{text!r} has digits below what DATETIME({precision}) holds")
    try:
        naive = _dt.datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                             int(second or 0), int((fraction[:6] or "0").ljust(6, "0")))
        if offset and offset not in ("Z", "z", "-00:00", "-0000", "-00"):
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            delta = _dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            naive = naive - sign * delta
    except (ValueError, OverflowError):
        raise Unfit(f"{text!r} is not a timestamp DATETIME can hold (in UTC)") from None
    if not DATETIME_MIN <= naive <= DATETIME_MAX:
        raise Unfit(f"{text!r} is outside DATETIME's range (1000-01-01 to 9999-12-31 UTC)")
    return naive


def blob_value(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise Unfit(f"{str(text)[:40]!r} is not base64") from None


def wanted_type(value: Any, tag: Optional[str]) -> Optional[str]:
    """The type a new column gets from its first value; None for a null, a list or an
    object (no column); ``Unfit`` for a tagged value no column of its kind holds exactly."""
    if tag is not None and type(value) is str:
        kind = _TAGGED.get(tag)
        if kind == DECIMAL:
            _, integer_digits, scale = decimal_shape(value)
            column = decimal_column(integer_digits, scale)
            if column is None:
                raise Unfit(f"{value[:40]!r} fits no DECIMAL (at most {MAX_DECIMAL_DIGITS} digits, "
                            f"{MAX_DECIMAL_SCALE} after the point)")
            return column
        if kind == DATETIME:
            timestamp_value(value)
            return f"DATETIME({DATETIME_PRECISION})"
        if kind == LONGBLOB:
            return LONGBLOB
    return _BY_JSON_TYPE.get(type(value))


def convert(value: Any, tag: Optional[str], column_type: str) -> Any:
    """``value`` (a JSON value and its tag) as the parameter for a ``column_type`` column;
    ``Unfit`` when the column cannot hold it exactly. A LONGTEXT column takes any string,
    tagged or not, as its JSON text: tables made before typed decimals, timestamps and
    blobs keep working as they did."""
    kind = family(column_type)
    value_type = type(value)
    if kind == LONGTEXT or kind == "VARCHAR":
        if value_type is str:
            return value
    elif kind == BIGINT:
        if value_type is int:
            return value
        if tag == DECIMAL_TAG and value_type is str:
            number, _, scale = decimal_shape(value)
            if scale == 0 and -2 ** 63 <= number < 2 ** 63:
                return int(number)
            raise Unfit(f"{value[:40]!r} is not a 64-bit integer")
    elif kind == DECIMAL:
        if value_type is int or (value_type is str and tag == DECIMAL_TAG):
            number, integer_digits, scale = decimal_shape(str(value))
            if not fits_decimal(column_type, integer_digits, scale):
                raise Unfit(f"{str(value)[:40]!r} does not fit {column_type}")
            return number
    elif kind == DATETIME:
        if value_type is str and tag == TIMESTAMP_TAG:
            return timestamp_value(value, datetime_precision(column_type))
    elif kind == LONGBLOB:
        if value_type is str:
            return blob_value(value) if tag == BLOB_TAG else value.encode("utf-8")
    elif kind == BOOLEAN:
        if value_type is bool:
            return value
    elif kind == DOUBLE:
        if value_type is float:
            return value
    raise TypeMismatch(f"type changed: column is {column_type}, value is {tag or value_type.__name__}")


# --- information_schema and overrides ------------------------------------------------------

def from_information_schema(data_type: str, column_type: str, key_text_type: str) -> Optional[str]:
    """Our name of an existing column's type (None: a type ledgersync never makes; the
    column is then left alone). Dialects: MySQL 8 reports ``decimal(20,2)``, MariaDB the
    same; ``datetime`` without a fraction is DATETIME(0)."""
    data_type = data_type.lower()
    if data_type == "decimal":
        return column_type.upper().replace(" ", "")
    if data_type == "datetime":
        match = re.search(r"\((\d)\)", column_type)
        return f"DATETIME({match.group(1) if match else 0})"
    return {"tinyint": BOOLEAN, "bigint": BIGINT, "double": DOUBLE, "longtext": LONGTEXT, "longblob": LONGBLOB,
            "varchar": key_text_type}.get(data_type)


_OVERRIDE_TYPE = re.compile(r"(BOOLEAN|BIGINT|DOUBLE|LONGTEXT|LONGBLOB|DECIMAL\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)"
                            r"|DATETIME(?:\s*\(\s*(\d+)\s*\))?)", re.IGNORECASE)


@dataclass(frozen=True)
class ColumnOverride:
    table: str  # the MySQL table name (connectors/mysql/sql.py, table_identifier)
    column: str
    column_type: str  # canonical: DECIMAL(12,2), DATETIME(3), LONGTEXT, ...


def parse_overrides(text: Optional[str]) -> tuple:
    """``Orders.price=DECIMAL(12,2); Orders.placed=DATETIME(3)`` -> ColumnOverrides; a
    ``ValueError`` naming the bad entry. The table is the source's name (``sales.orders``
    for DSQL's schema-qualified tables: the last dot splits off the column) or its MySQL
    name; both become the MySQL name."""
    from connectors.mysql.sql import BadIdentifier, HISTORY_COLUMNS, EXPIRED_COLUMN, table_identifier

    out: dict = {}
    for entry in (text or "").split(";"):
        entry = entry.strip()
        if not entry:
            continue
        target, sep, type_text = entry.partition("=")
        table, dot, column = target.strip().rpartition(".")
        where = f"sink.column.types: {entry!r}"
        if not sep or not dot or not table or not column:
            raise ValueError(f"{where} is not table.column=TYPE")
        if not PLAIN_NAME.fullmatch(column):
            raise ValueError(f"{where}: column {column!r} is not a plain MySQL identifier ([A-Za-z0-9_], at most 64)")
        if column.lower() in {c.lower() for c in HISTORY_COLUMNS + (EXPIRED_COLUMN,)}:
            raise ValueError(f"{where}: {column!r} is one of ledgersync's own columns")
        try:
            mysql_table = table_identifier(table.strip())
        except BadIdentifier as exc:
            raise ValueError(f"{where}: {exc}") from None
        match = _OVERRIDE_TYPE.fullmatch(type_text.strip())
        if not match:
            raise ValueError(f"{where}: type {type_text.strip()!r} is not one of BOOLEAN, BIGINT, DOUBLE, LONGTEXT, "
                             "LONGBLOB, DECIMAL(p,s), DATETIME(n)")
        word = match.group(1).upper()
        if word.startswith("DECIMAL"):
            precision, scale = int(match.group(2)), int(match.group(3))
            if not 1 <= precision <= MAX_DECIMAL_DIGITS or scale > min(precision, MAX_DECIMAL_SCALE):
                raise ValueError(f"{where}: DECIMAL(p,s) needs 1 <= p <= {MAX_DECIMAL_DIGITS} and s <= p, "
                                 f"s <= {MAX_DECIMAL_SCALE} (MySQL 8's limits)")
            canonical = f"DECIMAL({precision},{scale})"
        elif word.startswith("DATETIME"):
            fsp = int(match.group(4) or 0)
            if fsp > DATETIME_PRECISION:
                raise ValueError(f"{where}: DATETIME(n) needs n from 0 to {DATETIME_PRECISION}")
            canonical = f"DATETIME({fsp})"
        else:
            canonical = word
        key = (mysql_table, column.lower())  # MySQL column names ignore case
        if key in out:
            raise ValueError(f"{where}: {mysql_table}.{column} is given twice")
        out[key] = ColumnOverride(mysql_table, column, canonical)
    return tuple(out.values())
