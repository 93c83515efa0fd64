import datetime as dt
import decimal

import pytest
from amazon.ion import simpleion

from connectors.formats.qldb import BLOCK_SUMMARY, CONTROL, REVISION_DETAILS, BadRecord, decode_record
from connectors.formats.qldb_encode import encode_revision

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


# --- real-shaped samples: each record type as a QLDB stream writes it (Ion text here,
# binary Ion on the stream, as QLDB does) ------------------------------------------------

ARN = "arn:aws:qldb:eu-central-1:111122223333:stream/vehicles/8Yq2mHkR0sXcLpT4bWvNfa"

CONTROL_CREATED = f'{{qldbStreamArn: "{ARN}", recordType: "CONTROL", payload: {{controlRecordType: "CREATED"}}}}'
CONTROL_COMPLETED = CONTROL_CREATED.replace("CREATED", "COMPLETED")

BLOCK_SUMMARY_SAMPLE = f'''{{
  qldbStreamArn: "{ARN}", recordType: "BLOCK_SUMMARY",
  payload: {{
    blockAddress: {{strandId: "Hk3ZpQ0aYbR1sT2uV3wX4y", sequenceNo: 5121}},
    transactionId: "7rTq2LmNp0Xz1KsBvWc3Yd",
    blockTimestamp: 2024-03-05T09:41:27.512Z,
    blockHash: {{{{q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c=}}}},
    entriesHash: {{{{m1n2b3v4c5x6z7l8k9j0h1g2f3d4s5a6p7o8i9u0y1t=}}}},
    previousBlockHash: {{{{z9x8c7v6b5n4m3l2k1j0h9g8f7d6s5a4q3w2e1r0t9y=}}}},
    entriesHashList: [{{{{a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u1v=}}}}],
    transactionInfo: {{
      statements: [{{statement: "UPDATE Vehicle SET Color = 'Red' WHERE VIN = 'WDD1690071J236589'",
                     startTime: 2024-03-05T09:41:27.398Z,
                     statementDigest: {{{{d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a=}}}}}}],
      documents: {{'5Hs1Uq8Zk2LrTbNm0PcVwX': {{tableName: "Vehicle", tableId: "9Pq1Xs2Ld3Kf4Hg5Jm6Nb7", statements: [0]}}}}
    }},
    revisionSummaries: [{{hash: {{{{b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e=}}}}, documentId: "5Hs1Uq8Zk2LrTbNm0PcVwX"}}]
  }}
}}'''


def _revision_sample(revision_body: str) -> str:
    return f'''{{
  qldbStreamArn: "{ARN}", recordType: "REVISION_DETAILS",
  payload: {{
    tableInfo: {{tableName: "Vehicle", tableId: "9Pq1Xs2Ld3Kf4Hg5Jm6Nb7"}},
    revision: {{
      blockAddress: {{strandId: "Hk3ZpQ0aYbR1sT2uV3wX4y", sequenceNo: 5121}},
      hash: {{{{c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f=}}}},
      {revision_body}
      metadata: {{id: "5Hs1Uq8Zk2LrTbNm0PcVwX", version: 3, txTime: 2024-03-05T09:41:27.412Z,
                  txId: "7rTq2LmNp0Xz1KsBvWc3Yd"}}
    }}
  }}
}}'''


REVISION_SAMPLE = _revision_sample('''data: {
        VIN: "WDD1690071J236589", Type: "Sedan", Year: 2019, Make: "Mercedes", Model: "CLA",
        Color: "Red", MSRP: 38205.50, Registered: true, RegisteredOn: 2019-06-01,
        Owners: {PrimaryOwner: {PersonId: "2Kf8Lm3Np4Qr5St6Uv7Wx8"}, SecondaryOwners: []},
        Photo: {{iVBORw0KGgo=}}, Notes: null, Mileage: 12345.6e0
      },''')
DELETED_SAMPLE = _revision_sample("")
REDACTED_SAMPLE = _revision_sample("dataHash: {{f0e1d2c3b4a5968778695a4b3c2d1e0f0e1d2c3b4a5=}},")


def _binary(ion_text: str) -> bytes:
    return simpleion.dumps(simpleion.loads(ion_text, single_value=True), binary=True)


@pytest.mark.parametrize("sample, control", [(CONTROL_CREATED, "CREATED"), (CONTROL_COMPLETED, "COMPLETED")])
def test_real_shaped_control_records(sample, control):
    decoded = decode_record(_binary(sample))
    assert decoded.record_type == CONTROL and decoded.revision is None
    assert decoded.detail == {"controlRecordType": control, "qldbStreamArn": ARN}


def test_real_shaped_block_summary():
    decoded = decode_record(_binary(BLOCK_SUMMARY_SAMPLE))
    assert decoded.record_type == BLOCK_SUMMARY and decoded.revision is None
    assert decoded.detail == {"qldbStreamArn": ARN, "strandId": "Hk3ZpQ0aYbR1sT2uV3wX4y", "sequenceNo": 5121,
                              "transactionId": "7rTq2LmNp0Xz1KsBvWc3Yd", "revisions": 1}


def test_real_shaped_revision_details():
    r = decode_record(_binary(REVISION_SAMPLE)).revision
    assert (r.table, r.table_id, r.document_id, r.version, r.tx_id) == (
        "Vehicle", "9Pq1Xs2Ld3Kf4Hg5Jm6Nb7", "5Hs1Uq8Zk2LrTbNm0PcVwX", 3, "7rTq2LmNp0Xz1KsBvWc3Yd")
    assert r.tx_time == dt.datetime(2024, 3, 5, 9, 41, 27, 412000, tzinfo=dt.timezone.utc)
    assert (r.stream_arn, r.block_strand_id, r.block_sequence_no) == (ARN, "Hk3ZpQ0aYbR1sT2uV3wX4y", 5121)
    assert not r.deleted and not r.redacted
    assert r.data == {"VIN": "WDD1690071J236589", "Type": "Sedan", "Year": 2019, "Make": "Mercedes",
                      "Model": "CLA", "Color": "Red", "MSRP": "38205.50", "Registered": True,
                      "RegisteredOn": "2019-06-01", "Owners": {"PrimaryOwner": {"PersonId": "2Kf8Lm3Np4Qr5St6Uv7Wx8"},
                                                               "SecondaryOwners": []},
                      "Photo": "iVBORw0KGgo=", "Notes": None, "Mileage": 12345.6}


def test_real_shaped_delete():
    r = decode_record(_binary(DELETED_SAMPLE)).revision
    assert r.deleted and not r.redacted and r.data is None
    assert (r.document_id, r.version) == ("5Hs1Uq8Zk2LrTbNm0PcVwX", 3)


def test_real_shaped_redaction_is_not_a_delete():
    r = decode_record(_binary(REDACTED_SAMPLE)).revision
    assert r.redacted and not r.deleted and r.data is None


def test_text_ion_and_symbols_are_accepted_where_qldb_writes_strings():
    text = REVISION_SAMPLE.replace('recordType: "REVISION_DETAILS"', "recordType: REVISION_DETAILS") \
        .replace('tableName: "Vehicle"', "tableName: Vehicle")
    r = decode_record(text.encode()).revision
    assert (r.table, r.version) == ("Vehicle", 3)


def test_tx_time_with_an_offset_is_converted_to_utc():
    r = decode_record(_record(tx_time=dt.datetime(2026, 3, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))))
    assert r.revision.tx_time == dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_unknown_control_type_is_reported_not_rejected():
    decoded = decode_record(_binary(CONTROL_CREATED.replace("CREATED", "PAUSED")))
    assert decoded.detail["controlRecordType"] == "PAUSED"
