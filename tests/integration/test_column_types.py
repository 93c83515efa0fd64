"""Typed columns on the real MariaDB: exact decimals, big integers, timestamps and bytes as
real MySQL types, read back through information_schema and the values; widening; values
no column holds exactly; existing LONGTEXT columns; sink.column.types. The writer alone
(no Flink): the job-level tests per format are in test_column_types_job.py."""
from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json
import logging
import re

from hypothesis import example, HealthCheck, given, settings, strategies as st

from amazon.ion import simpleion

from connectors.formats.qldb_encode import encode_revision
from connectors.formats.qldb import decode_record
from connectors.mysql.column_types import parse_overrides
from connectors.rows.row_images import CURRENT, HISTORY, RowImage, image_of
from connectors.mysql.writer import MySqlWriter
from tests.integration.test_mysql_writer import settings_for

T0 = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)


def qldb_images(table: str, document_id: str, version: int, data: dict, history: bool = True) -> list:
    """Row images of a revision as the QLDB decoder makes them (its tags included)."""
    revision = decode_record(encode_revision(table=table, document_id=document_id, version=version, data=data,
                                             tx_id=f"tx{document_id}{version}", tx_time=T0,
                                             sequence_no=version)).revision
    return [image_of(revision, CURRENT)] + ([image_of(revision, HISTORY)] if history else [])


def column_types_of(conn, table: str) -> dict:
    with conn.cursor() as cursor:
        cursor.execute("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
        return {name: kind.lower() for name, kind in cursor.fetchall()}


def fetch(conn, query: str, args=()) -> list:
    with conn.cursor() as cursor:
        cursor.execute(query, args)
        return list(cursor.fetchall())


def test_ion_decimal_big_int_timestamp_and_blob_get_real_types(services, mysql_database, mysql_conn):
    writer = MySqlWriter(settings_for(services, mysql_database))
    data = {"Price": decimal.Decimal("123456789.42"), "Huge": 2 ** 70,
            "Registered": simpleion.loads("2024-01-02T03:04:05.123-08:00"), "Photo": b"\x00\xff\x10raw",
            "Name": "x", "Count": 3, "Ratio": 0.5, "Active": True}
    stats = writer.write(qldb_images("Orders", "o1", 0, data))
    writer.close()
    assert stats.dead_letters == 0
    for table in ("Orders", "Orders_history"):
        kinds = column_types_of(mysql_conn, table)
        assert (kinds["Price"], kinds["Huge"], kinds["Registered"], kinds["Photo"]) == (
            "decimal(20,2)", "decimal(27,0)", "datetime(6)", "longblob"), kinds
        assert (kinds["Name"], kinds["Count"], kinds["Ratio"], kinds["Active"]) == (
            "longtext", "bigint(20)", "double", "tinyint(1)")
    row = fetch(mysql_conn, "SELECT Price, Huge, Registered, Photo, document FROM Orders")[0]
    assert row[0] == decimal.Decimal("123456789.42") and row[1] == decimal.Decimal(2 ** 70)
    assert row[2] == _dt.datetime(2024, 1, 2, 11, 4, 5, 123000)  # UTC
    assert row[3] == b"\x00\xff\x10raw"
    document = json.loads(row[4])  # the JSON keeps the source's text, the offset included
    assert document["Registered"] == "2024-01-02T03:04:05.123-08:00" and document["Price"] == "123456789.42"
    assert document["Huge"] == str(2 ** 70)
    # Summing and comparing need no casts now.
    assert fetch(mysql_conn, "SELECT SUM(Price) + 1, Registered < '2024-01-03' FROM Orders")[0] == (
        decimal.Decimal("123456790.42"), 1)


def test_a_wider_decimal_widens_the_column_and_keeps_every_earlier_value(services, mysql_database, mysql_conn,
                                                                          caplog):
    writer = MySqlWriter(settings_for(services, mysql_database))
    writer.write(qldb_images("Ledger", "a", 0, {"amount": decimal.Decimal("12.50")}))
    assert column_types_of(mysql_conn, "Ledger")["amount"] == "decimal(20,2)"
    later = [("b", decimal.Decimal("0.125")),  # more digits after the point
             ("c", decimal.Decimal("123456789012345678901234.5")),  # more before it
             ("d", decimal.Decimal("-7"))]  # fits: nothing changes
    with caplog.at_level(logging.WARNING):
        for document_id, amount in later:
            assert writer.write(qldb_images("Ledger", document_id, 0, {"amount": amount})).dead_letters == 0
    writer.close()
    assert "field 'amount' widened from" in caplog.text
    for table in ("Ledger", "Ledger_history"):
        assert column_types_of(mysql_conn, table)["amount"] == "decimal(30,3)"  # 27 integer digits, 3 after
    stored = dict(fetch(mysql_conn, "SELECT document_id, amount FROM Ledger"))
    assert stored == {"a": decimal.Decimal("12.50"), "b": decimal.Decimal("0.125"),
                      "c": decimal.Decimal("123456789012345678901234.5"), "d": decimal.Decimal("-7")}
    assert dict(fetch(mysql_conn, "SELECT document_id, amount FROM Ledger_history")) == stored


def test_a_second_writer_with_an_older_picture_never_narrows_a_widened_column(services, mysql_database, mysql_conn):
    first, second = MySqlWriter(settings_for(services, mysql_database)), MySqlWriter(settings_for(services,
                                                                                                    mysql_database))
    first.write(qldb_images("Ledger", "a", 0, {"amount": decimal.Decimal("1.5")}))
    second.write(qldb_images("Ledger", "b", 0, {"amount": decimal.Decimal("2.5")}))  # both know DECIMAL(19,1)
    first.write(qldb_images("Ledger", "c", 0, {"amount": decimal.Decimal("1.12345")}))  # -> scale 5
    second.write(qldb_images("Ledger", "d", 0, {"amount": decimal.Decimal("1.123")}))  # its picture: scale 1
    first.close()
    second.close()
    assert column_types_of(mysql_conn, "Ledger")["amount"] == "decimal(23,5)"
    assert dict(fetch(mysql_conn, "SELECT document_id, amount FROM Ledger")) == {
        "a": decimal.Decimal("1.5"), "b": decimal.Decimal("2.5"), "c": decimal.Decimal("1.12345"),
        "d": decimal.Decimal("1.123")}


def test_values_no_column_holds_exactly_stay_in_the_json_reported_once_never_dead_letters(
        services, mysql_database, mysql_conn, caplog):
    writer = MySqlWriter(settings_for(services, mysql_database))
    with caplog.at_level(logging.WARNING):
        stats = [writer.write(qldb_images("Odd", "ok", 0, {
                     "amount": decimal.Decimal("1.5"), "when": simpleion.loads("2024-05-06T07:08:09Z")})),
                 writer.write(qldb_images("Odd", "big", 0, {
                     "amount": decimal.Decimal("1E+300"), "when": simpleion.loads("0001-01-01T00:00:00Z")})),
                 writer.write(qldb_images("Odd", "big2", 0, {
                     "amount": decimal.Decimal("-1E+70"), "when": simpleion.loads("0500-01-01T00:00:00Z")})),
                 writer.write(qldb_images("Odd", "fine", 0, {
                     "amount": decimal.Decimal("-1E-31"),
                     "when": simpleion.loads("2024-05-06T07:08:09.1234567Z")}))]
    writer.close()
    assert all(s.dead_letters == 0 for s in stats)
    assert fetch(mysql_conn, "SELECT COUNT(*) FROM _ledgersync_dead_letters") == [(0,)]
    kinds = column_types_of(mysql_conn, "Odd")
    assert (kinds["amount"], kinds["when"]) == ("decimal(19,1)", "datetime(6)")  # as they were
    rows = {r[0]: r[1:] for r in fetch(mysql_conn, "SELECT document_id, amount, `when`, document FROM Odd")}
    assert rows["ok"][:2] == (decimal.Decimal("1.5"), _dt.datetime(2024, 5, 6, 7, 8, 9))
    for document_id, amount, when in (("big", "1E+300", "0001-01-01T00:00:00Z"),
                                      ("big2", "-1E+70", "0500-01-01T00:00:00Z"),
                                      ("fine", "-1E-31", "2024-05-06T07:08:09.1234567Z")):
        assert rows[document_id][:2] == (None, None), document_id  # never rounded into the column
        document = json.loads(rows[document_id][2])
        assert (decimal.Decimal(document["amount"]), document["when"]) == (decimal.Decimal(amount), when)
    # Reported once per field (with the first value as its example), not once per value.
    assert caplog.text.count("field 'amount' stays in the document JSON only") == 1
    assert caplog.text.count("field 'when' stays in the document JSON only") == 1
    assert "'1E+300'" in caplog.text and "outside DATETIME's range" in caplog.text


def test_an_existing_longtext_column_is_kept_and_said_so_once(services, mysql_database, mysql_conn, caplog):
    with mysql_conn.cursor() as cursor:  # a table as an older ledgersync made it
        cursor.execute("CREATE TABLE Old (`document_id` VARCHAR(128) NOT NULL, `version` BIGINT UNSIGNED NOT NULL, "
                       "`tx_id` VARCHAR(128) NOT NULL, `tx_time` DATETIME(6) NULL, `document` JSON NULL, "
                       "`price` LONGTEXT NULL, PRIMARY KEY (`document_id`)) DEFAULT CHARSET=utf8mb4 "
                       "COLLATE=utf8mb4_bin")
    mysql_conn.commit()
    notices = []
    writer = MySqlWriter(settings_for(services, mysql_database, history=False), on_notice=notices.append)
    with caplog.at_level(logging.WARNING):
        for n in range(3):
            writer.write(qldb_images("Old", f"d{n}", 0, {"price": decimal.Decimal(f"{n}.10")}, history=False))
    writer.close()
    assert column_types_of(mysql_conn, "Old")["price"] == "longtext"
    assert dict(fetch(mysql_conn, "SELECT document_id, price FROM Old")) == {"d0": "0.10", "d1": "1.10",
                                                                            "d2": "2.10"}
    assert caplog.text.count("field 'price' keeps its LONGTEXT column") == 1
    assert "DECIMAL(20,2)" in caplog.text
    # ... and the same line, once, to whoever shows it to the user (the runner's output).
    assert [n for n in notices if "keeps its LONGTEXT column" in n] == [
        next(n for n in notices if n.startswith("table Old: field 'price' keeps its LONGTEXT column"))]


def test_sink_column_types_overrides_are_used_and_never_widened(services, mysql_database, mysql_conn, caplog):
    overrides = parse_overrides("Orders.price=DECIMAL(12,2); Orders.placed=DATETIME(3); Orders.qty=DECIMAL(10,0)")
    writer = MySqlWriter(settings_for(services, mysql_database, column_types=overrides))
    with caplog.at_level(logging.WARNING):
        writer.write(qldb_images("Orders", "a", 0, {"price": decimal.Decimal("9.5"), "qty": 7,
                                                    "placed": simpleion.loads("2024-01-02T03:04:05.250Z")}))
        writer.write(qldb_images("Orders", "b", 0, {"price": decimal.Decimal("9.125"), "qty": 8,
                                                    "placed": simpleion.loads("2024-01-02T03:04:05.2501Z")}))
    writer.close()
    kinds = column_types_of(mysql_conn, "Orders")
    assert (kinds["price"], kinds["placed"], kinds["qty"]) == ("decimal(12,2)", "datetime(3)", "decimal(10,0)")
    rows = {r[0]: r[1:] for r in fetch(mysql_conn, "SELECT document_id, price, placed, qty FROM Orders")}
    assert rows["a"] == (decimal.Decimal("9.50"), _dt.datetime(2024, 1, 2, 3, 4, 5, 250000), decimal.Decimal(7))
    assert rows["b"] == (None, None, decimal.Decimal(8))  # never rounded into the override's digits
    assert "set by sink.column.types" in caplog.text


# --- property: what is stored equals the source exactly --------------------------------------

_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: abs(d.as_tuple().exponent) <= 40 and len(d.as_tuple().digits) <= 60)
_big_ints = st.one_of(st.integers(min_value=2 ** 63, max_value=10 ** 64), st.integers(max_value=-2 ** 63 - 1,
                                                                                      min_value=-10 ** 64))
_offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59)
_instants = st.datetimes(min_value=_dt.datetime(1000, 1, 2), max_value=_dt.datetime(9999, 12, 30))


def _ion_timestamp(moment: _dt.datetime, offset_minutes: int):
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return simpleion.loads(moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{sign}{hours:02d}:{minutes:02d}")


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(st.tuples(_decimals, _big_ints, _instants, _offsets, st.binary(max_size=40)),
                      min_size=1, max_size=8))
# Found by hypothesis: a lone value with 31 digits after the point fits no DECIMAL, so the
# field never gets a column.
@example(batch=[(decimal.Decimal("9.999999999999990E-16"), 2 ** 63, _dt.datetime(2000, 1, 1), 0, b"")])
# Found by hypothesis: 28 digits after the point, the last a zero, stored exactly in scale 27.
@example(batch=[(decimal.Decimal("2602010.2487167575782197187019465850"), 2 ** 63, _dt.datetime(2000, 1, 1), 0, b""),
                (decimal.Decimal("1.123456789012345678901234567"), 0, _dt.datetime(2000, 1, 1), 0, b"")])
def test_stored_values_equal_the_ion_source_exactly(services, mysql_database, mysql_conn, batch):
    """Decimals compare equal as Decimal (a wider column pads zeros, never rounds), big
    integers as integers, timestamps to the microsecond in UTC, blobs byte for byte; a value
    beyond DECIMAL(65,30) or DATETIME's range is NULL in its column and exact in the JSON."""
    writer = MySqlWriter(settings_for(services, mysql_database, history=False))
    table = f"P{abs(hash(repr(batch))) % 10 ** 9}"
    images = []
    for n, (number, huge, moment, offset, raw) in enumerate(batch):
        images += qldb_images(table, f"d{n}", 0, {"d": number, "h": huge, "t": _ion_timestamp(moment, offset),
                                                  "b": raw}, history=False)
    for start in range(0, len(images), 3):  # several batches: later ones may widen the columns
        assert writer.write(images[start:start + 3]).dead_letters == 0
    writer.close()
    kinds = column_types_of(mysql_conn, table)
    # No value of the batch fitted any DECIMAL (more than 30 digits after the point): then
    # the field has no column at all, and lives in the JSON only.
    d_column = "d" if "d" in kinds else "NULL AS d"
    rows = {r[0]: r[1:] for r in fetch(mysql_conn, f"SELECT document_id, {d_column}, h, t, b, document FROM `{table}`")}
    precision, scale = map(int, re.findall(r"\d+", kinds["d"])) if "d" in kinds else (0, 0)
    for n, (number, huge, moment, offset, raw) in enumerate(batch):
        d, h, t, b, document = rows[f"d{n}"]
        utc = moment - _dt.timedelta(minutes=offset)
        # Stored exactly when the column as it ended up holds it (columns only ever widen, so
        # such a value fitted when it was written); else NULL there, and exact in the JSON.
        # A column is made for the digits as written; a value is stored when it fits the
        # column exactly, and trailing zeros after the point need no room (2.50 fits
        # DECIMAL(2,1)), so they are not counted there.
        written_after = max(0, -number.as_tuple().exponent)
        digits_after = max(0, -number.normalize().as_tuple().exponent)
        digits_before = max(0, number.adjusted() + 1) if number else 0
        if "d" not in kinds:
            assert d is None and written_after > 30, (number, kinds)
        elif digits_after <= scale and digits_before <= precision - scale:
            assert d == number, (number, d)
        else:
            assert d is None, (number, d, precision, scale)
        assert decimal.Decimal(json.loads(document)["d"]) == number
        assert h == huge
        assert t == utc.replace(tzinfo=None), (moment, offset, t)
        assert b == raw
        assert base64.b64decode(json.loads(document)["b"]) == raw
    with mysql_conn.cursor() as cursor:
        cursor.execute(f"DROP TABLE `{table}`")
