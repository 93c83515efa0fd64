"""Dead letters: input that could not be replicated, kept with where it came from and why.

Decoding and writing never stop the job for one bad record: they turn it into a
``DeadLetter``, which the MySQL writer stores in ``_ledgersync_dead_letters`` in the same
transaction as the batch around it. A replay of the same record (after a restore) is
a no-op: the table's unique key is the record's position and the stage.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAX_REASON = 2000
# Not aggregated (or position unknown): sub-sequence -1, so the unique key has no NULLs.
NO_SUB_SEQUENCE = -1


def payload_position(raw: bytes) -> int:
    """A 31-bit number that stands for a record's place inside its KPL aggregate when the
    index is unknown.

    The Kinesis connector de-aggregates KPL records and hands every user record over with
    its parent's sequence number and no sub-sequence number, so two bad user records of one
    aggregate would share a position, and dead letters are stored once per position. Taken
    from the bytes, it is the same on every replay after a restore (a dead letter lands
    exactly once) and differs between different records (two in one aggregate share it
    with a chance of 1 in 2^31)."""
    return int.from_bytes(hashlib.sha256(bytes(raw)).digest()[:4], "big") & 0x7FFF_FFFF


@dataclass(frozen=True)
class DeadLetter:
    stream: str
    shard_id: str
    sequence_number: str
    stage: str  # "decode" (bad input) or "write" (MySQL refused the row)
    reason: str
    raw: bytes
    sub_sequence: int = NO_SUB_SEQUENCE

    def row(self) -> tuple:
        reason = self.reason if len(self.reason) <= MAX_REASON else self.reason[:MAX_REASON - 3] + "..."
        return (self.stream, self.shard_id, self.sequence_number, self.sub_sequence, self.stage, reason,
                self.raw)
