"""The benchmark's MySQL side: the per-record and the batched consumer ledgersync is
compared with, the database ceiling (the same rows as batched guarded upserts, no
Flink), checks that every consumer wrote the right thing, and the latency read-out.
No Kinesis here (job/cli/tools/bench/stream.py is the Kinesis side; job/cli/tools/bench/main.py puts them together).
"""
from __future__ import annotations

import datetime as _dt
import math
import random
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional

import pymysql

from connectors.mysql import sql
from connectors.mysql.client import MySqlSettings, connect, is_transient
from connectors.mysql.writer import MySqlWriter
from connectors.rows.row_images import CURRENT, HISTORY, image_of, utc_naive

# What today's Lambda consumers do: one transaction per this many records.
COMMIT_EVERY = 10
# The column the latency run adds to each history table: MySQL's own clock at insert.
WRITTEN_AT = "bench_written_at"


# --- the per-record consumer --------------------------------------------------------

class PerRecordConsumer:
    """Per revision: read the stored version with ``SELECT ... FOR UPDATE``, ``REPLACE
    INTO`` the current view if the revision is newer, ``REPLACE INTO`` the history
    table; commit every ``COMMIT_EVERY`` revisions. A deadlock or lock wait timeout
    (gap locks of concurrent consumers) rolls back and replays the uncommitted ones.

    It writes the fixed columns only (no typed column per field, no tombstones), which
    is less work than ledgersync does per row.
    """

    def __init__(self, settings: MySqlSettings, history: bool = True, commit_every: int = COMMIT_EVERY):
        self._settings = settings
        self._history = history
        self._commit_every = commit_every
        self._conn = None
        self._uncommitted: list = []
        self.applied = 0
        self.statements = 0
        self.retries = 0

    def connect(self) -> None:
        self._connection()

    def create_tables(self, qldb_tables: Iterable[str]) -> None:
        """The tables, made before the run as a Lambda consumer's deployment would."""
        conn = self._connection()
        with conn.cursor() as cursor:
            for qldb_table in qldb_tables:
                table = sql.table_identifier(qldb_table)
                cursor.execute(sql.create_current_table(table))
                if self._history:
                    cursor.execute(sql.create_history_table(table))
        conn.commit()

    def apply(self, revision) -> None:
        self._uncommitted.append(revision)
        try:
            self._apply_one(revision)
            if len(self._uncommitted) >= self._commit_every:
                self._commit()
        except pymysql.err.MySQLError as exc:
            if not is_transient(exc):
                raise
            self._replay()

    def flush(self) -> None:
        while self._uncommitted:
            try:
                self._commit()
            except pymysql.err.MySQLError as exc:
                if not is_transient(exc):
                    raise
                self._replay()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _replay(self) -> None:
        """Roll back and apply every uncommitted revision again, until it goes through."""
        attempt = 0
        while True:
            attempt += 1
            self.retries += 1
            try:
                if self._conn is not None:
                    self._conn.rollback()
            except pymysql.err.MySQLError:
                self.close()
            # Short and jittered: the other side of a deadlock is usually done at once.
            time.sleep(random.uniform(0.001, 0.002 * min(attempt, 50)))
            try:
                for revision in self._uncommitted:
                    self._apply_one(revision)
                if len(self._uncommitted) >= self._commit_every:
                    self._commit()
                return
            except pymysql.err.MySQLError as exc:
                if not is_transient(exc):
                    raise

    def _commit(self) -> None:
        self._connection().commit()
        self.statements += 1
        self.applied += len(self._uncommitted)
        self._uncommitted = []

    def _apply_one(self, revision) -> None:
        conn = self._connection()
        table = sql.table_identifier(revision.table)
        image = image_of(revision, CURRENT)
        quoted = sql.quote_identifier(table)
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT `version` FROM {quoted} WHERE `document_id` = %s FOR UPDATE",
                           (image.document_id,))
            row = cursor.fetchone()
            self.statements += 1
            if not revision.redacted and (row is None or image.version > int(row[0])):
                if image.deleted:
                    cursor.execute(f"DELETE FROM {quoted} WHERE `document_id` = %s", (image.document_id,))
                else:
                    cursor.execute(
                        f"REPLACE INTO {quoted} (`document_id`, `version`, `tx_id`, `tx_time`, `document`) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        (image.document_id, image.version, image.tx_id, utc_naive(image.tx_time_us), image.document))
                self.statements += 1
            if self._history and not revision.redacted:
                cursor.execute(
                    f"REPLACE INTO {sql.quote_identifier(sql.history_table(table))} "
                    "(`document_id`, `version`, `tx_id`, `tx_time`, `document`, `deleted`) VALUES (%s, %s, %s, %s, %s, %s)",
                    (image.document_id, image.version, image.tx_id, utc_naive(image.tx_time_us), image.document,
                     image.deleted))
                self.statements += 1

    def _connection(self):
        if self._conn is None:
            self._conn = connect(self._settings)
            with self._conn.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")
        return self._conn


# --- the batched consumer ------------------------------------------------------------

def batch_images(revisions: Iterable, history: bool = True) -> list:
    """The rows one GetRecords batch becomes: a current image of the newest revision of
    each document in the batch only (the older ones would be refused by the guard anyway,
    so a careful consumer never sends them), and a history image of every revision."""
    newest: dict = {}
    everything = []
    for revision in revisions:
        everything.append(revision)
        if revision.redacted:
            continue  # a redaction never moves the current view
        key = (revision.table, revision.document_id)
        held = newest.get(key)
        if held is None or revision.version > held.version:
            newest[key] = revision
    images = [image_of(r, CURRENT) for r in newest.values()]
    if history:
        images += [image_of(r, HISTORY) for r in everything]
    return images


class BatchedConsumer:
    """What a careful engineer writes in a Lambda today: per GetRecords batch, the newest
    revision per document, then ledgersync's own writer (guarded multi-row upserts,
    insert-once history, its retries), one transaction a batch. It connects, and makes
    its tables and typed columns, on its first batch, as the writer does in the job."""

    def __init__(self, settings: MySqlSettings, history: bool = True):
        self._writer = MySqlWriter(settings)
        self._history = history

    @property
    def retries(self) -> int:
        return self._writer.retries

    def apply_batch(self, revisions: list) -> None:
        images = batch_images(revisions, self._history)
        if images:
            self._writer.write(images)  # one transaction

    def close(self) -> None:
        self._writer.close()


# --- the database ceiling -------------------------------------------------------------

def ceiling_batches(revisions: Iterable, batch_revisions: int, history: bool = True) -> list:
    """The rows ledgersync's writer gets, in batches of ``batch_revisions`` revisions:
    a current image and (history on) a history image of each revision."""
    batches, batch = [], []
    for revision in revisions:
        if not revision.redacted:
            batch.append(image_of(revision, CURRENT))
        if history:
            batch.append(image_of(revision, HISTORY))
        if len(batch) >= batch_revisions * (2 if history else 1):
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


@dataclass
class CeilingRun:
    seconds: float
    batches: int
    retries: int


def upsert_ceiling(settings: MySqlSettings, batches: list) -> CeilingRun:
    """Write prepared batches with ledgersync's own writer (multi-row guarded upserts,
    insert-once history), one transaction a batch, on one connection, nothing else."""
    writer = MySqlWriter(settings)
    started = time.monotonic()
    try:
        for batch in batches:
            writer.write(batch)
    finally:
        writer.close()
    return CeilingRun(time.monotonic() - started, len(batches), writer.retries)


# --- databases, checks and the latency read-out -----------------------------------------

def admin_connection(host: str, port: int, user: str, password: str):
    return pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True, charset="utf8mb4")


def create_database(conn, name: str) -> None:
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {sql.quote_identifier(name)}")
        cursor.execute(f"CREATE DATABASE {sql.quote_identifier(name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")


def drop_database(conn, name: str) -> None:
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {sql.quote_identifier(name)}")


@dataclass
class Expected:
    """What every consumer must leave in MySQL for the pre-loaded workload."""

    documents: dict  # QLDB table -> documents
    newest_version: int  # every document's newest version
    history_rows: dict  # QLDB table -> distinct revisions


@dataclass
class Check:
    ok: bool
    current_rows: int
    current_at_newest: int
    history_rows: int
    problems: list = field(default_factory=list)


def check_tables(conn, database: str, expected: Expected) -> Check:
    """Row counts per table against the workload: every document at its newest version,
    every distinct revision once in history."""
    check = Check(True, 0, 0, 0)
    db = sql.quote_identifier(database)
    with conn.cursor() as cursor:
        for qldb_table, documents in expected.documents.items():
            table = sql.table_identifier(qldb_table)
            current = f"{db}.{sql.quote_identifier(table)}"
            cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(`version` = %s), 0) FROM {current}",
                           (expected.newest_version,))
            rows, newest = (int(v) for v in cursor.fetchone())
            cursor.execute(f"SELECT COUNT(*) FROM {db}.{sql.quote_identifier(sql.history_table(table))}")
            history = int(cursor.fetchone()[0])
            check.current_rows += rows
            check.current_at_newest += newest
            check.history_rows += history
            if rows != documents or newest != documents:
                check.problems.append(f"{table}: {rows} rows, {newest} at version {expected.newest_version}, "
                                      f"expected {documents}")
            if history != expected.history_rows[qldb_table]:
                check.problems.append(f"{sql.history_table(table)}: {history} rows, "
                                      f"expected {expected.history_rows[qldb_table]}")
    check.ok = not check.problems
    return check


def prepare_latency_tables(conn, database: str, qldb_tables: list) -> None:
    """Create the tables ledgersync would, plus a history column MySQL fills with its own
    clock at insert (the writer lists its columns, so this one takes its default)."""
    db = sql.quote_identifier(database)
    with conn.cursor() as cursor:
        cursor.execute(f"USE {db}")
        for qldb_table in qldb_tables:
            table = sql.table_identifier(qldb_table)
            cursor.execute(sql.create_current_table(table))
            cursor.execute(sql.create_history_table(table))
            cursor.execute(f"ALTER TABLE {sql.quote_identifier(sql.history_table(table))} ADD COLUMN "
                           f"{sql.quote_identifier(WRITTEN_AT)} DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)")


def history_count(conn, database: str, qldb_tables: list) -> int:
    db = sql.quote_identifier(database)
    total = 0
    with conn.cursor() as cursor:
        for qldb_table in qldb_tables:
            history = sql.quote_identifier(sql.history_table(sql.table_identifier(qldb_table)))
            cursor.execute(f"SELECT COUNT(*) FROM {db}.{history}")
            total += int(cursor.fetchone()[0])
    return total


_EPOCH = _dt.datetime(1970, 1, 1)


def latencies_ms(conn, database: str, qldb_tables: list, measured_from_us: int) -> list:
    """Put-to-written time of each revision put at or after ``measured_from_us``, in ms:
    MySQL's insert time (UTC: the writer's session runs in UTC) minus the put time the
    revision carries in its data."""
    db = sql.quote_identifier(database)
    out = []
    with conn.cursor() as cursor:
        for qldb_table in qldb_tables:
            history = sql.quote_identifier(sql.history_table(sql.table_identifier(qldb_table)))
            cursor.execute(f"SELECT JSON_VALUE(`document`, '$.put_us'), {sql.quote_identifier(WRITTEN_AT)} "
                           f"FROM {db}.{history}")
            for put_us, written_at in cursor.fetchall():
                put_us = int(put_us)
                if put_us < measured_from_us:
                    continue
                written_us = (written_at - _EPOCH) // _dt.timedelta(microseconds=1)
                out.append((written_us - put_us) / 1000.0)
    return out


def percentile(values: list, fraction: float) -> Optional[float]:
    """Nearest-rank percentile (``fraction`` 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))
    return ordered[min(len(ordered), max(1, rank)) - 1]
