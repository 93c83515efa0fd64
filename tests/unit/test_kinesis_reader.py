"""ShardReader, StartPosition, error kinds and the pacer, against an in-memory Kinesis."""
from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from connectors.kinesis.shard_reader import (EXPIRED, MIN_CALL_INTERVAL_S, SHARD_GONE, THROTTLED, TRANSIENT,
                                             KinesisReadError, ShardPacer, ShardRead, ShardReader, StartPosition,
                                             classify, read_to_end, sequence_key)
from connectors.kinesis.shards import Shard


def client_error(code: str, status: int = 400, operation: str = "GetRecords") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (test)"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class FakeKinesis:
    """Just enough of the Kinesis API for the reader: shards with records, iterators that
    point into them, a null NextShardIterator at the end of a closed shard, and failures
    queued per operation."""

    def __init__(self):
        self.records: dict = {}  # shard id -> [(sequence number, data, arrival)]
        self.closed: set = set()
        self.failures: dict = {"get_records": [], "get_shard_iterator": []}
        self.calls: list = []

    def put(self, shard_id: str, sequence: int, data: bytes, arrival: dt.datetime = None):
        self.records.setdefault(shard_id, []).append(
            (str(sequence), data, arrival or dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)))

    def _fail(self, operation: str):
        if self.failures[operation]:
            raise self.failures[operation].pop(0)

    def get_shard_iterator(self, StreamName, ShardId, ShardIteratorType, StartingSequenceNumber=None,
                           Timestamp=None):
        self.calls.append(("get_shard_iterator", ShardId, ShardIteratorType, StartingSequenceNumber, Timestamp))
        self._fail("get_shard_iterator")
        records = self.records.get(ShardId, [])
        if ShardIteratorType == "TRIM_HORIZON":
            index = 0
        elif ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            index = sum(1 for seq, _, _ in records if int(seq) <= int(StartingSequenceNumber))
        elif ShardIteratorType == "AT_TIMESTAMP":
            index = sum(1 for _, _, arrival in records if arrival < Timestamp)
        else:
            raise AssertionError(ShardIteratorType)
        return {"ShardIterator": f"{ShardId}|{index}"}

    def get_records(self, ShardIterator, Limit):
        self.calls.append(("get_records", ShardIterator, Limit))
        self._fail("get_records")
        shard_id, index = ShardIterator.split("|")
        records = self.records.get(shard_id, [])
        batch = records[int(index):int(index) + Limit]
        end = int(index) + len(batch)
        drained = shard_id in self.closed and end >= len(records)
        return {
            "Records": [{"SequenceNumber": seq, "Data": data, "PartitionKey": "k", "ApproximateArrivalTimestamp": a}
                        for seq, data, a in batch],
            "NextShardIterator": None if drained else f"{shard_id}|{end}",
            "MillisBehindLatest": 0 if end >= len(records) else 1000,
        }


TRIM = StartPosition("TRIM_HORIZON")
OPEN = Shard("shardId-000000000000")


def reader(fake, limit=2):
    return ShardReader(fake, fake, "s", limit=limit)


def test_sequence_numbers_compare_as_integers_not_strings():
    assert sequence_key("10") > sequence_key("9")
    big = "49590338271490256608559692538361571095921575989136588898"
    assert sequence_key(big + "0") > sequence_key("9" + big[1:])


def test_reads_in_order_and_resumes_after_the_position_across_digit_lengths():
    fake = FakeKinesis()
    for seq in (8, 9, 10, 11):
        fake.put(OPEN.shard_id, seq, b"r%d" % seq)
    shard_reader = reader(fake)
    first = shard_reader.read(OPEN, None, TRIM)
    assert [r.sequence_number for r in first.records] == ["8", "9"]
    assert not first.at_tip and not first.finished
    second = shard_reader.read(OPEN, "9", TRIM)
    assert [r.sequence_number for r in second.records] == ["10", "11"]
    # The cached iterator was reused: one GetShardIterator for both reads.
    assert sum(1 for c in fake.calls if c[0] == "get_shard_iterator") == 1
    third = shard_reader.read(OPEN, "11", TRIM)
    assert third.records == [] and third.at_tip and not third.finished


def test_a_new_reader_resumes_after_sequence_number_from_a_checkpointed_position():
    fake = FakeKinesis()
    for seq in (9, 10, 11):
        fake.put(OPEN.shard_id, seq, b"x")
    result = reader(fake, limit=10).read(OPEN, "9", TRIM)
    assert [r.sequence_number for r in result.records] == ["10", "11"]
    assert fake.calls[0] == ("get_shard_iterator", OPEN.shard_id, "AFTER_SEQUENCE_NUMBER", "9", None)


def test_records_at_or_before_the_position_are_never_emitted_again():
    fake = FakeKinesis()
    for seq in (5, 6, 7):
        fake.put(OPEN.shard_id, seq, b"x")
    fake.get_shard_iterator = lambda **kwargs: {"ShardIterator": f"{OPEN.shard_id}|0"}  # an iterator too early
    result = reader(fake, limit=10).read(OPEN, "6", TRIM)
    assert [r.sequence_number for r in result.records] == ["7"]


def test_at_timestamp_start_asks_for_an_at_timestamp_iterator():
    fake = FakeKinesis()
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    fake.put(OPEN.shard_id, 1, b"old", t0)
    fake.put(OPEN.shard_id, 2, b"new", t0 + dt.timedelta(seconds=10))
    start = StartPosition("AT_TIMESTAMP", int((t0 + dt.timedelta(seconds=5)).timestamp() * 1000))
    result = reader(fake, limit=10).read(OPEN, None, start)
    assert [r.data for r in result.records] == [b"new"]
    assert fake.calls[0][2] == "AT_TIMESTAMP"


def test_a_closed_shard_is_finished_when_kinesis_returns_no_next_iterator():
    fake = FakeKinesis()
    fake.put(OPEN.shard_id, 1, b"a")
    fake.closed.add(OPEN.shard_id)
    result = reader(fake).read(Shard(OPEN.shard_id, ending_sequence_number="999"), None, TRIM)
    assert [r.data for r in result.records] == [b"a"] and result.finished and result.at_tip


def test_a_closed_shard_is_finished_at_its_ending_sequence_number_even_without_a_null_iterator():
    fake = FakeKinesis()  # like moto: never a null NextShardIterator
    fake.put(OPEN.shard_id, 1, b"a")
    fake.put(OPEN.shard_id, 2, b"b")
    closed = Shard(OPEN.shard_id, ending_sequence_number="2")
    result = reader(fake, limit=10).read(closed, None, TRIM)
    assert result.finished
    assert read_to_end(closed, "2") and not read_to_end(closed, "1") and not read_to_end(OPEN, "2")
    assert read_to_end(Shard("e", ending_sequence_number="0"), None)  # an empty closed shard


def test_an_ending_below_the_shards_start_is_no_end_as_kinesis_local_lists_it():
    # LocalStack's kinesis-local: 56-digit sequence numbers, every closed shard ending at 2**63-1.
    start, record = "49680463183511301891070704159211894937932314826246193154", \
        "49680463183511301891070704159211894937932314826246193155"
    closed = Shard("k", starting_sequence_number=start, ending_sequence_number=str(2 ** 63 - 1))
    assert not read_to_end(closed, record) and not read_to_end(closed, None)


def test_throttling_keeps_the_iterator_and_expiry_gets_a_new_one_from_the_position():
    fake = FakeKinesis()
    for seq in (1, 2, 3, 4):
        fake.put(OPEN.shard_id, seq, b"x")
    shard_reader = reader(fake)
    shard_reader.read(OPEN, None, TRIM)
    fake.failures["get_records"] = [client_error("ProvisionedThroughputExceededException")]
    throttled = shard_reader.read(OPEN, "2", TRIM)
    assert throttled.error == THROTTLED and throttled.records == []
    fake.failures["get_records"] = [client_error("ExpiredIteratorException")]
    assert shard_reader.read(OPEN, "2", TRIM).error == EXPIRED
    result = shard_reader.read(OPEN, "2", TRIM)
    assert [r.sequence_number for r in result.records] == ["3", "4"]
    iterators = [c for c in fake.calls if c[0] == "get_shard_iterator"]
    assert len(iterators) == 2 and iterators[1][2:4] == ("AFTER_SEQUENCE_NUMBER", "2")


@pytest.mark.parametrize("exc, kind", [
    (client_error("ProvisionedThroughputExceededException"), THROTTLED),
    (client_error("LimitExceededException", operation="GetShardIterator"), THROTTLED),
    (client_error("KMSThrottlingException"), THROTTLED),
    (client_error("ExpiredIteratorException"), EXPIRED),
    (client_error("InternalFailure", 500), TRANSIENT),
    (client_error("SomethingNew", 503), TRANSIENT),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), TRANSIENT),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), TRANSIENT),
    (client_error("ResourceNotFoundException"), SHARD_GONE),
    (client_error("AccessDeniedException"), None),
    (client_error("KMSDisabledException"), None),
    (ValueError("a bug"), None),
])
def test_failures_are_sorted_into_backoff_kinds(exc, kind):
    assert classify(exc) == kind


def test_network_errors_back_off_and_a_fatal_error_names_the_shard():
    fake = FakeKinesis()
    fake.put(OPEN.shard_id, 1, b"x")
    fake.failures["get_shard_iterator"] = [EndpointConnectionError(endpoint_url="http://127.0.0.1:1")]
    assert reader(fake).read(OPEN, None, TRIM).error == TRANSIENT
    fake.failures["get_records"] = [client_error("AccessDeniedException")]
    with pytest.raises(KinesisReadError, match="s/shardId-000000000000"):
        reader(fake).read(OPEN, None, TRIM)


def test_start_position_of_a_first_start():
    now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert StartPosition.first_start("TRIM_HORIZON", None, now) == StartPosition("TRIM_HORIZON")
    # LATEST is pinned to the first start, so a restart before any record arrived skips nothing.
    assert StartPosition.first_start("LATEST", None, now) == StartPosition("AT_TIMESTAMP", int(now.timestamp() * 1000))
    at = now - dt.timedelta(hours=1)
    assert StartPosition.first_start("AT_TIMESTAMP", at, now).timestamp_ms == int(at.timestamp() * 1000)
    with pytest.raises(ValueError, match="needs a timestamp"):
        StartPosition.first_start("AT_TIMESTAMP", None, now)
    for start in (StartPosition("TRIM_HORIZON"), StartPosition("AT_TIMESTAMP", 1767225600000)):
        assert StartPosition.decode(start.encode()) == start
    with pytest.raises(ValueError, match="not a start position"):
        StartPosition.decode("LATEST")


def test_limit_outside_what_kinesis_accepts_is_refused():
    with pytest.raises(ValueError, match="1..10000"):
        ShardReader(None, None, "s", limit=10_001)


def ok(records=1, at_tip=False) -> ShardRead:
    return ShardRead(records=[object()] * records, at_tip=at_tip)


def test_pacer_never_polls_a_shard_more_than_five_times_a_second():
    pacer = ShardPacer(poll_interval_s=0.05, idle_interval_s=0.05, jitter=lambda: 1.0)
    assert pacer.after_read("a", 0.0, ok()) == MIN_CALL_INTERVAL_S
    assert not pacer.due("a", 0.19) and pacer.due("a", 0.2)
    assert pacer.after_read("a", 1.0, ShardRead(records=[], error=EXPIRED)) == MIN_CALL_INTERVAL_S
    assert pacer.after_read("a", 2.0, ShardRead(records=[], error=THROTTLED)) >= MIN_CALL_INTERVAL_S


def test_pacer_polls_an_idle_shard_less_often_and_a_busy_one_again_at_once():
    pacer = ShardPacer(poll_interval_s=0.2, idle_interval_s=1.0)
    waits = [pacer.after_read("a", float(i), ok(records=0, at_tip=True)) for i in range(5)]
    assert waits == [0.4, 0.8, 1.0, 1.0, 1.0]
    assert pacer.after_read("a", 10.0, ok()) == 0.2
    assert pacer.after_read("a", 11.0, ok(records=0, at_tip=True)) == 0.4  # the idle streak starts over


def test_pacer_backs_off_exponentially_with_jitter_up_to_a_ceiling_and_forgets_after_success():
    high = ShardPacer(max_backoff_s=5.0, jitter=lambda: 1.0)
    low = ShardPacer(max_backoff_s=5.0, jitter=lambda: 0.0)
    throttled = ShardRead(records=[], error=THROTTLED)
    assert [high.after_read("a", 0.0, throttled) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert [low.after_read("a", 0.0, throttled) for _ in range(3)] == [0.25, 0.5, 1.0]
    failed = ShardRead(records=[], error=TRANSIENT)
    assert [high.after_read("b", 0.0, failed) for _ in range(3)] == [1.0, 2.0, 4.0]
    high.after_read("b", 0.0, ok())
    assert high.after_read("b", 0.0, failed) == 1.0
    assert high.due("c", 0.0)  # never seen: due at once
