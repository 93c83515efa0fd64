"""Flink wrappers for keyed change streams (``source.format`` of kind ``changes`` in
connectors/formats/registry.py: Aurora DSQL CDC, DynamoDB).

``DecodeChangesFunction`` calls the format's ``decode`` on each Kinesis record and emits
a revision row (job/rows/item_rows.py) per row change, a dead letter row for what
does not decode, and a piece row, on a side output, for each part of a split record.
``ReassembleFunction``, keyed by the split record's group, holds the parts until all are
there (they may arrive on different shards, in any order, more than once), then decodes
the joined record; parts still incomplete after the timeout become one dead letter,
never half a change. The rules are in job/rules/reassembly.py; this only keeps state.
"""
from __future__ import annotations

import logging
import pickle
import time
from typing import Optional

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from connectors.kinesis.source import record_parts
from connectors.dead_letters import DeadLetter, payload_position
from connectors.formats.changes import BadChange, Piece, RowChange
from connectors.formats.registry import format_spec
from connectors.rows.row_images import document_json
from job.config.settings import DecodeSettings
from job.functions import names
from job.functions.status_board import StatusBoard
from job.rows.item_rows import (DOCUMENT_ID, ITEM_ROW, RAW, SEQUENCE_NUMBER, SHARD_ID, STREAM, as_piece,
                                    change_row, dead_letter_row, piece_row)
from job.rules.reassembly import Held

log = logging.getLogger(__name__)

PIECES = OutputTag("split-record-pieces", ITEM_ROW)
# A joined record's group is remembered this long, so a part delivered again later (at
# least once) is recognised and dropped instead of starting a record that never completes
# and ends as a dead letter; it is one small value per split record.
JOINED_RETENTION_MS = 24 * 3600 * 1000
_JOINED = "joined"
# Dead letters are all in MySQL; the log gets one line per interval, so bad input cannot flood it.
DEAD_LETTER_LOG_INTERVAL_S = 10.0


def piece_group(row) -> str:
    """The key of the reassembly step: every part of one split record meets there."""
    return row[DOCUMENT_ID]


class _Changes:
    """What both functions do with a decoded record: filter, count, turn into rows."""

    def _open_common(self, ctx: RuntimeContext, settings: DecodeSettings) -> None:
        self._spec = format_spec(settings.format)
        metrics = ctx.get_metrics_group()
        self._decoded = metrics.counter(names.REVISIONS_DECODED)
        self._deletes = metrics.counter(names.DELETES_DECODED)
        self._skipped = metrics.counter(names.REVISIONS_SKIPPED)  # tables not in replication.tables.include
        self._dead = metrics.counter(names.DEAD_LETTERS)
        self._last_dead_log = float("-inf")

    def _decode(self, data: bytes):
        """The format's decode, with a decoder bug turned into a reason (it must not stop
        the job nor lose the record: the dead letter keeps its bytes)."""
        try:
            return self._spec.decode(data, self._settings.source), None
        except BadChange as exc:
            return None, str(exc)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            return None, f"decoder error ({type(exc).__name__}): {exc}"

    def _change_rows(self, change: RowChange):
        if self._settings.tables_include and change.table not in self._settings.tables_include:
            self._skipped.inc()
            return
        try:
            document = change.data_json if change.data_json is not None else document_json(change.data)
            row = change_row(change, self._settings.writer_slots, document)
        except (BadChange, ValueError, TypeError) as exc:
            raise BadChange(f"cannot store the change: {exc}") from None
        self._decoded.inc()
        if change.deleted:
            self._deletes.inc()
        yield row

    def _settle(self, decoded, reason: str) -> tuple:
        """(rows, None) for a decoded change, or ([], why it is a dead letter)."""
        if decoded is None:
            return [], reason
        try:
            return list(self._change_rows(decoded)), None
        except BadChange as exc:
            return [], str(exc)

    def _dead_row(self, stream, shard_id, sequence_number, stage: str, reason: str, raw: bytes):
        self._dead.inc()
        now = time.monotonic()
        if now - self._last_dead_log >= DEAD_LETTER_LOG_INTERVAL_S:
            log.warning("dead letter from %s %s %s: %s", stream, shard_id, sequence_number, reason[:300])
            self._last_dead_log = now
        letter = DeadLetter(stream=stream, shard_id=shard_id, sequence_number=sequence_number, stage=stage,
                            reason=reason, raw=bytes(raw), sub_sequence=payload_position(raw))
        return dead_letter_row(letter, self._settings.writer_slots)


class DecodeChangesFunction(ProcessFunction, _Changes):
    def __init__(self, settings: DecodeSettings):
        self._settings = settings

    def open(self, ctx: RuntimeContext):
        self._open_common(ctx, self._settings)
        self._pieces = ctx.get_metrics_group().counter(names.SPLIT_PARTS)

    def process_element(self, record, ctx: ProcessFunction.Context):
        stream, shard_id, sequence_number, data = record_parts(record)
        data = bytes(data)
        decoded, reason = self._decode(data)
        if isinstance(decoded, Piece):
            self._pieces.inc()
            yield PIECES, piece_row(decoded, stream, shard_id, sequence_number, self._settings.writer_slots)
            return
        rows, reason = self._settle(decoded, reason)
        if reason is None:
            yield from rows
            return
        yield self._dead_row(stream, shard_id, sequence_number, "decode", reason, data)


class ReassembleFunction(KeyedProcessFunction, _Changes):
    def __init__(self, settings: DecodeSettings, status_dir: Optional[str] = None):
        self._settings = settings
        self._status_dir = status_dir

    def open(self, ctx: RuntimeContext):
        self._open_common(ctx, self._settings)
        # The split records this subtask holds incomplete (group -> deadline ms), for the
        # status board: a local run does not call itself caught up while parts wait for
        # their timeout (their dead letter would be lost with the run). In memory: after a
        # restore a held group counts again once another of its parts or its timer arrives.
        self._holding: dict = {}
        self._board = StatusBoard(self._status_dir)
        self._board_name = f"reassembly-{ctx.get_index_of_this_subtask()}"
        # (Held, first part's Kinesis position, deadline ms) while parts are missing, then
        # (_JOINED, forget-at ms): one value per split record.
        self._held = ctx.get_state(ValueStateDescriptor("split-record", Types.PICKLED_BYTE_ARRAY()))
        self._late = ctx.get_metrics_group().counter(names.SPLIT_PARTS_LATE)
        self._joined = ctx.get_metrics_group().counter(names.SPLIT_RECORDS_JOINED)
        self._expired = ctx.get_metrics_group().counter(names.SPLIT_RECORDS_EXPIRED)

    def process_element(self, row, ctx: KeyedProcessFunction.Context):
        now = ctx.timer_service().current_processing_time()
        stored = self._held.value()
        if stored is None:
            held, position = Held(), (row[STREAM], row[SHARD_ID], row[SEQUENCE_NUMBER])
            deadline = now + self._settings.split_timeout_ms
            ctx.timer_service().register_processing_time_timer(deadline)
        else:
            held, position, deadline = pickle.loads(stored)
            if held == _JOINED:
                self._late.inc()  # a part of a record already joined, delivered again
                return
        piece = as_piece(row)
        try:
            joined = held.add(piece, now)
        except BadChange as exc:  # a part that contradicts the others: it alone is a dead letter
            yield self._dead_row(row[STREAM], row[SHARD_ID], row[SEQUENCE_NUMBER], "reassemble",
                                 f"split record {piece.group}: {exc}", bytes(row[RAW] or b""))
            return
        group = ctx.get_current_key()
        if joined is None:
            self._held.update(pickle.dumps((held, position, deadline)))
            if group not in self._holding:
                self._holding[group] = deadline
                self._publish()
            return
        if self._holding.pop(group, None) is not None:
            self._publish()
        ctx.timer_service().delete_processing_time_timer(deadline)
        forget_at = now + JOINED_RETENTION_MS
        self._held.update(pickle.dumps((_JOINED, None, forget_at)))
        ctx.timer_service().register_processing_time_timer(forget_at)
        self._joined.inc()
        decoded, reason = self._decode(joined)
        if isinstance(decoded, Piece):
            decoded, reason = None, "the joined record is itself a part of a split record"
        rows, reason = self._settle(decoded, reason)
        if reason is None:
            yield from rows
            return
        yield self._dead_row(*position, "reassemble", f"split record {piece.group}: {reason}", joined)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        stored = self._held.value()
        if stored is None:
            return
        held, position, deadline = pickle.loads(stored)
        if timestamp < deadline:
            return
        self._held.clear()
        if held == _JOINED:
            return
        self._expired.inc()
        group = ctx.get_current_key()
        self._holding.pop(group, None)
        self._publish()
        reason = (f"split record {group}: {held.describe()} after {self._settings.split_timeout_ms} ms "
                  "(source.dsql.split.timeout.ms); the parts that came are in raw, joined in order")
        yield self._dead_row(*position, "reassemble", reason, held.partial())

    def _publish(self) -> None:
        self._board.publish(self._board_name, {
            "kind": "reassembly", "held": len(self._holding),
            "next_deadline_ms": min(self._holding.values(), default=None)}, force=True)
