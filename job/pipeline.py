"""Assembles the Flink job from the properties: ticks -> shard reader -> decode -> writer."""
from __future__ import annotations

from typing import Optional

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment

from connectors.mysql_writer import MySqlSettings
from job.decode_function import DecodeQldbFunction
from job.shard_reader_function import ShardReaderFunction
from job.writer_function import MySqlWriterFunction, route_slot
from job.properties import Properties

TICK_TABLE = "ledgersync_ticks"


def mysql_settings(props: Properties, password: str) -> MySqlSettings:
    return MySqlSettings(
        host=props["sink.mysql.host"], port=props["sink.mysql.port"],
        database=props["sink.mysql.database"], user=props["sink.mysql.user"], password=password,
        retry_deadline_s=props["sink.retry.deadline.ms"] / 1000.0,
    )


def build_pipeline(env: StreamExecutionEnvironment, props: Properties, password: str,
                   status_dir: Optional[str] = None) -> None:
    reader_slots = props["source.reader.slots"]
    writer_slots = props["sink.writer.slots"]
    poll_ms = props["source.poll.interval.ms"]

    # PyFlink cannot run a source written in Python, so an unbounded, rate-limited
    # datagen table drives the reader: each tick asks one slot to poll its shards.
    t_env = StreamTableEnvironment.create(env)
    ticks_per_second = max(1, reader_slots * 1000 // poll_ms)
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE {TICK_TABLE} (n BIGINT) WITH ("
        f"'connector' = 'datagen', 'rows-per-second' = '{ticks_per_second}', "
        "'fields.n.kind' = 'random', 'fields.n.min' = '0', 'fields.n.max' = '1000000000')"
    )
    ticks = t_env.to_data_stream(t_env.from_path(TICK_TABLE))

    records = ticks.key_by(lambda row: row[0] % reader_slots, key_type=Types.INT()).process(
        ShardReaderFunction(
            stream=props["source.stream.name"], region=props["source.aws.region"],
            endpoint=props["source.aws.endpoint"], initial_position=props["source.initial.position"],
            initial_timestamp=props["source.initial.timestamp"], slots=reader_slots,
            poll_interval_ms=poll_ms, limit=props["source.get.records.limit"], status_dir=status_dir,
        )
    ).name("kinesis-shard-reader").uid("kinesis-shard-reader")

    revisions = records.flat_map(DecodeQldbFunction(props["replication.tables.include"])) \
        .name("decode-qldb").uid("decode-qldb")

    written = revisions.key_by(
        lambda item: route_slot(item, writer_slots), key_type=Types.INT()
    ).process(
        MySqlWriterFunction(mysql_settings(props, password), props["sink.batch.max.rows"],
                            props["sink.batch.interval.ms"], status_dir)
    ).name("mysql-writer").uid("mysql-writer")

    # The writer emits nothing; Flink still wants every branch to end in a sink.
    discarding = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()
    written.sink_to(Sink(discarding)).name("end")
