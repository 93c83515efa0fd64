"""QLDB journal exports without Flink or services: manifests, the three block formats, the
JSON down-conversion, the table mapping, system revisions and corrupt objects."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from connectors.dead_letters import DeadLetter
from connectors.formats.qldb_export import (FORMATS, ION_BINARY, ION_TEXT, JSON, DirectoryExportStore, Export, ExportError,
                                    MissingObject, ObjectStats, block_range, find_export, open_store,
                                    parse_completed_manifest, parse_export_uri, parse_started_manifest,
                                    read_object)
from connectors.formats.qldb import decode_record
from connectors.formats.qldb_encode import encode_revision
from job.cli.tools.simulate.export import ExportSpec, block_value, downconvert, encode_block, generate_ledger, write_export

STARTED = (b'{ ledgerName:"my-example-ledger", exportId:"8UyXulxccYLAsbN1aon7e4", '
           b'inclusiveStartTime:2019-04-15T00:00:00.000Z, exclusiveEndTime:2019-04-15T22:00:00.000Z, '
           b'bucket:"amzn-s3-demo-bucket", prefix:"journalExport", objectEncryptionType:"NO_ENCRYPTION", '
           b'outputFormat:"ION_TEXT" }')
COMPLETED = (b'{ keys:["journalExport/2019/04/15/22/JdxjkR9bSYB5jMHWcI464T.1-4.ion", '
             b'"journalExport/2019/04/15/22/JdxjkR9bSYB5jMHWcI464T.5-10.ion"] }')

# One block as the developer guide shows it (shortened hashes), in Ion text: a system
# revision (hash only), an insert, an update of another document, a delete, a redaction.
BLOCK = b"""
{
  blockAddress:{strandId:"JdxjkR9bSYB5jMHWcI464T",sequenceNo:5},
  transactionId:"D35qctdJRU1L1N2VhxbwSn",
  blockTimestamp:2019-10-25T17:20:21.009Z,
  blockHash:{{WYLOfZClk0lYWT3lUsSr0ONXh+Pw8MxxB+9zvTgSvlQ=}},
  entriesHash:{{xN9X96atkMvhvF3nEy6jMSVQzKjHJfz1H3bsNeg8GMA=}},
  previousBlockHash:{{IAfZ0h22ZjvcuHPSBCDy/6XNQTsqEmeY3GW0gBae8mg=}},
  entriesHashList:[{{F7rQIKCNn0vXVWPexilGfJn5+MCrtsSQqqVdlQxXpS4=}}],
  transactionInfo:{
    statements:[{statement:"INSERT INTO Vehicle ...",startTime:2019-10-25T17:20:20.910Z,
                 statementDigest:{{y4hqDPjNHYmiYDmIWNTCUAxsiZGUWPfYAxw47ZcQrCQ=}}}],
    documents:{
      '8F0TPCmdNQ6JTRpiLj2TmW':{tableName:"Vehicle",tableId:"LSkFkQvMz5N4rSLNnQzrDS",statements:[0]},
      'IxlQvwRQaqHEmXhBNj7xjK':{tableName:"Person",tableId:"Ai6eSRwjOEG1yZaEIGmvPj",statements:[0]},
      'Delete00000000000000AA':{tableName:"Person",tableId:"Ai6eSRwjOEG1yZaEIGmvPj",statements:[0]},
      'Redact00000000000000BB':{tableName:"Vehicle Registration",tableId:"Ki6eSRwjOEG1yZaEIGmvPj",statements:[0]}
    }
  },
  revisions:[
    {hash:{{FR1IWcWew0yw1TnRklo2YMF/qtwb7ohsu5FD8A4DSVg=}}},
    {blockAddress:{strandId:"JdxjkR9bSYB5jMHWcI464T",sequenceNo:5},
     hash:{{t8Hj6/VC4SBitxnvBqJbOmrGytF2XAA/1c0AoSq2NQY=}},
     data:{VIN:"1N4AL11D75C109151",Year:2011,Price:3000.10,Make:'Nissan',Bought:2011-04-02T,Photo:{{aGk=}}},
     metadata:{id:"8F0TPCmdNQ6JTRpiLj2TmW",version:0,txTime:2019-10-25T17:20:20.920Z,txId:"D35qctdJRU1L1N2VhxbwSn"}},
    {blockAddress:{strandId:"JdxjkR9bSYB5jMHWcI464T",sequenceNo:5},
     hash:{{t8Hj6/VC4SBitxnvBqJbOmrGytF2XAA/1c0AoSq2NQY=}},
     data:{FirstName:"Raul",LastName:"Lewis"},
     metadata:{id:"IxlQvwRQaqHEmXhBNj7xjK",version:3,txTime:2019-10-25T17:20:20.920Z,txId:"D35qctdJRU1L1N2VhxbwSn"}},
    {blockAddress:{strandId:"JdxjkR9bSYB5jMHWcI464T",sequenceNo:5},
     hash:{{t8Hj6/VC4SBitxnvBqJbOmrGytF2XAA/1c0AoSq2NQY=}},
     metadata:{id:"Delete00000000000000AA",version:2,txTime:2019-10-25T17:20:20.920Z,txId:"D35qctdJRU1L1N2VhxbwSn"}},
    {blockAddress:{strandId:"JdxjkR9bSYB5jMHWcI464T",sequenceNo:5},
     hash:{{t8Hj6/VC4SBitxnvBqJbOmrGytF2XAA/1c0AoSq2NQY=}},
     dataHash:{{Z1JNLmpXfRcQCevNbsVXxq8hALPPMY1OgH5yGkuIDyw=}},
     metadata:{id:"Redact00000000000000BB",version:1,txTime:2019-10-25T17:20:20.920Z,txId:"D35qctdJRU1L1N2VhxbwSn"}}
  ]
}
"""

# The same block as a JSON export writes it (QLDB's down-conversion: timestamps in their
# Ion text form, blobs in base64).
ADDRESS = {"strandId": "JdxjkR9bSYB5jMHWcI464T", "sequenceNo": 5}
BLOCK_JSON = json.dumps({
    "blockAddress": {"strandId": "JdxjkR9bSYB5jMHWcI464T", "sequenceNo": 5},
    "transactionId": "D35qctdJRU1L1N2VhxbwSn", "blockTimestamp": "2019-10-25T17:20:21.009Z",
    "blockHash": "WYLOfZClk0lYWT3lUsSr0ONXh+Pw8MxxB+9zvTgSvlQ=",
    "transactionInfo": {"statements": [{"statement": "INSERT INTO Vehicle ..."}], "documents": {
        "8F0TPCmdNQ6JTRpiLj2TmW": {"tableName": "Vehicle", "tableId": "LSkFkQvMz5N4rSLNnQzrDS", "statements": [0]},
        "IxlQvwRQaqHEmXhBNj7xjK": {"tableName": "Person", "tableId": "Ai6eSRwjOEG1yZaEIGmvPj", "statements": [0]},
        "Delete00000000000000AA": {"tableName": "Person", "tableId": "Ai6eSRwjOEG1yZaEIGmvPj", "statements": [0]},
        "Redact00000000000000BB": {"tableName": "Vehicle Registration", "tableId": "Ki6eSRwjOEG1yZaEIGmvPj",
                                   "statements": [0]}}},
    "revisions": [
        {"hash": "FR1IWcWew0yw1TnRklo2YMF/qtwb7ohsu5FD8A4DSVg="},
        {"blockAddress": ADDRESS, "hash": "t8Hj", "data": {"VIN": "1N4AL11D75C109151", "Year": 2011, "Price": "PRICE", "Make": "Nissan",
                                  "Bought": "2011-04-02", "Photo": "aGk="},
         "metadata": {"id": "8F0TPCmdNQ6JTRpiLj2TmW", "version": 0, "txTime": "2019-10-25T17:20:20.920Z",
                      "txId": "D35qctdJRU1L1N2VhxbwSn"}},
        {"blockAddress": ADDRESS, "hash": "t8Hj", "data": {"FirstName": "Raul", "LastName": "Lewis"},
         "metadata": {"id": "IxlQvwRQaqHEmXhBNj7xjK", "version": 3, "txTime": "2019-10-25T17:20:20.920Z",
                      "txId": "D35qctdJRU1L1N2VhxbwSn"}},
        {"blockAddress": ADDRESS, "hash": "t8Hj", "metadata": {"id": "Delete00000000000000AA", "version": 2,
                                      "txTime": "2019-10-25T17:20:20.920Z", "txId": "D35qctdJRU1L1N2VhxbwSn"}},
        {"blockAddress": ADDRESS, "hash": "t8Hj", "dataHash": "Z1JNLmpXfRcQCevNbsVXxq8hALPPMY1OgH5yGkuIDyw=",
         "metadata": {"id": "Redact00000000000000BB", "version": 1, "txTime": "2019-10-25T17:20:20.920Z",
                      "txId": "D35qctdJRU1L1N2VhxbwSn"}},
    ]}).replace('"PRICE"', "3000.10")  # a JSON number, as the decimal becomes


def _read(data: bytes, fmt: str = ION_TEXT, stats=None) -> list:
    return list(read_object("exp1", "journalExport/2019/x.1-1.ion", data, fmt, stats=stats))


def _row(r) -> tuple:
    return (r.table, r.table_id, r.document_id, r.version, r.tx_id, r.tx_time, r.data_json, r.deleted, r.redacted,
            r.block_strand_id, r.block_sequence_no)


# --- locations and manifests ------------------------------------------------------------

def test_export_uris(tmp_path):
    s3 = parse_export_uri("s3://my-bucket/journalExport/")
    assert (s3.bucket, s3.prefix, s3.is_s3) == ("my-bucket", "journalExport", True)
    assert parse_export_uri("s3://my-bucket").prefix == ""
    local = parse_export_uri(str(tmp_path))
    assert not local.is_s3 and local.prefix == str(tmp_path)
    with pytest.raises(ExportError, match="names no bucket"):
        parse_export_uri("s3:///prefix")
    with pytest.raises(ExportError, match="only s3://bucket/prefix and local directories"):
        parse_export_uri("gs://bucket/prefix")
    with pytest.raises(ExportError, match="does not exist"):
        parse_export_uri(str(tmp_path / "missing"))


def test_started_manifest_as_the_guide_shows_it():
    request = parse_started_manifest(STARTED)
    assert request == {"export_id": "8UyXulxccYLAsbN1aon7e4", "output_format": ION_TEXT,
                       "ledger_name": "my-example-ledger", "prefix": "journalExport",
                       "inclusive_start": "2019-04-15T00:00:00.000Z", "exclusive_end": "2019-04-15T22:00:00.000Z"}
    # Older exports have no outputFormat: ION_TEXT. JSON exports write JSON manifests.
    assert parse_started_manifest(b'{exportId:"a"}')["output_format"] == ION_TEXT
    assert parse_started_manifest(b'{"exportId": "a", "outputFormat": "JSON"}')["output_format"] == JSON
    with pytest.raises(ExportError, match="outputFormat 'CSV' is not one of ION_TEXT, ION_BINARY, JSON"):
        parse_started_manifest(b'{exportId:"a", outputFormat:"CSV"}')
    with pytest.raises(ExportError, match="has no exportId"):
        parse_started_manifest(b"{}")
    with pytest.raises(ExportError, match="cannot be parsed"):
        parse_started_manifest(b"{exportId:")


def test_completed_manifest_and_block_ranges():
    keys = parse_completed_manifest(COMPLETED)
    assert keys[1] == "journalExport/2019/04/15/22/JdxjkR9bSYB5jMHWcI464T.5-10.ion"
    assert [block_range(k) for k in keys] == [(1, 4), (5, 10)]
    assert block_range("a/b/strand.7-7.json") == (7, 7) and block_range("a/b/object.ion") is None
    assert Export("e", "u", ION_TEXT, strands={"s": keys}).blocks_total == 10
    assert Export("e", "u", ION_TEXT, strands={"s": keys + ["x.ion"]}).blocks_total is None
    assert parse_completed_manifest(b"{keys: []}") == []
    with pytest.raises(ExportError, match="keys must be a list of strings"):
        parse_completed_manifest(b"{keys: [1]}")


def _layout(root, files: dict):
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return DirectoryExportStore(parse_export_uri(str(root)))


def test_find_export(tmp_path):
    store = _layout(tmp_path / "one", {"8UyXulxccYLAsbN1aon7e4.started.manifest": STARTED,
                                       "8UyXulxccYLAsbN1aon7e4.JdxjkR9bSYB5jMHWcI464T.completed.manifest": COMPLETED,
                                       "2019/04/15/22/JdxjkR9bSYB5jMHWcI464T.1-4.ion": BLOCK})
    export = find_export(store)
    assert (export.export_id, export.ledger_name, export.prefix) == ("8UyXulxccYLAsbN1aon7e4", "my-example-ledger",
                                                                    "journalExport")
    assert export.keys == parse_completed_manifest(COMPLETED) and export.blocks_total == 10
    # The manifests' keys carry the S3 prefix; a local copy has the objects without it.
    assert store.read_key(export.keys[0], export.prefix) == BLOCK
    with pytest.raises(MissingObject, match="does not exist"):
        store.read_key(export.keys[1], export.prefix)
    with pytest.raises(MissingObject, match="outside the export directory"):
        store.read_key("journalExport/../../etc/passwd", export.prefix)
    with pytest.raises(ExportError, match="no export abc under .* \\(exports there: 8UyXulxccYLAsbN1aon7e4\\)"):
        find_export(store, "abc")


def test_find_export_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(ExportError, match="no QLDB journal export under .*: no <exportId>.started.manifest"):
        find_export(_layout(tmp_path / "empty", {"readme.txt": b"x"}))
    unfinished = _layout(tmp_path / "unfinished", {"8UyXulxccYLAsbN1aon7e4.started.manifest": STARTED})
    with pytest.raises(ExportError) as caught:
        find_export(unfinished)
    assert str(caught.value) == (f"export 8UyXulxccYLAsbN1aon7e4 under {tmp_path / 'unfinished'} has a started "
                                 "manifest but no completed manifest: the export has not finished (or its "
                                 "completed manifests were not copied)")
    two = _layout(tmp_path / "two", {"a.started.manifest": b'{exportId:"a"}', "b.started.manifest": b'{exportId:"b"}',
                                     "b.s.completed.manifest": b"{keys:[]}"})
    with pytest.raises(ExportError, match=r"2 exports under .* \(a, b\): choose one with --export-id"):
        find_export(two)
    assert find_export(two, "b").keys == []
    wrong = _layout(tmp_path / "wrong", {"a.started.manifest": b'{exportId:"b"}'})
    with pytest.raises(ExportError, match="names exportId b"):
        find_export(wrong)


# --- blocks, tables, system revisions -------------------------------------------------------

def test_block_revisions_take_their_table_from_transaction_info_and_skip_system_revisions():
    stats = ObjectStats()
    revisions = _read(BLOCK, stats=stats)
    assert (stats.blocks, stats.revisions, stats.system_revisions, stats.dead_letters) == (1, 4, 1, 0)
    insert, update, delete, redaction = revisions
    assert (insert.table, insert.table_id, insert.document_id, insert.version) == (
        "Vehicle", "LSkFkQvMz5N4rSLNnQzrDS", "8F0TPCmdNQ6JTRpiLj2TmW", 0)
    assert json.loads(insert.data_json) == {"VIN": "1N4AL11D75C109151", "Year": 2011, "Price": "3000.10",
                                            "Make": "Nissan", "Bought": "2011-04-02", "Photo": "aGk="}
    assert insert.tx_time == dt.datetime(2019, 10, 25, 17, 20, 20, 920000, tzinfo=dt.timezone.utc)
    assert (insert.block_strand_id, insert.block_sequence_no) == ("JdxjkR9bSYB5jMHWcI464T", 5)
    assert (update.table, update.version, update.deleted) == ("Person", 3, False)
    assert (delete.table, delete.deleted, delete.data) == ("Person", True, None)
    assert (redaction.table, redaction.redacted, redaction.deleted) == ("Vehicle Registration", True, False)


def test_export_revisions_equal_what_the_stream_decoder_makes_of_the_same_revision():
    (insert, *_rest) = _read(BLOCK)
    from amazon.ion import simpleion

    block = simpleion.loads(BLOCK)
    revision = block["revisions"][1]
    meta = revision["metadata"]
    record = encode_revision(table="Vehicle", table_id="LSkFkQvMz5N4rSLNnQzrDS", document_id=meta["id"],
                             version=meta["version"], data=revision["data"], tx_id=meta["txId"],
                             tx_time=meta["txTime"], strand_id="JdxjkR9bSYB5jMHWcI464T", sequence_no=5)
    assert _row(decode_record(record).revision) == _row(insert)


def test_a_revision_whose_document_has_no_table_is_a_dead_letter_and_its_neighbours_go_on():
    text = BLOCK.replace(b"'IxlQvwRQaqHEmXhBNj7xjK':{", b"'SomeOtherDocument00000':{")
    items = _read(text)
    dead = [i for i in items if isinstance(i, DeadLetter)]
    assert len(items) == 4 and len(dead) == 1
    assert dead[0].stream == "export:exp1" and dead[0].shard_id == "journalExport/2019/x.1-1.ion"
    assert dead[0].sequence_number == "block JdxjkR9bSYB5jMHWcI464T/5" and dead[0].sub_sequence == 2
    assert "'IxlQvwRQaqHEmXhBNj7xjK' has no entry in transactionInfo.documents" in dead[0].reason


def test_bad_revisions_get_the_stream_decoders_reasons():
    items = _read(BLOCK.replace(b"version:3", b'version:"3"'))
    (dead,) = [i for i in items if isinstance(i, DeadLetter)]
    assert "revision 2: metadata.version must be an int" in dead.reason


def test_blocks_without_revisions_or_that_are_not_blocks():
    stats = ObjectStats()
    items = _read(b'{blockAddress:{strandId:"s",sequenceNo:1}} 42 {revisions:7}', stats=stats)
    assert [i.sequence_number for i in items] == ["value 1", "value 2"]
    assert "not a block" in items[0].reason and "revisions must be a list" in items[1].reason
    assert stats.blocks == 3 and stats.dead_letters == 2


# --- JSON down-conversion ----------------------------------------------------------------------

def test_json_export_gives_the_same_rows_as_ion():
    stats = ObjectStats()
    from_json = _read(BLOCK_JSON.encode(), JSON, stats)
    assert [_row(r) for r in from_json] == [_row(r) for r in _read(BLOCK)]
    assert stats.system_revisions == 1


def test_json_down_conversion_of_every_ion_type_and_back():
    from amazon.ion import simpleion

    ion = simpleion.loads(b"{a:1.10, b:12.00, c:2011-04-02T08:01:02.5-07:00, d:{{aGk=}}, e:sym, f:null.int, "
                          b"g:18446744073709551616, h:[true, \"Z\\u00fcrich\"], i:{j:-0.0}}")
    text = downconvert(ion)
    assert json.loads(text)["c"] == "2011-04-02T08:01:02.5-07:00" and json.loads(text)["d"] == "aGk="
    from connectors.formats.ion_json import ion_to_json

    back = simpleion.loads(text)  # what the reader does with a JSON line
    assert ion_to_json(back) == ion_to_json(ion)


def test_what_json_down_conversion_loses_is_documented():
    from amazon.ion import simpleion

    from connectors.formats.ion_json import ion_to_json

    ion = simpleion.loads(b"{whole_decimal:12., float:1.5e0}")
    back = ion_to_json(simpleion.loads(downconvert(ion)))
    assert ion_to_json(ion) == {"whole_decimal": "12", "float": 1.5}
    assert back == {"whole_decimal": 12, "float": "1.5"}  # JSON cannot tell these apart


def test_json_metadata_that_is_not_a_timestamp_or_base64():
    # The first txTime is the insert's (the block's own times differ).
    items = _read(BLOCK_JSON.replace("2019-10-25T17:20:20.920Z", "yesterday", 1).encode(), JSON)
    assert "metadata.txTime 'yesterday' is not a timestamp" in items[0].reason
    items = _read(BLOCK_JSON.replace("Z1JNLmpX", "!!!").encode(), JSON)
    assert "dataHash is not base64" in items[-1].reason


# --- corrupt objects ---------------------------------------------------------------------------

def test_truncated_ion_keeps_the_blocks_before_it():
    ledger = generate_ledger(ExportSpec(tables=1, documents=5, output_format=ION_BINARY))
    blocks = [block_value(b) for b in ledger.blocks[:6]]
    data = b"".join(encode_block(b, ION_BINARY) for b in blocks)
    items = list(read_object("e", "k", data[:-20], ION_BINARY))
    dead = items[-1]
    assert isinstance(dead, DeadLetter) and not any(isinstance(i, DeadLetter) for i in items[:-1])
    assert dead.sequence_number == f"after block JdxjkR9bSYB5jMHWcI464T/{ledger.blocks[4].sequence_no}"
    assert "cannot parse binary Ion" in dead.reason and "the rest of the object is not replicated" in dead.reason
    assert dead.raw == data[:-20]


def test_not_ion_at_all_and_empty_objects():
    (dead,) = _read(b"\x00\x01garbage", ION_TEXT)
    assert dead.sequence_number == "value 0" and "cannot parse Ion text" in dead.reason
    (dead,) = _read(b"", ION_BINARY)
    assert dead.sequence_number == "object" and "empty data object" in dead.reason


def test_a_bad_json_line_costs_only_that_line():
    good = BLOCK_JSON.encode()
    data = good + b"\n{\"blockAddress\": \n" + b"\xff\xfe\n" + good + b"\n"
    items = _read(data, JSON)
    dead = [i for i in items if isinstance(i, DeadLetter)]
    assert len(items) == 10 and len(dead) == 2
    assert dead[0].sequence_number == f"line 2 (byte {len(good) + 1})" and "does not parse" in dead[0].reason
    assert dead[1].sequence_number.startswith("line 3 ") and "not UTF-8" in dead[1].reason


# --- the simulator's exports, read back ------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_simulated_exports_read_back_to_the_ledger(tmp_path, fmt):
    ledger = generate_ledger(ExportSpec(tables=3, documents=12, output_format=fmt, blocks_per_object=15))
    written = write_export(ledger, str(tmp_path), corrupt_object=1, out=lambda *_: None)
    store = open_store(str(tmp_path))
    export = find_export(store)
    assert export.output_format == fmt and len(export.keys) >= 3 and export.blocks_total == len(ledger.blocks)
    items = [i for key in export.keys
             for i in read_object(export.export_id, key, store.read_key(key, export.prefix), fmt)]
    dead = [i for i in items if isinstance(i, DeadLetter)]
    assert len(dead) == 1 and dead[0].shard_id == written.keys[1]
    assert sorted(_row(r) for r in items if not isinstance(r, DeadLetter)) == sorted(
        _row(r) for r in written.revisions())
    revisions = ledger.revisions()
    assert any(r.deleted for r in revisions) and any(r.redacted for r in revisions)
    assert sum(b.system_revisions for b in ledger.blocks) >= 3 + 1  # tables created, redactions
