"""Joining a source record that arrived split over several Kinesis records (DSQL splits a
CDC record larger than Kinesis takes): pure rules, kept in Flink keyed state by
job/functions/changes.py. The parts of one record share a group; they may arrive on
different shards, in any order, more than once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from connectors.formats.changes import BadChange, Piece


@dataclass
class Held:
    """The parts of one split record seen so far (picklable: it lives in Flink state)."""

    parts: dict = field(default_factory=dict)  # index -> bytes
    count: Optional[int] = None
    first_seen_ms: Optional[int] = None

    def add(self, piece: Piece, now_ms: int) -> Optional[bytes]:
        """Take one part; the whole record's bytes once every part is there, else None.
        A part seen before changes nothing; one whose count or index contradicts the
        others is ``BadChange`` (and is not taken)."""
        if piece.count < 1 or not 0 <= piece.index < piece.count:
            raise BadChange(f"part {piece.index} of {piece.count} is not a valid part number")
        if self.count is not None and piece.count != self.count:
            raise BadChange(f"part {piece.index} says the record has {piece.count} parts; earlier parts said "
                            f"{self.count}")
        held = self.parts.get(piece.index)
        if held is not None and held != piece.data:
            raise BadChange(f"part {piece.index} arrived twice with different bytes")
        if self.first_seen_ms is None:
            self.first_seen_ms = now_ms
        self.count = piece.count
        self.parts[piece.index] = piece.data
        if len(self.parts) < self.count:
            return None
        return b"".join(self.parts[i] for i in range(self.count))

    def expired(self, now_ms: int, timeout_ms: int) -> bool:
        return self.first_seen_ms is not None and now_ms - self.first_seen_ms >= timeout_ms

    def describe(self) -> str:
        missing = [i for i in range(self.count or 0) if i not in self.parts]
        return f"{len(self.parts)} of {self.count} parts arrived (missing {missing[:10]}{'...' if len(missing) > 10 else ''})"

    def partial(self) -> bytes:
        """What arrived, in part order (for the dead letter)."""
        return b"".join(self.parts[i] for i in sorted(self.parts))
