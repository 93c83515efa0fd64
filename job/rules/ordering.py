"""Replication rules as pure Python: the logic of `order` mode (the tests' oracle of what
MySQL must hold is tests/support/oracle.py).

Kinesis delivers at least once and in no order; the result must be as if every revision
were applied once, in version order. Two modes:

- ``order=false`` (default): apply a revision only if it is newer (a higher version, then
  a higher tx_id: a keyed source's tie) than the last applied one; duplicates and older
  revisions are dropped. (Flink SQL's Top-1 does this in Java state,
  job/pipeline/assembly.py; the writer's guarded upsert holds it in MySQL.)
- ``order=true``: apply versions strictly one after another (``OrderedDocument``); a
  revision ahead of the next expected version waits; a gap is waited for up to
  ``order.timeout.ms`` and then skipped (recorded) or kept waiting, by setting.

A delete is final for the current view: once a document's delete (at version d) is
applied, no revision with a version <= d brings it back. QLDB never reuses an id, so a
revision above a delete does not occur; if one did, it would be applied as newer.
Redactions never change the current view; in order mode a redaction (all a journal
export holds of a redacted version) counts as its version having come.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

GAP_SKIP = "skip"
GAP_WAIT = "wait"
GAP_ACTIONS = (GAP_SKIP, GAP_WAIT)


def document_key(revision) -> tuple:
    return (revision.table, revision.document_id)


# --- order=true: strict sequence ----------------------------------------------------

@dataclass(frozen=True)
class Gap:
    table: str
    document_id: str
    from_version: int  # first missing version
    to_version: int  # last missing version
    action: str  # "skip" (versions given up) or "wait" (still waiting, reported once)


@dataclass(frozen=True)
class OrderedDocument:
    """Per-document state in order mode (kept in Flink keyed state between records)."""

    next_version: int = 0
    # Version of the delete once it is applied; nothing at or below it applies again.
    deleted_at: Optional[int] = None
    # version -> revision, waiting for the versions before it.
    waiting: dict = field(default_factory=dict)
    # Processing time (ms) until which the gap before ``min(waiting)`` is waited for.
    deadline_ms: Optional[int] = None
    # The lowest missing version already reported as waited-for (report once).
    reported_gap: Optional[int] = None

    def offer(self, revision, now_ms: int, timeout_ms: int) -> tuple:
        """Take one delivered revision: (new state, revisions to apply in order)."""
        if revision.version < self.next_version:
            return self, []  # duplicate of an applied version (or its redaction), or given up
        held = self.waiting.get(revision.version)
        if held is not None and not (getattr(held, "redacted", False) and not getattr(revision, "redacted", False)):
            return self, []  # duplicate of a waiting one
        # A redaction holds its version's place in the sequence but is never applied: a
        # journal export has only the redacted revision (its data gone), so without this
        # the versions after it would wait for one that never comes. The original, if it
        # comes while the redaction waits, takes its place.
        waiting = {**self.waiting, revision.version: revision}
        state, applied = replace(self, waiting=waiting)._drain()
        if state.waiting and state.deadline_ms is None:
            state = replace(state, deadline_ms=now_ms + timeout_ms)
        return state, applied

    def on_timeout(self, now_ms: int, timeout_ms: int, action: str) -> tuple:
        """The gap's wait ran out: (new state, revisions to apply, gap to record or None)."""
        if not self.waiting or self.deadline_ms is None or now_ms < self.deadline_ms:
            return self, [], None
        first_waiting = min(self.waiting)
        gap = Gap("", "", self.next_version, first_waiting - 1, action)
        if action == GAP_WAIT:
            if self.reported_gap == self.next_version:
                return replace(self, deadline_ms=now_ms + timeout_ms), [], None
            return replace(self, deadline_ms=now_ms + timeout_ms, reported_gap=self.next_version), [], gap
        state, applied = replace(self, next_version=first_waiting, deadline_ms=None)._drain()
        if state.waiting:
            state = replace(state, deadline_ms=now_ms + timeout_ms)
        return state, applied, gap

    def _drain(self) -> tuple:
        waiting = dict(self.waiting)
        applied = []
        next_version = self.next_version
        deleted_at = self.deleted_at
        while next_version in waiting:
            revision = waiting.pop(next_version)
            if not getattr(revision, "redacted", False):
                applied.append(revision)
            if revision.deleted:
                deleted_at = revision.version
            next_version += 1
        moved = next_version != self.next_version
        return replace(self, waiting=waiting, next_version=next_version, deleted_at=deleted_at,
                       deadline_ms=None if moved else self.deadline_ms,
                       reported_gap=None if moved else self.reported_gap), applied

    @classmethod
    def starting_after(cls, current_version: Optional[int], deleted_at: Optional[int] = None) -> "OrderedDocument":
        """State for a document first seen by this job: version 0 comes first unless MySQL
        already holds the document (or its tombstone), then the version after it."""
        held = max(v for v in (current_version, deleted_at, -1) if v is not None)
        return cls(next_version=held + 1, deleted_at=deleted_at)
