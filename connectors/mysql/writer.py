"""Writes batches into MySQL: guarded current-view upserts, insert-once history, deletes
with tombstones, typed columns, order-mode gaps and dead letters; one transaction a batch.

Transient errors (deadlock, lock wait timeout, lost connection, connection refused,
failover) roll back, reconnect and retry the whole batch with capped exponential
backoff and jitter; since every statement is idempotent a retried batch can neither
duplicate a row nor move one backwards. A permanent error for one row sends that row
to the dead-letter table and the rest of the batch is written.

The tables themselves (created on first sight, typed columns added and widened) are
connectors/mysql/tables.py's; the writer buffers nothing itself: it is handed a batch,
has ``Tables.prepare`` make the tables ready for it, and executes it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import pymysql

from connectors.mysql import sql
from connectors.mysql.client import MySqlClient, MySqlSettings, connect, describe_error, is_transient
from connectors.dead_letters import DeadLetter
from connectors.mysql.schema import TableColumns
from connectors.mysql.tables import Tables, document_of
from connectors.rows.row_images import CURRENT, HISTORY, RowImage, utc_naive
from connectors.rows.tags import parse_tags

log = logging.getLogger(__name__)


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
        # Table DDL (create, add and widen typed columns) is connectors/mysql/tables.py's.
        self._tables = Tables(settings, self._report)
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
        self._tables.prepare(conn, by_table)
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
        schema = self._tables.schema(table)
        for chunk in statement_chunks(images):
            params = []
            for image in chunk:
                params += [image.document_id, image.version, image.tx_id, utc_naive(image.tx_time_us),
                           image.document]
                params += self._typed_values(table, schema, image)
            cursor.execute(sql.upsert_current(self._dialect, table, len(chunk), tuple(schema.columns)), params)

    def _insert_history(self, cursor, table: str, images: list) -> None:
        schema = self._tables.schema(table)
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
        values, notes = schema.values(document_of(image), parse_tags(image.types))
        self._report(table, notes)
        return list(values)

    def _report(self, table: str, notes: list) -> None:
        for name, text in notes:
            line = f"table {table}: field {name!r} {text}"
            log.warning("%s", line)
            if self._on_notice is not None:
                self._on_notice(line)

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
        self._tables.forget()  # another writer may have added columns while we were away
        return conn


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
