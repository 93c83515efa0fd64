"""Flink wrapper: the Kinesis shard reader, keyed by reader slot and driven by ticks.

Each tick polls the slot's shards (those ``shard_slot`` assigns to it) once if due and
emits ``(stream, shard_id, sequence_number, data)`` per record; each shard's last emitted
sequence number is keyed state, so it is checkpointed with everything downstream.
"""
from __future__ import annotations

import time
from typing import Optional

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from connectors.aws_clients import aws_client
from connectors.kinesis_shard_reader import ShardReader
from connectors.kinesis_shards import list_shards, shard_slot
from job.run_status import StatusBoard

# A closed shard read to its end: its position becomes this marker, never read again.
SHARD_FINISHED = "#finished"
SHARD_REFRESH_S = 10.0
# An idle shard (at its tip) is polled at most this often; a busy one every poll interval.
IDLE_POLL_S = 1.0


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
