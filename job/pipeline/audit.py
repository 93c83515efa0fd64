"""The audit-log half of the job (``source.format=cloudwatch-audit``).

shard reader records -> decode CloudWatch Logs subscription records into audit events
(bad input: dead letters) -> keyed by source server: order by event time and query id,
record in ``audit_events``, replay on ``audit.replay.database`` exactly once.
"""
from __future__ import annotations

from typing import Optional

from pyflink.common import Types
from pyflink.datastream.connectors import Sink
from pyflink.java_gateway import get_gateway

from job.functions.audit import AuditReplayFunction, DecodeAuditFunction, replay_key
from job.config.properties import Properties
from job.config.settings import mysql_settings
from job.functions import names


def build_audit_stages(records, props: Properties, status_dir: Optional[str]) -> None:
    """Everything after the shard reader's ``(stream, shard_id, sequence_number, data)`` stream."""
    events = records.flat_map(DecodeAuditFunction()).name(names.DECODE_CLOUDWATCH_AUDIT).uid(names.DECODE_CLOUDWATCH_AUDIT)
    replayed = events.key_by(replay_key, key_type=Types.STRING()).process(
        AuditReplayFunction(
            mysql_settings(props),
            replay_enabled=props["audit.replay.enabled"],
            replay_database=props["audit.replay.database"],
            source_database=props["audit.source.database"] or props["audit.replay.database"],
            ddl=props["audit.replay.ddl"],
            stop_on_error=props["audit.replay.stop.on.error"],
            out_of_orderness_ms=props["audit.max.out.of.orderness.ms"],
            idle_timeout_ms=props["audit.idle.timeout.ms"],
            interval_ms=props["sink.batch.interval.ms"],
            max_rows=props["sink.batch.max.rows"],
            status_dir=status_dir,
        )
    ).name(names.AUDIT_REPLAY).uid(names.AUDIT_REPLAY)
    # The replay function emits nothing; Flink still wants every branch to end in a sink.
    discarding = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()
    replayed.sink_to(Sink(discarding)).name(names.AUDIT_END)
