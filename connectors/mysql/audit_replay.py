"""The MySQL side of audit-log sync: the ``audit_events`` table and exactly-once replay.

One call of ``AuditReplayer.apply`` is one transaction (split only around DDL, which
MySQL commits implicitly). In it:

1. every released event goes into ``audit_events`` (keyed by server, event time,
   query id, connection id and a hash of the line: a duplicate is a no-op);
2. each statement to replay is looked up in the ledger ``_ledgersync_audit_ledger``
   (same key); one already there is skipped, any other is executed on
   ``audit.replay.database`` and its ledger row written in the same transaction, so a
   restart or a duplicate never applies a statement twice;
3. a statement the target refuses (a non-transient error) becomes a dead letter with
   the error, and replay goes on, or, with ``audit.replay.stop.on.error``, what came
   before is committed and ``ReplayStopped`` is raised;
4. dead letters (late events, unreplayable statements, failures) go into the existing
   ``_ledgersync_dead_letters`` table.

Transient errors (deadlock, lost connection...) roll back and retry the whole call with
backoff, like the QLDB writer; everything in it is idempotent.

DDL: MySQL commits before and after DDL, so a replayed DDL statement can't share a
transaction with its ledger row; the row is written right after it. If the job dies
between the two, the DDL runs once more after the restart and (typically) fails with
"already exists", which is recorded as a dead letter.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from connectors.mysql import sql
from connectors.formats.audit_lines import AuditRecord, utc_datetime
from connectors.dead_letters import DeadLetter
from connectors.mysql.client import MySqlClient, MySqlSettings, connect, is_transient

log = logging.getLogger(__name__)

AUDIT_EVENTS_TABLE = "audit_events"
LEDGER_TABLE = "_ledgersync_audit_ledger"
REPLAY_STAGE = "replay"
INSERT_CHUNK = 500
# Column limits of audit_events; the decoder sends longer values to the dead letters.
MAX_SERVER = 128
MAX_NAME = 255
MAX_LOG_NAME = 512

KEY_COLUMNS = ("server", "event_time", "query_id", "connection_id", "line_sha1")
EVENT_COLUMNS = KEY_COLUMNS + (
    "dialect", "username", "host", "port", "operation", "database_name", "object", "retcode", "extra",
    "log_group", "log_stream", "stream", "shard_id", "sequence_number", "sub_sequence")


class ReplayStopped(RuntimeError):
    """A statement failed on the target and audit.replay.stop.on.error is set."""


def _table(database: str, table: str) -> str:
    return f"{sql.quote_identifier(database)}.{sql.quote_identifier(table)}"


def create_audit_events_table(database: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {_table(database, AUDIT_EVENTS_TABLE)} ("
        f"`server` VARCHAR({MAX_SERVER}) NOT NULL,"
        "`event_time` DATETIME(6) NOT NULL,"
        "`query_id` BIGINT UNSIGNED NOT NULL,"
        "`connection_id` BIGINT UNSIGNED NOT NULL,"
        "`line_sha1` BINARY(20) NOT NULL,"
        "`dialect` VARCHAR(16) NOT NULL,"
        f"`username` VARCHAR({MAX_NAME}) NOT NULL,"
        f"`host` VARCHAR({MAX_NAME}) NOT NULL,"
        "`port` INT UNSIGNED NULL,"
        "`operation` VARCHAR(32) NOT NULL,"
        f"`database_name` VARCHAR({MAX_NAME}) NOT NULL,"
        "`object` LONGTEXT NOT NULL,"
        "`retcode` INT NULL,"
        f"`extra` VARCHAR({MAX_NAME}) NULL,"
        f"`log_group` VARCHAR({MAX_LOG_NAME}) NOT NULL,"
        f"`log_stream` VARCHAR({MAX_LOG_NAME}) NOT NULL,"
        "`stream` VARCHAR(128) NOT NULL,"
        "`shard_id` VARCHAR(128) NOT NULL,"
        "`sequence_number` VARCHAR(128) NOT NULL,"
        "`sub_sequence` INT NOT NULL,"
        "`recorded_at` DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
        # Event time before ids: the ledger look-ups scan one server's time range.
        "PRIMARY KEY (`server`, `event_time`, `query_id`, `connection_id`, `line_sha1`)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    )


def create_ledger_table(database: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {_table(database, LEDGER_TABLE)} ("
        f"`server` VARCHAR({MAX_SERVER}) NOT NULL,"
        "`event_time` DATETIME(6) NOT NULL,"
        "`query_id` BIGINT UNSIGNED NOT NULL,"
        "`connection_id` BIGINT UNSIGNED NOT NULL,"
        "`line_sha1` BINARY(20) NOT NULL,"
        "`applied_at` DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
        "PRIMARY KEY (`server`, `event_time`, `query_id`, `connection_id`, `line_sha1`)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    )


def _insert(database: str, table: str, columns: tuple, rows: int) -> str:
    names = ", ".join(sql.quote_identifier(c) for c in columns)
    values = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * rows)
    # A duplicate key keeps the row as it is (not INSERT IGNORE: that hides real errors).
    return (f"INSERT INTO {_table(database, table)} ({names}) VALUES {values} "
            "ON DUPLICATE KEY UPDATE `server` = `server`")


def insert_audit_events(database: str, rows: int) -> str:
    return _insert(database, AUDIT_EVENTS_TABLE, EVENT_COLUMNS, rows)


def insert_ledger(database: str, rows: int) -> str:
    return _insert(database, LEDGER_TABLE, KEY_COLUMNS, rows)


def select_keys_in_range(database: str, table: str) -> str:
    """Keys of one server's rows in an event-time range (a primary-key prefix scan)."""
    return (f"SELECT `event_time`, `query_id`, `connection_id`, `line_sha1` FROM {_table(database, table)} "
            "WHERE `server` = %s AND `event_time` BETWEEN %s AND %s")


def key_params(record: AuditRecord) -> tuple:
    e = record.event
    return (e.server, utc_datetime(e.event_time_us), e.query_id, e.connection_id, e.line_sha1)


def event_row(record: AuditRecord) -> tuple:
    e = record.event
    return key_params(record) + (
        e.dialect, e.user, e.host, e.port, e.operation, e.database, e.object, e.retcode,
        ",".join(e.extra) if e.extra else None, record.log_group, record.log_stream,
        record.stream, record.shard_id, record.sequence_number, record.sub_sequence)


def dead_letter(record: AuditRecord, reason: str) -> DeadLetter:
    return DeadLetter(stream=record.stream, shard_id=record.shard_id, sequence_number=record.sequence_number,
                      sub_sequence=record.sub_sequence, stage=REPLAY_STAGE, reason=reason,
                      raw=record.event.line.encode("utf-8", "surrogatepass"))


@dataclass
class ApplyResult:
    events: int = 0
    applied: int = 0
    already_applied: int = 0
    failed: int = 0
    late: int = 0
    duplicates: int = 0


class AuditReplayer:
    def __init__(self, settings: MySqlSettings, *, replay_database: Optional[str], stop_on_error: bool = False,
                 sleep: Callable[[float], None] = time.sleep):
        for name in filter(None, (settings.database, replay_database)):
            sql.quote_identifier(name)  # refuse an unsafe name before any SQL is built
        self._settings = settings
        self._replay_db = replay_database
        self._stop_on_error = stop_on_error
        self._mysql = MySqlClient(settings, what="the audit batch", opener=self._open, sleep=sleep,
                                  passthrough=(ReplayStopped,))

    @property
    def retries(self) -> int:
        return self._mysql.retries

    def close(self) -> None:
        self._mysql.close()

    def _open(self):
        # Both databases are created if missing (the user needs CREATE on them).
        conn = connect(dataclasses.replace(self._settings, database=None))
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {sql.quote_identifier(self._settings.database)}")
        conn.select_db(self._settings.database)
        with conn.cursor() as cursor:
            cursor.execute(create_audit_events_table(self._settings.database))
            cursor.execute(create_ledger_table(self._settings.database))
            cursor.execute(sql.create_dead_letters_table())
            if self._replay_db:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS {sql.quote_identifier(self._replay_db)}")
        conn.commit()
        return conn

    def write_dead_letters(self, letters: list) -> None:
        self._mysql.retrying(lambda: self._dead_letters_once(letters))

    def apply(self, released: list, replay: list, late: list = (), dead: Iterable = ()) -> ApplyResult:
        """Record ``released`` events, replay ``replay`` (``Replay`` items, in order), and
        record ``late`` events and ``dead`` (record, reason) pairs as dead letters."""
        dead = list(dead)
        if not released and not replay and not late and not dead:
            return ApplyResult()
        return self._mysql.retrying(lambda: self._apply_once(released, replay, list(late), dead))

    def _dead_letters_once(self, letters: list) -> None:
        conn = self._mysql.connection()
        conn.select_db(self._settings.database)
        with conn.cursor() as cursor:
            for start in range(0, len(letters), INSERT_CHUNK):
                chunk = letters[start:start + INSERT_CHUNK]
                cursor.execute(sql.insert_dead_letters(len(chunk)), [p for d in chunk for p in d.row()])
        conn.commit()

    def _existing(self, cursor, table: str, records: list) -> set:
        """Keys of ``records`` (one server's) already in ``table``."""
        found: set = set()
        by_server: dict = {}
        for record in records:
            by_server.setdefault(record.event.server, []).append(record)
        for server, group in by_server.items():
            times = [r.event.event_time_us for r in group]
            cursor.execute(select_keys_in_range(self._settings.database, table),
                           (server, utc_datetime(min(times)), utc_datetime(max(times))))
            for event_time, query_id, connection_id, sha in cursor.fetchall():
                found.add((server, event_time, int(query_id), int(connection_id), bytes(sha)))
        return found

    def _apply_once(self, released: list, replay: list, late: list, dead: list) -> ApplyResult:
        conn = self._mysql.connection()
        sink_db = self._settings.database
        result = ApplyResult()
        letters = [dead_letter(record, reason) for record, reason in dead]
        stopped: Optional[str] = None
        conn.select_db(sink_db)
        with conn.cursor() as cursor:
            if late:
                recorded = self._existing(cursor, AUDIT_EVENTS_TABLE, late)
                truly_late = [r for r in late if key_params(r) not in recorded]
                result.duplicates = len(late) - len(truly_late)
                result.late = len(truly_late)
                for record in truly_late:
                    letters.append(dead_letter(record, "late: arrived after later events of its server were "
                                                       "replayed; not replayed (raise audit.max.out.of.orderness.ms)"))
                    if stopped is None and self._stop_on_error:
                        stopped = f"late event {record.event.line[:200]!r}"
                released = list(released) + truly_late
            rows = [event_row(r) for r in released]
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start:start + INSERT_CHUNK]
                cursor.execute(insert_audit_events(sink_db, len(chunk)), [p for row in chunk for p in row])
            result.events = len(rows)

            todo = replay if stopped is None else []
            if todo:
                applied = self._existing(cursor, LEDGER_TABLE, [item.record for item in todo])
                ledger: list = []
                conn.select_db(self._replay_db)
                for item in todo:
                    key = key_params(item.record)
                    if key in applied:
                        result.already_applied += 1
                        continue
                    if item.ddl:
                        self._write_ledger(cursor, ledger)
                        conn.commit()  # MySQL would commit here anyway: make it explicit
                    error = self._execute(cursor, item.record.event.object)
                    if error is None:
                        ledger.append(key)
                        applied.add(key)
                        result.applied += 1
                        if item.ddl:
                            self._write_ledger(cursor, ledger)
                            conn.commit()
                        continue
                    result.failed += 1
                    letters.append(dead_letter(item.record, f"replay failed on {self._replay_db}: {error}"))
                    if self._stop_on_error:
                        stopped = f"statement {item.record.event.object[:200]!r} failed: {error}"
                        break
                self._write_ledger(cursor, ledger)
                conn.select_db(sink_db)
            for start in range(0, len(letters), INSERT_CHUNK):
                chunk = letters[start:start + INSERT_CHUNK]
                cursor.execute(sql.insert_dead_letters(len(chunk)), [p for d in chunk for p in d.row()])
        conn.commit()
        if stopped is not None:
            raise ReplayStopped(f"replay stopped (audit.replay.stop.on.error=true): {stopped}; "
                                f"see {sql.DEAD_LETTERS_TABLE} in {sink_db}")
        return result

    def _write_ledger(self, cursor, ledger: list) -> None:
        for start in range(0, len(ledger), INSERT_CHUNK):
            chunk = ledger[start:start + INSERT_CHUNK]
            cursor.execute(insert_ledger(self._settings.database, len(chunk)), [p for key in chunk for p in key])
        ledger.clear()

    @staticmethod
    def _execute(cursor, statement: str) -> Optional[str]:
        """Run one replayed statement; a non-transient error is returned, a transient one raised."""
        try:
            cursor.execute(statement)  # no parameters: the text is sent as logged, % and all
            return None
        except Exception as exc:
            if is_transient(exc):
                raise
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            message = exc.args[1] if len(exc.args) > 1 else str(exc)
            return f"MySQL error {code}: {message}" if code is not None else f"{type(exc).__name__}: {exc}"
