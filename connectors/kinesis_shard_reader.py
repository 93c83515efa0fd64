"""Reading one Kinesis shard from a position, one GetRecords call at a time.

No Flink here: the caller (a keyed Flink function) owns the positions and checkpoints
them; this class only turns "shard X after sequence number S" into records and keeps
shard iterators (which expire after five minutes) as a cache in memory.
"""
from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from typing import Optional

log = logging.getLogger(__name__)

INITIAL_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")


@dataclass(frozen=True)
class KinesisRecord:
    stream: str
    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    arrival_ms: int


@dataclass(frozen=True)
class ShardRead:
    records: list
    # No record was waiting: the shard is read up to its tip for now.
    at_tip: bool
    # The shard is closed (split or merged) and read to its end: never read it again.
    closed: bool
    millis_behind_latest: Optional[int]


def sequence_key(sequence_number: str) -> int:
    """Kinesis sequence numbers are decimal strings of any length: compare as integers."""
    return int(sequence_number)


class ShardReader:
    def __init__(self, client, stream_name: str, initial_position: str = "TRIM_HORIZON",
                 initial_timestamp: Optional[_dt.datetime] = None, limit: int = 1000):
        if initial_position not in INITIAL_POSITIONS:
            raise ValueError(f"initial position must be one of {INITIAL_POSITIONS}, got {initial_position!r}")
        if initial_position == "AT_TIMESTAMP" and initial_timestamp is None:
            raise ValueError("initial position AT_TIMESTAMP needs a timestamp")
        self._client = client
        self._stream = stream_name
        self._initial_position = initial_position
        self._initial_timestamp = initial_timestamp
        self._limit = limit
        # shard_id -> (iterator, the position it continues after, or None for the initial position)
        self._iterators: dict[str, tuple[str, Optional[str]]] = {}

    def read(self, shard_id: str, after_sequence: Optional[str]) -> ShardRead:
        iterator = self._iterator(shard_id, after_sequence)
        try:
            response = self._client.get_records(ShardIterator=iterator, Limit=self._limit)
        except self._client.exceptions.ExpiredIteratorException:
            log.info("shard iterator for %s expired; asking for a new one", shard_id)
            self._iterators.pop(shard_id, None)
            iterator = self._iterator(shard_id, after_sequence)
            response = self._client.get_records(ShardIterator=iterator, Limit=self._limit)
        records = []
        floor = sequence_key(after_sequence) if after_sequence else None
        for item in response.get("Records", []):
            sequence = item["SequenceNumber"]
            if floor is not None and sequence_key(sequence) <= floor:
                continue  # already emitted before (defensive: iterators are at-least-once)
            arrival = item.get("ApproximateArrivalTimestamp")
            records.append(KinesisRecord(
                stream=self._stream,
                shard_id=shard_id,
                sequence_number=sequence,
                partition_key=item.get("PartitionKey", ""),
                data=bytes(item["Data"]),
                arrival_ms=int(arrival.timestamp() * 1000) if arrival else 0,
            ))
        position = records[-1].sequence_number if records else after_sequence
        next_iterator = response.get("NextShardIterator")
        if next_iterator:
            self._iterators[shard_id] = (next_iterator, position)
        else:
            self._iterators.pop(shard_id, None)
        behind = response.get("MillisBehindLatest")
        return ShardRead(
            records=records,
            at_tip=next_iterator is None or (not records and not behind),
            closed=next_iterator is None,
            millis_behind_latest=behind,
        )

    def forget(self, shard_id: str) -> None:
        self._iterators.pop(shard_id, None)

    def _iterator(self, shard_id: str, after_sequence: Optional[str]) -> str:
        cached = self._iterators.get(shard_id)
        if cached is not None and cached[1] == after_sequence:
            return cached[0]
        kwargs = {"StreamName": self._stream, "ShardId": shard_id}
        if after_sequence:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after_sequence)
        elif self._initial_position == "AT_TIMESTAMP":
            kwargs.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=self._initial_timestamp)
        else:
            kwargs.update(ShardIteratorType=self._initial_position)
        return self._client.get_shard_iterator(**kwargs)["ShardIterator"]
