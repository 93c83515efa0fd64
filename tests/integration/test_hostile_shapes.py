"""Hostile document shapes are valid documents: fields named like ledgersync's own
columns (any case), names that differ only in case, names over 64 characters or equal
in their first 64, reserved words, spaces and dots, a field whose type changes between
versions. Every revision is replicated (current view and history) with its complete
JSON, nothing is dead-lettered, and each typed column follows the README's rules.
Also: two writers with stale schemas racing to add the same column in two spellings
and types (the writer re-reads the table instead of writing into the wrong column)."""
from __future__ import annotations

import datetime as _dt
import json
import random

from connectors.mysql import sql
from connectors.mysql.client import MySqlSettings
from connectors.mysql.writer import MySqlWriter
from connectors.formats.qldb import decode_record
from connectors.formats.qldb_encode import encode_revision
from connectors.rows.row_images import CURRENT, HISTORY, RowImage, document_json
from job.cli.tools.simulate.qldb import ensure_stream, put_records
from tests.conftest import run_job, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables

T0 = _dt.datetime(2026, 3, 1, tzinfo=_dt.timezone.utc)
LONG_1 = "L" * 64 + "_one"  # equal to LONG_2 in their first 64 characters
LONG_2 = "L" * 64 + "_two"
EXACTLY_64 = "e" * 64
# The type of `amount` changes with the version: an integer, a string, a struct.
AMOUNTS = (17, "seventeen", {"value": 17})


def hostile_document(doc: int, version: int) -> dict:
    return {
        "document_id": f"not-{doc}", "version": 1000 + version, "deleted": True, "redacted": "yes",
        "Redacted": 1, "tx_id": 7, "tx_time": "yesterday", "document": {"nested": True}, "DOCUMENT": "x",
        "Name": f"Name {doc}", "name": f"name {doc}", "NAME": doc,
        LONG_1: 1, LONG_2: "two", EXACTLY_64: version,
        "select": doc, "order": f"o{version}", "key": version % 2 == 0, "where": 0.5 * doc, "from": None,
        "first name": "Ann", "a.b": 1, "a b.c": {"d": 1},
        "amount": AMOUNTS[version],
        "plain": f"{doc}/{version}",
    }


def payloads(documents: int) -> list:
    out = []
    for doc in range(documents):
        for version in range(len(AMOUNTS)):
            out.append((f"k{doc}", encode_revision(
                table="Hostile", document_id=f"doc{doc:04d}", version=version, data=hostile_document(doc, version),
                tx_id=f"tx{doc}-{version}", tx_time=T0 + _dt.timedelta(seconds=doc * 10 + version))))
    random.Random(4).shuffle(out)
    return out + out[: len(out) // 5]  # a fifth put twice


def typed_columns(conn, table: str) -> dict:
    with conn.cursor() as cursor:
        cursor.execute("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
        return {name: kind for name, kind in cursor.fetchall() if name not in sql.HISTORY_COLUMNS}


_TYPES = {"bigint": (int,), "double": (float,), "longtext": (str,), "tinyint": (bool,)}


def expected_typed(document: dict, column: str, kind: str):
    """The README's rule: a column holds its own field's value when the value has the
    column's type, NULL otherwise (another type, a struct or list, no such field)."""
    value = document.get(column)
    if value is None or type(value) not in _TYPES[kind]:
        return None
    return int(value) if isinstance(value, bool) else value


def test_hostile_shapes_are_replicated_whole_and_typed_by_the_rules(tmp_path, kinesis, stream_name, mysql_database,
                                                                    mysql_conn):
    records = payloads(documents=60)
    ensure_stream(kinesis, stream_name, 2)
    put_records(kinesis, stream_name, records)
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             sink={"batch.max.rows": "50"}, replication={"history": "true"})
    output = run_job(props)

    revisions = [decode_record(data).revision for _key, data in records]
    expected = expected_tables(revisions, history=True)
    assert diff(expected, actual_tables(mysql_conn, expected)) == [], output[-3000:]
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM _ledgersync_dead_letters")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT COUNT(*), SUM(redacted), SUM(deleted) FROM Hostile_history")
        assert cursor.fetchone() == (180, 0, 0)  # our flags, not the documents' fields of those names

    current, history = typed_columns(mysql_conn, "Hostile"), typed_columns(mysql_conn, "Hostile_history")
    assert current == history
    lower = {name.lower() for name in current}
    assert len(lower) == len(current)
    assert {"name", "select", "order", "key", "where", EXACTLY_64, "plain", "amount"} <= lower
    assert "Name" in current  # every document spells it Name first
    assert current["select"] == "bigint" and current["key"] == "tinyint" and current["where"] == "double"
    assert current["amount"] in ("bigint", "longtext")  # the type of the first version written
    for absent in (LONG_1, LONG_2, "first name", "a.b", "a b.c", "from", "Redacted", "DOCUMENT"):
        assert absent.lower() not in lower

    for table, key_columns in (("Hostile", "document_id"), ("Hostile_history", "document_id, version")):
        names = list(current)
        with mysql_conn.cursor() as cursor:
            cursor.execute(f"SELECT {key_columns}, document, {', '.join(sql.quote_identifier(n) for n in names)} "
                           f"FROM {sql.quote_identifier(table)}")
            rows = cursor.fetchall()
        width = 2 if table.endswith("_history") else 1
        for row in rows:
            document = json.loads(row[width])
            for name, value in zip(names, row[width + 1:]):
                assert value == expected_typed(document, name, current[name]), (table, row[:width], name, value)


def _settings(services, database) -> MySqlSettings:
    return MySqlSettings(host=services.HOST, port=services.MYSQL_PORT, database=database, user=services.MYSQL_USER,
                         password=services.MYSQL_PASSWORD, history=True, retry_deadline_s=30)


def _image(kind, doc, data):
    return RowImage(kind, "Race", doc, 0, f"tx-{doc}", 1_700_000_000_000_000, document_json(data))


def test_writers_racing_to_add_a_column_in_two_spellings_and_types_lose_no_row(services, mysql_database,
                                                                               mysql_conn):
    first, second = MySqlWriter(_settings(services, mysql_database)), MySqlWriter(_settings(services, mysql_database))
    first.write([_image(CURRENT, "a0", {"other": 1}), _image(HISTORY, "a0", {"other": 1})])
    second.write([_image(CURRENT, "b0", {"other": 2}), _image(HISTORY, "b0", {"other": 2})])
    # Both know the table now; the first adds `Qty` as a number, which the second does not see.
    first.write([_image(CURRENT, "a1", {"Qty": 5}), _image(HISTORY, "a1", {"Qty": 5})])
    # The second meets `qty` as text: ADD COLUMN fails (1060, names ignore case). Before,
    # it then wrote its text into the BIGINT column `Qty`: refused, dead letters.
    stats = second.write([_image(CURRENT, "b1", {"qty": "five"}), _image(HISTORY, "b1", {"qty": "five"})])
    assert stats.dead_letters == 0
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT document_id, Qty, JSON_EXTRACT(document, '$.qty') FROM Race ORDER BY document_id")
        assert cursor.fetchall() == (("a0", None, None), ("a1", 5, None), ("b0", None, None), ("b1", None, '"five"'))
        cursor.execute("SELECT document_id, Qty FROM Race_history ORDER BY document_id")
        assert cursor.fetchall() == (("a0", None), ("a1", 5), ("b0", None), ("b1", None))
        cursor.execute("SELECT COUNT(*) FROM _ledgersync_dead_letters")
        assert cursor.fetchone()[0] == 0
    first.close()
    second.close()
