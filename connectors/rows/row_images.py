"""What the writer stores for one revision: a row image, already in MySQL's shape.

A ``RowImage`` is built once (JSON serialised once) wherever a revision leaves the
ordering step, and carries its destination: the current view or the history table.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import Optional

CURRENT = "current"
HISTORY = "history"


@dataclass(frozen=True)
class RowImage:
    kind: str  # CURRENT or HISTORY
    table: str  # the QLDB table name (made a MySQL name by the writer)
    document_id: str
    version: int
    tx_id: str
    tx_time_us: Optional[int]  # microseconds since the epoch, UTC
    document: Optional[str]  # JSON text of the revision's data; None for a delete or redaction
    deleted: bool = False
    # A redaction of this version (QLDB only redacts older revisions): in history it
    # replaces the data with NULL whichever of the two records arrives first.
    redacted: bool = False
    # A keyed source's key column names, in key order (connectors/formats/changes.py):
    # the table gets them as columns with a unique index; () for QLDB.
    key_columns: tuple = ()
    # A keyed source's delete made by its time-to-live (DynamoDB); marked in history.
    expired: bool = False
    # The source types of top-level fields whose JSON form is text standing for another
    # type (decimals, timestamps, bytes), as JSON text; None when there are none
    # (connectors/mysql/column_types.py): what the typed columns are made from.
    types: Optional[str] = None


def document_json(data: Optional[dict]) -> Optional[str]:
    return None if data is None else json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def epoch_us(value: Optional[_dt.datetime]) -> Optional[int]:
    if value is None:
        return None
    delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def utc_naive(us: Optional[int]) -> Optional[_dt.datetime]:
    """A DATETIME(6) value (the writer sets the session time zone to UTC)."""
    if us is None:
        return None
    return _dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=us)


def revision_json(revision) -> Optional[str]:
    """A revision's data as JSON text, the decoder's own when it made it already."""
    text = getattr(revision, "data_json", None)
    return text if text is not None else document_json(revision.data)


def image_of(revision, kind: str) -> RowImage:
    return RowImage(kind=kind, table=revision.table, document_id=revision.document_id,
                    version=revision.version, tx_id=revision.tx_id, tx_time_us=epoch_us(revision.tx_time),
                    document=revision_json(revision), deleted=revision.deleted,
                    redacted=getattr(revision, "redacted", False), types=getattr(revision, "data_types", None))
