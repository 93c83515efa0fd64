"""Flink wrapper: the Kinesis shard reader, one keyed function driven by ticks.

Every shard's position (the last emitted sequence number, or ``#finished``) is keyed
state under one key, so it is checkpointed with everything downstream and restored on
a restart. Why one key and not one per slot of shards: a child shard may be read only
once its parents are read to their end, and a keyed function sees only its own key's
state, so the shards of a stream (which reshards into any lineage) must share one key
for that rule to hold exactly. The reading itself is spread over ``reader.slots``
threads (GetRecords calls in flight at once); decoding and writing run at the job's
parallelism after it. See connectors/kinesis/shard_reader.py for the calls and pacing.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from connectors.aws_clients import aws_client
from connectors.kinesis.shard_reader import (SHARD_GONE, THROTTLED, KinesisReadError, ShardPacer, ShardReader,
                                             StartPosition, classify)
from connectors.kinesis.shards import list_shards, parents_done, readable
from job.functions.status_board import StatusBoard
from job.config.settings import ReaderSettings
from job.functions import names

log = logging.getLogger(__name__)

# A closed shard read to its end: its position becomes this marker, never read again.
SHARD_FINISHED = "#finished"
# The reader's only key (see the module doc).
READER_KEY = 0
# ListShards failures back off from 1 s up to this.
MAX_DISCOVERY_BACKOFF_S = 30.0


class FreshTicks:
    """Tells ticks that waited in a queue from fresh ones.

    When the job downstream is slower than reading, the reader's output blocks and ticks
    queue up in front of it. Reading on each of them would only add to the backlog, and a
    checkpoint barrier waits behind every one (aligned checkpoints), so queued ticks are
    skipped. A tick's age is "now" minus its creation time, on two clocks that may differ
    by a constant (the tick source and the reader may run on different machines): the
    smallest age seen lately stands for that constant, and a tick that waited more than
    ``tolerance_ms`` longer than that is stale.
    """

    def __init__(self, tolerance_ms: int = 1000, window_ms: int = 120_000):
        self._tolerance = tolerance_ms
        self._window_ms = window_ms
        self._ages: deque = deque()  # (seen at, age), ages increasing: the front is the window's minimum

    def fresh(self, created_ms: int, now_ms: int) -> bool:
        age = now_ms - created_ms
        while self._ages and self._ages[-1][1] >= age:
            self._ages.pop()
        self._ages.append((now_ms, age))
        while self._ages[0][0] < now_ms - self._window_ms:
            self._ages.popleft()
        return age - self._ages[0][1] <= self._tolerance


def tick_millis(value) -> Optional[int]:
    """A tick's creation time in epoch milliseconds (PyFlink hands TIMESTAMP_LTZ over as an Instant)."""
    if value is None:
        return None
    if hasattr(value, "to_epoch_milli"):
        return value.to_epoch_milli()
    if hasattr(value, "toEpochMilli"):  # thread mode: the java.time.Instant itself, through pemja
        return int(value.toEpochMilli())
    if isinstance(value, _dt.datetime):
        return int(value.timestamp() * 1000)
    return int(value)


class ShardReaderFunction(KeyedProcessFunction):
    def __init__(self, settings: ReaderSettings, status_dir: Optional[str] = None):
        self._stream = settings.stream
        self._region = settings.region
        self._endpoint = settings.endpoint
        self._initial_position = settings.initial_position
        self._initial_timestamp = settings.initial_timestamp
        self._poll_s = settings.poll_interval_ms / 1000.0
        self._idle_s = settings.idle_poll_interval_ms / 1000.0
        self._discovery_s = settings.discovery_interval_ms / 1000.0
        self._limit = settings.limit
        self._concurrency = settings.concurrency
        self._status_dir = status_dir

    def open(self, ctx: RuntimeContext):
        self._positions = ctx.get_map_state(MapStateDescriptor("shard-positions", Types.STRING(), Types.STRING()))
        self._start_state = ctx.get_state(ValueStateDescriptor("start-position", Types.STRING()))
        # ListShards / GetShardIterator: botocore's standard retries. GetRecords: none, the
        # pacer backs off per shard instead, so one throttled shard does not hold up the rest.
        self._control = aws_client("kinesis", self._region, self._endpoint, attempts=4)
        data = aws_client("kinesis", self._region, self._endpoint, attempts=1, read_timeout=10.0,
                          max_pool_connections=max(10, self._concurrency), raw_timestamps=True)
        self._reader = ShardReader(data, self._control, self._stream, self._limit)
        self._pacer = ShardPacer(poll_interval_s=self._poll_s, idle_interval_s=self._idle_s)
        self._pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="kinesis-read")
        self._board = StatusBoard(self._status_dir)
        # In memory: a mirror of the positions state (loaded on the first tick, then kept
        # in step), the last shard listing and the per-shard status for the board.
        self._pos: Optional[dict] = None
        self._start: Optional[StartPosition] = None
        self._shards: list = []
        self._next_discovery = 0.0
        self._discovery_failures = 0
        self._status: dict = {}
        self._emitted = 0
        self._ticks = FreshTicks()
        self._stale_ticks = 0
        self._errors = {"throttled": 0, "failed": 0}
        self._behind: dict = {}
        metrics = ctx.get_metrics_group()
        self._metric_group = metrics
        self._records_read = metrics.counter(names.RECORDS_READ)
        self._bytes_read = metrics.counter(names.BYTES_READ)
        self._throttled = metrics.counter(names.THROTTLED_CALLS)
        self._failed = metrics.counter(names.FAILED_CALLS)
        metrics.gauge(names.MILLIS_BEHIND_LATEST, lambda: max(self._behind.values(), default=0))
        self._shard_metrics: dict = {}

    def close(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def process_element(self, tick, ctx: KeyedProcessFunction.Context):
        created = tick_millis(tick[1]) if len(tick) > 1 else None
        if created is not None and not self._ticks.fresh(created, int(time.time() * 1000)):
            self._stale_ticks += 1
            return
        now = time.monotonic()
        if self._pos is None:
            self._pos = dict(self._positions.items())
        if now >= self._next_discovery:
            self._discover(now)
        if not self._shards:
            self._publish(force=False)
            return
        if self._start is None:
            self._start = self._start_position()
        finished = {s.shard_id for s in self._shards if self._pos.get(s.shard_id) == SHARD_FINISHED}
        due = [s for s in readable(self._shards, finished) if self._pacer.due(s.shard_id, now)]
        changed = False
        if due:
            reads = [(shard, self._pos.get(shard.shard_id)) for shard in due]
            futures = [self._pool.submit(self._reader.read, shard, position, self._start)
                       for shard, position in reads]
            for (shard, _), future in zip(reads, futures):
                result = future.result()  # a KinesisReadError fails the job with its message
                changed |= yield from self._apply(shard, result)
        self._publish(force=changed)

    def _apply(self, shard, result):
        """Emits one read's records and moves the shard's position; returns whether its status changed."""
        shard_id = shard.shard_id
        self._pacer.after_read(shard_id, time.monotonic(), result)
        status = self._shard_status(shard_id)
        if result.error:
            if result.error == THROTTLED:
                self._throttled.inc()
                self._errors["throttled"] += 1
            else:
                self._failed.inc()
                self._errors["failed"] += 1
            if result.error == SHARD_GONE:
                self._next_discovery = 0.0  # expired or resharded away: list again
            log.info("GetRecords on %s/%s: %s (%s); backing off", self._stream, shard_id, result.error,
                     result.error_text)
            return False
        metrics = self._metrics_for(shard_id)
        for record in result.records:
            self._emitted += 1
            status["first_emit"] = status["first_emit"] or self._emitted
            status["last_emit"] = self._emitted
            yield (record.stream, record.shard_id, record.sequence_number, record.data)
        if result.records:
            count, size = len(result.records), result.byte_count
            self._records_read.inc(count)
            self._bytes_read.inc(size)
            metrics["records"].inc(count)
            metrics["bytes"].inc(size)
            self._set_position(shard_id, result.records[-1].sequence_number)
            status["read"] += count
        if result.millis_behind_latest is not None:
            self._behind[shard_id] = result.millis_behind_latest
        if result.finished:
            self._set_position(shard_id, SHARD_FINISHED)
            self._reader.forget(shard_id)
            self._pacer.forget(shard_id)
            self._behind[shard_id] = 0
            self._next_discovery = 0.0  # its children may be readable now
            log.info("shard %s/%s read to its end", self._stream, shard_id)
        was = status["at_tip"]
        status.update(at_tip=result.at_tip, finished=result.finished,
                      behind_ms=self._behind.get(shard_id), position=self._pos.get(shard_id))
        return was != result.at_tip or result.finished

    def _set_position(self, shard_id: str, position: str) -> None:
        self._positions.put(shard_id, position)
        self._pos[shard_id] = position

    def _start_position(self) -> StartPosition:
        """The job's start position, fixed in state on its very first start (see StartPosition)."""
        text = self._start_state.value()
        if text is not None:
            return StartPosition.decode(text)
        start = StartPosition.first_start(self._initial_position, self._initial_timestamp,
                                          _dt.datetime.now(_dt.timezone.utc))
        self._start_state.update(start.encode())
        if self._initial_position == "LATEST":
            # Nothing newer than now can be in a shard that is closed already.
            for shard in self._shards:
                if shard.closed and shard.shard_id not in self._pos:
                    self._set_position(shard.shard_id, SHARD_FINISHED)
        log.info("stream %s: first start at %s", self._stream, start.encode())
        return start

    def _discover(self, now: float) -> None:
        try:
            shards = list_shards(self._control, self._stream)
        except Exception as exc:
            kind = classify(exc)
            if kind in (None, SHARD_GONE):
                raise KinesisReadError(f"listing the shards of stream {self._stream!r} "
                                       f"(region {self._region}) failed: {exc}") from exc
            self._discovery_failures += 1
            wait = min(MAX_DISCOVERY_BACKOFF_S, 2.0 ** (self._discovery_failures - 1))
            self._next_discovery = now + wait
            log.info("ListShards on %s: %s; trying again in %.1fs", self._stream, kind, wait)
            return
        self._discovery_failures = 0
        self._next_discovery = now + self._discovery_s
        listed = {s.shard_id for s in shards}
        for shard_id in [s for s in self._pos if s not in listed]:
            if self._pos[shard_id] != SHARD_FINISHED:
                log.warning("shard %s/%s is no longer listed (its records expired) before it was read to "
                            "its end", self._stream, shard_id)
            self._positions.remove(shard_id)
            del self._pos[shard_id]
        for shard_id in [s for s in self._status if s not in listed]:
            del self._status[shard_id]
            self._behind.pop(shard_id, None)
            self._pacer.forget(shard_id)
            self._reader.forget(shard_id)
        self._shards = shards

    def _shard_status(self, shard_id: str) -> dict:
        return self._status.setdefault(shard_id, {
            "at_tip": False, "finished": False, "read": 0, "behind_ms": None, "position": self._pos.get(shard_id),
            "first_emit": 0, "last_emit": 0, "parents": [],
        })

    def _metrics_for(self, shard_id: str) -> dict:
        """Per-shard Flink metrics, under the group ``shardId.<id>``."""
        metrics = self._shard_metrics.get(shard_id)
        if metrics is None:
            group = self._metric_group.add_group("shardId", shard_id)
            group.gauge(names.MILLIS_BEHIND_LATEST, lambda sid=shard_id: int(self._behind.get(sid) or 0))
            metrics = {"records": group.counter(names.RECORDS_READ), "bytes": group.counter(names.BYTES_READ)}
            self._shard_metrics[shard_id] = metrics
        return metrics

    def _publish(self, force: bool) -> None:
        shards = {}
        finished = {s.shard_id for s in self._shards if (self._pos or {}).get(s.shard_id) == SHARD_FINISHED}
        listed = {s.shard_id for s in self._shards}
        for shard in self._shards:
            status = self._shard_status(shard.shard_id)
            if shard.shard_id in finished:
                status.update(at_tip=True, finished=True)
            status["waiting"] = not parents_done(shard, finished, listed)
            status["parents"] = list(shard.parents)
            shards[shard.shard_id] = status
        self._board.publish("reader", {
            "kind": "reader", "shards_total": len(self._shards), "shards": shards,
            "throttled": self._errors["throttled"], "failed": self._errors["failed"],
            "stale_ticks": self._stale_ticks,
        }, force=force)
