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
from job.config.settings import AuditSettings
from job.functions import names


def build_audit_stages(records, settings: AuditSettings, status_dir: Optional[str]) -> None:
    """Everything after the shard reader's ``(stream, shard_id, sequence_number, data)`` stream."""
    events = records.flat_map(DecodeAuditFunction()).name(names.DECODE_CLOUDWATCH_AUDIT).uid(names.DECODE_CLOUDWATCH_AUDIT)
    replayed = events.key_by(replay_key, key_type=Types.STRING()).process(
        AuditReplayFunction(settings, status_dir)
    ).name(names.AUDIT_REPLAY).uid(names.AUDIT_REPLAY)
    # The replay function emits nothing; Flink still wants every branch to end in a sink.
    discarding = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()
    replayed.sink_to(Sink(discarding)).name(names.AUDIT_END)
