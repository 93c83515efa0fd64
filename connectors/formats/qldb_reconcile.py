"""An export's final state per document, compared with MySQL's current view.

After a migration the question is not only "is the export intact" (qldb_verify) but "does
MySQL hold what the export ends with". The export side is folded from the revisions the
backfill decoder makes (``StateCollector``); the MySQL side is rows read by
connectors/mysql/current_view.py; ``compare_states`` is the pure comparison between them,
``verify_against_mysql`` joins the two.

The rules follow the current view's (DESIGN.md, "Correctness rules"): the newest version
wins, a delete removes the row, a redacted revision leaves the row as it was (so it does
not count here). Document data is compared by a digest of its JSON with object keys
sorted and numbers written one way (MySQL's JSON may reorder keys and write ``12.30`` as
``12.3``).
"""
from __future__ import annotations

import decimal
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

from connectors.rows.row_images import document_json

MAX_LISTED = 100  # mismatches listed in a report; all are counted

# Outcomes: the first four mean MySQL does not hold what the export ends with.
MISSING = "missing"  # live in the export, no row
DELETED_PRESENT = "deleted_but_present"  # deleted in the export, a row of that version or older
STALE = "stale"  # a row older than the export's version
DATA_DIFFERS = "data_differs"  # same version, other data
NEWER_IN_MYSQL = "newer_in_mysql"  # a later version (the stream after the export): not an error
ONLY_IN_MYSQL = "only_in_mysql"  # a document the export does not have: not an error
MATCH = "match"
ERRORS = (MISSING, DELETED_PRESENT, STALE, DATA_DIFFERS)


@dataclass(frozen=True)
class DocumentState:
    table: str
    document_id: str
    version: int
    deleted: bool
    digest: Optional[str]  # None when deleted


@dataclass(frozen=True)
class CurrentRow:
    """One current-view row, under its QLDB table name; or, ``deleted``, the tombstone the
    writer keeps of a document it deleted (the version of the delete)."""

    table: str
    document_id: str
    version: int
    document_json: Optional[str]
    deleted: bool = False


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float, decimal.Decimal)):
        number = decimal.Decimal(str(value)) if isinstance(value, float) else decimal.Decimal(value)
        return {"#number": format(number.normalize(), "f") if number.is_finite() else str(number)}
    return str(value)


def document_digest(json_text: Optional[str]) -> Optional[str]:
    """SHA-256 (hex) of a document's JSON, independent of key order and number spelling."""
    if json_text is None:
        return None
    value = json.loads(json_text, parse_float=decimal.Decimal)
    canonical = json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class StateCollector:
    """Folds decoded revisions (connectors.formats.qldb.Revision) into each document's final
    state, in any order: the newest version wins; redactions change nothing."""

    def __init__(self):
        self.states: dict = {}
        self.revisions = 0
        self.redactions_skipped = 0
        self.undecodable = 0

    def add(self, revision) -> None:
        self.revisions += 1
        if revision.redacted:
            self.redactions_skipped += 1
            return
        key = (revision.table, revision.document_id)
        known = self.states.get(key)
        if known is not None and known.version >= revision.version:
            return
        text = None if revision.deleted else _revision_json(revision)
        self.states[key] = DocumentState(revision.table, revision.document_id, revision.version, revision.deleted,
                                         document_digest(text))


def _revision_json(revision) -> Optional[str]:
    # The decoder's own JSON text, as the writer stores it.
    text = getattr(revision, "data_json", None)
    return text if text is not None else document_json(revision.data)


def compare_states(states: Mapping, rows: Iterable) -> dict:
    """Report (JSON-ready) of the export's final states against MySQL's current rows."""
    counts = {name: 0 for name in (MATCH,) + ERRORS + (NEWER_IN_MYSQL, ONLY_IN_MYSQL)}
    listed: list = []
    seen: set = set()

    def note(outcome: str, table: str, document_id: str, export: Optional[DocumentState], row: Optional[CurrentRow]):
        counts[outcome] += 1
        if outcome != MATCH and len(listed) < MAX_LISTED:
            listed.append({"outcome": outcome, "table": table, "documentId": document_id,
                           "exportVersion": export.version if export else None,
                           "exportDeleted": export.deleted if export else None,
                           "mysqlVersion": row.version if row else None})

    for row in rows:
        key = (row.table, row.document_id)
        export = states.get(key)
        if row.deleted:
            # Only a delete after the export's last version says anything: the stream went on
            # past the export and deleted the document (not an error). An older tombstone
            # leaves the document to the rules below (missing if it has no row).
            if export is not None and not export.deleted and row.version > export.version and key not in seen:
                seen.add(key)
                note(NEWER_IN_MYSQL, row.table, row.document_id, export, row)
            continue
        seen.add(key)
        if export is None:
            note(ONLY_IN_MYSQL, row.table, row.document_id, None, row)
        elif row.version > export.version:
            note(NEWER_IN_MYSQL, row.table, row.document_id, export, row)
        elif export.deleted:
            note(DELETED_PRESENT, row.table, row.document_id, export, row)
        elif row.version < export.version:
            note(STALE, row.table, row.document_id, export, row)
        elif document_digest(row.document_json) != export.digest:
            note(DATA_DIFFERS, row.table, row.document_id, export, row)
        else:
            note(MATCH, row.table, row.document_id, export, row)
    for key, export in sorted(states.items()):
        if key not in seen and not export.deleted:
            note(MISSING, export.table, export.document_id, export, None)
    live = sum(1 for s in states.values() if not s.deleted)
    return {"ok": not any(counts[e] for e in ERRORS), "documents": len(states), "liveDocuments": live,
            "deletedDocuments": len(states) - live, "rows": len(seen), "counts": counts, "mismatches": listed}


def verify_against_mysql(states: Mapping, read_rows: Callable[[list], Iterable]) -> dict:
    """Compare the export's final states with the current-view rows ``read_rows(tables)``
    yields for the export's QLDB tables."""
    tables = sorted({state.table for state in states.values()})
    report = compare_states(states, read_rows(tables))
    report["tables"] = tables
    return report
