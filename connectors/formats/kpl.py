"""KPL record aggregation: one Kinesis record that packs several user records.

Format (https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md):
magic ``F3 89 9A C2``, a protobuf ``AggregatedRecord`` (partition key table, explicit
hash key table, records), then the MD5 of the protobuf bytes.

The protobuf message and the aggregator come from ``aws-kinesis-agg``. Its de-aggregator
(``iter_deaggregate_records``) is not used: it passes a record with a bad MD5 or an
unparseable protobuf through as if it were not aggregated, prints a bad key index to
stderr and drops the rest, and re-encodes every user record as base64. Here each of
those is an error with a reason, so the record ends up as a dead letter instead.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import aws_kinesis_agg
# aws-kinesis-agg's generated messages_pb2 does `import config_pb2`, which only resolves
# after the library's aggregator (or deaggregator) module has put its own directory on
# sys.path; import it first, as the library's own modules do.
from aws_kinesis_agg import aggregator as _aggregator
from aws_kinesis_agg import messages_pb2
from google.protobuf.message import DecodeError

MAGIC = aws_kinesis_agg.MAGIC
DIGEST_SIZE = aws_kinesis_agg.DIGEST_SIZE  # MD5: 16 bytes
MAX_RECORD_BYTES = aws_kinesis_agg.MAX_BYTES_PER_RECORD  # 1 MiB, a Kinesis record's classic limit
# Not aggregated: the whole Kinesis record is the one user record.
NOT_AGGREGATED = -1


class BadAggregate(ValueError):
    """The record starts with the KPL magic but is not a valid aggregated record."""


@dataclass(frozen=True)
class UserRecord:
    # Index inside the aggregated record (the KPL "sub-sequence number"), or NOT_AGGREGATED.
    sub_sequence: int
    data: bytes
    partition_key: Optional[str] = None
    # Set when this one user record is malformed (its neighbours are fine).
    error: Optional[str] = None


def is_aggregated(data: bytes) -> bool:
    return data[:len(MAGIC)] == MAGIC


def deaggregate(data: bytes) -> list:
    """The user records in one Kinesis record; a record without the magic is its own user record.

    Raises ``BadAggregate`` when the envelope is broken (too short, MD5 mismatch,
    protobuf that does not parse, no user records): none of its user records can be
    trusted then. A user record with a bad key index or no data comes back with
    ``error`` set.
    """
    if not is_aggregated(data):
        return [UserRecord(NOT_AGGREGATED, bytes(data))]
    body = data[len(MAGIC):]
    if len(body) < DIGEST_SIZE:
        raise BadAggregate(f"KPL aggregated record truncated: {len(data)} bytes, shorter than magic + MD5 "
                           f"({len(MAGIC) + DIGEST_SIZE} bytes)")
    message, digest = body[:-DIGEST_SIZE], body[-DIGEST_SIZE:]
    computed = hashlib.md5(message).digest()
    if digest != computed:
        raise BadAggregate(f"KPL aggregated record MD5 mismatch (stored {digest.hex()}, computed "
                           f"{computed.hex()} over {len(message)} protobuf bytes): corrupt or truncated")
    aggregate = messages_pb2.AggregatedRecord()
    try:
        aggregate.ParseFromString(message)
    except DecodeError as exc:
        raise BadAggregate(f"KPL aggregated record: protobuf AggregatedRecord does not parse "
                           f"({len(message)} bytes, MD5 matches): {exc}") from None
    if not aggregate.records:
        raise BadAggregate("KPL aggregated record holds no user records")
    keys = list(aggregate.partition_key_table)
    out = []
    for index, record in enumerate(aggregate.records):
        error = None
        # proto2 `required` is not enforced on parse: check what we rely on.
        if not record.HasField("data"):
            error = f"KPL user record {index} has no data field"
        elif not record.HasField("partition_key_index") or record.partition_key_index >= len(keys):
            error = (f"KPL user record {index}: partition key index "
                     f"{record.partition_key_index if record.HasField('partition_key_index') else 'missing'} "
                     f"is outside the partition key table ({len(keys)} keys)")
        key = keys[record.partition_key_index] if error is None else None
        out.append(UserRecord(index, bytes(record.data), key, error))
    return out


def aggregate(records: Iterable[tuple], max_bytes: int = MAX_RECORD_BYTES,
              max_records: Optional[int] = None) -> list:
    """Pack ``(partition_key, data)`` user records into KPL aggregated records, in order.

    Returns ``(partition_key, data)`` per Kinesis record, the partition key being the
    first user record's (as the KPL does). A new record starts when ``max_records``
    user records are packed or the next one would pass ``max_bytes``.
    """
    return [record for _count, record in _pack(records, max_bytes, max_records)]


def _pack(records: Iterable[tuple], max_bytes: int, max_records: Optional[int]) -> list:
    """(user records packed, (partition_key, data)) per aggregated Kinesis record."""
    if max_records is not None and max_records < 1:
        raise ValueError("max_records must be at least 1")
    out = []
    current = _aggregator.AggRecord(max_bytes)
    for partition_key, data in records:
        if max_records is not None and current.get_num_user_records() >= max_records:
            out.append((current.get_num_user_records(), _contents(current)))
            current = _aggregator.AggRecord(max_bytes)
        # The aggregator raises ValueError for a user record that can never fit.
        if not current.add_user_record(partition_key, data):
            out.append((current.get_num_user_records(), _contents(current)))
            current = _aggregator.AggRecord(max_bytes)
            current.add_user_record(partition_key, data)
    if current.get_num_user_records():
        out.append((current.get_num_user_records(), _contents(current)))
    return out


def hash_key(partition_key: str) -> int:
    """The 128-bit hash key Kinesis maps a partition key to (MD5, as a big-endian integer)."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def aggregate_per_shard(records: Iterable[tuple], shard_of: Callable[[str], object],
                        max_bytes: int = MAX_RECORD_BYTES, max_records: Optional[int] = None) -> list:
    """``aggregate``, but only user records bound for the same shard share a Kinesis record,
    as the KPL packs them. A consumer that de-aggregates with the shard's hash range (the
    KCL, and so the Flink Kinesis connector) drops a whole aggregate that holds a user record
    whose partition key maps outside the shard it was read from. ``shard_of(partition_key)``
    names the shard; the aggregates come in the order of their first user record."""
    groups: dict = {}
    for index, (partition_key, data) in enumerate(records):
        groups.setdefault(shard_of(partition_key), []).append((index, (partition_key, data)))
    packed = []
    for members in groups.values():
        start = 0
        for count, record in _pack([user for _, user in members], max_bytes, max_records):
            packed.append((members[start][0], record))
            start += count
    return [record for _, record in sorted(packed, key=lambda item: item[0])]


def _contents(record) -> tuple:
    partition_key, _explicit_hash_key, data = record.get_contents()
    return partition_key, data
