"""Assembles the Flink job from the properties: ticks -> shard reader -> decode -> writer."""
from __future__ import annotations

from typing import Optional

from pyflink.common import Row, Types
from pyflink.common.types import RowKind
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment

from connectors.credentials import SecretSource
from connectors.dead_letters import DeadLetter
from connectors.mysql_writer import MySqlSettings
from connectors.row_images import CURRENT, HISTORY, RowImage, image_of
from job.decode_function import DecodeQldbFunction
from job.order_function import OrderedRevisionsFunction, order_bucket
from job.shard_reader_function import READER_KEY, ShardReaderFunction
from job.writer_function import MySqlWriterFunction, route_slot
from job.properties import Properties

TICK_TABLE = "ledgersync_ticks"


def mysql_settings(props: Properties) -> MySqlSettings:
    secret_arn = props["sink.mysql.secret.arn"]
    return MySqlSettings(
        host=props["sink.mysql.host"], port=props["sink.mysql.port"],
        database=props["sink.mysql.database"], user=props["sink.mysql.user"],
        password=props["sink.mysql.password"],
        secret=SecretSource(secret_arn, props["source.aws.region"], props["source.aws.endpoint"])
        if secret_arn else None,
        connect_timeout=props["sink.mysql.connect.timeout.ms"] / 1000.0,
        read_timeout=props["sink.mysql.read.timeout.ms"] / 1000.0,
        retry_deadline_s=props["sink.retry.deadline.ms"] / 1000.0,
        ssl_ca=props["sink.mysql.ssl.ca"],
        history=props["replication.history"],
    )


def build_pipeline(env: StreamExecutionEnvironment, props: Properties,
                   status_dir: Optional[str] = None) -> None:
    writer_slots = props["sink.writer.slots"]

    # PyFlink cannot run a source written in Python, so an unbounded, rate-limited
    # datagen table drives the reader: on each tick it polls the shards that are due
    # (each shard at most every poll interval; see connectors/kinesis_shard_reader.py).
    t_env = StreamTableEnvironment.create(env)
    # Stable uids for the SQL operators too (Top-1 keeps per-document state), so a savepoint
    # restores into a job with another parallelism, where the operator chains differ.
    t_env.get_config().set("table.exec.uid.generation", "ALWAYS")
    ticks_per_second = max(5, 2000 // props["source.poll.interval.ms"])
    # ts: when the tick was made (datagen's random timestamps with no max-past are "now"),
    # so the reader can skip ticks that queued up while it was held up by backpressure.
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE {TICK_TABLE} (n BIGINT, ts TIMESTAMP_LTZ(3)) WITH ("
        f"'connector' = 'datagen', 'rows-per-second' = '{ticks_per_second}', "
        "'fields.n.kind' = 'random', 'fields.n.min' = '0', 'fields.n.max' = '1000000000')"
    )
    ticks = t_env.to_data_stream(t_env.from_path(TICK_TABLE))

    # One key: every shard's position in one keyed state (see job/shard_reader_function.py),
    # so one reader subtask; source.reader.slots shards are read at the same time in it.
    records = ticks.key_by(lambda row: READER_KEY, key_type=Types.INT()).process(
        ShardReaderFunction(
            stream=props["source.stream.name"], region=props["source.aws.region"],
            endpoint=props["source.aws.endpoint"], initial_position=props["source.initial.position"],
            initial_timestamp=props["source.initial.timestamp"],
            poll_interval_ms=props["source.poll.interval.ms"],
            idle_poll_interval_ms=props["source.idle.poll.interval.ms"],
            discovery_interval_ms=props["source.shard.discovery.interval.ms"],
            limit=props["source.get.records.limit"], concurrency=props["source.reader.slots"],
            status_dir=status_dir,
        )
    ).name("kinesis-shard-reader").uid("kinesis-shard-reader").set_parallelism(1)

    if props["source.format"] == "cloudwatch-audit":
        from job.audit_pipeline import build_audit_stages

        build_audit_stages(records, props, status_dir)  # audit-log sync: see job/audit_pipeline.py
        return

    decoded = records.flat_map(DecodeQldbFunction(props["replication.tables.include"])) \
        .name("decode-qldb").uid("decode-qldb")
    dead_letters = decoded.filter(lambda item: isinstance(item, DeadLetter)).name("dead-letters")
    revisions = decoded.filter(lambda item: not isinstance(item, DeadLetter)).name("revisions")
    settings = mysql_settings(props)

    to_write = [dead_letters]
    if props["replication.history"]:
        # Every revision goes to history; the insert-once statement drops repeats.
        to_write.append(revisions.map(lambda r: image_of(r, HISTORY)).name("history-rows"))
    if props["replication.order"]:
        to_write.append(revisions.key_by(
            lambda r: order_bucket(r.table, r.document_id), key_type=Types.INT()
        ).process(OrderedRevisionsFunction(
            settings, props["replication.order.timeout.ms"], props["replication.order.gap"]
        )).name("order-versions").uid("order-versions"))
    else:
        to_write.append(newest_revisions(t_env, revisions))

    written = to_write[0].union(*to_write[1:]).key_by(
        lambda item: route_slot(item, writer_slots), key_type=Types.INT()
    ).process(
        MySqlWriterFunction(settings, props["sink.batch.max.rows"], props["sink.batch.interval.ms"], status_dir)
    ).name("mysql-writer").uid("mysql-writer")

    # The writer emits nothing; Flink still wants every branch to end in a sink.
    discarding = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()
    written.sink_to(Sink(discarding)).name("end")


REVISION_ROW = Types.ROW_NAMED(
    ["tbl", "document_id", "version", "tx_id", "tx_time_us", "document", "deleted"],
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.STRING(), Types.LONG(), Types.STRING(), Types.BOOLEAN()],
)

# Flink SQL's Top-1 keeps the highest version per document in Java keyed state: far
# cheaper than a Python keyed function per document (see README, "What each mode costs").
NEWEST_PER_DOCUMENT = """
SELECT tbl, document_id, version, tx_id, tx_time_us, document, deleted FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY tbl, document_id ORDER BY version DESC) AS rn
  FROM ledgersync_revisions
) WHERE rn = 1
"""


def revision_row(revision) -> Row:
    image = image_of(revision, CURRENT)
    return Row(image.table, image.document_id, image.version, image.tx_id, image.tx_time_us, image.document,
               image.deleted)


def current_image(row: Row) -> RowImage:
    return RowImage(CURRENT, row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]))


def newest_revisions(t_env: StreamTableEnvironment, revisions):
    """order=false: the newest revision per document, as its changelog in upsert form.

    Top-1 emits +I for a document's first revision and -U/+U when a newer one arrives;
    duplicates and older revisions change nothing and emit nothing. Only +I/+U matter
    to an upsert sink. Redactions never change the current view, so they stay out.
    """
    rows = revisions.filter(lambda r: not r.redacted).map(revision_row, output_type=REVISION_ROW) \
        .name("revision-rows")
    t_env.create_temporary_view("ledgersync_revisions", t_env.from_data_stream(rows))
    changes = t_env.to_changelog_stream(t_env.sql_query(NEWEST_PER_DOCUMENT))
    upserts = (RowKind.INSERT, RowKind.UPDATE_AFTER)
    return changes.filter(lambda row: row.get_row_kind() in upserts).map(current_image).name("current-rows")
