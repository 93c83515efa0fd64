"""Operator uids and metric names: one copy each, for the operators that register them and
for what reads them back (the local runner, the benchmark, tests).

An operator's uid names its state in checkpoints and savepoints: changing one means a
savepoint no longer restores into that operator (README, "Upgrades and restores")."""

# Operators (uid and name alike; the sinks and sources without state only have a name).
AUDIT_END = "audit-end"
AUDIT_REPLAY = "audit-replay"
DECODE_CLOUDWATCH_AUDIT = "decode-cloudwatch-audit"
DECODE_CHANGES = "decode-changes"
DECODE_QLDB = "decode-qldb"
END = "end"
EXPORT_OBJECTS = "export-objects"
KINESIS_SOURCE = "kinesis-source"
MYSQL_WRITER = "mysql-writer"
ORDER_VERSIONS = "order-versions"
READ_EXPORT = "read-export"
REASSEMBLE_SPLIT_RECORDS = "reassemble-split-records"
SPLIT_EXPORT = "split-export"

# Metrics, under each operator's metric group.
AGGREGATED_RECORDS = "aggregatedRecords"
AUDIT_EVENTS_DECODED = "auditEventsDecoded"
AUDIT_EVENTS_RECORDED = "auditEventsRecorded"
BAD_RECORDS = "badRecords"
BATCHES_WRITTEN = "batchesWritten"
BLOCKS_READ = "blocksRead"
BLOCKS_REFUSED = "blocksRefused"  # backfill --verify: blocks failing a check, not written
BLOCK_SUMMARIES = "blockSummaries"
BYTES_READ = "bytesRead"
CONTROL_MESSAGES_SKIPPED = "controlMessagesSkipped"
CONTROL_RECORDS = "controlRecords"
DEAD_LETTERS = "deadLetters"
DELETES_DECODED = "deletesDecoded"
GAPS = "gaps"
LATE_EVENTS = "lateEvents"
# The Kinesis connector's per-shard gauge (KinesisConsumerMetricConstants), read back by the runner.
MILLIS_BEHIND_LATEST = "millisBehindLatest"
OBJECTS_FAILED = "objectsFailed"  # backfill --verify: objects missing, unparseable or empty
OBJECTS_READ = "objectsRead"
REDACTIONS_DECODED = "redactionsDecoded"
RETRIES = "retries"
REVISIONS_DECODED = "revisionsDecoded"
REVISIONS_DROPPED = "revisionsDropped"
REVISIONS_SKIPPED = "revisionsSkipped"
ROWS_WRITTEN = "rowsWritten"
SPLIT_PARTS = "splitRecordParts"
SPLIT_PARTS_LATE = "splitRecordPartsLate"
SPLIT_RECORDS_EXPIRED = "splitRecordsExpired"
SPLIT_RECORDS_JOINED = "splitRecordsJoined"
STATEMENTS_APPLIED = "statementsApplied"
STATEMENTS_FAILED = "statementsFailed"
STATEMENTS_SKIPPED = "statementsSkipped"
SYSTEM_REVISIONS = "systemRevisions"
