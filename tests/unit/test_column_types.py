"""The type rules (connectors/mysql/column_types.py) and the tags each decoder reports."""
from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json

import pytest
from amazon.ion import simpleion
from hypothesis import given, strategies as st

from connectors.formats import dsql_cdc, dynamodb
from connectors.formats.qldb import decode_record
from connectors.formats.qldb_encode import encode_revision
from connectors.mysql import column_types as types
from connectors.mysql.schema import TableColumns
from job.config.properties import PropertiesError, parse_groups
from job.cli.tools.simulate.dsql_cdc import envelope, to_bytes

T0 = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)


def test_qldb_tags_ion_decimals_big_ints_timestamps_and_blobs():
    data = {"Price": decimal.Decimal("1.10"), "Huge": 2 ** 70, "Small": 5, "When": simpleion.loads("2024T"),
            "Photo": b"\x01", "Name": "1.10", "Ratio": 0.5}
    revision = decode_record(encode_revision(table="T", document_id="d", version=0, data=data, tx_id="t",
                                             tx_time=T0)).revision
    assert json.loads(revision.data_types) == {"Price": "decimal", "Huge": "decimal", "When": "timestamp",
                                               "Photo": "blob"}
    plain = decode_record(encode_revision(table="T", document_id="d", version=0, data={"a": 1}, tx_id="t",
                                          tx_time=T0)).revision
    assert plain.data_types is None  # most rows carry nothing extra


def test_dynamodb_tags_n_and_b_and_dsql_tags_numeric_and_timestamp_text():
    record = json.dumps({"eventID": "e", "eventName": "INSERT", "tableName": "T", "dynamodb": {
        "ApproximateCreationDateTime": 1_780_000_000_000, "Keys": {"id": {"S": "k"}},
        "NewImage": {"id": {"S": "k"}, "n": {"N": "1.5"}, "b": {"B": "AQ=="}, "s": {"S": "1.5"}}}}).encode()
    assert json.loads(dynamodb.decode(record, dynamodb.DynamoDbSettings()).data_types) == {"n": "decimal",
                                                                                            "b": "blob"}
    settings = dsql_cdc.DsqlSettings(keys={"t": ("id",)})
    change = dsql_cdc.decode(to_bytes(envelope("c", "t", 10, "x", after={
        "id": 1, "p": "29.99", "at": "2024-01-15 10:30:00+00", "zip": "01234", "word": "abc", "n": 7})), settings)
    assert json.loads(change.data_types) == {"p": "decimal", "at": "timestamp"}


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_a_decimal_is_converted_exactly_or_refused_never_rounded(number):
    text = format(number, "f") if abs(number.as_tuple().exponent) <= 100 else str(number)
    try:
        column = types.wanted_type(text, types.DECIMAL_TAG)
    except types.Unfit:
        after = max(0, -number.as_tuple().exponent)
        before = max(0, number.adjusted() + 1) if number else 0
        assert after > types.MAX_DECIMAL_SCALE or before + after > types.MAX_DECIMAL_DIGITS
        return
    precision, scale = types.decimal_args(column)
    assert precision <= 65 and scale <= 30
    stored = types.convert(text, types.DECIMAL_TAG, column)
    assert stored == number
    with decimal.localcontext(decimal.Context(prec=200)):
        assert stored.quantize(decimal.Decimal(1).scaleb(-scale)) == number  # within the column's scale


@given(st.datetimes(min_value=_dt.datetime(1000, 1, 2), max_value=_dt.datetime(9999, 12, 30)),
       st.integers(min_value=-1439, max_value=1439))
def test_a_timestamp_is_its_utc_instant_to_the_microsecond(moment, offset):
    sign = "+" if offset >= 0 else "-"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    assert types.convert(text, types.TIMESTAMP_TAG, "DATETIME(6)") == moment - _dt.timedelta(minutes=offset)


@pytest.mark.parametrize("text", ["0999-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00", "2024-01-01T00:00:00.0000001Z",
                                  "not a time"])
def test_timestamps_datetime_cannot_hold_exactly_are_refused(text):
    with pytest.raises(types.Unfit):
        types.convert(text, types.TIMESTAMP_TAG, "DATETIME(6)")


def test_blobs_are_their_bytes_and_existing_longtext_columns_keep_taking_text():
    assert types.convert(base64.b64encode(b"\x00\xff").decode(), types.BLOB_TAG, "LONGBLOB") == b"\x00\xff"
    assert types.convert("1.10", types.DECIMAL_TAG, "LONGTEXT") == "1.10"
    with pytest.raises(types.TypeMismatch):
        types.convert("1.10", None, "DECIMAL(20,2)")  # a string where a decimal was first seen


def test_the_plan_widens_a_decimal_only_ever_wider_and_never_an_override():
    schema = TableColumns()
    new, _ = schema.plan([{"a": "1.5"}], [{"a": "decimal"}])
    assert new == {"a": "DECIMAL(19,1)"}
    schema.columns.update(new)
    assert schema.plan([{"a": "1.25"}, {"a": "-12345678901234567890"}], [{"a": "decimal"}] * 2)[0] == {
        "a": "DECIMAL(29,2)"}
    assert schema.plan([{"a": "7"}], [{"a": "decimal"}])[0] == {}
    pinned = TableColumns(columns={"a": "DECIMAL(5,1)"}, overrides={"a": "DECIMAL(5,1)"})
    assert pinned.plan([{"a": "1.25"}], [{"a": "decimal"}])[0] == {}
    values, notes = pinned.values({"a": "1.25"}, {"a": "decimal"})
    assert values == (None,) and "sink.column.types" in notes[0][1]


def _props(column_types: str):
    return parse_groups([
        {"PropertyGroupId": "source", "PropertyMap": {"stream.name": "s"}},
        {"PropertyGroupId": "sink", "PropertyMap": {"mysql.host": "h", "mysql.database": "d", "mysql.user": "u",
                                                    "mysql.password": "p", "column.types": column_types}}])


def test_sink_column_types_is_checked_at_start_up_naming_the_bad_entry():
    props = _props("Orders.price=decimal(12, 2); sales.orders.placed=DATETIME(3); Orders.note=LONGTEXT")
    assert [(o.table, o.column, o.column_type) for o in props["sink.column.types"]] == [
        ("Orders", "price", "DECIMAL(12,2)"), ("sales_orders", "placed", "DATETIME(3)"), ("Orders", "note", "LONGTEXT")]
    for bad, named in (("Orders.price=DECIMAL(12,2); Orders.qty=DECIMAL(70,0)", "'Orders.qty=DECIMAL(70,0)'"),
                       ("Orders.placed=DATETIME(7)", "DATETIME(n)"), ("price=BIGINT", "'price=BIGINT'"),
                       ("Orders.price=MONEY", "'MONEY'"), ("Orders.a b=BIGINT", "'a b'"),
                       ("Orders.version=BIGINT", "ledgersync's own"), ("T.a=BIGINT; T.A=DOUBLE", "twice")):
        with pytest.raises(PropertiesError) as caught:
            _props(bad)
        assert "sink.column.types" in str(caught.value) and named in str(caught.value), str(caught.value)
