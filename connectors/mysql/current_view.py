"""Reads MySQL's current view (one row per live document) for ``ledgersync verify
--against-mysql``; the comparison itself is connectors/formats/qldb_reconcile.py."""
from __future__ import annotations

from typing import Iterator

import pymysql
import pymysql.cursors

from connectors.formats.qldb_reconcile import CurrentRow
from connectors.mysql import sql
from connectors.mysql.client import MySqlSettings, connect, error_code

NO_SUCH_TABLE = 1146


def read_current_rows(settings: MySqlSettings, qldb_tables: list) -> Iterator[CurrentRow]:
    """Every row of each QLDB table's current view, streamed (a table can be large); a table
    not created yet has no rows. Then the tombstones of those tables (``deleted`` rows): a
    document the stream deleted after the export is newer in MySQL, not missing."""
    conn = connect(settings)
    try:
        conn.autocommit(True)  # reads only
        for qldb_table in qldb_tables:
            table = sql.quote_identifier(sql.table_identifier(qldb_table))
            cursor = conn.cursor(pymysql.cursors.SSCursor)
            try:
                cursor.execute(f"SELECT `document_id`, `version`, `document` FROM {table}")
            except pymysql.err.ProgrammingError as exc:
                cursor.close()
                if error_code(exc) == NO_SUCH_TABLE:
                    continue
                raise
            try:
                for document_id, version, document in cursor:
                    if isinstance(document, (bytes, bytearray)):
                        document = document.decode("utf-8")
                    yield CurrentRow(qldb_table, str(document_id), int(version), document)
            finally:
                cursor.close()
        yield from _tombstones(conn, qldb_tables)
    finally:
        conn.close()


def _tombstones(conn, qldb_tables: list) -> Iterator[CurrentRow]:
    by_identifier = {sql.table_identifier(t): t for t in qldb_tables}
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    try:
        try:
            cursor.execute(f"SELECT `table_name`, `document_id`, `version` FROM "
                           f"{sql.quote_identifier(sql.TOMBSTONES_TABLE)}")
        except pymysql.err.ProgrammingError as exc:
            if error_code(exc) == NO_SUCH_TABLE:  # nothing deleted yet
                return
            raise
        for table, document_id, version in cursor:
            if table in by_identifier:
                yield CurrentRow(by_identifier[table], str(document_id), int(version), None, deleted=True)
    finally:
        cursor.close()
