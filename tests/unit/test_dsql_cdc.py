import datetime as dt
import json
import random

import pytest
from hypothesis import given, strategies as st

from connectors.formats.changes import BadChange, Piece, RowChange
from connectors.formats.dsql_cdc import DsqlSettings, crc32c, decode, parse_keys
from connectors.rows.limits import MAX_DOCUMENT_BYTES, MAX_JSON_DEPTH
from connectors.formats.registry import CHANGES, format_spec
from job.config.properties import PropertiesError, parse_groups
from job.config.settings import format_settings
from job.rules.reassembly import Held, join
from job.cli.tools.simulate.dsql_cdc import envelope, split, to_bytes

SETTINGS = DsqlSettings(keys=parse_keys("order_items=order_id+item_id; sales.orders=id; notes=id"))
TS = 1705318200000000000
# The INSERT example of the DSQL user guide, as given there.
DOC_EXAMPLE = b'''{"type": "full", "op": "c", "before": null,
 "after": {"order_id": 1001, "item_id": 42, "quantity": 5, "price": "29.99"},
 "source": {"version": "1.0", "ts_ms": 1705318200000, "ts_ns": 1705318200000000000,
  "txId": "ffthunp5stx6ffs2vyfqoatmfu", "schema": "public", "table": "order_items", "db": "postgres",
  "cluster": "kmabugltfmjdaj2siqr2qbxgju"}, "ts_ms": 1705318200125, "ts_ns": 1705318200125483291}'''


def test_the_documented_insert_decodes_to_an_upsert_with_every_field():
    change = decode(DOC_EXAMPLE, SETTINGS)
    assert change == RowChange(table="order_items", key_columns=("order_id", "item_id"), key=(1001, 42),
                               version=TS, tie="ffthunp5stx6ffs2vyfqoatmfu",
                               tx_time=dt.datetime(2024, 1, 15, 11, 30, tzinfo=dt.timezone.utc),
                               data={"order_id": 1001, "item_id": 42, "quantity": 5, "price": "29.99"})
    assert change.document_id == "[1001,42]" and not change.deleted
    assert isinstance(change.data["price"], str)  # NUMERIC stays exact text


def test_tx_time_keeps_microseconds():
    change = decode(to_bytes(envelope("u", "notes", TS + 123_456_789, "t", after={"id": 1})), SETTINGS)
    assert change.tx_time.microsecond == 123_456 and change.version == TS + 123_456_789


@pytest.mark.parametrize("op", ["u", "r", "x-new"])
def test_update_and_unknown_ops_are_upserts_of_after(op):
    change = decode(to_bytes(envelope(op, "notes", TS, "t", after={"id": 7, "body": "b"})), SETTINGS)
    assert not change.deleted and change.data == {"id": 7, "body": "b"} and change.extra["op"] == op


def test_delete_takes_its_key_from_before():
    doc = envelope("d", "order_items", TS, "t", before={"order_id": 1001, "item_id": 42})
    change = decode(to_bytes(doc), SETTINGS)
    assert change.deleted and change.key == (1001, 42) and change.data == {"order_id": 1001, "item_id": 42}


def test_schema_prefix_only_when_not_public():
    change = decode(to_bytes(envelope("c", "orders", TS, "t", after={"id": "A1"}, schema="sales")), SETTINGS)
    assert change.table == "sales.orders" and change.document_id == '["A1"]'
    with pytest.raises(BadChange, match=r"'orders' has no key columns in source.dsql.keys"):
        decode(to_bytes(envelope("c", "orders", TS, "t", after={"id": "A1"})), SETTINGS)


def test_null_and_absent_columns_are_kept_as_they_came():
    change = decode(to_bytes(envelope("c", "notes", TS, "t", after={"id": 1, "body": None})), SETTINGS)
    assert change.data == {"id": 1, "body": None}
    assert decode(to_bytes(envelope("c", "notes", TS, "t", after={"id": 1})), SETTINGS).data == {"id": 1}


def test_keyless_table_delete_is_refused_saying_why():
    with pytest.raises(BadChange, match="without a primary key"):
        decode(to_bytes(envelope("d", "notes", TS, "t", before=None)), SETTINGS)


def _mutate(path, value):
    doc = envelope("c", "order_items", TS, "t", after={"order_id": 1, "item_id": 2})
    target = doc
    for name in path[:-1]:
        target = target[name]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return to_bytes(doc)


@pytest.mark.parametrize("data, words", [
    (b"\xff", "not UTF-8"),
    (b"{", "not JSON"),
    (b"[1]", "JSON list, not an object"),
    (b'{"a": NaN}', "NaN is not JSON"),
    (b'{"a": 1, "a": 2}', "'a' appears twice"),
    (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
    (_mutate(["type"], "partial"), "type 'partial'"),
    (_mutate(["op"], 5), "op is missing"),
    (_mutate(["source"], KeyError), "source is missing"),
    (_mutate(["source", "table"], ""), "source.table"),
    (_mutate(["source", "schema"], None), "source.schema"),
    (_mutate(["source", "ts_ns"], KeyError), "source.ts_ns is missing or not an integer"),
    (_mutate(["source", "ts_ns"], "1"), "not an integer"),
    (_mutate(["source", "ts_ns"], True), "not an integer"),
    (_mutate(["source", "ts_ns"], 1.5), "not an integer"),
    (_mutate(["source", "ts_ns"], 0), "not a positive signed 64-bit"),
    (_mutate(["source", "ts_ns"], 2 ** 63), "not a positive signed 64-bit"),
    (_mutate(["source", "txId"], 3), "source.txId"),
    (_mutate(["after"], None), "after is missing or not an object"),
    (_mutate(["after", "item_id"], KeyError), "'item_id' is null or missing in after"),
    (_mutate(["after", "item_id"], None), "'item_id' is null or missing"),
    (_mutate(["after", "item_id"], {"x": 1}), "holds a dict"),
    (to_bytes(envelope("d", "order_items", TS, "t", before={"order_id": 1})), "'item_id' is null or missing in before"),
    (DOC_EXAMPLE + b" x", "text after the record"),
])
def test_bad_records_are_refused_with_a_reason(data, words):
    with pytest.raises(BadChange, match=words):
        decode(data, SETTINGS)


def test_oversized_documents_are_refused_and_the_limit_is_qldbs():
    assert DsqlSettings().max_document_bytes == MAX_DOCUMENT_BYTES
    with pytest.raises(BadChange, match="at most 100 are taken"):
        decode(DOC_EXAMPLE, DsqlSettings(keys=SETTINGS.keys, max_document_bytes=100))


def test_version_is_commit_time_and_txid_breaks_ties():
    a = decode(to_bytes(envelope("u", "notes", TS, "aaa", after={"id": 1})), SETTINGS)
    b = decode(to_bytes(envelope("u", "notes", TS, "bbb", after={"id": 1})), SETTINGS)
    c = decode(to_bytes(envelope("u", "notes", TS + 1, "000", after={"id": 1})), SETTINGS)
    assert sorted([c, b, a], key=lambda r: (r.version, r.tie)) == [a, b, c]


def test_crc32c_matches_the_standard_check_value():
    assert crc32c(b"123456789") == 0xE3069283


def _big():
    return envelope("c", "order_items", TS, "tx", after={"order_id": 1, "item_id": 2, "note": "é" * 50 + "x" * 80})


def test_split_record_parts_are_pieces_of_one_group():
    records = split(_big(), 40, "chunk-1")
    parts = [decode(r, SETTINGS) for r in records]
    assert all(isinstance(p, Piece) and p.group == "chunk-1" for p in parts)
    assert parts[0].index == 0 and parts[0].count == len(records)
    assert [p.index for p in parts[1:]] == list(range(1, len(records))) and {p.count for p in parts[1:]} == {0}


@pytest.mark.parametrize("seed", range(5))
def test_split_record_joins_in_any_order_with_duplicates(seed):
    rng = random.Random(seed)
    records = split(_big(), 17, "c")
    arrivals = records + [rng.choice(records) for _ in range(3)]
    rng.shuffle(arrivals)
    held, joined = Held(), []
    for record in arrivals:
        out = held.add(decode(record, SETTINGS), 0)
        if out is not None:
            joined.append(out)
    assert joined and decode(joined[0], SETTINGS) == decode(to_bytes(_big()), SETTINGS)


def test_split_delete_joins_its_before_image():
    doc = envelope("d", "order_items", TS, "tx", before={"order_id": 9, "item_id": 8})
    change = decode(join(decode(r, SETTINGS) for r in split(doc, 5, "d1")), SETTINGS)
    assert change.deleted and change.key == (9, 8)


def test_joined_record_with_a_wrong_checksum_is_refused():
    records = split(_big(), 40, "c")
    main = json.loads(records[0])
    main["chunked"]["after"]["crc32c"] = "1"
    parts = [decode(to_bytes(main), SETTINGS)] + [decode(r, SETTINGS) for r in records[1:]]
    with pytest.raises(BadChange, match="CRC32C"):
        decode(join(parts), SETTINGS)


@pytest.mark.parametrize("change, words", [
    (lambda m: m["chunked"].update(before=m["chunked"]["after"]), "both before and after"),
    (lambda m: m["chunked"]["after"].update(total_fragments=0), "total_fragments"),
    (lambda m: m["chunked"]["after"].update(crc32c=5), "crc32c"),
    (lambda m: m.update(chunked={}), "without a chunked object"),
    (lambda m: m["chunked"].update(middle={}), "only before and after"),
])
def test_bad_chunked_main_records_are_refused(change, words):
    main = json.loads(split(_big(), 40, "c")[0])
    change(main)
    with pytest.raises(BadChange, match=words):
        decode(to_bytes(main), SETTINGS)


@pytest.mark.parametrize("fragment, words", [
    ({"type": "fragment", "index": 0, "data": "x"}, "chunk_id"),
    ({"type": "fragment", "chunk_id": "c", "index": -1, "data": "x"}, "index"),
    ({"type": "fragment", "chunk_id": "c", "index": 0, "data": 1}, "data"),
])
def test_bad_fragments_are_refused(fragment, words):
    with pytest.raises(BadChange, match=words):
        decode(to_bytes(fragment), SETTINGS)


def test_registry_and_settings_from_properties():
    spec = format_spec("dsql-cdc")
    assert spec.kind == CHANGES and spec.decode is decode and not spec.order_mode
    groups = [{"PropertyGroupId": "source", "PropertyMap": {
                  "stream.name": "s", "format": "dsql-cdc", "dsql.keys": "a=x+y; s.b=id",
                  "dsql.split.timeout.ms": "5000"}},
              {"PropertyGroupId": "sink", "PropertyMap": {
                  "mysql.host": "h", "mysql.database": "d", "mysql.user": "u", "mysql.password": "p"}}]
    settings = format_settings(parse_groups(groups))
    assert settings.keys == {"a": ("x", "y"), "s.b": ("id",)} and settings.split_timeout_ms == 5000
    groups[0]["PropertyMap"].pop("dsql.keys")
    with pytest.raises(PropertiesError, match="needs source.dsql.keys"):
        parse_groups(groups)
    groups[0]["PropertyMap"]["dsql.keys"] = "a=x; b"
    with pytest.raises(PropertiesError, match="'b' is not table=column"):
        parse_groups(groups)


@pytest.mark.parametrize("text, words", [
    ("a=x; a=y", "listed twice"), ("a=x+", "not table=column"), ("=x", "not table=column"),
    ("a=x+x", "names a column twice"), (" ; ", "no table=columns"),
])
def test_bad_keys_property(text, words):
    with pytest.raises(ValueError, match=words):
        parse_keys(text)


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.one_of(st.none(), st.integers(), st.text(max_size=30)),
                       max_size=6),
       st.integers(1, 30), st.randoms(use_true_random=False), st.integers(0, 6))
def test_any_permutation_with_duplicates_of_a_split_record_decodes_to_the_original(extra, size, rng, repeats):
    doc = envelope("c", "notes", TS, "t", after={**extra, "id": 1})
    records = split(doc, size, "g")
    arrivals = records + [rng.choice(records) for _ in range(repeats)]
    rng.shuffle(arrivals)
    held = Held()
    joined = [out for out in (held.add(decode(r, SETTINGS), 0) for r in arrivals) if out is not None]
    assert joined and all(decode(out, SETTINGS) == decode(to_bytes(doc), SETTINGS) for out in joined)


def test_the_simulated_stream_replayed_newest_wins_equals_the_oracle():
    from connectors.mysql import sql
    from job.cli.tools.simulate.changes import DSQL_KEYS, ChangesSpec, dsql_delivery, expected_tables, generate_dsql

    spec = ChangesSpec(rows=6, changes=6, split_bytes=150, duplicates=0.3, bad=4, incomplete=1, seed=3)
    changes = generate_dsql(spec)
    delivery = dsql_delivery(spec, changes)
    settings = DsqlSettings(keys=parse_keys(DSQL_KEYS))
    assert delivery.split > 0 and any(c.deleted for c in changes)
    deleted_at = {}
    for n, c in enumerate(changes):
        if c.deleted:
            deleted_at.setdefault((c.table, c.key), n)
    assert any(c.first and n > deleted_at.get((c.table, c.key), n) for n, c in enumerate(changes))  # inserted again
    newest, held, joined, dead = {}, {}, set(), 0
    for _, data in delivery.records:
        try:
            decoded = decode(data, settings)
            if isinstance(decoded, Piece):
                whole = held.setdefault(decoded.group, Held()).add(decoded, 0)
                if whole is None:
                    continue
                joined.add(decoded.group)
                decoded = decode(whole, settings)
        except BadChange:
            dead += 1
            continue
        ident = (decoded.table, decoded.document_id)
        if ident not in newest or (decoded.version, decoded.tie) > (newest[ident].version, newest[ident].tie):
            newest[ident] = decoded
    state = {}
    for (table, document_id), change in newest.items():
        rows = state.setdefault(sql.table_identifier(table), {})
        if not change.deleted:
            rows[document_id] = (change.version, change.tie, False, False, change.data)
    assert state == expected_tables(changes, history=False)
    assert dead == delivery.bad == spec.bad
    assert set(held) - joined == set(delivery.incomplete_groups)  # the lost split record never joins


def test_record_decode_says_what_the_job_makes_of_dsql_records(tmp_path):
    import io
    from types import SimpleNamespace

    from job.cli.tools.record import run_record

    props = tmp_path / "p.json"
    props.write_text(json.dumps([
        {"PropertyGroupId": "source", "PropertyMap": {"stream.name": "s", "format": "dsql-cdc",
                                                      "dsql.keys": "order_items=order_id+item_id"}},
        {"PropertyGroupId": "sink", "PropertyMap": {"mysql.host": "h", "mysql.database": "d", "mysql.user": "u",
                                                    "mysql.password": "p"}}]))
    out = io.StringIO()
    args = SimpleNamespace(action="decode", files=[], base64=False, json=False, format=None, properties=str(props))
    assert run_record(args, stdin=io.BytesIO(DOC_EXAMPLE), stdout=out) == 0
    assert "change order_items [1001,42] version 1705318200000000000" in out.getvalue()
    out = io.StringIO()
    args = SimpleNamespace(**{**vars(args), "format": "dsql-cdc", "properties": None})
    assert run_record(args, stdin=io.BytesIO(DOC_EXAMPLE), stdout=out) == 1  # a dead letter
    assert "dead letter: table 'order_items' has no key" in out.getvalue()
