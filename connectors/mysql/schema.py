"""Typed columns that follow the documents. Pure: decides, the writer executes.

Each top-level scalar field of a document gets a column of its own the first time it
is seen (beside the whole document in the ``document`` JSON column), of the type its
value asks for (connectors/mysql/column_types.py: the rules per source type, and the
tags the decoders put beside a document), or the type ``sink.column.types`` gives it. A
DECIMAL column is widened (``ALTER TABLE ... MODIFY``) when a later value needs more
digits, never narrowed, and not when its type is an override. A field, or one value of
it, keeps living only in the JSON, reported once, when:
- its name is not a plain identifier (``[A-Za-z0-9_]``, at most 64 characters),
- it collides, ignoring case, with a fixed column (``redacted`` included: history has
  one) or with another field's column (MySQL's column names ignore case),
- its type differs from the column's (e.g. a number where a string was first seen),
- the value does not fit the column exactly (a decimal beyond DECIMAL(65,30), a
  timestamp outside DATETIME's range): never rounded, never a dead letter,
- the table already has ``MAX_TYPED_COLUMNS`` typed columns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from connectors.mysql import column_types as types
from connectors.mysql.sql import EXPIRED_COLUMN, HISTORY_COLUMNS, KEY_COLUMN_TYPES
from connectors.rows.limits import PLAIN_NAME

# Every column ledgersync itself puts in the current view or history: a field of the
# same name (any case) would be a second column of that name in the history table.
FIXED_COLUMNS = HISTORY_COLUMNS
# ... and a keyed source's history has one more (connectors/mysql/sql.py).
KEYED_FIXED_COLUMNS = FIXED_COLUMNS + (EXPIRED_COLUMN,)
MAX_TYPED_COLUMNS = 200

# JSON value type -> column type, for an untagged value; a tagged one (an exact decimal,
# a timestamp, bytes: their JSON form is text) is connectors/mysql/column_types.py's.
COLUMN_TYPES = {bool: types.BOOLEAN, int: types.BIGINT, float: types.DOUBLE, str: types.LONGTEXT}


def column_type(value: Any, key: bool = False) -> Optional[str]:
    """The column type for a scalar JSON value; None for null, lists and objects. A key
    column (keyed sources) is indexed, so its text is VARCHAR, not LONGTEXT (a key keeps
    its JSON type: DynamoDB N keys stay text, compared as the key's exact text)."""
    return (KEY_COLUMN_TYPES if key else COLUMN_TYPES).get(type(value))


def key_column_types(key_columns: tuple, document: Optional[dict]) -> Optional[tuple]:
    """(name, type) of a keyed source's key columns, from a row image that has them; None
    when one cannot be a column of its own (not a plain identifier, a fixed column's name,
    or no value to type it by): the key then lives in document_id and the JSON only."""
    fixed = {c.lower() for c in KEYED_FIXED_COLUMNS}
    out = []
    for name in key_columns:
        kind = column_type((document or {}).get(name), key=True)
        if kind is None or not PLAIN_NAME.fullmatch(name) or name.lower() in fixed:
            return None
        out.append((name, kind))
    return tuple(out)


def from_information_schema(data_type: str, column_type: str = "") -> Optional[str]:
    return types.from_information_schema(data_type, column_type, KEY_COLUMN_TYPES[str])


@dataclass
class TableColumns:
    """The typed columns one table has (name -> type), and what was reported already."""

    columns: dict = field(default_factory=dict)
    reported: set = field(default_factory=set)
    keyed: bool = False  # a keyed source's table (its history has an ``expired`` column)
    keys: tuple = ()  # its key columns that are columns (typed as keys: see column_type)
    # sink.column.types for this table: lower-case column name -> type (MySQL's column
    # names ignore case). Such a column is made with that type and never widened.
    overrides: dict = field(default_factory=dict)

    def by_lower(self) -> dict:
        return {name.lower(): name for name in self.columns}

    def plan(self, documents: list, tags: Optional[list] = None) -> tuple:
        """Columns to add or to widen for these documents (name -> type; a name already in
        ``columns`` is a widening), and (field, reason) notes not yet reported. ``tags``:
        each document's tags (connectors/mysql/column_types.py), in the same order."""
        lower = self.by_lower()
        fixed = {c.lower() for c in (KEYED_FIXED_COLUMNS if self.keyed else FIXED_COLUMNS)}
        new: dict = {}
        notes = []
        for index, document in enumerate(documents):
            document_tags = tags[index] if tags else {}
            for name, value in document.items():
                tag = document_tags.get(name)
                held = new.get(name, self.columns.get(name))
                if held is not None:
                    if tag == types.DECIMAL_TAG and held.startswith(types.DECIMAL) \
                            and name.lower() not in self.overrides:
                        self._widen(name, value, held, new, notes)
                    continue
                try:
                    kind = self.overrides.get(name.lower()) or types.wanted_type(value, tag)
                except types.Unfit as exc:
                    notes.append(((name, "unfit"), (name, f"stays in the document JSON only: {exc}")))
                    continue
                if kind is None:
                    continue
                reason = None
                if not PLAIN_NAME.fullmatch(name):
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
                    notes.append(((name, reason), (name, f"stays in the document JSON only: {reason}")))
        return new, self._unreported(notes)

    @staticmethod
    def _widen(name: str, value: Any, held: str, new: dict, notes: list) -> None:
        try:
            _, integer_digits, scale = types.decimal_shape(value)
        except types.Unfit:
            return  # values() reports it
        if types.fits_decimal(held, integer_digits, scale):
            return
        wider = types.decimal_column(integer_digits, scale, held=held)
        if wider is None:
            notes.append(((name, "unfit"), (name, f"stays in the document JSON only: {value[:40]!r} fits no "
                                                  f"DECIMAL beside the {held} column's digits (at most "
                                                  f"{types.MAX_DECIMAL_DIGITS}, {types.MAX_DECIMAL_SCALE} after "
                                                  "the point); the column stays as it is")))
        else:
            new[name] = wider

    def kept_as_text(self, documents: list, tags: list) -> list:
        """Notes for LONGTEXT columns whose values are tagged (decimals, timestamps,
        bytes): columns from before typed columns, or made by hand. They stay LONGTEXT
        (no silent rewrite of a user's table); the README shows the ALTER TABLE."""
        notes = []
        for document, document_tags in zip(documents, tags):
            for name, tag in document_tags.items():
                if self.columns.get(name) == types.LONGTEXT and name.lower() not in self.overrides:
                    try:
                        wanted = types.wanted_type(document.get(name), tag)
                    except types.Unfit:
                        continue
                    if wanted and wanted != types.LONGTEXT:
                        notes.append(((name, "kept"), (name, f"keeps its LONGTEXT column: its values are {tag}s, "
                                                             f"which a new table would hold as {wanted} (README, "
                                                             "\"Converting a LONGTEXT column\")")))
        return self._unreported(notes)

    def override_notes(self) -> list:
        """sink.column.types entries that an existing column of another type overrules."""
        notes = []
        for name, held in self.columns.items():
            kind = self.overrides.get(name.lower())
            if kind is not None and held != kind:
                notes.append(((name, "override"), (name, f"keeps its existing {held} column; sink.column.types asks "
                                                         f"for {kind}, which ledgersync does not change an existing "
                                                         "column to (ALTER TABLE it yourself)")))
        return self._unreported(notes)

    def values(self, document: Optional[dict], tags: Optional[dict] = None) -> tuple:
        """The typed column values for one document, in ``self.columns`` order, and notes."""
        out = []
        notes = []
        tags = tags or {}
        for name, kind in self.columns.items():
            value = None if document is None else document.get(name)
            if value is not None:
                try:
                    value = types.convert(value, tags.get(name), kind)
                except types.TypeMismatch as exc:
                    notes.append(((name, "type"), (name, f"stays in the document JSON only: {exc}")))
                    value = None
                except types.Unfit as exc:
                    notes.append(((name, "unfit"), (name, f"stays in the document JSON only: {exc}"
                                                          + (" (its type is set by sink.column.types)"
                                                             if name.lower() in self.overrides else ""))))
                    value = None
            out.append(value)
        return tuple(out), self._unreported(notes)

    def _unreported(self, notes: list) -> list:
        """Each (key, note) once: the key names the field and the kind of trouble, so a
        field with many unfit values is reported once, with the first as its example."""
        fresh = []
        for key, note in notes:
            if key not in self.reported:
                self.reported.add(key)
                fresh.append(note)
        return fresh
