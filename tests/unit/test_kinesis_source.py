"""The properties the FlinkKinesisConsumer receives, and reading its metrics back."""
import datetime as _dt
import json

import pytest

from connectors.kinesis.source import EFO, SourceSettings, consumer_properties, record_parts
from job.config.properties import CONNECTOR_PROPERTIES, PropertiesError, parse_groups
from job.config.settings import source_settings
from job.cli.local.source_status import (FINISHED_AFTER_S, ListedShard, SourceStatus, parse_source_metrics,
                                     track_stillness)


def _props(source: dict):
    return parse_groups([
        {"PropertyGroupId": "source", "PropertyMap": {"stream.name": "revisions", **source}},
        {"PropertyGroupId": "sink", "PropertyMap": {"mysql.host": "db", "mysql.database": "d", "mysql.user": "u",
                                                   "mysql.password": "p"}},
    ])


def test_polling_on_aws_uses_the_default_credential_chain():
    props = consumer_properties(source_settings(_props({"aws.region": "eu-west-1"})))
    assert props == {"aws.region": "eu-west-1", "flink.stream.initpos": "TRIM_HORIZON",
                     "flink.stream.recordpublisher": "POLLING", "flink.shard.discovery.intervalmillis": "1000",
                     "flink.shard.getrecords.maxretries": "10", "flink.shard.getiterator.maxretries": "10",
                     "flink.list.shards.maxretries": "20"}


def test_efo_names_its_consumer():
    props = consumer_properties(source_settings(_props({"reader.type": "EFO", "efo.consumer.name": "ledgersync-1"})))
    assert props["flink.stream.recordpublisher"] == EFO
    assert props["flink.stream.efo.consumername"] == "ledgersync-1"


def test_efo_without_a_consumer_name_is_refused_at_start_up():
    with pytest.raises(PropertiesError, match="source.efo.consumer.name"):
        _props({"reader.type": "EFO"})


def test_at_timestamp_passes_the_connectors_date_format_in_utc():
    props = consumer_properties(source_settings(_props({"initial.position": "AT_TIMESTAMP",
                                                        "initial.timestamp": "2026-01-02T03:04:05.678Z"})))
    assert props["flink.stream.initpos"] == "AT_TIMESTAMP"
    assert props["flink.stream.initpos.timestamp"] == "2026-01-02T03:04:05.678+00:00"
    assert props["flink.stream.initpos.timestamp.format"] == "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
    other_zone = consumer_properties(source_settings(_props({"initial.position": "AT_TIMESTAMP",
                                                             "initial.timestamp": "2026-01-02T05:04:05.678+02:00"})))
    assert other_zone["flink.stream.initpos.timestamp"] == "2026-01-02T03:04:05.678+00:00"


def test_a_local_endpoint_gets_basic_credentials_unless_the_user_chose_a_provider():
    settings = SourceSettings(stream="s", region="us-east-1", endpoint="http://127.0.0.1:15000",
                              local_credentials=("key", "secret"))
    props = consumer_properties(settings)
    assert props["aws.endpoint"] == "http://127.0.0.1:15000"
    assert props["aws.credentials.provider"] == "BASIC"
    assert props["aws.credentials.provider.basic.accesskeyid"] == "key"
    chosen = consumer_properties(SourceSettings(stream="s", region="us-east-1", endpoint="http://x",
                                                local_credentials=("key", "secret"),
                                                connector={"aws.credentials.provider": "ENV_VAR"}))
    assert chosen["aws.credentials.provider"] == "ENV_VAR" and "aws.credentials.provider.basic.accesskeyid" not in chosen


def test_connector_keys_pass_through_under_their_own_names():
    props = _props({"flink.shard.getrecords.maxrecordcount": "50", "flink.shard.discovery.intervalmillis": "2000",
                    "aws.credentials.provider": "ASSUME_ROLE",
                    "aws.credentials.provider.role.arn": "arn:aws:iam::1:role/r"})
    assert props[CONNECTOR_PROPERTIES]["flink.shard.getrecords.maxrecordcount"] == "50"
    consumer = consumer_properties(source_settings(props))
    assert consumer["flink.shard.getrecords.maxrecordcount"] == "50"
    assert consumer["flink.shard.discovery.intervalmillis"] == "2000"  # the user's, over ours
    assert consumer["aws.credentials.provider.role.arn"] == "arn:aws:iam::1:role/r"


def test_a_key_the_connector_does_not_know_is_refused_naming_it():
    with pytest.raises(PropertiesError, match=r"source.flink.shard.getrecords.maxrecords\b"):
        _props({"flink.shard.getrecords.maxrecords": "50"})
    with pytest.raises(PropertiesError, match="source.poll.interval.ms"):
        _props({"poll.interval.ms": "200"})  # the Python reader's, gone with it


def test_a_secret_key_given_to_the_connector_is_not_printed():
    props = _props({"aws.credentials.provider": "BASIC", "aws.credentials.provider.basic.secretkey": "hush"})
    assert "hush" not in repr(props)


def test_a_source_row_unpacks_to_stream_shard_sequence_and_bytes():
    row = ("stream", "shardId-000000000001", "4960", 1_700_000_000_000, "pk", b"\xe0\x01\x00\xea")
    assert record_parts(row) == ("stream", "shardId-000000000001", "4960", b"\xe0\x01\x00\xea")


def test_metrics_from_rest_give_records_read_and_each_shards_lag():
    values = {
        "0.kinesis-source.numRecordsOut": "55", "1.kinesis-source.numRecordsOut": "45",
        "0.decode-qldb.numRecordsOut": "999",
        "0.kinesis-source.KinesisConsumer.stream.my.dotted.stream.shardId.shardId-000000000001.millisBehindLatest": "0",
        "1.kinesis-source.KinesisConsumer.stream.my.dotted.stream.shardId.shardId-000000000000.millisBehindLatest": "-1",
        "1.kinesis-source.KinesisConsumer.stream.my.dotted.stream.shardId.shardId-000000000000.runLoopTimeNanos": "812",
        "0.kinesis-source.KinesisConsumer.stream.my.dotted.stream.shardId.shardId-000000000001."
        "numberOfAggregatedRecordsPerFetch": "2",
    }
    records, lags, fetched, gauges = parse_source_metrics(values)
    assert records == 100
    assert lags == {"shardId-000000000001": 0, "shardId-000000000000": -1}
    assert fetched == {"shardId-000000000001": 2}
    assert gauges == {"shardId-000000000001": ("0",), "shardId-000000000000": ("-1", "812")}


def test_caught_up_needs_every_open_shard_at_zero_and_closed_ones_at_zero_or_done():
    shards = [ListedShard("a", closed=True), ListedShard("b", closed=False), ListedShard("c", closed=False)]
    status = SourceStatus(shards=shards, lag_ms={"b": 0, "c": -1}, fetched={"b": 0, "c": 0}, metrics_seen=True)
    assert not status.all_at_tip  # c has had no answer yet
    status.lag_ms["c"] = 0
    assert status.all_at_tip  # a: read to its end (its metrics are gone)
    status.lag_ms["a"] = 1500
    assert not status.all_at_tip and status.max_lag_ms == 1500
    # The REST API keeps a finished shard's last values: once they stop moving, it is done.
    status.still_s["a"] = FINISHED_AFTER_S - 1
    assert not status.all_at_tip
    status.still_s["a"] = FINISHED_AFTER_S
    assert status.all_at_tip and status.max_lag_ms == 0
    # ... but stillness never ends an open shard: a consumer at the tip may well repeat itself.
    status.lag_ms["b"], status.still_s["b"] = 700, 10 * FINISHED_AFTER_S
    assert not status.all_at_tip
    assert not SourceStatus(shards=[ListedShard("b", closed=False)], metrics_seen=False).all_at_tip
    assert not SourceStatus(shards=[], lag_ms={"b": 0}, metrics_seen=True).all_at_tip


def test_a_shard_is_at_its_tip_only_once_an_answer_at_zero_ms_behind_held_no_record():
    # moto answers 0 ms behind for every page of a burst put in one call: the records in the
    # last answer tell that more may follow.
    shard = ListedShard("b", closed=False)
    status = SourceStatus(shards=[shard], lag_ms={"b": 0}, fetched={"b": 2}, metrics_seen=True)
    assert not status.at_tip(shard) and not status.all_at_tip
    status.fetched["b"] = 0
    assert status.at_tip(shard) and status.all_at_tip
    status.lag_ms["b"] = 300  # an empty answer short of the tip (real Kinesis, a sparse shard)
    assert not status.all_at_tip
    assert not SourceStatus(shards=[shard], lag_ms={"b": 0}, metrics_seen=True).all_at_tip  # no count yet


def test_an_efo_shard_is_at_its_tip_at_zero_ms_behind():
    # EFO events are pushed, and LocalStack pushes none without records: the lag alone says it.
    shard = ListedShard("b", closed=False)
    status = SourceStatus(shards=[shard], lag_ms={"b": 0}, fetched={"b": 3}, metrics_seen=True, polling=False)
    assert status.at_tip(shard) and status.all_at_tip
    status.lag_ms["b"] = 300
    assert not status.all_at_tip


def test_at_timestamp_on_a_local_endpoint_goes_out_as_seconds_in_the_sdks_milliseconds():
    # With CBOR off the connector's SDK writes the Timestamp in ms where JSON means seconds.
    settings = SourceSettings(stream="s", region="us-east-1", endpoint="http://127.0.0.1:15000",
                              initial_position="AT_TIMESTAMP", local_credentials=("k", "s"),
                              initial_timestamp=_dt.datetime(2026, 12, 7, 11, 29, 39, 114000, tzinfo=_dt.timezone.utc))
    sent = consumer_properties(settings)["flink.stream.initpos.timestamp"]
    parsed = _dt.datetime.strptime(sent, "%Y-%m-%dT%H:%M:%S.%f+00:00").replace(tzinfo=_dt.timezone.utc)
    assert round(parsed.timestamp() * 1000) == int(settings.initial_timestamp.timestamp())
    aws = consumer_properties(SourceSettings(stream="s", region="us-east-1", endpoint="https://kinesis.vpce.example",
                                             initial_position="AT_TIMESTAMP",
                                             initial_timestamp=settings.initial_timestamp))
    assert aws["flink.stream.initpos.timestamp"] == "2026-12-07T11:29:39.114+00:00"  # real Kinesis: as given


def test_gauges_are_still_from_when_they_last_changed():
    first = track_stillness({}, {"a": ("0", "812"), "b": ("5", "900")}, now=10.0)
    second = track_stillness(first, {"a": ("0", "812"), "b": ("0", "950")}, now=12.0)
    assert second == {"a": (("0", "812"), 10.0), "b": (("0", "950"), 12.0)}
    assert track_stillness(second, {"b": ("0", "950")}, now=20.0) == {"b": (("0", "950"), 12.0)}
