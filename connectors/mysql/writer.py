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
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import pymysql

from connectors.mysql import sql
from connectors.mysql.credentials import Credentials, SecretSource
from connectors.dead_letters import DeadLetter
from connectors.mysql.schema import TableColumns, from_information_schema
from connectors.mysql.row_images import CURRENT, HISTORY, RowImage, utc_naive

log = logging.getLogger(__name__)

ACCESS_DENIED = 1045
# MySQL/MariaDB error codes worth retrying: deadlock, lock wait timeout, server gone
# away, lost connection, can't connect, server shutting down, read-only (failover).
TRANSIENT_ERRORS = {1213, 1205, 2006, 2013, 2003, 2002, 1053, 1290, 1836, 1047, 1927}
DUPLICATE_COLUMN = 1060


@dataclass(frozen=True)
class MySqlSettings:
    host: str
    port: int
    database: str
    user: str
    password: Optional[str] = field(default=None, repr=False)  # never in logs or reprs
    secret: Optional[SecretSource] = None  # read at connect time instead of a password
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_deadline_s: float = 300.0
    ssl_ca: Optional[str] = None
    history: bool = False

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.database}"

    def credentials(self, refresh: bool = False) -> Credentials:
        if self.secret is None:
            return Credentials(self.user, self.password or "")
        return _SECRETS.get(self.secret, self.user, refresh=refresh)


# A refused login re-reads the secret at most this often per process: during a rotation
# every retry of every writer would otherwise call Secrets Manager (which throttles, and bills).
SECRET_REFRESH_MIN_INTERVAL_S = 5.0


class SecretCache:
    """Each secret's credentials, read once, and again after a refused login, but not
    more often than ``min_interval_s``."""

    def __init__(self, min_interval_s: float = SECRET_REFRESH_MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self._min_interval = min_interval_s
        self._clock = clock
        self._entries: dict = {}  # SecretSource -> (Credentials, when read)
        self.reads = 0

    def get(self, secret: SecretSource, default_user: str, refresh: bool = False) -> Credentials:
        entry = self._entries.get(secret)
        now = self._clock()
        if entry is None or (refresh and now - entry[1] >= self._min_interval):
            entry = self._entries[secret] = (secret.read(default_user), now)
            self.reads += 1
        return entry[0]


_SECRETS = SecretCache()  # per process (one Python worker holds every writer slot of its task)


class SecretLoginRefused(pymysql.err.OperationalError):
    """Login refused (1045) with credentials from a secret, after reading it again.

    Transient: a rotation changes the secret's AWSCURRENT version and the user's password
    at two different moments, so for a while neither the old nor the new secret may match.
    The retry (with backoff, until ``sink.retry.deadline.ms``) reads the secret again."""


def connect(settings: MySqlSettings):
    def attempt(credentials: Credentials):
        return pymysql.connect(
            host=settings.host, port=settings.port, user=credentials.user, password=credentials.password,
            database=settings.database, charset="utf8mb4", autocommit=False,
            connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
            write_timeout=settings.read_timeout,
            ssl={"ca": settings.ssl_ca} if settings.ssl_ca else None,
        )

    try:
        return attempt(settings.credentials())
    except pymysql.err.OperationalError as exc:
        if settings.secret is None or error_code(exc) != ACCESS_DENIED:
            raise
    try:
        return attempt(settings.credentials(refresh=True))  # the secret may have been rotated
    except pymysql.err.OperationalError as exc:
        if error_code(exc) != ACCESS_DENIED:
            raise
        # MySQL's message names the user and host, never the password.
        raise SecretLoginRefused(*exc.args) from None


def error_code(exc: BaseException) -> Optional[int]:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (pymysql.err.InterfaceError, SecretLoginRefused)):
        return True  # the connection is closed or broken: reconnect and retry
    if isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InternalError)):
        return error_code(exc) in TRANSIENT_ERRORS
    return isinstance(exc, (ConnectionError, TimeoutError, OSError))


def backoff_delays(base: float = 0.1, cap: float = 10.0, rng: Callable[[], float] = random.random):
    """Capped exponential backoff with jitter: between half and all of base*2^n, at most cap."""
    attempt = 0
    while True:
        yield min(cap, base * (2 ** attempt)) * (0.5 + rng() / 2)
        attempt += 1


def newest_per_document(images: Iterable[RowImage]) -> dict:
    """(table, document_id) -> the image with the highest version in the batch."""
    newest: dict = {}
    for image in images:
        key = (image.table, image.document_id)
        held = newest.get(key)
        if held is None or image.version > held.version:
            newest[key] = image
    return newest


def unique_history(images: Iterable[RowImage]) -> list:
    """One image per (table, document, version) and kind of record: a revision and a
    redaction of the same version both count."""
    seen: dict = {}
    for image in images:
        seen.setdefault((image.table, image.document_id, image.version, image.redacted), image)
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
    def __init__(self, settings: MySqlSettings, sleep: Callable[[float], None] = time.sleep):
        self._settings = settings
        self._sleep = sleep
        self._conn = None
        self._dialect: Optional[sql.Dialect] = None
        self._bookkeeping = False
        self._schemas: dict = {}  # MySQL table -> TableColumns
        self.retries = 0
        self.stats = WriteStats()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a dead connection: nothing to save
                pass
            self._conn = None

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
        deadline = time.monotonic() + self._settings.retry_deadline_s
        delays = backoff_delays()
        while True:
            try:
                stats = WriteStats()
                self._write_once(list(current.values()), history, dead_letters, gaps, stats)
                self._merge(stats)
                return stats
            except Exception as exc:
                self._rollback_quietly()
                if not is_transient(exc) or time.monotonic() >= deadline:
                    raise
                self.retries += 1
                self.close()
                delay = next(delays)
                log.warning("MySQL %s: transient error %s; retrying the batch in %.2fs",
                            self._settings.describe(), describe_error(exc), delay)
                self._sleep(delay)

    def _merge(self, stats: WriteStats) -> None:
        for table, n in stats.current_rows.items():
            self.stats.add(self.stats.current_rows, table, n)
        for table, n in stats.history_rows.items():
            self.stats.add(self.stats.history_rows, table, n)
        self.stats.dead_letters += stats.dead_letters
        self.stats.gaps += stats.gaps

    def _write_once(self, current: list, history: list, dead_letters: list, gaps: list, stats: WriteStats) -> None:
        conn = self._connection()
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
        tombstones = {doc: int(version) for doc, version in cursor.fetchall()}
        deletes = [i for i in images if i.deleted]
        if deletes:
            params = [p for i in deletes for p in (table, i.document_id, i.version)]
            cursor.execute(sql.record_tombstones(self._dialect, len(deletes)), params)
            for i in deletes:
                cursor.execute(sql.delete_current(table), [i.document_id, i.version])
            stats.add(stats.current_rows, table, len(deletes))
        live = [i for i in images if not i.deleted and i.version > tombstones.get(i.document_id, -1)]
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
                    params += self._typed_values(table, schema, image)
                cursor.execute(statement(table, len(chunk), tuple(schema.columns)), params)

    def _typed_values(self, table: str, schema: TableColumns, image: RowImage) -> list:
        values, notes = schema.values(_document(image))
        _report(table, notes)
        return list(values)

    # --- schema ---------------------------------------------------------------------

    def _prepare_tables(self, conn, by_table: dict) -> None:
        """Create tables on first sight and add typed columns for new fields (DDL commits
        implicitly in MySQL, so this runs before the batch's transaction)."""
        with conn.cursor() as cursor:
            if not self._bookkeeping:
                cursor.execute(sql.create_tombstones_table())
                cursor.execute(sql.create_dead_letters_table())
                cursor.execute(sql.create_gaps_table())
                self._bookkeeping = True
            for table, (current_images, history_images) in by_table.items():
                if table not in self._schemas:
                    cursor.execute(sql.create_current_table(table))
                    if self._settings.history:
                        cursor.execute(sql.create_history_table(table))
                    self._schemas[table] = self._load_columns(cursor, table)
                    if self._settings.history:
                        self._complete_history_columns(cursor, table, self._schemas[table])
                schema = self._schemas[table]
                documents = [d for d in (_document(i) for i in current_images + history_images) if d]
                new, notes = schema.plan(documents)
                _report(table, notes)
                raced = False
                for column, column_type in new.items():
                    targets = [table] + ([sql.history_table(table)] if self._settings.history else [])
                    added = [_add_column(cursor, target, column, column_type) for target in targets]
                    if not added[0]:
                        raced = True  # another writer added it (maybe as another type or spelling)
                        continue
                    schema.columns[column] = column_type
                if raced:
                    self._schemas[table] = self._reload_columns(cursor, table, schema)
        conn.commit()

    def _reload_columns(self, cursor, table: str, schema: TableColumns) -> TableColumns:
        """The table's typed columns as MySQL has them, after another writer added one of
        ours first: its type, or its spelling (``Name`` where we wanted ``name``; MySQL
        column names ignore case), may differ from what we would have chosen, and writing
        our values into it would fail the rows (wrong type) or mix two fields (spelling)."""
        fresh = self._load_columns(cursor, table)
        fresh.reported = schema.reported
        if self._settings.history:
            self._complete_history_columns(cursor, table, fresh)
        return fresh

    def _load_columns(self, cursor, table: str) -> TableColumns:
        cursor.execute(sql.table_columns(), (table,))
        schema = TableColumns()
        for name, data_type in cursor.fetchall():
            if name in sql.HISTORY_COLUMNS:
                continue
            kind = from_information_schema(data_type)
            if kind:
                schema.columns[name] = kind
        return schema

    def _complete_history_columns(self, cursor, table: str, schema: TableColumns) -> None:
        """Add to the history table the typed columns the current view has and it lacks.

        A new column is added to the current view first, then to history (DDL commits on
        its own in MySQL); a connection lost in between (a failover, a restart) leaves it
        in the current view only, and the schema is read back from the current view, so
        without this every later history row would be refused (unknown column) and end as
        a dead letter."""
        history = sql.history_table(table)
        have = self._load_columns(cursor, history).columns
        for column, column_type in schema.columns.items():
            if column in have:
                continue
            log.warning("table %s: adding column %r, which %s lacks", table, column, history)
            _add_column(cursor, history, column, column_type)

    # --- connection -----------------------------------------------------------------

    def _connection(self):
        if self._conn is None:
            self._conn = connect(self._settings)
            with self._conn.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                self._dialect = sql.Dialect.from_version_string(cursor.fetchone()[0])
                # Store and compare tx_time in UTC whatever the server's zone is.
                cursor.execute("SET time_zone = '+00:00'")
            # Another writer may have added columns while we were away.
            self._schemas.clear()
        return self._conn

    def _rollback_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except Exception:  # the connection is likely gone; close() follows
                pass


def _add_column(cursor, table: str, column: str, column_type: str) -> bool:
    """Add a typed column; False when it is there already (another writer was first)."""
    try:
        cursor.execute(sql.add_column(table, column, column_type))
        return True
    except pymysql.err.OperationalError as exc:
        if error_code(exc) != DUPLICATE_COLUMN:
            raise
        return False


def _document(image: RowImage) -> Optional[dict]:
    return None if image.document is None else _parsed(image.document)


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> Optional[dict]:
    """A document's JSON, parsed once: a batch reads each document up to four times (the
    typed-column plan and the values, for its current and its history row). The dicts
    are shared, so nothing here or in connectors/mysql/schema.py changes them."""
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def _report(table: str, notes: list) -> None:
    for name, reason in notes:
        log.warning("table %s: field %r stays in the document JSON only: %s", table, name, reason)


def write_dead_letter(image: RowImage, reason: str) -> DeadLetter:
    """A row MySQL refused: its position is the document and version (no Kinesis position)."""
    raw = json.dumps({"table": image.table, "document_id": image.document_id, "version": image.version,
                      "tx_id": image.tx_id, "tx_time_us": image.tx_time_us, "document": image.document,
                      "deleted": image.deleted}, ensure_ascii=False).encode("utf-8")
    position = f"{image.document_id}/{image.version}"
    if len(position) > 200:  # the column holds 255; a hash keeps long ids apart
        position = f"{position[:150]}...{hashlib.sha1(position.encode('utf-8')).hexdigest()}"
    return DeadLetter(stream="", shard_id=image.table[:128], sequence_number=position,
                      stage=f"write-{image.kind}", reason=f"MySQL refused the row: {reason}", raw=raw)


def describe_error(exc: BaseException) -> str:
    # pymysql errors carry (code, message); the message never holds the password.
    return f"{type(exc).__name__}{exc.args!r}"
