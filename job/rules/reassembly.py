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
        others is ``BadChange`` (and is not taken). ``count`` 0 means the part does not
        say how many there are (a DSQL fragment: only the main record says); the record
        is complete once some part said the count and every index below it is held."""
        if piece.count < 0 or piece.index < 0 or (piece.count and piece.index >= piece.count):
            raise BadChange(f"part {piece.index} of {piece.count} is not a valid part number")
        count = self.count
        if piece.count:
            if count is not None and piece.count != count:
                raise BadChange(f"part {piece.index} says the record has {piece.count} parts; earlier parts "
                                f"said {count}")
            beyond = [i for i in self.parts if i >= piece.count]
            if beyond:
                raise BadChange(f"part {piece.index} says the record has {piece.count} parts; parts "
                                f"{beyond[:10]} arrived already")
            count = piece.count
        elif count is not None and piece.index >= count:
            raise BadChange(f"part {piece.index} is beyond the record's {count} parts")
        held = self.parts.get(piece.index)
        if held is not None and held != piece.data:
            raise BadChange(f"part {piece.index} arrived twice with different bytes")
        if self.first_seen_ms is None:
            self.first_seen_ms = now_ms
        self.count = count
        self.parts[piece.index] = piece.data
        if self.count is None or len(self.parts) < self.count:
            return None
        return b"".join(self.parts[i] for i in range(self.count))

    def expired(self, now_ms: int, timeout_ms: int) -> bool:
        return self.first_seen_ms is not None and now_ms - self.first_seen_ms >= timeout_ms

    def describe(self) -> str:
        if self.count is None:
            return f"{len(self.parts)} parts arrived, none saying how many there are (the main record is missing)"
        missing = [i for i in range(self.count) if i not in self.parts]
        return f"{len(self.parts)} of {self.count} parts arrived (missing {missing[:10]}{'...' if len(missing) > 10 else ''})"

    def partial(self) -> bytes:
        """What arrived, in part order (for the dead letter)."""
        return b"".join(self.parts[i] for i in sorted(self.parts))


def join(pieces) -> bytes:
    """The record the given parts make, checking that every part is there (duplicates
    allowed, as Kinesis delivers at least once) and that they agree; else BadChange."""
    held = Held()
    joined = None
    for piece in pieces:
        result = held.add(piece, 0)
        joined = result if result is not None else joined
    if joined is None:
        raise BadChange(f"incomplete: {held.describe()}")
    return joined
