"""Typed columns that follow the documents. Pure: decides, the writer executes.

Each top-level scalar field of a document gets a column of its own the first time it
is seen (beside the whole document in the ``document`` JSON column). A field keeps
living only in the JSON, reported once, when:
- its name is not a plain identifier (``[A-Za-z0-9_]``, at most 64 characters),
- it collides, ignoring case, with a fixed column (``redacted`` included: history has
  one) or with another field's column (MySQL's column names ignore case),
- its type differs from the column's (e.g. a number where a string was first seen),
- the table already has ``MAX_TYPED_COLUMNS`` typed columns.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from connectors.mysql.sql import EXPIRED_COLUMN, HISTORY_COLUMNS, KEY_COLUMN_TYPES

# Every column ledgersync itself puts in the current view or history: a field of the
# same name (any case) would be a second column of that name in the history table.
FIXED_COLUMNS = HISTORY_COLUMNS
# ... and a keyed source's history has one more (connectors/mysql/sql.py).
KEYED_FIXED_COLUMNS = FIXED_COLUMNS + (EXPIRED_COLUMN,)
MAX_TYPED_COLUMNS = 200
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")  # fullmatch: "$" would let a trailing newline through

# JSON value type -> column type. Exact decimals, big integers and timestamps arrive as
# strings (see connectors/formats/ion_json.py), so they get text columns.
COLUMN_TYPES = {bool: "BOOLEAN", int: "BIGINT", float: "DOUBLE", str: "LONGTEXT"}
# information_schema DATA_TYPE -> our column type
_INFORMATION_SCHEMA = {"tinyint": "BOOLEAN", "bigint": "BIGINT", "double": "DOUBLE", "longtext": "LONGTEXT",
                       "varchar": KEY_COLUMN_TYPES[str]}


def column_type(value: Any, key: bool = False) -> Optional[str]:
    """The column type for a scalar JSON value; None for null, lists and objects. A key
    column (keyed sources) is indexed, so its text is VARCHAR, not LONGTEXT."""
    return (KEY_COLUMN_TYPES if key else COLUMN_TYPES).get(type(value))


def key_column_types(key_columns: tuple, document: Optional[dict]) -> Optional[tuple]:
    """(name, type) of a keyed source's key columns, from a row image that has them; None
    when one cannot be a column of its own (not a plain identifier, a fixed column's name,
    or no value to type it by): the key then lives in document_id and the JSON only."""
    fixed = {c.lower() for c in KEYED_FIXED_COLUMNS}
    out = []
    for name in key_columns:
        kind = column_type((document or {}).get(name), key=True)
        if kind is None or not _NAME.fullmatch(name) or name.lower() in fixed:
            return None
        out.append((name, kind))
    return tuple(out)


def from_information_schema(data_type: str) -> Optional[str]:
    return _INFORMATION_SCHEMA.get(data_type.lower())


@dataclass
class TableColumns:
    """The typed columns one table has (name -> type), and what was reported already."""

    columns: dict = field(default_factory=dict)
    reported: set = field(default_factory=set)
    keyed: bool = False  # a keyed source's table (its history has an ``expired`` column)
    keys: tuple = ()  # its key columns that are columns (typed as keys: see column_type)

    def by_lower(self) -> dict:
        return {name.lower(): name for name in self.columns}

    def plan(self, documents: list) -> tuple:
        """Columns to add for these documents, and (field, reason) notes not yet reported."""
        lower = self.by_lower()
        fixed = {c.lower() for c in (KEYED_FIXED_COLUMNS if self.keyed else FIXED_COLUMNS)}
        new: dict = {}
        notes = []
        for document in documents:
            for name, value in document.items():
                kind = column_type(value)
                if kind is None or name in self.columns or name in new:
                    continue
                reason = None
                if not _NAME.fullmatch(name):
                    reason = "name is not a plain MySQL identifier"
                elif name.lower() in fixed:
                    reason = "name collides with a fixed column"
                elif name.lower() in lower or name.lower() in {n.lower() for n in new}:
                    reason = "name collides, ignoring case, with another field's column"
                elif len(self.columns) + len(new) >= MAX_TYPED_COLUMNS:
                    reason = f"the table already has {MAX_TYPED_COLUMNS} typed columns"
                if reason is None:
                    new[name] = kind
                else:
                    notes.append((name, reason))
        return new, self._unreported(notes)

    def values(self, document: Optional[dict]) -> tuple:
        """The typed column values for one document, in ``self.columns`` order, and notes."""
        out = []
        notes = []
        for name, kind in self.columns.items():
            value = None if document is None else document.get(name)
            if value is not None and column_type(value, key=name in self.keys) != kind:
                notes.append((name, f"type changed: column is {kind}, value is {type(value).__name__}"))
                value = None
            out.append(value)
        return tuple(out), self._unreported(notes)

    def _unreported(self, notes: list) -> list:
        fresh = []
        for note in notes:
            if note not in self.reported:
                self.reported.add(note)
                fresh.append(note)
        return fresh
