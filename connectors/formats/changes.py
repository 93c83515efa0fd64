"""A row change from a keyed change stream (Aurora DSQL CDC, DynamoDB's Kinesis stream).

Each such format's decoder (one module in ``connectors/formats``) turns one record into a
``RowChange`` or raises ``BadChange`` with a reason for the dead-letter table. Unlike a
QLDB revision, a row change has no document id or version of its own: the document id is
the canonical text of the source's key values, and the version is the source's ordering
value (a commit time) with a tie-break for equal times. Pure: no Flink, no MySQL.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Optional

from connectors.rows.limits import MAX_ID_CHARS


class BadChange(ValueError):
    """A record of a keyed change stream that cannot be applied; the message says why."""


class NotConfigured(BadChange):
    """A record the format reads, that the job's settings do not cover (a DSQL table not in
    ``source.dsql.keys``): a dead letter in the job; `record decode` names the setting
    (job/config/properties.py, ``REQUIRED_BY_FORMAT``)."""


def canonical_key(values: tuple) -> str:
    """The document id of a row: its key values as compact JSON, in key order.

    JSON keeps types apart (``1`` and ``"1"`` are two rows, as in the source) and reads
    back as the values; a one-column key is still a list, so every id has one shape."""
    text = json.dumps(list(values), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if len(text) > MAX_ID_CHARS:
        raise BadChange(f"key {text[:80]}... is {len(text)} characters as text; at most {MAX_ID_CHARS} fit "
                        "the document_id column")
    return text


@dataclass(frozen=True)
class RowChange:
    table: str  # source table as it will be named in MySQL (before sanitising)
    key_columns: tuple  # the source's key column names, in key order
    key: tuple  # their values, in the same order (JSON-ready scalars)
    version: int  # ordering value: newer wins
    tie: str  # breaks equal versions (compared as text): newer wins on the greater tie
    tx_time: Optional[_dt.datetime]  # when the source committed the change (UTC)
    data: Optional[dict]  # the whole row image (JSON-ready); for a delete, the key columns only
    deleted: bool = False
    ttl: bool = False  # a delete made by the source's time-to-live (DynamoDB), not by a user
    extra: dict = field(default_factory=dict, compare=False)  # what the format keeps for tests and logs
    # ``data`` as the writer's JSON text, made once by the decoder while checking its size.
    data_json: Optional[str] = field(default=None, compare=False, repr=False)
    # The source types of top-level values whose JSON is text standing for another type
    # (connectors/mysql/column_types.py), as JSON text; None when there are none.
    data_types: Optional[str] = field(default=None, compare=False, repr=False)

    @property
    def document_id(self) -> str:
        return canonical_key(self.key)


def check_text(value: str, what: str, max_chars: int = MAX_ID_CHARS) -> str:
    """Text that goes into an indexed column (a table name, a tie): UTF-8 encodable, and
    within its column (tx_id is VARCHAR(128), like document_id)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadChange(f"{what} holds a lone UTF-16 surrogate, which is not text MySQL can store") from None
    if len(value) > max_chars:
        raise BadChange(f"{what} is {len(value)} characters; at most {max_chars} fit its column")
    return value


def check_key(table: str, key_columns: tuple, key: tuple) -> None:
    """A key has a value for every column, and each value is a scalar (a key is compared
    and indexed as a whole in MySQL)."""
    if not key_columns:
        raise BadChange(f"table {table!r}: no key columns")
    if len(key) != len(key_columns):
        raise BadChange(f"table {table!r}: key has {len(key)} values for {len(key_columns)} columns")
    for name, value in zip(key_columns, key):
        if value is None:
            raise BadChange(f"table {table!r}: key column {name!r} is null or missing")
        if isinstance(value, (dict, list, float)):
            raise BadChange(f"table {table!r}: key column {name!r} holds a {type(value).__name__}, "
                            "which cannot be a key")




@dataclass(frozen=True)
class Piece:
    """One part of a source record split over several Kinesis records (DSQL splits a CDC
    record larger than Kinesis takes). The parts of one record share ``group``; they may
    arrive on different shards, in any order, more than once."""

    group: str  # the same for every part of one record, and for no other record
    index: int  # 0-based position of this part
    count: int  # how many parts the record has
    data: bytes  # this part's bytes, to be joined in index order


def parse_json_object(data: bytes, what: str) -> dict:
    """A record's bytes as one JSON object, or ``BadChange`` saying why not. JSON nested
    deeper than the interpreter's recursion limit is a bad record too, not a crash."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadChange(f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadChange(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:
        raise BadChange(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadChange(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def check_image(value, max_depth: int, max_bytes: int, what: str) -> str:
    """A row image within the writer's limits (nesting that MariaDB's JSON type takes, and
    a size far under max_allowed_packet: see connectors/formats/qldb.py); its JSON text,
    as the writer will send it, made once here."""
    stack = [(value, 0)]
    while stack:  # iterative: a deep image must not cost a deep Python stack
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth + 1 > max_depth:
                raise BadChange(f"{what} nests more than {max_depth} objects and arrays, "
                                "more than MySQL's JSON type takes")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or Infinity, which Python's JSON reader lets through
        raise BadChange(f"{what} holds NaN or Infinity, which JSON (and MySQL) has no value for") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # JSON's "\\udddd" escapes can make one (found by fuzzing)
        raise BadChange(f"{what} holds a lone UTF-16 surrogate, which is not text MySQL can store") from None
    if size > max_bytes:
        raise BadChange(f"{what} is {size} bytes as JSON, more than the {max_bytes} a row may hold")
    return text
