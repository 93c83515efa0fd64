"""DynamoDB's Kinesis Data Streams records (``source.format=dynamodb``) to row changes.

The format, from the DynamoDB developer guide, "Change data capture for Kinesis Data
Streams with DynamoDB" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/kds.html)
and the AttributeValue reference
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_AttributeValue.html):
one JSON record per item change, not aggregated, at least once and in no guaranteed
order across or within shards:

    {"awsRegion", "eventID", "eventName": "INSERT" | "MODIFY" | "REMOVE", "userIdentity",
     "recordFormat": "application/json", "tableName", "eventSource": "aws:dynamodb",
     "dynamodb": {"ApproximateCreationDateTime", "ApproximateCreationDateTimePrecision"?,
                  "Keys": {...}, "NewImage": {...}?, "OldImage": {...}?, "SizeBytes"}}

Rules (the README's DynamoDB section says the same for users):
- INSERT and MODIFY upsert the NewImage (a stream without new images, KEYS_ONLY or
  OLD_IMAGE, cannot be replicated: a dead letter says so); REMOVE deletes, keeping the
  key attributes; a REMOVE by ``{"type": "Service", "principalId": "dynamodb.amazonaws.com"}``
  is a TTL delete (``ttl``), marked ``expired`` in history.
- The key is ``dynamodb.Keys``, its attributes in name order (the record does not say
  which is the partition and which the sort key; name order is the same for every record
  of a table). A NewImage that lacks a key attribute or holds another value for it
  violates the table's key schema: a dead letter.
- The version is ApproximateCreationDateTime in microseconds since the epoch (a table
  streams milliseconds or microseconds, ``ApproximateCreationDateTimePrecision``; without
  that field the magnitude tells: below 10^14 is milliseconds). A time that is not
  between 2012 (DynamoDB's launch; its streams came later) and 2099 in that unit is a
  dead letter naming the unit it looks like: seconds (the DynamoDB Streams API's unit)
  would otherwise become a version in January 1970 and silently lose. There is no per-item
  sequence number in these records, so equal times are settled by ``eventID``: every
  delivery of one record has the same, so every arrival order ends in the same row, but
  within one tick the winner is not necessarily the later write. Microsecond precision
  makes such ties far rarer: use it.
- Types: S -> text; N -> the number as exact decimal text, never a float (MySQL 8's JSON
  type keeps numbers as doubles), and a DECIMAL column; B -> base64 text, and a LONGBLOB
  column (the tags of connectors/mysql/column_types.py); BOOL -> true/false; NULL -> null; M -> object;
  L -> array; SS -> sorted texts; NS -> number texts in numeric order; BS -> sorted
  base64 texts (sets have no order in DynamoDB; sorting makes equal sets equal JSON).

Pure: bytes in, a ``RowChange`` out, or ``BadChange`` with the reason.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import decimal
import re
from dataclasses import dataclass

from connectors.formats.changes import BadChange, RowChange, check_image, check_key, check_text, parse_json_object
from connectors.rows.limits import MAX_DOCUMENT_BYTES, MAX_JSON_DEPTH
from connectors.rows.tags import BLOB_TAG, DECIMAL_TAG, tags_json

INSERT, MODIFY, REMOVE = "INSERT", "MODIFY", "REMOVE"
EVENT_NAMES = (INSERT, MODIFY, REMOVE)
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
MILLISECOND, MICROSECOND = "MILLISECOND", "MICROSECOND"
_MS_BELOW = 10 ** 14  # 10^14 ms is the year 5138; 10^14 µs is 1973
# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. 9.9999999999999999999999999999999999999E+125
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_MAX_DIGITS = 38
_TYPES = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
# Plausible creation times, in microseconds. Fixed bounds, not the clock: a record must
# decode the same way whenever it is replayed.
_EARLIEST_US = 1_325_376_000_000_000  # 2012-01-01T00:00:00Z: DynamoDB launched in January 2012
_LATEST_US = 4_102_444_800_000_000  # 2100-01-01T00:00:00Z
_UNITS = (("seconds", 10 ** 6), ("milliseconds", 1000), ("microseconds", 1))
# Wide enough that counting digits never rounds (the default context keeps 28 digits).
_EXACT = decimal.Context(prec=100, Emax=10 ** 6, Emin=-10 ** 6)


@dataclass(frozen=True)
class DynamoDbSettings:
    max_document_bytes: int = MAX_DOCUMENT_BYTES


def number_text(text, path: str) -> str:
    """A DynamoDB number as exact text (what DynamoDB sent, checked)."""
    if not isinstance(text, str) or not _NUMBER.fullmatch(text.strip()):
        raise BadChange(f"{path}: {text!r} is not a DynamoDB number")
    try:
        value = decimal.Decimal(text.strip())
        digits = _EXACT.normalize(value).as_tuple().digits if value else (0,)
        in_range = not value or decimal.Decimal("1E-130") <= abs(value) < decimal.Decimal("1E+126")
    except decimal.DecimalException:  # an exponent past the decimal context's range (found by fuzzing)
        raise BadChange(f"{path}: {text[:40]!r} is outside DynamoDB's number range") from None
    if len(digits) > _MAX_DIGITS:
        raise BadChange(f"{path}: {text[:60]!r} has more than {_MAX_DIGITS} significant digits")
    if not in_range:
        raise BadChange(f"{path}: {text[:60]!r} is outside DynamoDB's number range")
    return text.strip()


def _binary(text, path: str) -> str:
    if not isinstance(text, str):
        raise BadChange(f"{path}: binary must be base64 text")
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadChange(f"{path}: {text[:40]!r} is not base64") from None
    return text


def attribute(value, path: str, depth: int = 0):
    """One typed attribute value as a plain JSON-ready value (rules in the module's doc)."""
    if depth > MAX_JSON_DEPTH:
        raise BadChange(f"{path}: nested more than {MAX_JSON_DEPTH} deep")
    if not isinstance(value, dict) or len(value) != 1:
        raise BadChange(f"{path}: an attribute value is an object with exactly one type ({', '.join(_TYPES)})")
    (kind, inner), = value.items()
    if kind == "S":
        if not isinstance(inner, str):
            raise BadChange(f"{path}: S must be text")
        return inner
    if kind == "N":
        return number_text(inner, path)
    if kind == "B":
        return _binary(inner, path)
    if kind == "BOOL":
        if not isinstance(inner, bool):
            raise BadChange(f"{path}: BOOL must be true or false")
        return inner
    if kind == "NULL":
        if inner is not True:
            raise BadChange(f"{path}: NULL must be true")
        return None
    if kind == "M":
        if not isinstance(inner, dict):
            raise BadChange(f"{path}: M must be an object")
        return {name: attribute(item, f"{path}.{name}", depth + 1) for name, item in inner.items()}
    if kind == "L":
        if not isinstance(inner, list):
            raise BadChange(f"{path}: L must be an array")
        return [attribute(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(inner)]
    if kind in ("SS", "NS", "BS"):
        if not isinstance(inner, list) or not inner:  # DynamoDB has no empty sets
            raise BadChange(f"{path}: {kind} must be a non-empty array")
        if kind == "SS":
            if not all(isinstance(i, str) for i in inner):
                raise BadChange(f"{path}: SS must hold text")
            return sorted(inner)
        if kind == "NS":
            texts = [number_text(i, f"{path}[{n}]") for n, i in enumerate(inner)]
            return sorted(texts, key=decimal.Decimal)
        return sorted(_binary(i, f"{path}[{n}]") for n, i in enumerate(inner))
    raise BadChange(f"{path}: unknown attribute type {kind!r} (known: {', '.join(_TYPES)})")


def image(value, path: str) -> dict:
    if not isinstance(value, dict):
        raise BadChange(f"{path} must be an object of attributes")
    return {name: attribute(item, f"{path}.{name}") for name, item in value.items()}


_TAG_OF = {"N": DECIMAL_TAG, "B": BLOB_TAG}


def image_tags(value: dict) -> dict:
    """Top-level N and B attributes (checked by ``image`` already): their column-type tags."""
    return {name: _TAG_OF[next(iter(typed))] for name, typed in value.items() if next(iter(typed)) in _TAG_OF}


def version_us(stream: dict) -> int:
    """ApproximateCreationDateTime in microseconds (see the module's doc)."""
    value = stream.get("ApproximateCreationDateTime")
    # A float that is infinite (JSON's 1e999) is out of range too (found by fuzzing).
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 2 ** 63:
        raise BadChange(f"dynamodb.ApproximateCreationDateTime must be a positive number, got {value!r}")
    precision = stream.get("ApproximateCreationDateTimePrecision")
    if precision not in (None, MILLISECOND, MICROSECOND):
        raise BadChange(f"dynamodb.ApproximateCreationDateTimePrecision {precision!r} is not "
                        f"{MILLISECOND} or {MICROSECOND}")
    if precision is None:
        precision = MILLISECOND if value < _MS_BELOW else MICROSECOND
    us = int(value) * 1000 if precision == MILLISECOND else int(value)
    if not _EARLIEST_US <= us < _LATEST_US:
        raise BadChange(implausible_time(value, precision, us))
    return us


def implausible_time(value, precision: str, us: int) -> str:
    """Why a creation time is refused: what it is in the unit it was read as, the unit it
    looks like (if one makes it plausible), and the unit expected."""
    unit = "milliseconds" if precision == MILLISECOND else "microseconds"
    when = "before 2012" if us < _EARLIEST_US else "after 2099"
    moment = _utc_text(us)
    text = f"dynamodb.ApproximateCreationDateTime {value!r} read as {unit} is {moment}"
    text += "" if moment.startswith("past") else f", {when}"
    for name, scale in _UNITS:
        if name != unit and _EARLIEST_US <= value * scale < _LATEST_US:
            source = ", the DynamoDB Streams API's unit" if name == "seconds" else ""
            text += f": it looks like {name} ({_utc_text(int(value * scale))}){source}"
            break
    return (f"{text}; Kinesis Data Streams for DynamoDB gives milliseconds since the epoch (microseconds "
            f"with ApproximateCreationDateTimePrecision {MICROSECOND})")


def _utc_text(us: int) -> str:
    try:
        moment = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=us)
    except OverflowError:
        return "past the year 9999"
    spec = "seconds" if us % 10 ** 6 == 0 else "milliseconds" if us % 1000 == 0 else "microseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def decode(data: bytes, settings: DynamoDbSettings) -> RowChange:
    record = parse_json_object(data, "DynamoDB record")
    event = record.get("eventName")
    if event not in EVENT_NAMES:
        raise BadChange(f"eventName {event!r} is not one of {', '.join(EVENT_NAMES)}")
    table = record.get("tableName")
    if not isinstance(table, str) or not table:
        raise BadChange(f"tableName must be non-empty text, got {table!r}")
    tie = record.get("eventID")
    if not isinstance(tie, str) or not tie:
        raise BadChange(f"eventID must be non-empty text, got {tie!r}")
    check_text(table, "tableName", 255)
    check_text(tie, "eventID")
    stream = record.get("dynamodb")
    if not isinstance(stream, dict):
        raise BadChange("the record has no dynamodb object")
    version = version_us(stream)
    raw_keys = stream.get("Keys")
    if isinstance(raw_keys, dict):
        for name, typed in raw_keys.items():  # DynamoDB key attributes are scalars: S, N or B
            if not isinstance(typed, dict) or len(typed) != 1 or next(iter(typed)) not in ("S", "N", "B"):
                raise BadChange(f"Keys.{name}: a key attribute is S, N or B, got {typed!r:.80}")
    keys = image(raw_keys, "Keys")
    key_columns = tuple(sorted(keys))
    key = tuple(keys[c] for c in key_columns)
    check_key(table, key_columns, key)
    deleted = event == REMOVE
    tags = {}
    if deleted:
        data_image = dict(zip(key_columns, key))
    else:
        if stream.get("NewImage") is None:
            raise BadChange(f"{event} without NewImage: the stream's view type must include new images "
                            "(NEW_IMAGE or NEW_AND_OLD_IMAGES) to be replicated")
        data_image = image(stream["NewImage"], "NewImage")
        tags = image_tags(stream["NewImage"])
        for column, value in zip(key_columns, key):
            if data_image.get(column) != value:
                raise BadChange(f"NewImage violates its own key schema: {column} is {data_image.get(column)!r}, "
                                f"Keys say {value!r}")
    identity = record.get("userIdentity")
    ttl = deleted and isinstance(identity, dict) and identity.get("type") == "Service" \
        and identity.get("principalId") == TTL_PRINCIPAL
    text = check_image(data_image, MAX_JSON_DEPTH, settings.max_document_bytes, "the item image")
    tx_time = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=version)
    return RowChange(table=table, key_columns=key_columns, key=key, version=version, tie=tie, tx_time=tx_time,
                     data=data_image, deleted=deleted, ttl=ttl, data_json=text, extra={"event": event},
                     data_types=tags_json(tags))
