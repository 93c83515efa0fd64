"""Thin Flink wrappers around the pure pieces in ``connectors``.

- ``ShardReaderFunction``: keyed by reader slot, driven by ticks; polls the slot's
  shards and keeps each shard's last emitted sequence number in keyed state.
- ``DecodeQldbFunction``: stateless; Kinesis record bytes to revisions.
- ``MySqlWriterFunction``: keyed by writer slot; rows wait in keyed list state until a
  batch is full or its timer fires, so a checkpoint never loses them.
"""
from __future__ import annotations

import logging
import time
import zlib
from typing import Optional

from pyflink.common import Types
from pyflink.datastream import FlatMapFunction, KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor

from connectors.aws_clients import aws_client
from connectors.kinesis_shard_reader import ShardReader
from connectors.kinesis_shards import list_shards, shard_slot
from connectors.mysql_writer import MySqlSettings, MySqlWriter
from connectors.qldb_records import REVISION_DETAILS, BadRecord, decode_record
from job.run_status import StatusBoard

log = logging.getLogger("ledgersync")

# A closed shard read to its end: its position becomes this marker, never read again.
SHARD_FINISHED = "#finished"
SHARD_REFRESH_S = 10.0
# An idle shard (at its tip) is polled at most this often; a busy one every poll interval.
IDLE_POLL_S = 1.0


def writer_slot(table: str, document_id: str, slots: int) -> int:
    """Every revision of a document goes to the same writer slot."""
    return zlib.crc32(f"{table}\x00{document_id}".encode("utf-8")) % slots


class ShardReaderFunction(KeyedProcessFunction):
    def __init__(self, *, stream: str, region: str, endpoint: Optional[str], initial_position: str,
                 initial_timestamp, slots: int, poll_interval_ms: int, limit: int,
                 status_dir: Optional[str]):
        self._stream = stream
        self._region = region
        self._endpoint = endpoint
        self._initial_position = initial_position
        self._initial_timestamp = initial_timestamp
        self._slots = slots
        self._poll_interval = poll_interval_ms / 1000.0
        self._limit = limit
        self._status_dir = status_dir

    def open(self, ctx: RuntimeContext):
        self._positions = ctx.get_map_state(MapStateDescriptor("shard-positions", Types.STRING(), Types.STRING()))
        self._client = aws_client("kinesis", self._region, self._endpoint)
        self._reader = ShardReader(self._client, self._stream, self._initial_position,
                                   self._initial_timestamp, self._limit)
        self._board = StatusBoard(self._status_dir)
        self._shards: list = []
        self._shards_listed_at = float("-inf")
        self._next_poll: dict = {}
        self._shard_status: dict = {}
        metrics = ctx.get_metrics_group()
        self._records_read = metrics.counter("recordsRead")
        self._bytes_read = metrics.counter("bytesRead")

    def process_element(self, tick, ctx: KeyedProcessFunction.Context):
        slot = ctx.get_current_key()
        now = time.monotonic()
        if now - self._shards_listed_at >= SHARD_REFRESH_S:
            self._shards = list_shards(self._client, self._stream)
            self._shards_listed_at = now
        owned = [s.shard_id for s in self._shards if shard_slot(s.shard_id, self._slots) == slot]
        changed = False
        for shard_id in owned:
            position = self._positions.get(shard_id)
            status = self._shard_status.setdefault(shard_id, {"at_tip": False, "read": 0, "behind_ms": None})
            if position == SHARD_FINISHED:
                changed |= not status["at_tip"]
                status.update(at_tip=True, closed=True)
                continue
            if self._next_poll.get(shard_id, 0.0) > now:
                continue
            result = self._reader.read(shard_id, position)
            for record in result.records:
                self._bytes_read.inc(len(record.data))
                yield (record.stream, record.shard_id, record.sequence_number, record.data)
            if result.records:
                self._records_read.inc(len(result.records))
                self._positions.put(shard_id, result.records[-1].sequence_number)
            if result.closed:
                self._positions.put(shard_id, SHARD_FINISHED)
                self._reader.forget(shard_id)
            changed |= status["at_tip"] != result.at_tip
            status.update(at_tip=result.at_tip, read=status["read"] + len(result.records),
                          behind_ms=result.millis_behind_latest, position=self._positions.get(shard_id))
            self._next_poll[shard_id] = now + (IDLE_POLL_S if result.at_tip else self._poll_interval)
        self._board.publish(f"reader-{slot}", {
            "kind": "reader", "slot": slot, "shards_total": len(self._shards),
            "shards": {s: self._shard_status[s] for s in owned if s in self._shard_status},
        }, force=changed)


class DecodeQldbFunction(FlatMapFunction):
    def __init__(self, tables_include: tuple = ()):
        self._include = frozenset(tables_include)

    def open(self, ctx: RuntimeContext):
        metrics = ctx.get_metrics_group()
        self._decoded = metrics.counter("revisionsDecoded")
        self._skipped = metrics.counter("recordsSkipped")
        self._bad = metrics.counter("badRecords")

    def flat_map(self, record):
        stream, shard_id, sequence_number, data = record
        try:
            decoded = decode_record(data)
        except BadRecord as exc:
            self._bad.inc()
            log.warning("bad record at %s/%s/%s: %s", stream, shard_id, sequence_number, exc)
            return
        if decoded.record_type != REVISION_DETAILS:
            self._skipped.inc()
            return
        revision = decoded.revision
        if self._include and revision.table not in self._include:
            self._skipped.inc()
            return
        self._decoded.inc()
        yield revision


class MySqlWriterFunction(KeyedProcessFunction):
    def __init__(self, settings: MySqlSettings, max_rows: int, interval_ms: int, status_dir: Optional[str]):
        self._settings = settings
        self._max_rows = max_rows
        self._interval_ms = interval_ms
        self._status_dir = status_dir

    def open(self, ctx: RuntimeContext):
        self._pending = ctx.get_list_state(ListStateDescriptor("pending-revisions", Types.PICKLED_BYTE_ARRAY()))
        self._writer = MySqlWriter(self._settings)
        self._board = StatusBoard(self._status_dir)
        # Per slot, in memory only: rows added since the last flush and the timer set.
        # After a restore both start empty; the restored state and timers still flush.
        self._count: dict = {}
        self._timer: dict = {}
        self._written: dict = {}
        metrics = ctx.get_metrics_group()
        self._rows_written = metrics.counter("rowsWritten")
        self._batches = metrics.counter("batchesWritten")

    def close(self):
        self._writer.close()

    def process_element(self, revision, ctx: KeyedProcessFunction.Context):
        slot = ctx.get_current_key()
        self._pending.add(revision)
        count = self._count.get(slot, 0) + 1
        self._count[slot] = count
        if count == 1:
            self._publish(slot, pending=True)
        if count >= self._max_rows:
            self._flush(slot)
        elif slot not in self._timer:
            due = ctx.timer_service().current_processing_time() + self._interval_ms
            ctx.timer_service().register_processing_time_timer(due)
            self._timer[slot] = due
        return ()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        slot = ctx.get_current_key()
        if self._timer.get(slot) == timestamp:
            del self._timer[slot]
        self._flush(slot)
        return ()  # PyFlink iterates what a timer returns

    def _flush(self, slot: int) -> None:
        rows = list(self._pending.get() or [])
        if rows:
            applied = self._writer.write(rows)
            self._pending.clear()
            self._rows_written.inc(applied)
            self._batches.inc()
            self._written[slot] = self._written.get(slot, 0) + len(rows)
        self._count[slot] = 0
        self._publish(slot, pending=False)

    def _publish(self, slot: int, pending: bool) -> None:
        self._board.publish(f"writer-{slot}", {
            "kind": "writer", "slot": slot, "pending": pending,
            "written": self._written.get(slot, 0), "retries": self._writer.retries,
        }, force=True)
