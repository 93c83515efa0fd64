"""Which shards a stream has, and which reader slot reads each."""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parent_shard_id: Optional[str] = None
    adjacent_parent_shard_id: Optional[str] = None
    # Set once the shard is closed (after a split or merge); None while open.
    ending_sequence_number: Optional[str] = None


def list_shards(client, stream_name: str) -> list[Shard]:
    """All shards of the stream (ListShards, following NextToken pages)."""
    shards: list[Shard] = []
    kwargs = {"StreamName": stream_name}
    while True:
        page = client.list_shards(**kwargs)
        for item in page.get("Shards", []):
            shards.append(Shard(
                shard_id=item["ShardId"],
                parent_shard_id=item.get("ParentShardId"),
                adjacent_parent_shard_id=item.get("AdjacentParentShardId"),
                ending_sequence_number=item.get("SequenceNumberRange", {}).get("EndingSequenceNumber"),
            ))
        token = page.get("NextToken")
        if not token:
            return shards
        # With NextToken, ListShards refuses StreamName.
        kwargs = {"NextToken": token}


def shard_slot(shard_id: str, slots: int) -> int:
    """The reader slot that owns a shard: stable across restarts and processes."""
    if slots < 1:
        raise ValueError("slots must be at least 1")
    return zlib.crc32(shard_id.encode("utf-8")) % slots
