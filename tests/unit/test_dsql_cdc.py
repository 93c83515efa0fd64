"""Aurora DSQL CDC records to row changes: every op and field, keys, split parts, bad input."""
import datetime as dt
import json

import pytest
from hypothesis import given, strategies as st

from connectors.formats import dsql_cdc
from connectors.formats.changes import BadChange, Piece, RowChange
from connectors.formats.dsql_cdc import BadKeysSetting, DsqlSettings, decode, parse_keys
from job.config.properties import PropertiesError, parse_groups
from job.rules.reassembly import Held
from job.tools.simulate.changes import split_record

SETTINGS = DsqlSettings(keys=parse_keys("order_items=order_id+item_id; sales.invoices=invoice_no; t=id"))


def record(op="c", after=None, before=None, table="order_items", schema="public", ts_ns=1705318200000000000,
           tx="ffthunp5stx6ffs2vyfqoatmfu", **extra):
    body = {"type": "full", "op": op, "before": before, "after": after,
            "source": {"version": "1.0", "ts_ms": ts_ns // 10 ** 6, "ts_ns": ts_ns, "txId": tx, "schema": schema,
                       "table": table, "db": "postgres", "cluster": "k"}, "ts_ms": 1, "ts_ns": 2}
    body.update(extra)
    return json.dumps(body).encode()


ROW = {"order_id": 1001, "item_id": 42, "quantity": 5, "price": "29.99"}


def test_the_guides_insert_example():
    change = decode(record(after=ROW), SETTINGS)
    assert isinstance(change, RowChange)
    assert (change.table, change.key_columns, change.key, change.document_id) == (
        "order_items", ("order_id", "item_id"), (1001, 42), "[1001,42]")
    assert (change.version, change.tie, change.deleted) == (1705318200000000000, "ffthunp5stx6ffs2vyfqoatmfu", False)
    assert change.tx_time == dt.datetime(2024, 1, 15, 11, 30, tzinfo=dt.timezone.utc)
    assert change.data == ROW and json.loads(change.data_json) == ROW  # NUMERIC stays text


@pytest.mark.parametrize("op", ["u", "r", "x-future"])
def test_updates_and_unknown_ops_upsert_after(op):
    change = decode(record(op=op, after=ROW), SETTINGS)
    assert not change.deleted and change.data == ROW and change.extra["op"] == op


def test_a_delete_takes_its_key_from_before_and_keeps_only_the_key():
    change = decode(record(op="d", before={"order_id": 1001, "item_id": 42, "stray": 1}), SETTINGS)
    assert change.deleted and change.key == (1001, 42) and change.data == {"order_id": 1001, "item_id": 42}


def test_a_schema_other_than_public_prefixes_the_table():
    change = decode(record(table="invoices", schema="sales", after={"invoice_no": 7}), SETTINGS)
    assert change.table == "sales.invoices" and change.document_id == "[7]"


def test_null_columns_left_out_stay_out():
    change = decode(record(after={"order_id": 1, "item_id": 2}), SETTINGS)
    assert change.data == {"order_id": 1, "item_id": 2}


def test_equal_commit_times_are_ordered_by_the_transaction_id():
    a = decode(record(after=ROW, tx="aaaa"), SETTINGS)
    b = decode(record(after=ROW, tx="bbbb"), SETTINGS)
    assert a.version == b.version and (b.version, b.tie) > (a.version, a.tie)


@pytest.mark.parametrize("data, words", [
    (b"{", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1]", "must be a JSON object"),
    (json.dumps({"type": "full", "op": "c", "after": {}}).encode(), "no source object"),
    (record(after=ROW, table="other"), "has no key in source.dsql.keys"),
    (record(after={"order_id": 1}), "key column 'item_id' is null or missing"),
    (record(after={"order_id": 1, "item_id": {"a": 1}}), "cannot be a key"),
    (record(op="d", before=None), "needs an object in 'before'"),
    (record(after=None), "needs an object in 'after'"),
    (record(after=ROW, ts_ns=-5), "ts_ns must be a positive"),
    (record(after=ROW, ts_ns=2 ** 63), "ts_ns must be a positive"),
    (record(after=ROW, tx=""), "source.txId must be non-empty"),
    (record(after=ROW, table=""), "source.table must be non-empty"),
    (record(after=ROW, op=3), "op must be text"),
    (record(after=dict(ROW, deep=json.loads("[" * 40 + "]" * 40))), "nests more than 31"),
    (record(after=dict(ROW, x=float("nan"))), "NaN or Infinity"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_bad_records_say_why(data, words):
    with pytest.raises(BadChange, match=words):
        decode(data, SETTINGS)


def test_a_row_too_big_for_a_row_is_a_bad_change():
    small = DsqlSettings(keys=SETTINGS.keys, max_document_bytes=100)
    with pytest.raises(BadChange, match="more than the 100"):
        decode(record(after=dict(ROW, note="x" * 200)), small)


@pytest.mark.parametrize("text, words", [
    ("order_items", "expected TABLE=COLUMN"), ("t=", "expected TABLE=COLUMN"), ("t=a+", "expected TABLE=COLUMN"),
    ("t=a; t=b", "listed twice"), ("t=a+a", "a column is listed twice"),
])
def test_the_keys_setting_names_its_bad_part(text, words):
    with pytest.raises(BadKeysSetting, match=words):
        parse_keys(text)


def test_the_keys_setting_parses():
    assert parse_keys(" a=x ; s.b = y + z ;") == {"a": ("x",), "s.b": ("y", "z")}


def _groups(source):
    return [{"PropertyGroupId": "source", "PropertyMap": {"stream.name": "s", **source}},
            {"PropertyGroupId": "sink", "PropertyMap": {"mysql.host": "h", "mysql.database": "d",
                                                        "mysql.user": "u", "mysql.password": "p"}}]


def test_properties_require_keys_for_dsql_and_refuse_order_mode():
    with pytest.raises(PropertiesError, match="needs source.dsql.keys"):
        parse_groups(_groups({"format": "dsql-cdc"}))
    with pytest.raises(PropertiesError, match="bad value .* for source.dsql.keys"):
        parse_groups(_groups({"format": "dsql-cdc", "dsql.keys": "nonsense"}))
    groups = _groups({"format": "dsql-cdc", "dsql.keys": "t=id"}) + [
        {"PropertyGroupId": "replication", "PropertyMap": {"order": "true"}}]
    with pytest.raises(PropertiesError, match="replication.order=true needs a gap-free version sequence"):
        parse_groups(groups)
    props = parse_groups(_groups({"format": "dsql-cdc", "dsql.keys": "t=id"}))
    assert DsqlSettings.from_properties(props).keys == {"t": ("id",)}


def test_parts_of_a_split_record_are_pieces():
    whole = record(after=dict(ROW, note="n" * 500))
    parts = split_record(whole, "g-1", 200)
    pieces = [decode(p, SETTINGS) for p in parts]
    assert all(isinstance(p, Piece) and p.group == "g-1" and p.count == len(parts) for p in pieces)
    assert [p.index for p in pieces] == list(range(len(parts)))


@pytest.mark.parametrize("fragment, words", [
    ({}, "fragment.id must be"), ({"id": "g", "index": "0", "count": 2}, "fragment.index must be"),
    ({"id": "g", "index": 2, "count": 2}, "not a valid part number"),
])
def test_bad_parts_say_why(fragment, words):
    with pytest.raises(BadChange, match=words):
        decode(json.dumps({"type": "fragment", "fragment": fragment, "data": ""}).encode(), SETTINGS)
    with pytest.raises(BadChange, match="not base64"):
        decode(json.dumps({"type": "fragment", "fragment": {"id": "g", "index": 0, "count": 1},
                           "data": "***"}).encode(), SETTINGS)


@given(st.integers(40, 400), st.randoms(use_true_random=False), st.text(max_size=300))
def test_split_parts_in_any_order_with_repeats_join_to_the_same_change(part_bytes, rng, note):
    whole = record(after=dict(ROW, note=note))
    parts = split_record(whole, "g", part_bytes)
    arrivals = parts + [rng.choice(parts) for _ in range(3)]
    rng.shuffle(arrivals)
    held = Held()
    joined = [j for j in (held.add(decode(p, SETTINGS), 0) for p in arrivals) if j is not None]
    assert joined and decode(joined[0], SETTINGS) == decode(whole, SETTINGS)


def test_the_module_names_its_source():
    assert "cdc-record-format" in dsql_cdc.__doc__
