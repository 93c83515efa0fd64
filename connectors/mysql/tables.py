"""The tables a MySQL writer writes into: created on first sight (with the bookkeeping
tables), their typed columns added and widened as the data asks, and what they hold
read back. DDL commits implicitly in MySQL, so this runs before a batch's transaction
(connectors/mysql/writer.py, which executes the batch, calls ``prepare`` first).

Several writers (slots, subtasks, jobs) may change one table at once: an ADD COLUMN that
another writer made first is read back as MySQL has it, and widening a DECIMAL runs under
the table's named lock from the type MySQL holds now, so no writer narrows a column.
"""
from __future__ import annotations

import functools
import json
import logging
from typing import Callable, Optional

import pymysql

from connectors.mysql import column_types, sql
from connectors.mysql.client import MySqlSettings, error_code
from connectors.mysql.schema import TableColumns, from_information_schema, key_column_types
from connectors.rows.row_images import RowImage
from connectors.rows.tags import parse_tags

log = logging.getLogger(__name__)

DUPLICATE_COLUMN = 1060
LOCK_WAIT_TIMEOUT = 1205  # transient (connectors/mysql/client.py): the batch is retried
DDL_LOCK_TIMEOUT_S = 60


class Tables:
    def __init__(self, settings: MySqlSettings, report: Callable[[str, list], None]):
        self._settings = settings
        self._report = report  # (table, [(field, note)]): the writer logs and shows them
        self._bookkeeping = False
        self._schemas: dict = {}  # MySQL table -> TableColumns
        self._overrides: dict = {}  # MySQL table -> {lower-case column: type} (sink.column.types)
        for override in settings.column_types:
            self._overrides.setdefault(override.table, {})[override.column.lower()] = override.column_type

    def schema(self, table: str) -> TableColumns:
        """A table's typed columns, as ``prepare`` left them for this batch."""
        return self._schemas[table]

    def forget(self) -> None:
        """After a reconnect: another writer may have added columns while we were away."""
        self._schemas.clear()

    def prepare(self, conn, by_table: dict) -> None:
        """Create tables on first sight and add typed columns for new fields (``by_table``:
        MySQL table -> (current images, history images) of the batch). DDL commits
        implicitly in MySQL, so this runs before the batch's transaction."""
        with conn.cursor() as cursor:
            if not self._bookkeeping:
                cursor.execute(sql.create_tombstones_table())
                cursor.execute(sql.tombstones_lack_tx_id())
                if cursor.fetchone()[0]:
                    log.warning("adding tx_id to %s (a table from before 0.2.0)", sql.TOMBSTONES_TABLE)
                    cursor.execute(sql.add_tombstones_tx_id())
                cursor.execute(sql.create_dead_letters_table())
                cursor.execute(sql.create_gaps_table())
                self._bookkeeping = True
            for table, (current_images, history_images) in by_table.items():
                if table not in self._schemas:
                    keyed = next((i for i in current_images + history_images if i.key_columns), None)
                    key_columns = self._key_columns(table, keyed)
                    cursor.execute(sql.create_current_table(table, key_columns))
                    if self._settings.history:
                        cursor.execute(sql.create_history_table(table, key_columns))
                    self._schemas[table] = self._load_columns(cursor, table, keyed is not None)
                    self._report(table, self._schemas[table].override_notes())
                    if self._settings.history:
                        self._complete_history_columns(cursor, table, self._schemas[table])
                schema = self._schemas[table]
                typed = [(d, parse_tags(i.types)) for i, d in
                         ((i, document_of(i)) for i in current_images + history_images) if d]
                documents, tags = [d for d, _ in typed], [t for _, t in typed]
                new, notes = schema.plan(documents, tags)
                self._report(table, notes + schema.kept_as_text(documents, tags))
                raced = False
                for column, column_type in new.items():
                    if column in schema.columns:
                        continue  # a widening: below, under the table's lock
                    added = [_add_column(cursor, target, column, column_type) for target in self._tables_of(table)]
                    if not added[0]:
                        raced = True  # another writer added it (maybe as another type or spelling)
                        continue
                    schema.columns[column] = column_type
                if raced:
                    schema = self._schemas[table] = self._reload_columns(cursor, table, schema)
                    new, notes = schema.plan(documents, tags)  # the other writer's column may be narrower
                    self._report(table, notes)
                widen = {c: t for c, t in new.items() if c in schema.columns}
                if widen:
                    self._widen_columns(cursor, table, schema, widen)
        conn.commit()

    def _tables_of(self, table: str) -> list:
        """The MySQL tables a source table's typed columns live in: its current view, and its
        history table when history is on (a column is added to or widened in both)."""
        return [table] + ([sql.history_table(table)] if self._settings.history else [])

    def _widen_columns(self, cursor, table: str, schema: TableColumns, widen: dict) -> None:
        """Widen DECIMAL columns (name -> the type this batch needs) under the table's named
        lock, from the type MySQL has now: another writer may have widened it further
        since we read it, and an ALTER from our older picture would narrow it again."""
        lock = sql.ddl_lock_name(self._settings.database, table)
        cursor.execute("SELECT GET_LOCK(%s, %s)", (lock, DDL_LOCK_TIMEOUT_S))
        if cursor.fetchone()[0] != 1:
            raise pymysql.err.OperationalError(LOCK_WAIT_TIMEOUT, f"waited {DDL_LOCK_TIMEOUT_S}s for lock {lock} "
                                                                  f"to widen columns of {table}")
        try:
            for column, needed in widen.items():
                final = needed
                for target in self._tables_of(table):
                    held = _column_type(cursor, target, column)
                    if held is None or not held.startswith(column_types.DECIMAL):
                        continue  # gone, or made another type by someone else: left alone
                    wider = _wider_decimal(held, needed)
                    if wider != held:
                        self._report(target, [(column, f"widened from {held} to {wider} for a value with more digits")])
                        cursor.execute(sql.modify_column(target, column, wider))
                    if target == table:
                        final = wider
                schema.columns[column] = final
        finally:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (lock,))
            cursor.fetchall()

    def _key_columns(self, table: str, image: Optional[RowImage]) -> tuple:
        """A keyed source's key columns with their types, from the first row seen (a table
        that exists already keeps what it has: CREATE TABLE IF NOT EXISTS)."""
        if image is None:
            return ()
        typed = key_column_types(image.key_columns, document_of(image))
        if typed is None:
            log.warning("table %s: key columns %s cannot all be columns (names, or values to type them by); "
                        "the key is in document_id and the document JSON only", table, list(image.key_columns))
            return ()
        return typed

    def _reload_columns(self, cursor, table: str, schema: TableColumns) -> TableColumns:
        """The table's typed columns as MySQL has them, after another writer added one of
        ours first: its type, or its spelling (``Name`` where we wanted ``name``; MySQL
        column names ignore case), may differ from what we would have chosen, and writing
        our values into it would fail the rows (wrong type) or mix two fields (spelling)."""
        fresh = self._load_columns(cursor, table, schema.keyed)
        fresh.reported = schema.reported
        if self._settings.history:
            self._complete_history_columns(cursor, table, fresh)
        return fresh

    def _load_columns(self, cursor, table: str, keyed: bool = False) -> TableColumns:
        cursor.execute(sql.table_columns(), (table,))
        schema = TableColumns(keyed=keyed, overrides=self._overrides.get(table, {}))
        fixed = sql.HISTORY_COLUMNS + ((sql.EXPIRED_COLUMN,) if keyed else ())
        for name, data_type, full_type in cursor.fetchall():
            if name in fixed:
                continue
            kind = from_information_schema(data_type, full_type)
            if kind:
                schema.columns[name] = kind
        # Only key columns are VARCHAR (connectors/mysql/sql.py, KEY_COLUMN_TYPES).
        schema.keys = tuple(n for n, kind in schema.columns.items() if kind == sql.KEY_COLUMN_TYPES[str])
        return schema

    def _complete_history_columns(self, cursor, table: str, schema: TableColumns) -> None:
        """Add to the history table the typed columns the current view has and it lacks.

        A new column is added to the current view first, then to history (DDL commits on
        its own in MySQL); a connection lost in between (a failover, a restart) leaves it
        in the current view only, and the schema is read back from the current view, so
        without this every later history row would be refused (unknown column) and end as
        a dead letter."""
        history = sql.history_table(table)
        have = self._load_columns(cursor, history, schema.keyed).columns
        for column, column_type in schema.columns.items():
            held = have.get(column)
            if held is not None and held != column_type and held.startswith(column_types.DECIMAL) \
                    and column_type.startswith(column_types.DECIMAL) and _wider_decimal(held, column_type) != held:
                # A widening the current view got and history did not (a connection lost between them).
                self._widen_columns(cursor, table, schema, {column: column_type})
                continue
            if column in have:
                continue
            log.warning("table %s: adding column %r, which %s lacks", table, column, history)
            _add_column(cursor, history, column, column_type)


def _add_column(cursor, table: str, column: str, column_type: str) -> bool:
    """Add a typed column; False when it is there already (another writer was first)."""
    try:
        cursor.execute(sql.add_column(table, column, column_type))
        return True
    except pymysql.err.OperationalError as exc:
        if error_code(exc) != DUPLICATE_COLUMN:
            raise
        return False


def _column_type(cursor, table: str, column: str) -> Optional[str]:
    cursor.execute(sql.column_type_of(), (table, column))
    row = cursor.fetchone()
    return None if row is None else from_information_schema(row[0], row[1])


def _wider_decimal(held: str, needed: str) -> str:
    """The narrowest DECIMAL at least as wide as both, on each side of the point."""
    held_precision, held_scale = column_types.decimal_args(held)
    precision, needed_scale = column_types.decimal_args(needed)
    scale = max(needed_scale, held_scale)
    integer = max(precision - needed_scale, held_precision - held_scale)
    if (integer, scale) == (held_precision - held_scale, held_scale) \
            or integer + scale > column_types.MAX_DECIMAL_DIGITS:
        return held  # as wide already; or too wide for any DECIMAL: its values are reported
    return column_types.decimal_type(integer, scale)


# Documents up to this long (characters of JSON) are parsed once and kept (``_parsed``);
# longer ones are parsed each time they are read. The cache holds 4,096 documents, text and
# dict: of 100 KB documents that was about 1 GB, the growth that kept a backfill of a
# 300 MB export over 1.5 GiB (tests/integration/test_large_export.py); of documents up to
# 8 KB it is at most about 100 MB, and parsing a long document again costs little next to
# writing it.
MAX_CACHED_DOCUMENT = 8 * 1024


def document_of(image: RowImage) -> Optional[dict]:
    if image.document is None:
        return None
    return _parsed(image.document) if len(image.document) <= MAX_CACHED_DOCUMENT else _parse(image.document)


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> Optional[dict]:
    """A document's JSON, parsed once: a batch reads each document up to four times (the
    typed-column plan and the values, for its current and its history row). The dicts
    are shared, so nothing here or in connectors/mysql/schema.py changes them."""
    return _parse(text)


def _parse(text: str) -> Optional[dict]:
    value = json.loads(text)
    return value if isinstance(value, dict) else None
