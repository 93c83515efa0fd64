"""Flink wrapper for `order=true`: versions of each document applied strictly in sequence.

Keyed by a bucket of documents (a hash of table and document id), not by the document:
a Python keyed function pays a round trip to the JVM per new key, so a few hundred
buckets with a map of documents each are much cheaper than a key per document. The
rules are ``job.rules.ordering.OrderedDocument``; waiting revisions are Flink state and so
survive a restart.

Takes and emits ``ITEM_ROW``s (job/rows/item_rows.py): each revision in, its history row out
at once (when ``history`` is on) and its current row once its turn comes; dead letters
pass through.
"""
from __future__ import annotations

from dataclasses import replace

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, TimeDomain
from pyflink.datastream.state import MapStateDescriptor

from connectors.mysql.lookup import StoredVersions
from job.config.settings import OrderSettings
from connectors.rows.row_images import CURRENT, HISTORY
from job.rows.item_rows import DEAD, DOCUMENT_ID, KIND, SLOT, TBL, as_image, gap_row, image_row, writer_slot
from job.rules.ordering import OrderedDocument
from job.functions.writer import END_OF_INPUT
from job.functions import names

ORDER_BUCKETS = 256


def order_bucket(table: str, document_id: str, buckets: int = ORDER_BUCKETS) -> int:
    return writer_slot(table, document_id, buckets)  # the same document hash, over the buckets


def bucket_of(row) -> int:
    """The key selector: a revision's document bucket; a dead letter goes by its writer slot."""
    if row[KIND] == DEAD:
        return row[SLOT]
    return order_bucket(row[TBL], row[DOCUMENT_ID])


class OrderedRevisionsFunction(KeyedProcessFunction):
    def __init__(self, settings: OrderSettings, bounded: bool = False):
        self._bounded = bounded  # a backfill: gaps are settled at the end of input (see the writer)
        self._settings = settings

    def open(self, ctx: RuntimeContext):
        self._documents = ctx.get_map_state(
            MapStateDescriptor("ordered-documents", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        # Only documents with revisions waiting for a gap: document key -> deadline (ms).
        self._waiting = ctx.get_map_state(MapStateDescriptor("waiting-documents", Types.STRING(), Types.LONG()))
        self._stored = StoredVersions(self._settings.mysql)
        metrics = ctx.get_metrics_group()
        self._dropped = metrics.counter(names.REVISIONS_DROPPED)
        self._gaps = metrics.counter(names.GAPS)

    def close(self):
        self._stored.close()

    def process_element(self, row, ctx: KeyedProcessFunction.Context):
        if row[KIND] == DEAD:
            yield row
            return
        revision = as_image(row, CURRENT)
        if self._settings.history:
            # Every revision goes to history; the insert-once statement drops repeats.
            yield image_row(as_image(row, HISTORY), self._settings.writer_slots)
        key = f"{revision.table}\x00{revision.document_id}"
        state = self._documents.get(key)
        if state is None:
            state = OrderedDocument.starting_after(*self._stored.lookup(revision.table, revision.document_id))
        now = ctx.timer_service().current_processing_time()
        state, applied = state.offer(revision, now, self._settings.timeout_ms)
        if not applied and revision.version not in state.waiting:
            self._dropped.inc()
        self._store(key, state, ctx)
        for r in applied:
            yield image_row(r, self._settings.writer_slots)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        # The end of a bounded run (END_OF_INPUT, see job/functions/writer.py): every gap's wait is over.
        end_of_input = ctx.time_domain() == TimeDomain.EVENT_TIME
        out = []
        for key, deadline in list(self._waiting.items()):
            if deadline > timestamp and not end_of_input:
                continue
            state = self._documents.get(key)
            state, applied, gap = state.on_timeout(deadline if end_of_input else timestamp,
                                                   self._settings.timeout_ms, self._settings.gap_action)
            self._store(key, state, ctx)
            out += [image_row(r, self._settings.writer_slots) for r in applied]
            if gap is not None:
                table, document_id = key.split("\x00", 1)
                self._gaps.inc()
                gap = replace(gap, table=table, document_id=document_id)
                out.append(gap_row(gap, self._settings.writer_slots))
        return out

    def _store(self, key: str, state: OrderedDocument, ctx) -> None:
        self._documents.put(key, state)
        if state.deadline_ms is None:
            if self._waiting.contains(key):
                self._waiting.remove(key)
        else:
            self._waiting.put(key, state.deadline_ms)
            ctx.timer_service().register_processing_time_timer(state.deadline_ms)
            if self._bounded:
                ctx.timer_service().register_event_time_timer(END_OF_INPUT)
