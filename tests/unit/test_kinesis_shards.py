"""Shard listing and the parent-before-child rule; the reader's tick filter."""
from __future__ import annotations

from connectors.kinesis.shards import Shard, list_shards, parents_done, readable
from job.functions.shard_reader import FreshTicks, tick_millis


class PagedKinesis:
    def __init__(self, items, page=2):
        self.items, self.page, self.calls = items, page, []

    def list_shards(self, **kwargs):
        self.calls.append(kwargs)
        start = int(kwargs.get("NextToken", 0))
        page = {"Shards": self.items[start:start + self.page]}
        if start + self.page < len(self.items):
            page["NextToken"] = str(start + self.page)
        return page


def test_list_shards_follows_every_page_without_the_stream_name_after_the_first():
    items = [{"ShardId": f"shardId-{i:012d}", "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
             for i in (4, 0, 3, 1, 2)]
    items[2]["ParentShardId"] = "shardId-000000000000"
    items[0]["SequenceNumberRange"]["EndingSequenceNumber"] = "99"
    client = PagedKinesis(items)
    shards = list_shards(client, "s")
    assert [s.shard_id for s in shards] == [f"shardId-{i:012d}" for i in range(5)]
    assert client.calls == [{"StreamName": "s"}, {"NextToken": "2"}, {"NextToken": "4"}]
    by_id = {s.shard_id: s for s in shards}
    assert by_id["shardId-000000000004"].closed and not by_id["shardId-000000000000"].closed
    assert by_id["shardId-000000000003"].parents == ("shardId-000000000000",)


# 0 and 1 were the stream's first shards; 0 split into 2 and 3; 2 and 3 merged into 4;
# 4 and 1 merged into 5.
LINEAGE = [
    Shard("0", ending_sequence_number="10"), Shard("1", ending_sequence_number="20"),
    Shard("2", parent_shard_id="0", ending_sequence_number="30"),
    Shard("3", parent_shard_id="0", ending_sequence_number="40"),
    Shard("4", parent_shard_id="2", adjacent_parent_shard_id="3", ending_sequence_number="50"),
    Shard("5", parent_shard_id="4", adjacent_parent_shard_id="1"),
]


def ids(shards):
    return [s.shard_id for s in shards]


def test_children_wait_until_every_parent_is_read_to_its_end():
    assert ids(readable(LINEAGE, finished=set())) == ["0", "1"]
    assert ids(readable(LINEAGE, finished={"0"})) == ["1", "2", "3"]
    assert ids(readable(LINEAGE, finished={"0", "2"})) == ["1", "3"]  # a merge needs both parents
    assert ids(readable(LINEAGE, finished={"0", "2", "3"})) == ["1", "4"]
    assert ids(readable(LINEAGE, finished={"0", "2", "3", "4"})) == ["1"]
    assert ids(readable(LINEAGE, finished={"0", "1", "2", "3", "4"})) == ["5"]


def test_a_parent_that_is_no_longer_listed_has_expired_and_holds_nothing_back():
    listed = LINEAGE[2:]  # 0 and 1 have passed the retention period
    assert ids(readable(listed, finished=set())) == ["2", "3"]
    assert parents_done(LINEAGE[5], finished={"4"}, listed={"4", "5"})
    assert not parents_done(LINEAGE[5], finished={"4"}, listed={"1", "4", "5"})


def test_fresh_ticks_skips_ticks_that_queued_whatever_the_clock_offset():
    ticks = FreshTicks(tolerance_ms=1000)
    offset = 7_000  # the tick source's clock is 7 s behind the reader's
    assert ticks.fresh(0, 0 + offset + 5)
    assert ticks.fresh(100, 100 + offset + 20)
    # The reader was held up for 5 s: the ticks made meanwhile arrive all at once.
    assert not ticks.fresh(200, 5_200 + offset)
    assert not ticks.fresh(300, 5_201 + offset)
    assert ticks.fresh(5_200, 5_202 + offset)  # made just now: read again


def test_fresh_ticks_follows_a_clock_offset_that_changes_for_longer_than_its_window():
    ticks = FreshTicks(tolerance_ms=1000, window_ms=10_000)
    for t in range(0, 10_000, 1000):
        assert ticks.fresh(t, t)
    assert not ticks.fresh(10_000, 15_000)  # 5 s more than the fastest tick seen lately: queued
    for t in range(11_000, 30_000, 1000):
        ticks.fresh(t, t + 5_000)  # the clocks now differ by 5 s for good
    assert ticks.fresh(30_000, 35_000)


def test_tick_millis_takes_what_pyflink_hands_over():
    from pyflink.common.time import Instant

    assert tick_millis(Instant.of_epoch_milli(1_767_225_600_123)) == 1_767_225_600_123
    assert tick_millis(None) is None
