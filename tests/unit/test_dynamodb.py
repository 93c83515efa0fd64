"""DynamoDB Kinesis stream records to row changes: every type, event, key rule, the version
and tie rules, bad input; and the inputs fuzzing found (tests/unit/data/fuzz-dynamodb-*)."""
import datetime as dt
import glob
import json
import os
from decimal import Context, Decimal

import pytest
from hypothesis import given, strategies as st

from connectors.formats.changes import BadChange
from connectors.formats.dynamodb import DynamoDbSettings, attribute, decode

SETTINGS = DynamoDbSettings()
DATA = os.path.join(os.path.dirname(__file__), "data")


def record(event="INSERT", keys=None, new=None, when=1780000000123456, precision="MICROSECOND", identity=None,
           table="Orders", event_id="e1", **stream_extra):
    keys = keys if keys is not None else {"customer": {"S": "c1"}, "placed": {"S": "2026-01-01"}}
    stream = {"ApproximateCreationDateTime": when, "Keys": keys, "SizeBytes": 10, **stream_extra}
    if precision:
        stream["ApproximateCreationDateTimePrecision"] = precision
    if new is not None:
        stream["NewImage"] = new
    return json.dumps({"awsRegion": "us-east-1", "eventID": event_id, "eventName": event, "userIdentity": identity,
                       "recordFormat": "application/json", "tableName": table, "dynamodb": stream,
                       "eventSource": "aws:dynamodb"}).encode()


KEYS = {"customer": {"S": "c1"}, "placed": {"S": "2026-01-01"}}


def test_an_insert_with_every_type():
    new = dict(KEYS, s={"S": "é"}, n={"N": "12345678901234567890123456789012345678"}, f={"N": "3.50"},
               b={"B": "AAEC"}, t={"BOOL": True}, z={"NULL": True}, m={"M": {"a": {"N": "1"}, "l": {"L": []}}},
               l={"L": [{"S": "x"}, {"N": "-1"}]}, ss={"SS": ["b", "a"]}, ns={"NS": ["10", "9", "-1.5"]},
               bs={"BS": ["Ag==", "AQ=="]})
    change = decode(record(new=new), SETTINGS)
    assert change.data == {"customer": "c1", "placed": "2026-01-01", "s": "é",
                           "n": "12345678901234567890123456789012345678", "f": "3.50", "b": "AAEC", "t": True,
                           "z": None, "m": {"a": "1", "l": []}, "l": ["x", "-1"], "ss": ["a", "b"],
                           "ns": ["-1.5", "9", "10"], "bs": ["AQ==", "Ag=="]}
    assert (change.table, change.key_columns, change.key) == ("Orders", ("customer", "placed"), ("c1", "2026-01-01"))
    assert change.document_id == '["c1","2026-01-01"]' and not change.deleted and not change.ttl


def test_modify_upserts_and_remove_keeps_the_key_only():
    assert not decode(record("MODIFY", new=KEYS), SETTINGS).deleted
    change = decode(record("REMOVE"), SETTINGS)
    assert change.deleted and not change.ttl and change.data == {"customer": "c1", "placed": "2026-01-01"}


def test_a_remove_by_dynamodb_itself_is_a_ttl_delete():
    ttl = decode(record("REMOVE", identity={"type": "Service", "principalId": "dynamodb.amazonaws.com"}), SETTINGS)
    user = decode(record("REMOVE", identity={"type": "Service", "principalId": "someone"}), SETTINGS)
    assert ttl.ttl and ttl.deleted and not user.ttl


def test_key_attributes_in_name_order_whatever_the_record_order():
    a = decode(record(keys={"placed": {"S": "p"}, "customer": {"S": "c"}}, event="REMOVE"), SETTINGS)
    b = decode(record(keys={"customer": {"S": "c"}, "placed": {"S": "p"}}, event="REMOVE"), SETTINGS)
    assert a.key_columns == b.key_columns == ("customer", "placed") and a.document_id == b.document_id


def test_numeric_keys_stay_text():
    change = decode(record(keys={"id": {"N": "7"}}, new={"id": {"N": "7"}}, table="Counters"), SETTINGS)
    assert change.key == ("7",) and change.document_id == '["7"]'


@pytest.mark.parametrize("when, precision, us", [
    (1780000000123, "MILLISECOND", 1780000000123000), (1780000000123456, "MICROSECOND", 1780000000123456),
    (1780000000123, None, 1780000000123000), (1780000000123456, None, 1780000000123456),
])
def test_the_version_is_microseconds_at_either_precision(when, precision, us):
    change = decode(record(new=KEYS, when=when, precision=precision), SETTINGS)
    assert change.version == us
    assert change.tx_time == dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=us)


def test_equal_times_are_settled_by_the_event_id():
    a = decode(record(new=KEYS, event_id="aaa"), SETTINGS)
    b = decode(record(new=KEYS, event_id="bbb"), SETTINGS)
    assert a.version == b.version and (b.version, b.tie) > (a.version, a.tie)


@pytest.mark.parametrize("data, words", [
    (b"{", "not JSON"),
    (record(event="TRUNCATE"), "eventName 'TRUNCATE' is not one of"),
    (record(table=""), "tableName must be"),
    (record(event_id=None), "eventID must be"),
    (record(new=None), "INSERT without NewImage"),
    (record(new={"customer": {"S": "c2"}, "placed": {"S": "2026-01-01"}}), "violates its own key schema"),
    (record(new={"placed": {"S": "2026-01-01"}}), "violates its own key schema"),
    (record(keys={}, event="REMOVE"), "no key columns"),
    (record(when=-1, new=KEYS), "must be a positive number"),
    (record(when="soon", new=KEYS), "must be a positive number"),
    (record(precision="NANOSECOND", new=KEYS), "is not MILLISECOND or MICROSECOND"),
    (record(new=dict(KEYS, x={"N": "abc"})), r"NewImage.x: 'abc' is not a DynamoDB number"),
    (record(new=dict(KEYS, x={"N": "1" * 39})), "more than 38 significant digits"),
    (record(new=dict(KEYS, x={"N": "1E+126"})), "outside DynamoDB's number range"),
    (record(new=dict(KEYS, x={"B": "***"})), "is not base64"),
    (record(new=dict(KEYS, x={"S": "a", "N": "1"})), "exactly one type"),
    (record(new=dict(KEYS, x={"Q": 1})), "unknown attribute type 'Q'"),
    (record(new=dict(KEYS, x={"NULL": False})), "NULL must be true"),
    (record(new=dict(KEYS, x={"M": {"y": {"SS": [1]}}})), r"NewImage.x.y: SS must hold text"),
    (record(new=dict(KEYS, x={"S": "\udddd"})), "lone UTF-16 surrogate"),
    (record(keys={"k": {"BOOL": True}}, event="REMOVE"), "a key attribute is S, N or B"),
    (record(new=dict(KEYS, x={"SS": []})), "non-empty array"),
])
def test_bad_records_say_why(data, words):
    with pytest.raises(BadChange, match=words):
        decode(data, SETTINGS)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(DATA, "fuzz-dynamodb-*.json"))))
def test_what_fuzzing_found_is_a_bad_change_not_a_crash(path):
    with open(path, "rb") as handle:
        data = handle.read()
    with pytest.raises(BadChange):  # refused with a reason (a dead letter), never a crash nor accepted
        decode(data, SETTINGS)


def test_the_fuzz_findings_are_there():
    assert len(glob.glob(os.path.join(DATA, "fuzz-dynamodb-*.json"))) == 5


# Digits counted in a context wide enough not to round (the default keeps 28), so only
# numbers DynamoDB itself accepts are generated.
_WIDE = Context(prec=100, Emax=10 ** 6, Emin=-10 ** 6)
numbers = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: d == 0 or (Decimal("1E-130") <= abs(d) < Decimal("1E+126")
                         and len(_WIDE.normalize(d).as_tuple().digits) <= 38))
values = st.recursive(
    st.one_of(st.text().map(lambda s: {"S": s}), numbers.map(lambda d: {"N": str(d)}), st.booleans().map(
        lambda b: {"BOOL": b}), st.just({"NULL": True}), st.binary().map(
        lambda b: {"B": __import__("base64").b64encode(b).decode()})),
    lambda inner: st.one_of(st.lists(inner, max_size=4).map(lambda l: {"L": l}),
                            st.dictionaries(st.text(max_size=5), inner, max_size=4).map(lambda m: {"M": m})),
    max_leaves=12)


@given(values)
def test_any_attribute_value_converts_and_numbers_stay_exact(value):
    def check(typed, plain):
        (kind, inner), = typed.items()
        if kind == "N":
            assert plain == inner and Decimal(plain) == Decimal(inner)
        elif kind == "L":
            assert len(plain) == len(inner) and all(check(t, p) is None for t, p in zip(inner, plain))
        elif kind == "M":
            assert set(plain) == set(inner) and all(check(inner[k], plain[k]) is None for k in inner)
    surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(value, ensure_ascii=False))
    if not surrogate:
        check(value, attribute(value, "x"))


# ApproximateCreationDateTime is milliseconds in Kinesis Data Streams records (microseconds
# with precision MICROSECOND); the DynamoDB Streams API gives seconds. A time in the wrong
# unit would be a version in 1970 (or far past 2100), silently losing to every real change.
@pytest.mark.parametrize("when, precision, words", [
    (1646316592.0, None, r"ApproximateCreationDateTime 1646316592.0 .*looks like seconds \(2022-03-03T14:09:52Z\)"
                         r".*milliseconds"),
    (1646316592, "MILLISECOND", r"ApproximateCreationDateTime 1646316592 .*looks like seconds"),
    (1780000000123, "MICROSECOND", r"read as microseconds.*1970.*looks like milliseconds"),
    (1780000000123456, "MILLISECOND", r"read as milliseconds.*looks like microseconds"),
    (1000, None, r"read as milliseconds is 1970-01-01T00:00:01Z, before 2012"),
    (4102444800000, None, r"read as milliseconds is 2100-01-01T00:00:00Z, after 2099"),
    (2 ** 62, None, r"read as microseconds is past the year 9999;"),
])
def test_a_creation_time_in_an_implausible_unit_is_a_dead_letter(when, precision, words):
    with pytest.raises(BadChange, match=words):
        decode(record(new=KEYS, when=when, precision=precision), SETTINGS)


@pytest.mark.parametrize("when, us", [(1325376000000, 1325376000000000), (4102444799999, 4102444799999000),
                                      (1646316592123.0, 1646316592123000)])
def test_creation_times_from_2012_to_2099_in_milliseconds_are_taken(when, us):
    assert decode(record(new=KEYS, when=when, precision=None), SETTINGS).version == us
