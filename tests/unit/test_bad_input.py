"""The bad-input corpus: every entry becomes one dead letter with a clear reason, and the
records around it (in the same KPL aggregate, or in the Kinesis records around it) decode."""
import datetime as dt
import hashlib

import pytest
from amazon.ion import simpleion

from connectors.formats import kpl
from connectors.dead_letters import NO_SUB_SEQUENCE, DeadLetter, payload_position
from connectors.formats.qldb import REVISION_DETAILS, decode_kinesis_record
from connectors.rows.limits import MAX_DOCUMENT_BYTES, MAX_JSON_DEPTH
from connectors.formats.qldb_encode import encode_revision
from job.cli.tools.simulate.qldb import BAD_KINDS, WorkloadSpec, bad_samples, generate

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def good(n: int) -> bytes:
    return encode_revision(table="Person", document_id=f"GOOD{n:018d}", version=n, data={"n": n},
                           tx_id=f"tx{n}", tx_time=T0)


def record(**changes) -> bytes:
    """A REVISION_DETAILS record as Ion values, with parts replaced (None: removed)."""
    value = {"qldbStreamArn": "arn:aws:qldb:us-east-1:1:stream/l/s", "recordType": REVISION_DETAILS,
             "payload": {"tableInfo": {"tableName": "Person", "tableId": "P1"},
                         "revision": {"blockAddress": {"strandId": "s", "sequenceNo": 1}, "hash": b"\0" * 32,
                                      "data": {"name": "x"},
                                      "metadata": {"id": "DOC", "version": 1, "txTime": T0, "txId": "tx"}}}}
    for path, replacement in changes.items():
        parent = value
        *steps, last = path.split("__")
        for step in steps:
            parent = parent[step]
        if replacement is None:
            parent.pop(last, None)
        else:
            parent[last] = replacement
    return simpleion.dumps(value, binary=True)


def non_utf8(text: str, where: dict) -> bytes:
    """Binary Ion where ``text`` (5 ASCII letters + é) is replaced by bytes that are not UTF-8."""
    data = record(**where)
    assert data.count(text.encode()) == 1
    return data.replace(text.encode(), text.encode()[:-2] + b"\xc3\x28")


def from_text(ion_text: str) -> bytes:
    return simpleion.dumps(simpleion.loads(ion_text, single_value=True), binary=True)


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"in": value}
    return value


# (name, user record bytes, part of the reason)
CORPUS = [
    ("not Ion: text", b"hello, world", "cannot parse Ion"),
    ("not Ion: binary noise", bytes(range(256)), "cannot parse Ion"),
    ("not a QLDB record: JSON", b'{"hello": "world"}', "recordType must be a string or symbol, got nothing"),
    ("empty", b"", "empty record"),
    ("only an Ion version marker", b"\xe0\x01\x00\xea", "no Ion value"),
    ("truncated Ion", good(1)[:70], "unexpected end of data"),
    ("top-level list", simpleion.dumps([1, 2], binary=True), "top-level Ion value is list, expected a struct"),
    ("two top-level values", good(1) + good(2)[4:], "more than one top-level value"),
    ("unknown record type", record(recordType="REVISION_SUMMARY"), "unknown recordType 'REVISION_SUMMARY'"),
    ("no record type", record(recordType=None), "recordType must be a string or symbol"),
    ("payload not a struct", record(payload=[1]), "payload must be a struct, got list"),
    ("missing tableInfo", record(payload__tableInfo=None), "payload.tableInfo must be a struct"),
    ("missing revision", record(payload__revision=None), "payload.revision must be a struct"),
    ("missing metadata", record(payload__revision__metadata=None), "revision without metadata"),
    ("metadata not a struct", record(payload__revision__metadata="m"), "metadata must be a struct, got string"),
    ("table name an int", record(payload__tableInfo__tableName=5), "tableInfo.tableName must be a string"),
    ("empty table name", record(payload__tableInfo__tableName=""), "tableInfo.tableName is empty"),
    ("id missing", record(payload__revision__metadata__id=None), "metadata.id must be a string or symbol"),
    ("id an int", record(payload__revision__metadata__id=7), "metadata.id must be a string or symbol, got int"),
    ("id empty", record(payload__revision__metadata__id=""), "metadata.id is empty"),
    ("id too long for its column", record(payload__revision__metadata__id="x" * 129), "at most 128"),
    ("version a string", record(payload__revision__metadata__version="3"), "metadata.version must be an int"),
    ("version a float", record(payload__revision__metadata__version=3.0), "got float"),
    ("version a bool", record(payload__revision__metadata__version=True), "got bool"),
    ("version negative", record(payload__revision__metadata__version=-1), "got -1"),
    ("version beyond 64 bits", record(payload__revision__metadata__version=2 ** 64), "2^63-1"),
    ("version missing", record(payload__revision__metadata__version=None), "got nothing (missing)"),
    ("txTime a string", record(payload__revision__metadata__txTime="2026-01-01"),
     "metadata.txTime must be a timestamp, got string"),
    ("txTime out of range in UTC",  # Ion text: the binary writer refuses this timestamp
     b'{qldbStreamArn:"a", recordType:"REVISION_DETAILS", payload:{tableInfo:{tableName:"T"}, '
     b'revision:{metadata:{id:"D", version:1, txTime:0001-01-01T00:00+01:00}, data:{}}}}',
     "out of range in UTC"),
    ("txId an int", record(payload__revision__metadata__txId=5), "metadata.txId must be a string"),
    ("data a list", record(payload__revision__data=[1]), "revision.data must be a struct, got list"),
    ("dataHash a string", record(payload__revision__data=None, payload__revision__dataHash="h"),
     "dataHash must be a blob"),
    ("both data and dataHash", record(payload__revision__dataHash=b"h"), "both data and dataHash"),
    ("huge document: a big blob", record(payload__revision__data={"photo": b"\x01" * (3 * 1024 * 1024)}),
     # base64 of 3 MiB is 4 MiB, plus {"photo":""}
     f"revision data too large: {4 * 1024 * 1024 + 12} bytes as JSON, at most {MAX_DOCUMENT_BYTES}"),
    ("huge document: many small values", record(payload__revision__data={"v": [None] * 900_000}),
     "revision data too large"),
    ("nested deeper than MySQL takes", record(payload__revision__data=nested(MAX_JSON_DEPTH + 1)),
     f"nested more than {MAX_JSON_DEPTH} structs/lists deep"),
    ("nested far too deep for the Ion reader",
     b'{recordType: "REVISION_DETAILS", payload: ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
    ("non-UTF-8 string", non_utf8("Zuricé", {"payload__revision__data": {"city": "Zuricé"}}), "not valid UTF-8"),
    ("non-UTF-8 field name", non_utf8("fieldé", {"payload__revision__data": {"fieldé": 1}}), "not valid UTF-8"),
    ("non-UTF-8 document id", non_utf8("DOCIDé", {"payload__revision__metadata__id": "DOCIDé"}),
     "not valid UTF-8"),
    ("symbol without text in data", from_text(
        '{qldbStreamArn:"a", recordType:"REVISION_DETAILS", payload:{tableInfo:{tableName:"T"}, '
        'revision:{metadata:{id:"D", version:1}, data:{s: $0}}}}'), "data.s: symbol with unknown text"),
]


@pytest.mark.parametrize("name, payload, reason", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_user_record_in_an_aggregate_is_a_dead_letter_and_its_neighbours_decode(name, payload, reason):
    # Kinesis takes records of up to 10 MiB since 2025; the huge samples need more than 1 MiB.
    (_key, data), = kpl.aggregate([("a", good(1)), ("b", payload), ("c", good(2))], max_bytes=10 * 1024 * 1024)
    out = list(decode_kinesis_record("stream", "shard-1", "4711", data))
    assert len(out) == 3
    first, letter, last = out
    assert isinstance(letter, DeadLetter), f"{name} decoded: {letter}"
    assert reason in letter.reason, letter.reason
    assert (letter.stream, letter.shard_id, letter.sequence_number, letter.sub_sequence, letter.stage) == \
        ("stream", "shard-1", "4711", 1, "decode")
    assert letter.raw == payload
    assert [first.revision.version, last.revision.version] == [1, 2]
    assert [first.sub_sequence, last.sub_sequence] == [0, 2]


@pytest.mark.parametrize("name, payload, reason", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_record_on_its_own_is_a_dead_letter_with_the_whole_record(name, payload, reason):
    (letter,) = decode_kinesis_record("stream", "shard-1", "4711", payload)
    assert isinstance(letter, DeadLetter) and reason in letter.reason
    # Its index in an aggregate the connector took apart is unknown: its position comes from its bytes.
    assert letter.sub_sequence == payload_position(payload) and letter.raw == payload


def _broken_aggregates() -> list:
    (_key, data), = kpl.aggregate([("a", good(1)), ("b", good(2))])
    body = data[len(kpl.MAGIC):-kpl.DIGEST_SIZE]
    return [
        ("bad MD5", data[:-1] + bytes([data[-1] ^ 0xFF]), "MD5 mismatch"),
        ("truncated", data[:-7], "MD5 mismatch"),
        ("truncated protobuf, MD5 recomputed", kpl.MAGIC + body[:-4] + hashlib.md5(body[:-4]).digest(),
         "protobuf AggregatedRecord does not parse"),
        ("shorter than magic and MD5", kpl.MAGIC + b"\x00" * 5, "truncated"),
        ("wrong magic", b"\xf3\x89\x9a\xc3" + data[4:], "cannot parse Ion"),
        ("no user records", kpl.MAGIC + hashlib.md5(b"").digest(), "no user records"),
    ]


@pytest.mark.parametrize("name, data, reason", _broken_aggregates(), ids=[c[0] for c in _broken_aggregates()])
def test_broken_aggregate_is_one_dead_letter_and_the_next_record_decodes(name, data, reason):
    (letter,) = decode_kinesis_record("stream", "shard-1", "5", data)
    assert isinstance(letter, DeadLetter) and reason in letter.reason, letter
    # A broken aggregate is the whole Kinesis record (-1); without the magic it is a plain record.
    position = NO_SUB_SEQUENCE if kpl.is_aggregated(data) else payload_position(data)
    assert letter.sub_sequence == position and letter.raw == data
    (_key, after), = kpl.aggregate([("a", good(3))])
    (decoded,) = decode_kinesis_record("stream", "shard-1", "6", after)
    assert decoded.revision.version == 3


def test_smaller_document_limit_is_honoured():
    (letter,) = decode_kinesis_record("s", "h", "1", good(1), max_document_bytes=5)
    assert "revision data too large: 7 bytes as JSON, at most 5" in letter.reason


@pytest.mark.parametrize("aggregate", [0, 5])
def test_the_simulators_bad_records_each_end_as_one_dead_letter(aggregate):
    spec = WorkloadSpec(tables=1, documents=5, revisions=2, aggregate=aggregate, bad_records=len(BAD_KINDS))
    samples = bad_samples(spec, generate(spec))
    assert len(samples) == len(BAD_KINDS)
    assert bool(aggregate) == any(s.envelope for s in samples)
    for sample in samples:
        data = sample.payload if sample.envelope or not aggregate else kpl.aggregate([("k", sample.payload)])[0][1]
        letters = [x for x in decode_kinesis_record("s", "h", "1", data) if isinstance(x, DeadLetter)]
        assert len(letters) == 1 and sample.reason in letters[0].reason, (sample.kind, letters)


def test_two_bad_user_records_the_connector_took_from_one_aggregate_keep_apart_positions():
    # flink-connector-kinesis hands each user record over with the parent's sequence number
    # and no index; dead letters are stored once per (sequence number, sub-sequence).
    first = decode_kinesis_record("stream", "shard-1", "4711", b"not ion 1")
    again = decode_kinesis_record("stream", "shard-1", "4711", b"not ion 1")
    second = decode_kinesis_record("stream", "shard-1", "4711", b"not ion 2")
    (a,), (b,), (c,) = list(first), list(again), list(second)
    assert a.sub_sequence == b.sub_sequence  # a replay after a restore: the same row, once
    assert a.sub_sequence != c.sub_sequence and min(a.sub_sequence, c.sub_sequence) >= 0
