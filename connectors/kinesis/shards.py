"""Which shards a stream has, and which of them may be read now.

After a split or a merge the parent shard is closed and its children take new records.
A partition key's older records stay in the parent, so a child is read only once every
parent is read to its end: that keeps each key's records in order across a reshard.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parent_shard_id: Optional[str] = None
    adjacent_parent_shard_id: Optional[str] = None
    starting_sequence_number: Optional[str] = None
    # Set once the shard is closed (after a split or merge); None while open.
    ending_sequence_number: Optional[str] = None

    @property
    def closed(self) -> bool:
        return self.ending_sequence_number is not None

    @property
    def parents(self) -> tuple:
        return tuple(p for p in (self.parent_shard_id, self.adjacent_parent_shard_id) if p)


def shard_from_api(item: dict) -> Shard:
    ranges = item.get("SequenceNumberRange", {})
    return Shard(
        shard_id=item["ShardId"],
        parent_shard_id=item.get("ParentShardId"),
        adjacent_parent_shard_id=item.get("AdjacentParentShardId"),
        starting_sequence_number=ranges.get("StartingSequenceNumber"),
        ending_sequence_number=ranges.get("EndingSequenceNumber"),
    )


def list_shards(client, stream_name: str) -> list:
    """All shards of the stream (ListShards, following NextToken pages), ordered by id.

    Closed shards are listed until their records pass the retention period.
    """
    shards: list = []
    kwargs = {"StreamName": stream_name}
    while True:
        page = client.list_shards(**kwargs)
        shards.extend(shard_from_api(item) for item in page.get("Shards", []))
        token = page.get("NextToken")
        if not token:
            return sorted(shards, key=lambda s: s.shard_id)
        # With NextToken, ListShards refuses StreamName.
        kwargs = {"NextToken": token}


def parents_done(shard: Shard, finished: Iterable[str], listed: Iterable[str]) -> bool:
    """Every parent is read to its end, or is no longer listed (its records have expired)."""
    finished, listed = set(finished), set(listed)
    return all(parent in finished or parent not in listed for parent in shard.parents)


def readable(shards: list, finished: Iterable[str]) -> list:
    """The listed shards that are not finished and whose parents are all done, in id order."""
    finished = set(finished)
    listed = {s.shard_id for s in shards}
    return [s for s in shards if s.shard_id not in finished and parents_done(s, finished, listed)]
