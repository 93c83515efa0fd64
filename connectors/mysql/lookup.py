"""Reads what MySQL already holds for a document: its current version and tombstone.

Order mode asks this once per document the job has not seen before, so that a job
started from nothing but MySQL continues after what is there instead of from 0.
"""
from __future__ import annotations

from typing import Optional

import pymysql

from connectors.mysql import sql
from connectors.mysql.client import MySqlClient, MySqlSettings, connect

NO_SUCH_TABLE = 1146


class StoredVersions:
    def __init__(self, settings: MySqlSettings):
        self._mysql = MySqlClient(settings, what="a version lookup", opener=self._open)

    def _open(self):
        conn = connect(self._mysql.settings)
        conn.autocommit(True)  # reads only
        return conn

    def close(self) -> None:
        self._mysql.close()

    def lookup(self, qldb_table: str, document_id: str) -> tuple:
        """(current version or None, tombstone version or None)."""
        table = sql.table_identifier(qldb_table)
        return self._mysql.retrying(
            lambda: (self._one(sql.select_current_versions(table, 1), [document_id]),
                     self._one(sql.select_tombstones(1, lock=False, tie=False), [table, document_id])),
            f" of {qldb_table}/{document_id}")

    def _one(self, statement: str, params: list) -> Optional[int]:
        try:
            with self._mysql.connection().cursor() as cursor:
                cursor.execute(statement, params)
                row = cursor.fetchone()
        except pymysql.err.ProgrammingError as exc:
            if exc.args and exc.args[0] == NO_SUCH_TABLE:
                return None  # nothing written yet
            raise
        return None if row is None else int(row[1])
