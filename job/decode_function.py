"""Flink wrapper: Kinesis record bytes to revisions; bad input becomes a dead letter."""
from __future__ import annotations

from pyflink.datastream import FlatMapFunction, RuntimeContext

from connectors.dead_letters import DeadLetter
from connectors.qldb_records import REVISION_DETAILS, BadRecord, decode_record


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
            yield DeadLetter(stream=stream, shard_id=shard_id, sequence_number=sequence_number,
                             stage="decode", reason=str(exc), raw=bytes(data))
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
