import base64
import hashlib

import pytest
from aws_kinesis_agg import aggregator  # noqa: F401  (puts config_pb2 where messages_pb2 finds it)
from aws_kinesis_agg import deaggregator, messages_pb2

from connectors.formats import kpl
def _frame(message: bytes) -> bytes:
    return kpl.MAGIC + message + hashlib.md5(message).digest()


def _aggregate(records, keys=("pk",)) -> bytes:
    message = messages_pb2.AggregatedRecord()
    message.partition_key_table.extend(keys)
    for key_index, data in records:
        record = message.records.add()
        if key_index is not None:
            record.partition_key_index = key_index
        if data is not None:
            record.data = data
    return _frame(message.SerializePartialToString())


def test_record_without_magic_passes_through_whole():
    (user,) = kpl.deaggregate(b"\xe0\x01\x00\xea plain record")
    assert user == kpl.UserRecord(kpl.NOT_AGGREGATED, b"\xe0\x01\x00\xea plain record")


def test_round_trip_keeps_order_data_and_partition_keys():
    users = [(f"key{i % 3}", f"payload {i}".encode()) for i in range(50)]
    (record,) = kpl.aggregate(users)
    assert record[0] == "key0"  # the first user record's key, as the KPL does
    out = kpl.deaggregate(record[1])
    assert [(u.partition_key, u.data) for u in out] == users
    assert [u.sub_sequence for u in out] == list(range(50))
    assert all(u.error is None for u in out)


def test_what_we_aggregate_the_library_deaggregates_the_same():
    users = [("a", b"one"), ("b", b"two"), ("a", b"")]
    (_key, data), = kpl.aggregate(users)
    theirs = list(deaggregator.iter_deaggregate_records(
        {"SequenceNumber": "1", "PartitionKey": "a", "ApproximateArrivalTimestamp": 0, "Data": data},
        data_format="Boto3"))
    assert [(r["kinesis"]["partitionKey"], base64.b64decode(r["kinesis"]["data"])) for r in theirs] == users


def test_aggregate_splits_by_count_and_by_size():
    users = [("k", bytes(100)) for _ in range(10)]
    assert [len(kpl.deaggregate(d)) for _k, d in kpl.aggregate(users, max_records=4)] == [4, 4, 2]
    by_size = kpl.aggregate(users, max_bytes=350)
    assert all(len(d) <= 350 for _k, d in by_size)
    assert sum(len(kpl.deaggregate(d)) for _k, d in by_size) == 10 and len(by_size) > 1
    with pytest.raises(ValueError):
        kpl.aggregate([("k", bytes(1000))], max_bytes=500)


def test_explicit_hash_key_table_is_accepted():
    message = messages_pb2.AggregatedRecord()
    message.partition_key_table.append("pk")
    message.explicit_hash_key_table.append("12345")
    record = message.records.add()
    record.partition_key_index = 0
    record.explicit_hash_key_index = 0
    record.data = b"x"
    (user,) = kpl.deaggregate(_frame(message.SerializeToString()))
    assert (user.data, user.partition_key, user.error) == (b"x", "pk", None)


def test_bad_md5_is_an_error_not_a_pass_through():
    (_key, data), = kpl.aggregate([("k", b"one"), ("k", b"two")])
    corrupt = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(kpl.BadAggregate, match="MD5 mismatch"):
        kpl.deaggregate(corrupt)
    flipped = data[:8] + bytes([data[8] ^ 0x40]) + data[9:]  # a changed body byte
    with pytest.raises(kpl.BadAggregate, match="MD5 mismatch"):
        kpl.deaggregate(flipped)


def test_truncated_record_is_an_error():
    (_key, data), = kpl.aggregate([("k", b"one"), ("k", b"two")])
    with pytest.raises(kpl.BadAggregate, match="MD5 mismatch"):
        kpl.deaggregate(data[:-5])  # cut off: the last 16 bytes are no longer the digest
    with pytest.raises(kpl.BadAggregate, match="truncated"):
        kpl.deaggregate(kpl.MAGIC + b"\x01\x02")


def test_truncated_protobuf_with_matching_md5_is_an_error():
    (_key, data), = kpl.aggregate([("k", b"one"), ("k", b"two")])
    message = data[len(kpl.MAGIC):-kpl.DIGEST_SIZE]
    with pytest.raises(kpl.BadAggregate, match="protobuf AggregatedRecord does not parse"):
        kpl.deaggregate(_frame(message[:-2]))


def test_aggregate_without_user_records_is_an_error():
    with pytest.raises(kpl.BadAggregate, match="no user records"):
        kpl.deaggregate(_frame(b""))


def test_bad_user_record_is_flagged_and_its_neighbours_are_kept():
    data = _aggregate([(0, b"good0"), (7, b"bad-key"), (None, b"no-key"), (0, None), (0, b"good4")])
    users = kpl.deaggregate(data)
    assert [u.data for u in users if u.error is None] == [b"good0", b"good4"]
    assert "partition key index 7 is outside the partition key table (1 keys)" in users[1].error
    assert "partition key index missing" in users[2].error
    assert users[3].error == "KPL user record 3 has no data field"
    assert [u.sub_sequence for u in users] == [0, 1, 2, 3, 4]


def test_aggregates_per_shard_hold_only_records_bound_for_that_shard():
    # The KCL's de-aggregation (and so the Flink Kinesis connector's) drops a whole aggregate
    # holding a user record whose key maps outside the shard it was read from.
    def shard_of(key: str) -> int:
        return kpl.hash_key(key) >> 127  # two shards: the lower and the upper half of the range

    users = [(f"doc-{n}", f"payload-{n}".encode()) for n in range(40)]
    records = kpl.aggregate_per_shard(users, shard_of, max_records=4)
    seen = []
    for key, data in records:
        inside = kpl.deaggregate(data)
        assert {shard_of(users[int(u.data.decode().split("-")[1])][0]) for u in inside} == {shard_of(key)}
        seen += [u.data for u in inside]
    assert sorted(seen) == sorted(data for _, data in users)
    assert kpl.hash_key("a") == int.from_bytes(__import__("hashlib").md5(b"a").digest(), "big")
