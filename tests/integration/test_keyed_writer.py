"""The writer's table contract for keyed sources (DSQL CDC, DynamoDB) against the real
MariaDB: key columns under the source's names with a unique index, ties on equal
versions broken by tx_id in every order, tombstones that hold against late older changes
and ties, history keyed by (document_id, version, tx_id) with TTL deletes marked, and a
tombstone table from before 0.2.0 brought up to date."""
from __future__ import annotations

import itertools
import uuid
import json

import pytest

from connectors.formats.changes import canonical_key
from connectors.rows.row_images import CURRENT, HISTORY, RowImage, document_json
from connectors.mysql.writer import MySqlWriter
from tests.integration.test_mysql_writer import columns, settings_for

KEYS = ("order_id", "item_id")


def change(order_id, item_id, version, tie, data=None, deleted=False, expired=False, kind=CURRENT):
    key = {"order_id": order_id, "item_id": item_id}
    row = dict(key, **(data or {})) if not deleted else key
    return RowImage(kind, "order_items", canonical_key((order_id, item_id)), version, tie,
                    1_700_000_000_000_000, document_json(row), deleted, False, KEYS, expired)


def both(*args, **kw):
    return [change(*args, **kw), change(*args, kind=HISTORY, **kw)]


def rows(conn, sql_text):
    with conn.cursor() as cursor:
        cursor.execute(sql_text)
        return cursor.fetchall()


def test_key_columns_under_the_source_names_with_a_unique_index(services, mysql_database, mysql_conn):
    writer = MySqlWriter(settings_for(services, mysql_database))
    writer.write(both(1001, "a-42", 10, "tx1", {"quantity": 5, "price": "29.99"}))
    current = columns(mysql_conn, "order_items")
    assert (current["order_id"], current["item_id"], current["quantity"]) == ("bigint", "varchar", "bigint")
    history = columns(mysql_conn, "order_items_history")
    assert history["expired"] == "tinyint" and history["item_id"] == "varchar"
    index = rows(mysql_conn, "SELECT COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS "
                             "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'order_items' "
                             "AND INDEX_NAME = 'ledgersync_key' ORDER BY SEQ_IN_INDEX")
    assert index == (("order_id", 0), ("item_id", 0))
    primary = rows(mysql_conn, "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                               "AND TABLE_NAME = 'order_items_history' AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX")
    assert [c for (c,) in primary] == ["document_id", "version", "tx_id"]
    assert rows(mysql_conn, "SELECT document_id, order_id, item_id, quantity, price FROM order_items") == (
        ('[1001,"a-42"]', 1001, "a-42", 5, "29.99"),)
    writer.close()


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_equal_versions_are_settled_by_the_tie_in_every_arrival_order(services, mysql_database, mysql_conn, order):
    # Four changes of one row: two share version 20 (tie "b" beats "a"), a delete at 30
    # with tie "a" loses to nothing later; then 30/"b" re-inserts after the delete.
    changes = [both(1, "x", 20, "a", {"quantity": 1}), both(1, "x", 20, "b", {"quantity": 2}),
               both(1, "x", 30, "a", deleted=True), both(1, "x", 30, "b", {"quantity": 4})]
    writer = MySqlWriter(settings_for(services, mysql_database))
    for index in order:  # one batch each: the upsert and tombstones decide, not the batch
        writer.write(changes[index])
    assert rows(mysql_conn, "SELECT version, tx_id, quantity FROM order_items") == ((30, "b", 4),)
    history = rows(mysql_conn, "SELECT version, tx_id, deleted, quantity FROM order_items_history "
                               "ORDER BY version, tx_id")
    assert history == ((20, "a", 0, 1), (20, "b", 0, 2), (30, "a", 1, None), (30, "b", 0, 4))
    writer.close()


def test_a_delete_holds_against_older_changes_and_lower_ties_and_expired_is_marked(services, mysql_database,
                                                                                 mysql_conn):
    writer = MySqlWriter(settings_for(services, mysql_database))
    writer.write(both(2, "y", 50, "m", deleted=True, expired=True))
    writer.write(both(2, "y", 40, "z", {"quantity": 9}))  # older version, higher tie
    writer.write(both(2, "y", 50, "a", {"quantity": 8}))  # same version, lower tie
    assert rows(mysql_conn, "SELECT COUNT(*) FROM order_items") == ((0,),)
    assert rows(mysql_conn, "SELECT version, tx_id, deleted, expired, order_id, item_id FROM order_items_history "
                            "WHERE deleted") == ((50, "m", 1, 1, 2, "y"),)
    # The delete's history row keeps the key (in the JSON and its columns) to find it by.
    assert json.loads(rows(mysql_conn, "SELECT document FROM order_items_history WHERE deleted")[0][0]) == {
        "order_id": 2, "item_id": "y"}
    writer.write(both(2, "y", 50, "n", {"quantity": 7}))  # a higher tie at the delete's version
    assert rows(mysql_conn, "SELECT version, tx_id, quantity FROM order_items") == ((50, "n", 7),)
    writer.close()


def test_a_tombstone_table_from_before_the_tie_gains_tx_id(services, mysql_database, mysql_conn):
    with mysql_conn.cursor() as cursor:  # the 0.1.0 shape
        cursor.execute("CREATE TABLE `_ledgersync_tombstones` (`table_name` VARCHAR(64) NOT NULL,"
                       "`document_id` VARCHAR(128) NOT NULL, `version` BIGINT UNSIGNED NOT NULL,"
                       "`deleted_at` DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
                       "PRIMARY KEY (`table_name`, `document_id`))")
        cursor.execute("INSERT INTO `_ledgersync_tombstones` (table_name, document_id, version) "
                       "VALUES ('Person', 'd1', 3)")
    mysql_conn.commit()
    writer = MySqlWriter(settings_for(services, mysql_database))
    old = RowImage(CURRENT, "Person", "d1", 2, "tx-2", None, document_json({"n": 2}))
    new = RowImage(CURRENT, "Person", "d1", 4, "tx-4", None, document_json({"n": 4}))
    writer.write([old])
    assert rows(mysql_conn, "SELECT COUNT(*) FROM Person") == ((0,),)  # the old tombstone still holds
    writer.write([new])
    assert rows(mysql_conn, "SELECT version FROM Person") == ((4,),)
    assert rows(mysql_conn, "SELECT tx_id FROM _ledgersync_tombstones") == (("",),)
    writer.close()


def test_the_writer_creates_its_database_when_missing(services, mysql_conn):
    database = "ledgersync_created_" + uuid.uuid4().hex[:8]
    writer = MySqlWriter(settings_for(services, database))
    try:
        writer.write(both(3, "z", 1, "t", {"quantity": 1}))
        assert rows(mysql_conn, f"SELECT quantity FROM `{database}`.order_items") == ((1,),)
        charset = rows(mysql_conn, "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                                   f"WHERE SCHEMA_NAME = '{database}'")
        assert charset == (("utf8mb4_bin",),)
    finally:
        writer.close()
        with mysql_conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
