"""Writes batches into MySQL: guarded current-view upserts, insert-once history, deletes
with tombstones, typed columns, order-mode gaps and dead letters; one transaction a batch.

Transient errors (deadlock, lock wait timeout, lost connection, connection refused,
failover) roll back, reconnect and retry the whole batch with capped exponential
backoff and jitter; since every statement is idempotent a retried batch can neither
duplicate a row nor move one backwards. A permanent error for one row sends that row
to the dead-letter table and the rest of the batch is written.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import pymysql

from connectors.mysql import sql
from connectors.mysql.client import MySqlClient, MySqlSettings, connect, describe_error, error_code, is_transient
from connectors.dead_letters import DeadLetter
from connectors.mysql import column_types
from connectors.mysql.schema import TableColumns, from_information_schema, key_column_types
from connectors.rows.row_images import CURRENT, HISTORY, RowImage, utc_naive
from connectors.rows.tags import parse_tags

log = logging.getLogger(__name__)

DUPLICATE_COLUMN = 1060
LOCK_WAIT_TIMEOUT = 1205  # transient (connectors/mysql/client.py): the batch is retried
DDL_LOCK_TIMEOUT_S = 60


def newest_per_document(images: Iterable[RowImage]) -> dict:
    """(table, document_id) -> the newest image in the batch: the highest (version, tx_id),
    as the upsert decides (connectors/mysql/sql.py, ``newer``)."""
    newest: dict = {}
    for image in images:
        key = (image.table, image.document_id)
        held = newest.get(key)
        if held is None or (image.version, image.tx_id) > (held.version, held.tx_id):
            newest[key] = image
    return newest


def unique_history(images: Iterable[RowImage]) -> list:
    """One image per (table, document, version, tx_id) and kind of record: a revision and
    a redaction of the same version both count (tx_id: a keyed source's tie)."""
    seen: dict = {}
    for image in images:
        seen.setdefault((image.table, image.document_id, image.version, image.tx_id, image.redacted), image)
    return list(seen.values())


# A statement stays well under max_allowed_packet (16 MiB on MariaDB, 64 MiB on Aurora).
MAX_STATEMENT_BYTES = 4 * 1024 * 1024


def statement_chunks(images: list, max_bytes: int = MAX_STATEMENT_BYTES):
    """Split rows so that no statement carries more than ``max_bytes`` of documents."""
    chunk, size = [], 0
    for image in images:
        weight = len(image.document or "") + 256  # the other columns and the SQL around them
        if chunk and size + weight > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(image)
        size += weight
    if chunk:
        yield chunk


@dataclass
class WriteStats:
    current_rows: dict = field(default_factory=dict)  # table -> rows sent
    history_rows: dict = field(default_factory=dict)
    dead_letters: int = 0
    gaps: int = 0

    def add(self, counts: dict, table: str, n: int) -> None:
        counts[table] = counts.get(table, 0) + n


class MySqlWriter:
    def __init__(self, settings: MySqlSettings, sleep: Callable[[float], None] = time.sleep,
                 on_trouble: Optional[Callable[[Optional[str], float], None]] = None,
                 on_notice: Optional[Callable[[str], None]] = None):
        self._settings = settings
        # Told each schema note once (a field kept as LONGTEXT, a value that fits no column,
        # an override): the log has them too, but the local runner shows a user these lines.
        self._on_notice = on_notice
        self._mysql = MySqlClient(settings, what="the batch", opener=self._open, sleep=sleep, on_trouble=on_trouble)
        self._dialect: Optional[sql.Dialect] = None
        self._bookkeeping = False
        self._schemas: dict = {}  # MySQL table -> TableColumns
        self._overrides: dict = {}  # MySQL table -> {lower-case column: type} (sink.column.types)
        for override in settings.column_types:
            self._overrides.setdefault(override.table, {})[override.column.lower()] = override.column_type
        self.stats = WriteStats()

    @property
    def retries(self) -> int:
        return self._mysql.retries

    def close(self) -> None:
        self._mysql.close()

    # --- the batch --------------------------------------------------------------------

    def write(self, items: list) -> WriteStats:
        """Apply one batch (row images, gaps, dead letters) in one transaction."""
        images = [i for i in items if isinstance(i, RowImage)]
        current = newest_per_document(i for i in images if i.kind == CURRENT)
        history = unique_history(i for i in images if i.kind == HISTORY)
        dead_letters = [i for i in items if isinstance(i, DeadLetter)]
        gaps = [i for i in items if not isinstance(i, (RowImage, DeadLetter))]
        stats = WriteStats()
        if not (current or history or dead_letters or gaps):
            return stats

        def attempt() -> WriteStats:
            stats = WriteStats()
            self._write_once(list(current.values()), history, dead_letters, gaps, stats)
            return stats

        stats = self._mysql.retrying(attempt)  # a retried batch is idempotent: see the module's doc
        self._merge(stats)
        return stats

    def _merge(self, stats: WriteStats) -> None:
        for table, n in stats.current_rows.items():
            self.stats.add(self.stats.current_rows, table, n)
        for table, n in stats.history_rows.items():
            self.stats.add(self.stats.history_rows, table, n)
        self.stats.dead_letters += stats.dead_letters
        self.stats.gaps += stats.gaps

    def _write_once(self, current: list, history: list, dead_letters: list, gaps: list, stats: WriteStats) -> None:
        conn = self._mysql.connection()
        by_table: dict = {}
        for image in current + history:
            by_table.setdefault(sql.table_identifier(image.table), ([], []))[image.kind == HISTORY].append(image)
        self._prepare_tables(conn, by_table)
        dead_letters = list(dead_letters)
        with conn.cursor() as cursor:
            for table, (current_images, history_images) in sorted(by_table.items()):
                if current_images:
                    dead_letters += self._write_current(cursor, table, current_images, stats)
                if history_images:
                    dead_letters += self._guarded(cursor, history_images, lambda rows: self._insert_history(
                        cursor, table, rows), stats.history_rows, table)
            if gaps:
                params = [p for g in gaps for p in (sql.table_identifier(g.table), g.document_id,
                                                    g.from_version, g.to_version, g.action)]
                cursor.execute(sql.insert_gaps(len(gaps)), params)
                stats.gaps += len(gaps)
            if dead_letters:
                params = [p for d in dead_letters for p in d.row()]
                cursor.execute(sql.insert_dead_letters(len(dead_letters)), params)
                stats.dead_letters += len(dead_letters)
        conn.commit()

    def _write_current(self, cursor, table: str, images: list, stats: WriteStats) -> list:
        ids = [i.document_id for i in images]
        cursor.execute(sql.select_tombstones(len(ids)), [table, *ids])
        tombstones = {doc: (int(version), tx_id) for doc, version, tx_id in cursor.fetchall()}
        deletes = [i for i in images if i.deleted]
        if deletes:
            params = [p for i in deletes for p in (table, i.document_id, i.version, i.tx_id)]
            cursor.execute(sql.record_tombstones(self._dialect, len(deletes)), params)
            for i in deletes:
                cursor.execute(sql.delete_current(table), [i.document_id, i.version, i.version, i.tx_id])
            stats.add(stats.current_rows, table, len(deletes))
        # Newer than the tombstone by (version, tx_id), as delete_current and the upsert decide.
        live = [i for i in images
                if not i.deleted and (i.version, i.tx_id) > tombstones.get(i.document_id, (-1, ""))]
        if not live:
            return []
        return self._guarded(cursor, live, lambda rows: self._upsert_current(cursor, table, rows),
                             stats.current_rows, table)

    def _guarded(self, cursor, images: list, write: Callable[[list], None], counts: dict, table: str) -> list:
        """Write all rows in one statement; if MySQL refuses it for good, write them one by
        one under savepoints and turn the refused ones into dead letters."""
        cursor.execute("SAVEPOINT ledgersync_rows")
        try:
            write(images)
            counts[table] = counts.get(table, 0) + len(images)
            return []
        except pymysql.err.MySQLError as exc:
            if is_transient(exc):
                raise
            cursor.execute("ROLLBACK TO SAVEPOINT ledgersync_rows")
        refused = []
        for image in images:
            cursor.execute("SAVEPOINT ledgersync_row")
            try:
                write([image])
                counts[table] = counts.get(table, 0) + 1
            except pymysql.err.MySQLError as exc:
                if is_transient(exc):
                    raise
                cursor.execute("ROLLBACK TO SAVEPOINT ledgersync_row")
                refused.append(write_dead_letter(image, describe_error(exc)))
        return refused

    def _upsert_current(self, cursor, table: str, images: list) -> None:
        schema = self._schemas[table]
        for chunk in statement_chunks(images):
            params = []
            for image in chunk:
                params += [image.document_id, image.version, image.tx_id, utc_naive(image.tx_time_us),
                           image.document]
                params += self._typed_values(table, schema, image)
            cursor.execute(sql.upsert_current(self._dialect, table, len(chunk), tuple(schema.columns)), params)

    def _insert_history(self, cursor, table: str, images: list) -> None:
        schema = self._schemas[table]
        for redactions in (False, True):
            statement = sql.redact_history if redactions else sql.insert_history
            for chunk in statement_chunks([i for i in images if i.redacted == redactions]):
                params = []
                for image in chunk:
                    params += [image.document_id, image.version, image.tx_id, utc_naive(image.tx_time_us),
                               image.document, image.deleted, image.redacted]
                    if schema.keyed:
                        params.append(image.expired)
                    params += self._typed_values(table, schema, image)
                if redactions:  # QLDB only: keyed sources have no redactions
                    cursor.execute(statement(table, len(chunk), tuple(schema.columns)), params)
                else:
                    cursor.execute(statement(table, len(chunk), tuple(schema.columns), keyed=schema.keyed), params)

    def _typed_values(self, table: str, schema: TableColumns, image: RowImage) -> list:
        values, notes = schema.values(_document(image), parse_tags(image.types))
        self._report(table, notes)
        return list(values)

    # --- schema ---------------------------------------------------------------------

    def _prepare_tables(self, conn, by_table: dict) -> None:
        """Create tables on first sight and add typed columns for new fields (DDL commits
        implicitly in MySQL, so this runs before the batch's transaction)."""
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
                         ((i, _document(i)) for i in current_images + history_images) if d]
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

    def _report(self, table: str, notes: list) -> None:
        for name, text in notes:
            line = f"table {table}: field {name!r} {text}"
            log.warning("%s", line)
            if self._on_notice is not None:
                self._on_notice(line)

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
        typed = key_column_types(image.key_columns, _document(image))
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

    # --- connection -----------------------------------------------------------------

    def _open(self):
        conn = connect(self._settings, create_database=True)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                self._dialect = sql.Dialect.from_version_string(cursor.fetchone()[0])
                # Store and compare tx_time in UTC whatever the server's zone is.
                cursor.execute("SET time_zone = '+00:00'")
        except Exception:
            conn.close()
            raise
        # Another writer may have added columns while we were away.
        self._schemas.clear()
        return conn


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


def _document(image: RowImage) -> Optional[dict]:
    return None if image.document is None else _parsed(image.document)


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> Optional[dict]:
    """A document's JSON, parsed once: a batch reads each document up to four times (the
    typed-column plan and the values, for its current and its history row). The dicts
    are shared, so nothing here or in connectors/mysql/schema.py changes them."""
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def write_dead_letter(image: RowImage, reason: str) -> DeadLetter:
    """A row MySQL refused: its position is the document and version (no Kinesis position)."""
    raw = json.dumps({"table": image.table, "document_id": image.document_id, "version": image.version,
                      "tx_id": image.tx_id, "tx_time_us": image.tx_time_us, "document": image.document,
                      "deleted": image.deleted}, ensure_ascii=False).encode("utf-8")
    position = f"{image.document_id}/{image.version}" + (f"/{image.tx_id}" if image.key_columns else "")
    if len(position) > 200:  # the column holds 255; a hash keeps long ids apart
        position = f"{position[:150]}...{hashlib.sha1(position.encode('utf-8')).hexdigest()}"
    return DeadLetter(stream="", shard_id=image.table[:128], sequence_number=position,
                      stage=f"write-{image.kind}", reason=f"MySQL refused the row: {reason}", raw=raw)
