import datetime as dt
import decimal

import pytest
from amazon.ion import simpleion

from connectors.qldb_records import (BLOCK_SUMMARY, CONTROL, REVISION_DETAILS, BadRecord, decode_record,
                                     encode_revision)

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=dt.timezone.utc)


def _record(**kw):
    base = dict(table="Person", document_id="DOC1", version=2, data={"name": "Ann", "n": 5},
                tx_id="tx1", tx_time=T0)
    base.update(kw)
    return encode_revision(**base)


def test_revision_details_round_trip():
    decoded = decode_record(_record(data={"amount": decimal.Decimal("1.10"), "big": 2 ** 70}))
    assert decoded.record_type == REVISION_DETAILS
    r = decoded.revision
    assert (r.table, r.document_id, r.version, r.tx_id) == ("Person", "DOC1", 2, "tx1")
    assert r.tx_time == T0
    assert r.data == {"amount": "1.10", "big": str(2 ** 70)}
    assert not r.deleted and not r.redacted


def test_revision_without_data_is_a_delete():
    r = decode_record(_record(data=None)).revision
    assert r.deleted and r.data is None


def test_revision_with_data_hash_is_a_redaction_not_a_delete():
    r = decode_record(_record(data=None, redacted_hash=b"\x01" * 32)).revision
    assert r.redacted and not r.deleted


@pytest.mark.parametrize("kind", [CONTROL, BLOCK_SUMMARY])
def test_other_record_types_are_recognised(kind):
    payload = {"controlRecordType": "CREATED"} if kind == CONTROL else {"blockAddress": {"sequenceNo": 1}}
    data = simpleion.dumps({"qldbStreamArn": "arn", "recordType": kind, "payload": payload}, binary=True)
    assert decode_record(data).record_type == kind


@pytest.mark.parametrize("payload, reason", [
    (b"", "empty"),
    (b"\x00\x01garbage", "cannot parse Ion"),
    (simpleion.dumps([1, 2], binary=True), "expected a struct"),
    (simpleion.dumps({"recordType": "NOPE", "payload": {}}, binary=True), "unknown recordType"),
    (simpleion.dumps({"recordType": REVISION_DETAILS, "payload": {"tableInfo": {"tableName": "T"},
                      "revision": {"data": {}}}}, binary=True), "without metadata"),
])
def test_bad_records_say_why(payload, reason):
    with pytest.raises(BadRecord, match=reason):
        decode_record(payload)


def test_bad_version_type_is_rejected():
    with pytest.raises(BadRecord, match="metadata.version"):
        decode_record(_record(version=-1))
