"""Aurora DSQL change data capture records (``source.format=dsql-cdc``) to ``RowChange``s.

Format as documented in the Aurora DSQL user guide, "Understanding CDC records"
(https://docs.aws.amazon.com/aurora-dsql/latest/userguide/cdc-record-format.html): one
JSON envelope per Kinesis record, ``{"type": "full", "op": ..., "before": ..., "after":
..., "source": {"ts_ns", "txId", "schema", "table", ...}, "ts_ms", "ts_ns"}``, put under a
random partition key (so the parts of the stream are on every shard, in no order).

Rules taken from that page:

- ``op`` ``c``/``u`` are upserts of ``after``; the docs ask consumers to treat any op they
  do not know as an upsert of ``after``, so we do; ``d`` is a delete whose key is in
  ``before``.
- The record does not say which columns are the primary key, so they come from
  ``source.dsql.keys`` (``table=col+col; schema.table=col``). A change of a table that is
  not listed is a dead letter naming the property.
- Tables without a primary key: DSQL sends ``before: null`` for their deletes, so a
  delete cannot be matched to a row. Rule: such a table may be listed with columns that
  identify a row (its inserts and updates then replicate), and every delete with
  ``before`` null is a dead letter saying why; nothing is guessed.
- NULL is JSON null; a column may also be absent (records from before an ADD COLUMN do
  not have it): the row image is what arrived, either way NULL in MySQL. NUMERIC and
  DECIMAL arrive as text and stay text (exact) in the JSON; the record has no column
  types, so text in numeric's or timestamp's PostgreSQL form gets a DECIMAL or DATETIME(6)
  column (``dsql_tags`` below; connectors/mysql/column_types.py).
- Order: ``version`` is ``source.ts_ns`` (the commit time in ns), ``tie`` is
  ``source.txId``. DSQL uses optimistic concurrency: two transactions that write the same
  row cannot both commit, so the commits touching one row are ordered by commit time;
  write-set compaction gives one record per row per transaction, so (ts_ns, txId) names
  one change of a row and a later commit always wins. txId only breaks exact ties.

Oversized records ("Handling oversized records" on the same page): ``type`` is ``full``
for a whole record, ``chunked`` for a main record whose ``before`` or ``after`` image is
replaced by ``chunked.<image> = {chunk_id, total_fragments, crc32c}``, and ``fragment``
for ``{chunk_id, index, data}``, one 0-based piece of that image's JSON text. A fragment
does not say how many fragments there are; only the main record does. So all parts of
one record share ``group = chunk_id``: the main record is part 0 with
``count = total_fragments + 1``, fragment ``i`` is part ``i + 1`` with ``count = 0`` ("not
said by this part", see job/rules/reassembly.py). Joined, the bytes are the main
record's JSON followed by the image text; ``decode`` reads the envelope with
``raw_decode``, checks the image's CRC32C (decimal text, as the docs give it) and puts
the image back in place. Only one image can be chunked: ``before`` is only set for a
delete (keys only), when ``after`` is null, so a record with both chunked is refused.

Pure: no Flink, no MySQL. Standard json module (object_pairs_hook rejects duplicate keys).
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from typing import Union

from connectors.formats.changes import BadChange, NotConfigured, Piece, RowChange, check_key
from connectors.rows.limits import MAX_DOCUMENT_BYTES, MAX_JSON_DEPTH
from connectors.rows.tags import DECIMAL_TAG, TIMESTAMP_TAG, tags_json

MAX_INT64 = 2 ** 63 - 1
DEFAULT_SPLIT_TIMEOUT_MS = 600_000


def parse_keys(text: str) -> dict:
    """``order_items=order_id+item_id; sales.orders=id`` -> {table: (columns...)}."""
    keys = {}
    for part in (text or "").split(";"):
        part = part.strip()
        if not part:
            continue
        table, sep, cols = part.partition("=")
        table = table.strip()
        columns = tuple(c.strip() for c in cols.split("+"))
        if not sep or not table or not all(columns):
            raise ValueError(f"source.dsql.keys: {part!r} is not table=column[+column...]")
        if table in keys:
            raise ValueError(f"source.dsql.keys: table {table!r} is listed twice")
        if len(set(columns)) != len(columns):
            raise ValueError(f"source.dsql.keys: {part!r} names a column twice")
        keys[table] = columns
    if not keys:
        raise ValueError("source.dsql.keys: no table=columns given")
    return keys


@dataclass(frozen=True)
class DsqlSettings:
    keys: dict = field(default_factory=dict)  # table (as `table` below) -> key columns
    max_document_bytes: int = MAX_DOCUMENT_BYTES
    split_timeout_ms: int = DEFAULT_SPLIT_TIMEOUT_MS

    # Built from source.dsql.keys by job/config/settings.py (format_settings).


# DSQL CDC records carry no column types: numeric and timestamps arrive as JSON strings,
# in PostgreSQL's own text output, which these match (and ordinary text rarely does:
# PostgreSQL prints numeric without a plus sign or leading zeros, timestamps with a time).
_PG_NUMERIC = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_PG_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
                           r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?")


def dsql_tags(image: Optional[dict]) -> dict:
    """DSQL: a string in numeric's text form is a numeric, one in timestamp's is a
    timestamp (see above; ``sink.column.types`` settles a text column that looks like one)."""
    tags = {}
    for name, value in (image or {}).items():
        if type(value) is str:
            if _PG_NUMERIC.fullmatch(value):
                tags[name] = DECIMAL_TAG
            elif _PG_TIMESTAMP.fullmatch(value):
                tags[name] = TIMESTAMP_TAG
    return tags


def _no_duplicates(pairs):
    out = {}
    for name, value in pairs:
        if name in out:
            raise BadChange(f"field {name!r} appears twice in one object")
        out[name] = value
    return out


def _depth(value, limit: int) -> None:
    # Iterative: a deep document must not hit Python's recursion limit.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise BadChange(f"JSON nested deeper than {limit} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _str(obj: dict, name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise BadChange(f"{where}.{name} is missing or not a non-empty string")
    return value


def _reject_constant(name: str):
    raise BadChange(f"{name} is not JSON")  # Python's json takes NaN/Infinity; DSQL sends them as strings


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def _parse(text: str, what: str):
    """One JSON value and where it ends (raw_decode: a joined record has the image after it)."""
    try:
        value, end = _DECODER.raw_decode(text, len(text) - len(text.lstrip()))
    except RecursionError:
        raise BadChange(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise BadChange(f"{what}: not JSON: {exc}") from None
    _depth(value, MAX_JSON_DEPTH)
    return value, end


# CRC32C (Castagnoli, reflected 0x82F63B78), hand-rolled because the standard library has
# only zlib's CRC32 and the docs' checksum is CRC32C; table-driven, over the image's UTF-8.
_CRC32C_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _int(obj: dict, name: str, where: str, low: int) -> int:
    value = obj.get(name)
    if type(value) is not int or value < low:
        raise BadChange(f"{where}.{name} is missing or not an integer >= {low}")
    return value


def _fragment(doc: dict) -> Piece:
    chunk_id = _str(doc, "chunk_id", "fragment")
    index = _int(doc, "index", "fragment", 0)
    data = doc.get("data")
    if not isinstance(data, str):
        raise BadChange("fragment.data is missing or not a string")
    # count 0: a fragment does not say how many there are; the main record (part 0) does.
    return Piece(group=chunk_id, index=index + 1, count=0, data=data.encode("utf-8"))


def _chunk_ref(doc: dict) -> tuple:
    chunked = doc.get("chunked")
    if not isinstance(chunked, dict) or not chunked:
        raise BadChange("type 'chunked' without a chunked object")
    images = [name for name in chunked if name in ("before", "after")]
    if len(images) != len(chunked):
        raise BadChange(f"chunked has fields {sorted(chunked)}; only before and after are known")
    if len(images) != 1:
        raise BadChange("chunked names both before and after; before is only set for a delete, when after "
                        "is null, so this record cannot be joined as one")
    image = images[0]
    ref = chunked[image]
    if not isinstance(ref, dict):
        raise BadChange(f"chunked.{image} is not an object")
    where = f"chunked.{image}"
    chunk_id = _str(ref, "chunk_id", where)
    total = _int(ref, "total_fragments", where, 1)
    crc = ref.get("crc32c")
    if not isinstance(crc, str) or not crc.isdigit() or int(crc) > 0xFFFFFFFF:
        raise BadChange(f"{where}.crc32c is missing or not a 32-bit decimal string")
    return image, chunk_id, total, int(crc)


def decode(data: bytes, settings: DsqlSettings) -> Union[RowChange, Piece]:
    if len(data) > settings.max_document_bytes:
        raise BadChange(f"record is {len(data)} bytes; at most {settings.max_document_bytes} are taken")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadChange(f"not UTF-8: {exc}") from None
    doc, end = _parse(text, "record")
    if not isinstance(doc, dict):
        raise BadChange(f"record is a JSON {type(doc).__name__}, not an object")
    rest = text[end:]
    kind = doc.get("type")
    if kind == "fragment":
        if rest.strip():
            raise BadChange("text after the fragment's JSON")
        return _fragment(doc)
    if kind == "chunked":
        image, chunk_id, total, crc = _chunk_ref(doc)
        if not rest.strip():  # the main record as it came from Kinesis: part 0 of its group
            return Piece(group=chunk_id, index=0, count=total + 1, data=data)
        # Joined by job/rules/reassembly.py: the image text follows the envelope.
        if crc32c(rest.encode("utf-8")) != crc:
            raise BadChange(f"chunk {chunk_id}: CRC32C of the joined {image} image is "
                            f"{crc32c(rest.encode('utf-8'))}, the record says {crc}")
        if doc.get(image) is not None:
            raise BadChange(f"chunk {chunk_id}: {image} is both inline and chunked")
        value, image_end = _parse(rest, f"chunk {chunk_id} ({image} image)")
        if rest[image_end:].strip():
            raise BadChange(f"chunk {chunk_id}: text after the joined {image} image")
        doc = dict(doc)
        doc[image] = value
    elif kind != "full":
        raise BadChange(f"type {kind!r} is not full, chunked or fragment")
    elif rest.strip():
        raise BadChange("text after the record's JSON")
    op = doc.get("op")
    if not isinstance(op, str) or not op:
        raise BadChange("op is missing or not a string")
    source = doc.get("source")
    if not isinstance(source, dict):
        raise BadChange("source is missing or not an object")
    name = _str(source, "table", "source")
    schema = _str(source, "schema", "source")
    table = name if schema == "public" else f"{schema}.{name}"
    ts_ns = source.get("ts_ns")
    if type(ts_ns) is not int:  # bool is an int subclass: not a time
        raise BadChange("source.ts_ns is missing or not an integer")
    if not 0 < ts_ns <= MAX_INT64:
        raise BadChange(f"source.ts_ns {ts_ns} is not a positive signed 64-bit integer")
    tx_id = _str(source, "txId", "source")
    deleted = op == "d"
    image = doc.get("before") if deleted else doc.get("after")
    which = "before" if deleted else "after"
    columns = settings.keys.get(table)
    if columns is None:
        raise NotConfigured(f"table {table!r} has no key columns in source.dsql.keys (DSQL records do not "
                            "say which columns are the key; a table without a primary key must be listed with the "
                            "columns that identify a row)")
    if deleted and image is None:
        # Documented: before is null for a delete on a table without a primary key, so
        # nothing says which row went; it cannot be applied and must not be guessed.
        raise BadChange(f"table {table!r}: delete with before null (DSQL sends no key for a delete on a table "
                        "without a primary key); the row cannot be identified")
    if not isinstance(image, dict):
        raise BadChange(f"op {op!r}: {which} is missing or not an object")
    key = tuple(image.get(c) for c in columns)
    try:
        check_key(table, columns, key)
    except BadChange as exc:
        raise BadChange(f"{exc} in {which} (key columns from source.dsql.keys)") from None
    tx_time = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=ts_ns // 1000)
    row = dict(zip(columns, key)) if deleted else image
    return RowChange(table=table, key_columns=columns, key=key, version=ts_ns, tie=tx_id, tx_time=tx_time,
                     data=row, deleted=deleted, extra={"op": op},
                     data_types=None if deleted else tags_json(dsql_tags(row)))
