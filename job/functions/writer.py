"""Flink wrapper: the MySQL writer, keyed by writer slot.

Rows (``ITEM_ROW``, see job/rows/item_rows.py) wait in keyed list state until the slot's
batch is full (``sink.batch.max.rows``) or its timer fires (``sink.batch.interval.ms``),
so a completed checkpoint never holds a row that is neither in MySQL nor in state.

A checkpoint can hold a slot's rows without the timer that flushes them: PyFlink 1.20.5
(ExternalPythonKeyedProcessOperator) finishes the Python bundle before a barrier, but
registers the timers that bundle asked for in mailbox mails that run after the snapshot
(its prepareSnapshotPreBarrier does not drain them). Restored from such a checkpoint, the
rows are written with the next row of their slot (``_timer`` starts empty, so that row sets
a timer); seen on 2026-12-08 in tests/integration/test_dead_letters_once.py (restored
slots flushed 12 to 27 rows more than they had received, no restored timer fired).
"""
from __future__ import annotations

from typing import Optional

from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor

from job.config.settings import WriterSettings
from connectors.mysql.writer import MySqlWriter
from job.rows.item_rows import ITEM_ROW, SLOT, as_writer_item
from job.functions.status_board import StatusBoard
from job.functions import names

# A bounded run (a backfill) ends with Flink's final watermark, and Flink drops pending
# processing-time timers at the end of input: an event-time timer this late fires only
# then, so the last rows waiting in a slot are still written.
END_OF_INPUT = 2 ** 63 - 2
# Schema notes a writer subtask puts on the status board (the log keeps all of them).
MAX_NOTICES = 200


def slot_of(row) -> int:
    """The key selector of the writer: the slot the decoder (or the order step) computed."""
    return row[SLOT]


class MySqlWriterFunction(KeyedProcessFunction):
    def __init__(self, settings: WriterSettings, status_dir: Optional[str] = None, bounded: bool = False):
        # Only a bounded run (a backfill) registers the end-of-input timer: in the unbounded
        # stream job it is never due, and registering it per batch held the writer up (a
        # failover test saw the writer idle with rows waiting).
        self._bounded = bounded
        self._settings = settings
        self._status_dir = status_dir

    def open(self, ctx: RuntimeContext):
        self._pending = ctx.get_list_state(ListStateDescriptor("pending-rows", ITEM_ROW))
        self._writer = MySqlWriter(self._settings.mysql, on_trouble=self._on_trouble, on_notice=self._on_notice)
        self._subtask = ctx.get_index_of_this_subtask()
        self._notices: list = []  # schema notes, each once (MySqlWriter), for the runner to show
        self._flushing: Optional[int] = None
        self._trouble: tuple = (None, 0.0)  # (what is wrong, since when) while a batch is retried
        self._board = StatusBoard(self._status_dir)
        # Per slot, in memory only: rows added since the last flush and the timer set.
        # After a restore both start empty; the restored state and timers still flush.
        self._count: dict = {}
        self._timer: dict = {}
        self._written: dict = {}
        self._kinds: dict = {}  # (slot, "current" | "history") -> rows written
        self._metrics = ctx.get_metrics_group()
        self._table_counters: dict = {}
        self._batches = self._metrics.counter(names.BATCHES_WRITTEN)
        self._dead_letters = self._metrics.counter(names.DEAD_LETTERS)
        self._gaps = self._metrics.counter(names.GAPS)
        self._retries = self._metrics.counter(names.RETRIES)

    def close(self):
        self._writer.close()

    def process_element(self, item, ctx: KeyedProcessFunction.Context):
        slot = ctx.get_current_key()
        self._pending.add(item)
        count = self._count.get(slot, 0) + 1
        self._count[slot] = count
        if count == 1:
            self._publish(slot, pending=True)
            if self._bounded:
                ctx.timer_service().register_event_time_timer(END_OF_INPUT)
        if count >= self._settings.max_rows:
            self._flush(slot)
        elif slot not in self._timer:
            due = ctx.timer_service().current_processing_time() + self._settings.interval_ms
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
        rows = [as_writer_item(row) for row in self._pending.get() or []]
        if rows:
            retries_before = self._writer.retries
            self._flushing = slot
            stats = self._writer.write(rows)
            self._pending.clear()
            self._batches.inc()
            self._retries.inc(self._writer.retries - retries_before)
            self._dead_letters.inc(stats.dead_letters)
            self._gaps.inc(stats.gaps)
            for kind, counts in (("current", stats.current_rows), ("history", stats.history_rows)):
                for table, n in counts.items():
                    self._rows_counter(table, kind).inc(n)
                    self._kinds[(slot, kind)] = self._kinds.get((slot, kind), 0) + n
            self._written[slot] = self._written.get(slot, 0) + len(rows)
        self._count[slot] = 0
        self._publish(slot, pending=False)

    def _rows_counter(self, table: str, kind: str):
        counter = self._table_counters.get((table, kind))
        if counter is None:
            counter = self._metrics.add_group("table", table).add_group("kind", kind).counter(names.ROWS_WRITTEN)
            self._table_counters[(table, kind)] = counter
        return counter

    def _on_trouble(self, text: Optional[str], since: float) -> None:
        self._trouble = (text, since)
        if self._flushing is not None:
            self._publish(self._flushing, pending=True)

    def _on_notice(self, text: str) -> None:
        if len(self._notices) < MAX_NOTICES:
            self._notices.append(text)
            self._board.publish(f"notices-{self._subtask}", {"kind": "notices", "notices": self._notices}, force=True)

    def _publish(self, slot: int, pending: bool) -> None:
        trouble, since = self._trouble
        self._board.publish(f"writer-{slot}", {
            "trouble": trouble, "trouble_since": since,
            "kind": "writer", "slot": slot, "pending": pending,
            "written": self._written.get(slot, 0), "retries": self._writer.retries,
            "current": self._kinds.get((slot, "current"), 0), "history": self._kinds.get((slot, "history"), 0),
        }, force=True)
