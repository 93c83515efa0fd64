"""What MySQL must hold after replicating some revisions, and what it does hold.

The expectation is the replication rules applied to the revisions as the decoder sees
them (``expected_current``, shared with the simulators, and ``expected_history``); rows are compared column by column
with the JSON document compared as the exact text stored.
"""
from __future__ import annotations

from connectors.mysql import sql
from connectors.rows.row_images import CURRENT, HISTORY, image_of, utc_naive
from job.cli.tools.simulate.qldb import expected_current
def _row(image, history: bool) -> tuple:
    row = (image.document_id, image.version, image.tx_id, utc_naive(image.tx_time_us), image.document)
    return row + (int(image.deleted), int(image.redacted)) if history else row


def expected_history(revisions) -> dict:
    """(table, document_id, version) -> revision: every revision once, deletes included;
    a redacted version is the redaction (its data gone) whatever arrived first."""
    history: dict = {}
    for r in revisions:
        key = (r.table, r.document_id, r.version)
        if key not in history or (getattr(r, "redacted", False) and not getattr(history[key], "redacted", False)):
            history[key] = r
    return history


def expected_tables(revisions: list, history: bool) -> dict:
    """MySQL table -> primary key -> row, for the current view (and history if on)."""
    tables: dict = {}
    for r in revisions:  # every table seen gets a current view, even if all its documents are deleted
        tables.setdefault(sql.table_identifier(r.table), {})
        if history:
            tables.setdefault(sql.history_table(sql.table_identifier(r.table)), {})
    for (table, document_id), r in expected_current(revisions).items():
        tables[sql.table_identifier(table)][document_id] = _row(image_of(r, CURRENT), False)
    if history:
        for (table, document_id, version), r in expected_history(revisions).items():
            tables[sql.history_table(sql.table_identifier(table))][(document_id, version)] = \
                _row(image_of(r, HISTORY), True)
    return tables


def actual_tables(conn, tables) -> dict:
    out: dict = {}
    with conn.cursor() as cursor:
        for table in tables:
            history = table.endswith(sql.HISTORY_SUFFIX)
            columns = "document_id, version, tx_id, tx_time, document" + (", deleted, redacted" if history else "")
            cursor.execute(f"SELECT {columns} FROM {sql.quote_identifier(table)}")
            rows = {}
            for row in cursor.fetchall():
                row = tuple(row)
                rows[(row[0], row[1]) if history else row[0]] = row
            out[table] = rows
    return out


def diff(expected: dict, actual: dict, limit: int = 10) -> list:
    """Readable differences, at most ``limit``."""
    problems = []
    for table in sorted(set(expected) | set(actual)):
        want, got = expected.get(table, {}), actual.get(table, {})
        for key in sorted(set(want) | set(got), key=str):
            if want.get(key) != got.get(key):
                problems.append(f"{table} {key}: expected {want.get(key)!r}, got {got.get(key)!r}")
                if len(problems) >= limit:
                    return problems
    return problems


def count_rows(conn, tables=None, like: str = None, not_like: str = None) -> int:
    """Rows in ``tables`` (those that exist yet), or in every table of the connection's
    database whose name matches ``like`` / does not match ``not_like`` (SQL LIKE patterns)."""
    with conn.cursor() as cursor:
        query, args = ("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()", [])
        if like:
            query, args = query + " AND TABLE_NAME LIKE %s", args + [like]
        if not_like:
            query, args = query + " AND TABLE_NAME NOT LIKE %s", args + [not_like]
        cursor.execute(query, args)
        existing = {name for (name,) in cursor.fetchall()}
        total = 0
        for table in sorted(existing if tables is None else set(tables) & existing):
            cursor.execute(f"SELECT COUNT(*) FROM {sql.quote_identifier(table)}")
            total += cursor.fetchone()[0]
        return total


def actual_keyed_tables(conn, tables) -> dict:
    """A keyed source's tables (DSQL CDC, DynamoDB) in the shape of
    ``job.cli.tools.simulate.changes.expected_tables``: (version, tie, deleted, expired, data),
    with ``data`` the stored document. Every typed column is checked against the document
    on the way (a column the document lacks is NULL), so "every column" is compared."""
    import json

    out: dict = {}
    with conn.cursor() as cursor:
        for table in tables:
            history = table.endswith(sql.HISTORY_SUFFIX)
            cursor.execute("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                           "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
            kinds = {name: kind.lower() for name, kind in cursor.fetchall()}
            cursor.execute(f"SELECT * FROM {sql.quote_identifier(table)}")
            names = [d[0] for d in cursor.description]
            rows = {}
            for values in cursor.fetchall():
                row = dict(zip(names, values))
                data = json.loads(row["document"])
                for column, value in row.items():
                    if column in sql.HISTORY_COLUMNS or column == sql.EXPIRED_COLUMN:
                        continue
                    want = _typed(data.get(column), kinds[column])
                    assert value == want, f"{table} {row['document_id']}: column {column} is {value!r}, " \
                                          f"the document says {want!r}"
                entry = (int(row["version"]), row["tx_id"], bool(row.get("deleted", False)),
                         bool(row.get(sql.EXPIRED_COLUMN, False)), data)
                key = (row["document_id"], int(row["version"]), row["tx_id"]) if history else row["document_id"]
                rows[key] = entry
            out[table] = rows
    return out


def _typed(want, column_type: str):
    """What a typed column must hold for the document's value ``want``, worked out here
    on its own (not by the writer's code): DECIMAL(p,s) the exact number when it has at
    most p-s digits before the point and s after (else NULL: never rounded), LONGBLOB the
    base64's bytes, DATETIME the instant in UTC; others the JSON value itself."""
    import base64
    import datetime as _dt
    import decimal
    import re

    if isinstance(want, (dict, list)) or want is None:
        return None  # containers live in the JSON only
    if isinstance(want, bool):
        return int(want)
    if column_type.startswith("decimal") and isinstance(want, (str, int)):
        precision, scale = map(int, re.findall(r"\d+", column_type))
        try:
            number = decimal.Decimal(want)
        except decimal.InvalidOperation:
            return None  # text where a number was first seen: JSON only
        after = max(0, -number.as_tuple().exponent)
        before = max(0, number.adjusted() + 1) if number else 0
        return number if after <= scale and before <= precision - scale else None
    if column_type == "longblob" and isinstance(want, str):
        return base64.b64decode(want)
    if column_type.startswith("datetime") and isinstance(want, str):
        moment = _dt.datetime.fromisoformat(want.replace("Z", "+00:00"))
        return moment.astimezone(_dt.timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment
    if column_type in ("longtext",) or column_type.startswith("varchar"):
        return want if isinstance(want, str) else None
    if column_type.startswith("bigint"):
        return want if type(want) is int else None
    if column_type == "double":
        return want if type(want) is float else None
    if column_type.startswith("tinyint"):
        return None  # a bool was handled above: another type
    return want
