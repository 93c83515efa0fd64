"""The one typed row every stage of the QLDB pipeline hands to the next.

Between Python operators PyFlink serialises what they emit. Plain Python objects go as
pickles (cloudpickle), which cost a quarter of the job's Python time in the profile
(BENCHMARKS.md); a named row type goes through PyFlink's compiled row coder instead, and
Flink SQL (the Top-1 per document) can read it without a conversion step. So decoding,
ordering and writing all exchange ``ITEM_ROW``: a revision, a row image for the current
view or history, a dead letter or an order-mode gap, told apart by ``kind``, with the
writer slot already computed.

The functions here are pure (no Flink runtime needed) and turn the connectors' objects
into rows and back.
"""
from __future__ import annotations

import json
import zlib
from typing import Optional

from pyflink.common import Row, Types

from connectors.dead_letters import DeadLetter
from connectors.formats.changes import Piece, RowChange
from connectors.rows.row_images import CURRENT, HISTORY, RowImage, epoch_us, revision_json
from job.rules.ordering import Gap

REVISION = "revision"  # decoded, not yet ordered: the source of current and history rows
DEAD = "dead"
GAP = "gap"
PIECE = "piece"  # a part of a split source record (DSQL), on its way to being joined
# CURRENT ("current") and HISTORY ("history") are row images for the writer.

ITEM_FIELDS = [
    ("slot", Types.INT()),  # writer slot: by document, or by stream position for a dead letter
    ("kind", Types.STRING()),
    ("tbl", Types.STRING()),
    ("document_id", Types.STRING()),
    ("version", Types.LONG()),  # a gap's first missing version
    ("tx_id", Types.STRING()),
    ("tx_time_us", Types.LONG()),
    ("document", Types.STRING()),  # JSON text; None for a delete or a redaction
    ("deleted", Types.BOOLEAN()),
    ("redacted", Types.BOOLEAN()),
    ("to_version", Types.LONG()),  # gap: last missing version
    ("action", Types.STRING()),  # gap: "skip" or "wait"
    ("stream", Types.STRING()),  # dead letter: where the record came from, why, and its bytes
    ("shard_id", Types.STRING()),
    ("sequence_number", Types.STRING()),
    ("sub_sequence", Types.INT()),
    ("stage", Types.STRING()),
    ("reason", Types.STRING()),
    ("raw", Types.PRIMITIVE_ARRAY(Types.BYTE())),  # a piece: its bytes
    ("key_columns", Types.STRING()),  # keyed sources: the key's column names as a JSON list
    ("expired", Types.BOOLEAN()),  # keyed sources: a delete by the source's time-to-live
    # revisions and row images: the source types of text-valued fields (decimals,
    # timestamps, bytes) as JSON, for the typed columns (connectors/mysql/column_types.py)
    ("types", Types.STRING()),
]
ITEM_NAMES = [name for name, _ in ITEM_FIELDS]
ITEM_ROW = Types.ROW_NAMED(ITEM_NAMES, [t for _, t in ITEM_FIELDS])
_WIDTH = len(ITEM_FIELDS)
(SLOT, KIND, TBL, DOCUMENT_ID, VERSION, TX_ID, TX_TIME_US, DOCUMENT, DELETED, REDACTED, TO_VERSION, ACTION,
 STREAM, SHARD_ID, SEQUENCE_NUMBER, SUB_SEQUENCE, STAGE, REASON, RAW, KEY_COLUMNS, EXPIRED, TYPES) = range(_WIDTH)


def writer_slot(table: str, document_id: str, slots: int) -> int:
    """Every revision of a document goes to the same writer slot (and order bucket:
    ``job.functions.order.order_bucket``)."""
    return zlib.crc32(f"{table}\x00{document_id}".encode("utf-8")) % slots


def position_slot(stream: str, shard_id: str, sequence_number: str, slots: int) -> int:
    return zlib.crc32(f"{stream}\x00{shard_id}\x00{sequence_number}".encode("utf-8")) % slots


def _row(*values) -> Row:
    return Row(*values, *([None] * (_WIDTH - len(values))))


def revision_row(revision, slots: int) -> Row:
    """A decoded revision (``connectors.formats.qldb.Revision``)."""
    row = _row(writer_slot(revision.table, revision.document_id, slots), REVISION, revision.table,
               revision.document_id, revision.version, revision.tx_id, epoch_us(revision.tx_time),
               revision_json(revision), bool(revision.deleted), bool(revision.redacted))
    row[TYPES] = getattr(revision, "data_types", None)
    return row


def change_row(change: RowChange, slots: int, document: str) -> Row:
    """A keyed source's row change (``connectors.formats.changes.RowChange``) as a revision:
    ``document`` is its row image's JSON text (made once, by the decoder's caller)."""
    row = _row(writer_slot(change.table, change.document_id, slots), REVISION, change.table, change.document_id,
               change.version, change.tie, epoch_us(change.tx_time), document, change.deleted, False)
    row[KEY_COLUMNS], row[EXPIRED] = json.dumps(list(change.key_columns)), change.ttl
    row[TYPES] = change.data_types
    return row


def piece_row(piece: Piece, stream: str, shard_id: str, sequence_number: str, slots: int) -> Row:
    """A part of a split record: ``document_id`` is its group, ``version`` its index,
    ``to_version`` the count; the Kinesis position names it in a dead letter."""
    row = _row(position_slot(stream, shard_id, sequence_number, slots), PIECE, None, piece.group, piece.index)
    row[TO_VERSION], row[RAW] = piece.count, piece.data
    row[STREAM], row[SHARD_ID], row[SEQUENCE_NUMBER], row[SUB_SEQUENCE] = stream, shard_id, sequence_number, -1
    return row


def as_piece(row) -> Piece:
    return Piece(row[DOCUMENT_ID], row[VERSION], row[TO_VERSION], bytes(row[RAW] or b""))


def image_row(image: RowImage, slots: int) -> Row:
    row = _row(writer_slot(image.table, image.document_id, slots), image.kind, image.table, image.document_id,
               image.version, image.tx_id, image.tx_time_us, image.document, image.deleted, image.redacted)
    if image.key_columns:
        row[KEY_COLUMNS], row[EXPIRED] = json.dumps(list(image.key_columns)), image.expired
    row[TYPES] = image.types
    return row


def dead_letter_row(letter: DeadLetter, slots: int) -> Row:
    row = _row(position_slot(letter.stream, letter.shard_id, letter.sequence_number, slots), DEAD)
    row[STREAM], row[SHARD_ID], row[SEQUENCE_NUMBER] = letter.stream, letter.shard_id, letter.sequence_number
    row[SUB_SEQUENCE], row[STAGE], row[REASON], row[RAW] = letter.sub_sequence, letter.stage, letter.reason, letter.raw
    return row


def gap_row(gap, slots: int) -> Row:
    """An order-mode gap (``job.rules.ordering.Gap``)."""
    row = _row(writer_slot(gap.table, gap.document_id, slots), GAP, gap.table, gap.document_id, gap.from_version)
    row[TO_VERSION], row[ACTION] = gap.to_version, gap.action
    return row


def as_image(row, kind: Optional[str] = None) -> RowImage:
    """A revision or row image row as the writer's ``RowImage`` (``kind`` overrides the row's)."""
    key_columns = tuple(json.loads(row[KEY_COLUMNS])) if row[KEY_COLUMNS] else ()
    return RowImage(kind or row[KIND], row[TBL], row[DOCUMENT_ID], row[VERSION], row[TX_ID], row[TX_TIME_US],
                    row[DOCUMENT], bool(row[DELETED]), bool(row[REDACTED]), key_columns, bool(row[EXPIRED]),
                    row[TYPES])


def as_dead_letter(row) -> DeadLetter:
    return DeadLetter(row[STREAM], row[SHARD_ID], row[SEQUENCE_NUMBER], row[STAGE], row[REASON],
                      bytes(row[RAW] or b""), row[SUB_SEQUENCE])


def as_writer_item(row):
    """What ``connectors.mysql.writer.MySqlWriter.write`` takes for one row."""
    kind = row[KIND]
    if kind in (CURRENT, HISTORY):
        return as_image(row)
    if kind == DEAD:
        return as_dead_letter(row)
    if kind == GAP:
        return Gap(row[TBL], row[DOCUMENT_ID], row[VERSION], row[TO_VERSION], row[ACTION])
    raise ValueError(f"the writer got a row of kind {kind!r}; expected current, history, dead or gap")
