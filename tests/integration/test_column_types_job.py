"""Typed columns through the whole job (decoder, Flink, writer) for each format: QLDB's Ion
decimals, big integers, timestamps and blobs, DynamoDB's N and B, DSQL's numeric and
timestamps, read back from information_schema.COLUMNS and the values."""
from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json

from amazon.ion import simpleion

from connectors.formats.qldb_encode import encode_revision
from job.cli.tools.simulate.dsql_cdc import envelope, to_bytes
from job.cli.tools.simulate.qldb import ensure_stream, put_records
from tests.conftest import run_job, write_properties

T0 = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)
BASE_US = 1_780_000_000_000_000


def column_types_of(conn, table: str) -> dict:
    with conn.cursor() as cursor:
        cursor.execute("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
        return {name: kind.lower() for name, kind in cursor.fetchall()}


def rows(conn, query: str) -> dict:
    with conn.cursor() as cursor:
        cursor.execute(query)
        return {r[0]: r[1:] for r in cursor.fetchall()}


def test_qldb_ion_types_become_decimal_datetime_and_longblob(tmp_path, kinesis, stream_name, mysql_database,
                                                             mysql_conn):
    ensure_stream(kinesis, stream_name, 1)
    records = []
    values = [("123456789.42", 2 ** 70, "2024-01-02T03:04:05.123-08:00", b"\x00\xff"),
              ("0.000125", -(2 ** 64), "2024-07-01T00:00:00.000001Z", b""),  # widens Price to scale 6
              ("1E+200", 3, "0001-01-01T00:00Z", b"x")]  # fits no DECIMAL, outside DATETIME's range
    for n, (price, huge, registered, photo) in enumerate(values):
        data = {"Price": decimal.Decimal(price), "Huge": huge, "Registered": simpleion.loads(registered),
                "Photo": photo, "Name": f"n{n}"}
        records.append((f"k{n}", encode_revision(table="Orders", document_id=f"doc{n}", version=0, data=data,
                                                 tx_id=f"tx{n}", tx_time=T0, sequence_no=n)))
    for batch in records:  # one at a time, so the widening happens on a later batch
        put_records(kinesis, stream_name, [batch])
    output = run_job(write_properties(tmp_path, stream=stream_name, database=mysql_database,
                                      replication={"history": "true"}))
    for table in ("Orders", "Orders_history"):
        kinds = column_types_of(mysql_conn, table)
        assert (kinds["Price"], kinds["Huge"], kinds["Registered"], kinds["Photo"], kinds["Name"]) == (
            "decimal(24,6)", "decimal(27,0)", "datetime(6)", "longblob", "longtext"), kinds
    # The writers' schema notes are in the run's own output, each once (job/cli/local/runner.py).
    assert output.count("table Orders: field 'Price' widened from DECIMAL(20,2) to") == 1, output[-3000:]
    assert output.count("table Orders: field 'Price'") >= 2, output[-3000:]  # and 1E+200 fits no DECIMAL
    got = rows(mysql_conn, "SELECT document_id, Price, Huge, Registered, Photo, document FROM Orders")
    assert got["doc0"][:4] == (decimal.Decimal("123456789.42"), 2 ** 70, _dt.datetime(2024, 1, 2, 11, 4, 5, 123000),
                               b"\x00\xff")
    assert got["doc1"][:4] == (decimal.Decimal("0.000125"), -(2 ** 64), _dt.datetime(2024, 7, 1, 0, 0, 0, 1), b"")
    assert got["doc2"][:4] == (None, 3, None, b"x")
    document = json.loads(got["doc2"][4])
    assert decimal.Decimal(document["Price"]) == decimal.Decimal("1E+200")
    assert document["Registered"] == "0001-01-01T00:00Z"
    assert json.loads(got["doc0"][4])["Registered"] == "2024-01-02T03:04:05.123-08:00"  # offset kept in the JSON
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM _ledgersync_dead_letters")
        assert cursor.fetchone()[0] == 0, output[-3000:]


def _dynamodb(n: int, image: dict) -> bytes:
    stream = {"ApproximateCreationDateTime": BASE_US + n, "ApproximateCreationDateTimePrecision": "MICROSECOND",
              "Keys": {"id": image["id"]}, "NewImage": image, "SizeBytes": 100}
    return json.dumps({"awsRegion": "us-east-1", "eventID": f"e{n}", "eventName": "INSERT",
                       "recordFormat": "application/json", "tableName": "Items", "dynamodb": stream,
                       "eventSource": "aws:dynamodb"}).encode("utf-8")


def test_dynamodb_n_and_b_become_decimal_and_longblob(tmp_path, kinesis, stream_name, mysql_database, mysql_conn):
    ensure_stream(kinesis, stream_name, 1)
    blob = base64.b64encode(b"\x01\x02\xfe").decode()
    put_records(kinesis, stream_name, [
        ("a", _dynamodb(0, {"id": {"N": "1"}, "price": {"N": "29.99"}, "raw": {"B": blob}, "name": {"S": "7.5"}})),
        ("b", _dynamodb(1, {"id": {"N": "2"}, "price": {"N": "12345678901234567890123456789012345678"},
                            "raw": {"B": blob}, "name": {"S": "x"}})),
        ("c", _dynamodb(2, {"id": {"N": "3"}, "price": {"N": "1E+100"}, "raw": {"B": blob}}))])
    run_job(write_properties(tmp_path, stream=stream_name, database=mysql_database, source={"format": "dynamodb"}))
    kinds = column_types_of(mysql_conn, "Items")
    # N: exact, never through a float; a key keeps its indexed text column; an S that
    # looks like a number is still text.
    assert (kinds["price"], kinds["raw"], kinds["name"], kinds["id"]) == (
        "decimal(47,2)", "longblob", "longtext", "varchar(128)"), kinds
    got = rows(mysql_conn, "SELECT id, price, raw, name, document FROM Items")
    assert got["2"][:3] == (decimal.Decimal("12345678901234567890123456789012345678"), b"\x01\x02\xfe", "x")
    assert got["1"][:3] == (decimal.Decimal("29.99"), b"\x01\x02\xfe", "7.5")
    assert got["3"][:2] == (None, b"\x01\x02\xfe")  # 1E+100 fits no DECIMAL: in the JSON only
    assert json.loads(got["3"][3])["price"] == "1E+100"


def test_dsql_numeric_timestamps_booleans_and_integers_get_their_types(tmp_path, kinesis, stream_name,
                                                                       mysql_database, mysql_conn):
    ensure_stream(kinesis, stream_name, 1)
    base = 1_705_318_200_000_000_000
    images = [{"order_id": 1001, "item_id": 42, "quantity": 5, "price": "29.99", "shipped": True,
               "placed": "2024-01-15 10:30:00.123456+02", "local": "2024-01-15T10:30:00", "note": "hello"},
              {"order_id": 1001, "item_id": 43, "quantity": 2 ** 40, "price": "1234567.5", "shipped": False,
               "placed": "2024-01-15T23:00:00Z", "local": "2024-01-16T00:00:00.5", "note": "0123"}]
    put_records(kinesis, stream_name, [(f"p{n}", to_bytes(envelope("c", "order_items", base + n, f"t{n}",
                                                                   after=image)))
                                       for n, image in enumerate(images)])
    run_job(write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             source={"format": "dsql-cdc", "dsql.keys": "order_items=order_id+item_id"}))
    kinds = column_types_of(mysql_conn, "order_items")
    assert (kinds["price"], kinds["placed"], kinds["local"], kinds["shipped"], kinds["quantity"], kinds["note"]) == (
        "decimal(20,2)", "datetime(6)", "datetime(6)", "tinyint(1)", "bigint(20)", "longtext"), kinds
    got = rows(mysql_conn, "SELECT item_id, price, placed, `local`, shipped, quantity, note FROM order_items")
    assert got[42] == (decimal.Decimal("29.99"), _dt.datetime(2024, 1, 15, 8, 30, 0, 123456),
                       _dt.datetime(2024, 1, 15, 10, 30), 1, 5, "hello")
    assert got[43] == (decimal.Decimal("1234567.50"), _dt.datetime(2024, 1, 15, 23, 0),
                       _dt.datetime(2024, 1, 16, 0, 0, 0, 500000), 0, 2 ** 40, "0123")
