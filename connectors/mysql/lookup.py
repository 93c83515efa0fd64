"""Reads what MySQL already holds for a document: its current version and tombstone.

Order mode asks this once per document the job has not seen before, so that a job
started from nothing but MySQL continues after what is there instead of from 0.
"""
from __future__ import annotations

import logging
import time
from typing import Optional

import pymysql

from connectors.mysql import sql
from connectors.mysql.writer import MySqlSettings, backoff_delays, connect, describe_error, is_transient

log = logging.getLogger(__name__)
NO_SUCH_TABLE = 1146


class StoredVersions:
    def __init__(self, settings: MySqlSettings):
        self._settings = settings
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # already broken
                pass
            self._conn = None

    def lookup(self, qldb_table: str, document_id: str) -> tuple:
        """(current version or None, tombstone version or None)."""
        table = sql.table_identifier(qldb_table)
        deadline = time.monotonic() + self._settings.retry_deadline_s
        delays = backoff_delays()
        while True:
            try:
                return (self._one(sql.select_current_versions(table, 1), [document_id]),
                        self._one(sql.select_tombstones(1, lock=False), [table, document_id]))
            except pymysql.err.MySQLError as exc:
                self.close()
                if not is_transient(exc) or time.monotonic() >= deadline:
                    raise
                delay = next(delays)
                log.warning("MySQL %s: transient error %s looking up %s/%s; retrying in %.2fs",
                            self._settings.describe(), describe_error(exc), qldb_table, document_id, delay)
                time.sleep(delay)

    def _one(self, statement: str, params: list) -> Optional[int]:
        if self._conn is None:
            self._conn = connect(self._settings)
            self._conn.autocommit(True)
        try:
            with self._conn.cursor() as cursor:
                cursor.execute(statement, params)
                row = cursor.fetchone()
        except pymysql.err.ProgrammingError as exc:
            if exc.args and exc.args[0] == NO_SUCH_TABLE:
                return None  # nothing written yet
            raise
        return None if row is None else int(row[1])
