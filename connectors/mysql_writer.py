"""Writes batches of revisions into MySQL: guarded upserts, deletes with tombstones.

One batch is one transaction. Transient errors (deadlock, lock wait timeout, lost
connection, connection refused) roll back, reconnect and retry the whole batch with
capped exponential backoff and jitter; since every statement is idempotent a retried
batch can neither duplicate a row nor move one backwards.
"""
from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import pymysql

from connectors import mysql_sql as sql
from connectors.dead_letters import DeadLetter
from connectors.qldb_records import Revision

log = logging.getLogger(__name__)

# MySQL/MariaDB error codes worth retrying: deadlock, lock wait timeout, server gone
# away, lost connection, can't connect, server shutting down, read-only (failover).
TRANSIENT_ERRORS = {1213, 1205, 2006, 2013, 2003, 2002, 1053, 1290, 1836}


@dataclass(frozen=True)
class MySqlSettings:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)  # never in logs or reprs
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_deadline_s: float = 300.0

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.database}"


def connect(settings: MySqlSettings):
    return pymysql.connect(
        host=settings.host, port=settings.port, user=settings.user, password=settings.password,
        database=settings.database, charset="utf8mb4", autocommit=False,
        connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
        write_timeout=settings.read_timeout,
    )


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InternalError, pymysql.err.InterfaceError)):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return code in TRANSIENT_ERRORS or isinstance(exc, pymysql.err.InterfaceError) or code is None
    return isinstance(exc, (ConnectionError, TimeoutError))


def backoff_delays(base: float = 0.1, cap: float = 10.0, rng: Callable[[], float] = random.random):
    """Capped exponential backoff with full jitter: 0..base*2^n, at most cap."""
    attempt = 0
    while True:
        yield min(cap, base * (2 ** attempt)) * (0.5 + rng() / 2)
        attempt += 1


def newest_per_document(revisions: Iterable[Revision]) -> dict:
    """(table, document_id) -> the revision with the highest version in the batch."""
    newest: dict = {}
    for revision in revisions:
        if revision.redacted:
            continue  # a redaction hides old data; it never changes the current view
        key = (revision.table, revision.document_id)
        held = newest.get(key)
        if held is None or revision.version > held.version:
            newest[key] = revision
    return newest


class MySqlWriter:
    def __init__(self, settings: MySqlSettings, sleep: Callable[[float], None] = time.sleep):
        self._settings = settings
        self._sleep = sleep
        self._conn = None
        self._dialect: Optional[sql.Dialect] = None
        self._tables: set = set()
        self.retries = 0

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a dead connection: nothing to save
                pass
            self._conn = None

    def write(self, items: list) -> int:
        """Apply one batch (revisions and dead letters) in one transaction.

        Returns the number of documents whose newest revision in the batch was applied.
        """
        revisions = [i for i in items if isinstance(i, Revision)]
        dead_letters = [i for i in items if isinstance(i, DeadLetter)]
        newest = newest_per_document(revisions)
        if not newest and not dead_letters:
            return 0
        deadline = time.monotonic() + self._settings.retry_deadline_s
        delays = backoff_delays()
        while True:
            try:
                self._write_once(newest, dead_letters)
                return len(newest)
            except Exception as exc:
                self._rollback_quietly()
                if not is_transient(exc) or time.monotonic() >= deadline:
                    raise
                self.retries += 1
                self.close()
                delay = next(delays)
                log.warning("MySQL %s: transient error %s; retrying the batch in %.2fs",
                            self._settings.describe(), _describe_error(exc), delay)
                self._sleep(delay)

    def _connection(self):
        if self._conn is None:
            self._conn = connect(self._settings)
            with self._conn.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                self._dialect = sql.Dialect.from_version_string(cursor.fetchone()[0])
                # Store and compare tx_time in UTC whatever the server's zone is.
                cursor.execute("SET time_zone = '+00:00'")
        return self._conn

    def _ensure_tables(self, conn, tables: Iterable[str]) -> None:
        missing = [t for t in tables if t not in self._tables]
        if not missing and self._tables:
            return
        with conn.cursor() as cursor:
            # DDL commits implicitly in MySQL, so it runs before the batch's transaction.
            if not self._tables:
                cursor.execute(sql.create_tombstones_table())
                cursor.execute(sql.create_dead_letters_table())
            for table in missing:
                cursor.execute(sql.create_current_table(table))
        conn.commit()
        self._tables.update(missing)
        self._tables.add(sql.DEAD_LETTERS_TABLE)

    def _write_once(self, newest: dict, dead_letters: list) -> None:
        conn = self._connection()
        by_table: dict = {}
        for (qldb_table, _doc), revision in newest.items():
            by_table.setdefault(sql.table_identifier(qldb_table), []).append(revision)
        self._ensure_tables(conn, by_table)
        with conn.cursor() as cursor:
            for table, revisions in sorted(by_table.items()):
                self._write_table(cursor, table, revisions)
            if dead_letters:
                params = [p for d in dead_letters for p in d.row()]
                cursor.execute(sql.insert_dead_letters(len(dead_letters)), params)
        conn.commit()

    def _write_table(self, cursor, table: str, revisions: list) -> None:
        dialect = self._dialect
        ids = [r.document_id for r in revisions]
        cursor.execute(sql.select_tombstones(len(ids)), [table, *ids])
        tombstones = {doc: int(version) for doc, version in cursor.fetchall()}
        deletes = [r for r in revisions if r.deleted]
        if deletes:
            params = [p for r in deletes for p in (table, r.document_id, r.version)]
            cursor.execute(sql.record_tombstones(dialect, len(deletes)), params)
            for r in deletes:
                cursor.execute(sql.delete_current(table), [r.document_id, r.version])
        live = [r for r in revisions if not r.deleted and r.version > tombstones.get(r.document_id, -1)]
        if live:
            params = [p for r in live for p in current_row(r)]
            cursor.execute(sql.upsert_current(dialect, table, len(live)), params)

    def _rollback_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except Exception:  # the connection is likely gone; close() follows
                pass


def current_row(revision: Revision) -> tuple:
    tx_time = revision.tx_time.replace(tzinfo=None) if revision.tx_time else None
    document = None if revision.data is None else json.dumps(revision.data, ensure_ascii=False, separators=(",", ":"))
    return (revision.document_id, revision.version, revision.tx_id, tx_time, document)


def _describe_error(exc: BaseException) -> str:
    # pymysql errors carry (code, message); the message never holds the password.
    return f"{type(exc).__name__}{exc.args!r}"
