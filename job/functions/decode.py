"""Flink wrapper: Kinesis record bytes to revision rows; bad input becomes a dead letter row.

The logic is ``connectors.formats.qldb.decode_kinesis_record`` (KPL de-aggregation, then
each user record); this function only counts, logs, filters and emits ``ITEM_ROW``s
(see job/rows/item_rows.py) with each row's writer slot.
"""
from __future__ import annotations

import logging
import time

from pyflink.datastream import FlatMapFunction, RuntimeContext

from connectors.kinesis.source import record_parts
from connectors.dead_letters import DeadLetter
from connectors.formats.qldb import (BLOCK_SUMMARY, CONTROL, CONTROL_TYPES,
                                     decode_kinesis_record)
from job.config.settings import DecodeSettings
from job.rows.item_rows import dead_letter_row, revision_row
from job.functions import names

log = logging.getLogger(__name__)

# Dead letters are all in MySQL; the log gets the first one and then one line per
# interval with how many followed, so bad input cannot flood it.
DEAD_LETTER_LOG_INTERVAL_S = 10.0


class DecodeQldbFunction(FlatMapFunction):
    def __init__(self, settings: DecodeSettings):
        self._settings = settings

    def open(self, ctx: RuntimeContext):
        metrics = ctx.get_metrics_group()
        self._decoded = metrics.counter(names.REVISIONS_DECODED)
        self._deletes = metrics.counter(names.DELETES_DECODED)
        self._redactions = metrics.counter(names.REDACTIONS_DECODED)
        self._skipped = metrics.counter(names.REVISIONS_SKIPPED)  # tables not in replication.tables.include
        self._block_summaries = metrics.counter(names.BLOCK_SUMMARIES)
        self._control = metrics.counter(names.CONTROL_RECORDS)
        self._dead = metrics.counter(names.DEAD_LETTERS)
        self._aggregated = metrics.counter(names.AGGREGATED_RECORDS)
        self._last_dead_log = float("-inf")
        self._dead_unlogged = 0

    def flat_map(self, record):
        stream, shard_id, sequence_number, data = record_parts(record)
        aggregated = False
        for item in decode_kinesis_record(stream, shard_id, sequence_number, data,
                                          max_document_bytes=self._settings.max_document_bytes):
            if isinstance(item, DeadLetter):
                self._dead.inc()
                self._log_dead_letter(item)
                yield dead_letter_row(item, self._settings.writer_slots)
                continue
            aggregated = aggregated or item.sub_sequence >= 0
            if item.record_type == CONTROL:
                self._control.inc()
                control = item.detail.get("controlRecordType")
                level = logging.INFO if control in CONTROL_TYPES else logging.WARNING
                log.log(level, "QLDB stream %s: control record %s (Kinesis %s %s %s)",
                        item.detail.get("qldbStreamArn") or "?", control, stream, shard_id, sequence_number)
                continue
            if item.record_type == BLOCK_SUMMARY:
                self._block_summaries.inc()  # nothing to replicate: the revisions follow as their own records
                continue
            revision = item.revision
            if self._settings.tables_include and revision.table not in self._settings.tables_include:
                self._skipped.inc()
                continue
            self._decoded.inc()
            if revision.deleted:
                self._deletes.inc()
            elif revision.redacted:
                self._redactions.inc()
            yield revision_row(revision, self._settings.writer_slots)
        if aggregated:
            self._aggregated.inc()

    def _log_dead_letter(self, letter: DeadLetter) -> None:
        now = time.monotonic()
        if now - self._last_dead_log < DEAD_LETTER_LOG_INTERVAL_S:
            self._dead_unlogged += 1
            return
        also = f" ({self._dead_unlogged} more since the last one logged)" if self._dead_unlogged else ""
        log.warning("dead letter from %s %s %s/%d: %s%s", letter.stream, letter.shard_id, letter.sequence_number,
                    letter.sub_sequence, letter.reason[:300], also)
        self._last_dead_log = now
        self._dead_unlogged = 0
