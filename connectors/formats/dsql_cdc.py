"""Aurora DSQL change data capture records (``source.format=dsql-cdc``) to row changes.

The format, from the Aurora DSQL user guide, "Understanding CDC records"
(https://docs.aws.amazon.com/aurora-dsql/latest/userguide/cdc-record-format.html): one
JSON record per committed row change, one Kinesis record each, with a random partition
key (so a row's changes land on any shard, in any order, at least once):

    {"type": "full", "op": "c" | "u" | "d", "before": {...} | null, "after": {...} | null,
     "source": {"version", "ts_ms", "ts_ns", "txId", "schema", "table", "db", "cluster"},
     "ts_ms", "ts_ns"}

- inserts and updates carry the whole row in ``after`` (key columns included; NULL
  columns may be left out); deletes carry only the key columns, in ``before``;
- an ``op`` not known here is an upsert of ``after``, as the guide asks of consumers;
- the record does not say which columns are the key, so ``source.dsql.keys`` names them
  per table. A table without a primary key has no key DSQL could give us either: it is
  replicated only when ``source.dsql.keys`` names columns that identify its rows, and
  otherwise each of its records is a dead letter saying so;
- each transaction's write set is compacted to one record per row, and DSQL's optimistic
  concurrency never lets two transactions that write the same row both commit, so the
  commit time ``source.ts_ns`` orders a row's changes; ``source.txId`` breaks a tie of
  equal times, so every arrival order ends in the same row;
- a record larger than the stream takes is split over several Kinesis records. The
  guide's section on oversized records was not in the reference text available when
  this was written, so the marking of a part is ledgersync's own reading, kept in
  ``_piece`` alone: ``{"type": "fragment", "fragment": {"id", "index", "count"},
  "data": base64 of that slice of the whole record's bytes}``, index from 0. Check it
  against the guide before relying on split records, and change ``_piece`` only.

Pure: bytes in, a ``RowChange`` or a ``Piece`` out, or ``BadChange`` with the reason.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
from dataclasses import dataclass

from connectors.formats.changes import (BadChange, Piece, RowChange, check_image, check_key,
                                        parse_json_object)
from connectors.formats.qldb import MAX_DOCUMENT_BYTES, MAX_JSON_DEPTH

UPSERT_OPS = ("c", "u")  # and any op not known: see the module's doc
DELETE_OP = "d"
FULL = "full"
FRAGMENT = "fragment"
PUBLIC_SCHEMA = "public"
KEYS_PROPERTY = "source.dsql.keys"
_INT64_MAX = 2 ** 63 - 1


class BadKeysSetting(ValueError):
    """``source.dsql.keys`` does not parse; the message names the part."""


def parse_keys(text: str) -> dict:
    """``order_items=order_id+item_id; sales.orders=id`` -> {table: (column, ...)}."""
    keys: dict = {}
    for part in (p.strip() for p in (text or "").split(";")):
        if not part:
            continue
        table, sep, columns = part.partition("=")
        names = tuple(c.strip() for c in columns.split("+"))
        if not sep or not table.strip() or not all(names):
            raise BadKeysSetting(f"{part!r}: expected TABLE=COLUMN[+COLUMN...], e.g. order_items=order_id+item_id")
        if table.strip() in keys:
            raise BadKeysSetting(f"{part!r}: table {table.strip()!r} is listed twice")
        if len(set(names)) != len(names):
            raise BadKeysSetting(f"{part!r}: a column is listed twice")
        keys[table.strip()] = names
    return keys


@dataclass(frozen=True)
class DsqlSettings:
    keys: dict  # table (schema-qualified unless public) -> key column names, in key order
    max_document_bytes: int = MAX_DOCUMENT_BYTES

    @classmethod
    def from_properties(cls, props) -> "DsqlSettings":
        return cls(keys=parse_keys(props[KEYS_PROPERTY] or ""))


def table_name(source: dict) -> str:
    """``schema.table``, or just ``table`` in the public schema (the table contract)."""
    table = _text(source, "table", "source.table")
    schema = source.get("schema")
    if schema is not None and not isinstance(schema, str):
        raise BadChange(f"source.schema must be text, got {type(schema).__name__}")
    return table if schema in (None, "", PUBLIC_SCHEMA) else f"{schema}.{table}"


def decode(data: bytes, settings: DsqlSettings):
    record = parse_json_object(data, "DSQL CDC record")
    if record.get("type") == FRAGMENT:
        return _piece(record)
    source = record.get("source")
    if not isinstance(source, dict):
        raise BadChange("DSQL CDC record has no source object")
    table = table_name(source)
    version = source.get("ts_ns")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version <= _INT64_MAX:
        raise BadChange(f"source.ts_ns must be a positive whole number of nanoseconds, got {version!r}")
    tie = _text(source, "txId", "source.txId")
    op = record.get("op")
    if not isinstance(op, str):
        raise BadChange(f"op must be text, got {op!r}")
    deleted = op == DELETE_OP
    image_name = "before" if deleted else "after"
    image = record.get(image_name)
    if not isinstance(image, dict):
        raise BadChange(f"op {op!r} needs an object in {image_name!r}, got {type(image).__name__}")
    key_columns = settings.keys.get(table)
    if key_columns is None:
        raise BadChange(f"table {table!r} has no key in {KEYS_PROPERTY} (list it as {table}=COLUMN[+COLUMN...]; "
                        "for a table without a primary key, columns that identify its rows)")
    key = tuple(image.get(c) for c in key_columns)
    check_key(table, key_columns, key)
    data_image = {c: image[c] for c in key_columns} if deleted else image
    text = check_image(data_image, MAX_JSON_DEPTH, settings.max_document_bytes, f"the {image_name} image")
    tx_time = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=version // 1000)
    return RowChange(table=table, key_columns=key_columns, key=key, version=version, tie=tie, tx_time=tx_time,
                     data=data_image, deleted=deleted, data_json=text, extra={"op": op})


def _piece(record: dict) -> Piece:
    """One part of a split record (the marking is ledgersync's reading: see the module's doc)."""
    fragment = record.get("fragment")
    if not isinstance(fragment, dict):
        raise BadChange("fragment record has no fragment object")
    group = _text(fragment, "id", "fragment.id")
    index, count = fragment.get("index"), fragment.get("count")
    for name, value in (("index", index), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadChange(f"fragment.{name} must be a whole number, got {value!r}")
    if count < 1 or not 0 <= index < count:
        raise BadChange(f"fragment {index} of {count} is not a valid part number")
    payload = record.get("data")
    if not isinstance(payload, str):
        raise BadChange("fragment record has no data text (base64)")
    try:
        part = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadChange("fragment data is not base64") from None
    return Piece(group=group, index=index, count=count, data=part)


def _text(obj: dict, name: str, path: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise BadChange(f"{path} must be non-empty text, got {value!r}")
    return value
