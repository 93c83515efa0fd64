"""The journal verifier (connectors/formats/qldb_verify.py) and `ledgersync verify` on
simulated exports on local disk: dot, Merkle roots, each block check failing on its own
broken input, the chain, and the command's exit codes and messages."""
from __future__ import annotations

import hashlib
import os

import pytest
from amazon.ion import simpleion

from connectors.formats.qldb_export import COMPLETED_SUFFIX, ION_BINARY, ION_TEXT, JSON, find_export, open_store
from connectors.formats.qldb_verify import (BLOCK_HASH, CHAIN, ENTRIES_HASH, REVISION_HASH, REVISIONS_ROOT,
                                            TRANSACTION_INFO, Address, HashError, Link, check_block_hash,
                                            check_chain, check_entries_hash, check_revision_hashes,
                                            check_revisions_root, check_transaction_info, compare_hashes, dot,
                                            merkle_root, verify_block, verify_export)
from job.cli.main import main
from job.cli.verify import Progress
from job.cli.tools.simulate.export import STRAND, ExportSpec, chained_block_values, dot as sim_dot, generate_ledger, \
    write_export

SMALL = dict(tables=2, documents=8, blocks_per_object=10, redactions=3)


def h(n: int, last: int = None) -> bytes:
    out = bytearray(hashlib.sha256(str(n).encode()).digest())
    if last is not None:
        out[-1] = last
    return bytes(out)


# --- dot and Merkle roots --------------------------------------------------------------------

def test_dot_orders_by_signed_bytes_from_the_last():
    low, high = h(1, last=0x80), h(2, last=0x7F)  # 0x80 is -128 as a signed byte: the smaller
    assert compare_hashes(low, high) < 0 < compare_hashes(high, low)
    assert dot(low, high) == dot(high, low) == hashlib.sha256(low + high).digest()
    a, b = bytes(31) + b"\x01", b"\x02" + bytes(30) + b"\x01"  # equal last bytes: the earlier ones decide
    assert compare_hashes(a, b) < 0 and dot(a, b) == hashlib.sha256(a + b).digest()
    assert compare_hashes(a, a) == 0


def test_dot_refuses_empty_and_short_hashes():
    with pytest.raises(HashError, match="left hash is empty"):
        dot(b"", h(1))
    with pytest.raises(HashError, match="right hash has 31 bytes, not 32"):
        dot(h(1), h(2)[:31])


def test_merkle_root_pairs_and_carries_an_odd_one_up():
    a, b, c, d, e = (h(i) for i in range(5))
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == dot(a, b)
    assert merkle_root([a, b, c]) == dot(dot(a, b), c)
    assert merkle_root([a, b, c, d]) == dot(dot(a, b), dot(c, d))
    assert merkle_root([a, b, c, d, e]) == dot(dot(dot(a, b), dot(c, d)), e)
    with pytest.raises(HashError, match="no hashes"):
        merkle_root([])


# --- each block check on its own broken input ---------------------------------------------------

@pytest.fixture(scope="module")
def blocks():
    ledger = generate_ledger(ExportSpec(**SMALL))
    values = chained_block_values(ledger.blocks)
    # As a reader gets them back: Ion values.
    return [simpleion.loads(simpleion.dumps(v, binary=True)) for v in values]


def _copy(block):
    # A fresh copy to break (deepcopy cannot copy simpleion's timestamps).
    return simpleion.loads(simpleion.dumps(block, binary=True))


def _with_changes(blocks, redacted=False):
    for block in blocks:
        revisions = [r for r in block["revisions"] if "metadata" in r]
        if revisions and (not redacted or any("dataHash" in r for r in revisions)) \
                and (redacted or any("data" in r for r in revisions)):
            return _copy(block)
    raise AssertionError("no such block")


def test_intact_blocks_pass_every_check(blocks):
    assert all(verify_block(b) == [] for b in blocks)
    assert _with_changes(blocks, redacted=True)  # redactions are among them (dataHash, same formula)


def test_changed_transaction_info_fails_that_check_alone(blocks):
    block = _with_changes(blocks)
    block["transactionInfo"]["statements"][0]["statement"] = "DELETE FROM everything"
    assert [c for c, _ in verify_block(block)] == [TRANSACTION_INFO]
    assert "Ion hash of transactionInfo" in check_transaction_info(block)


def test_changed_data_fails_the_revision_hash_alone(blocks):
    block = _with_changes(blocks)
    index, revision = next((i, r) for i, r in enumerate(block["revisions"]) if "data" in r)
    revision["data"]["version_seen"] = 999
    assert [c for c, _ in verify_block(block)] == [REVISION_HASH]
    assert check_revision_hashes(block).startswith(f"revision {index} (document {revision['metadata']['id']} ")


def test_changed_metadata_and_data_hash_fail_the_revision_hash(blocks):
    block = _with_changes(blocks, redacted=True)
    revision = next(r for r in block["revisions"] if "dataHash" in r)
    revision["dataHash"] = h(7)
    assert [c for c, _ in verify_block(block)] == [REVISION_HASH]
    block = _with_changes(blocks)
    next(r for r in block["revisions"] if "metadata" in r)["metadata"]["version"] = 77
    assert [c for c, _ in verify_block(block)] == [REVISION_HASH]


def test_changed_system_revision_hash_fails_the_revisions_root_alone(blocks):
    block = _copy(blocks[0])  # CREATE TABLE: one system revision (only a hash)
    assert list(block["revisions"][0]) == ["hash"]
    block["revisions"][0]["hash"] = h(9)
    assert [c for c, _ in verify_block(block)] == [REVISIONS_ROOT]
    assert "Merkle root of the 1 revision hashes" in check_revisions_root(block)


def test_changed_entries_hash_fails_that_check_alone(blocks):
    block = _copy(blocks[3])
    block["entriesHash"] = h(10)
    block["blockHash"] = sim_dot(block["entriesHash"], block["previousBlockHash"])  # still consistent with it
    assert [c for c, _ in verify_block(block)] == [ENTRIES_HASH]
    assert check_entries_hash(block).startswith("entriesHash is ")


def test_changed_block_hash_fails_that_check_alone(blocks):
    block = _copy(blocks[3])
    block["blockHash"] = h(11)
    assert [c for c, _ in verify_block(block)] == [BLOCK_HASH]


def test_empty_or_missing_hashes_are_reported_not_raised(blocks):
    block = _copy(blocks[3])
    block["previousBlockHash"] = b""
    assert check_block_hash(block) == "previousBlockHash is empty"
    del block["entriesHashList"]
    assert check_entries_hash(block) == "entriesHashList is missing or not a list"
    assert check_transaction_info(block) == "entriesHashList is missing or not a list"


def test_the_chain():
    a = Address(STRAND, 5)
    link = Link(a, h(5), "k1")
    assert check_chain(None, Address(STRAND, 9), h(0)) is None  # an export may start mid-journal
    assert check_chain(link, Address(STRAND, 6), h(5)) is None
    assert "is not the blockHash" in check_chain(link, Address(STRAND, 6), h(4))
    assert check_chain(link, Address(STRAND, 7), h(6)).endswith("block 6 of the strand missing")
    assert check_chain(link, Address(STRAND, 9), h(8)).endswith("blocks 6..8 of the strand missing")
    assert "out of order or repeated" in check_chain(link, Address(STRAND, 5), h(4))


# --- the verifier over exports, and the command ---------------------------------------------------

def _export(tmp_path, name="export", fmt=ION_BINARY, **kwargs):
    written = write_export(generate_ledger(ExportSpec(output_format=fmt, **SMALL)), str(tmp_path / name),
                           out=lambda *_: None, **kwargs)
    return written


def _verify(capsys, directory) -> tuple:
    code = main(["verify", "--export", str(directory)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _path(written, key):
    return os.path.join(written.uri, key[len(written.prefix) + 1:])


@pytest.mark.parametrize("fmt", [ION_BINARY, ION_TEXT])
def test_an_intact_export_verifies(tmp_path, capsys, fmt):
    written = _export(tmp_path, fmt=fmt)
    code, out, err = _verify(capsys, written.uri)
    blocks = len(written.ledger.blocks)
    assert code == 0, out + err
    assert "verified, every check holds" in out
    assert f"objects {len(written.keys)}/{len(written.keys)}, blocks {blocks}/{blocks}" in out
    assert f"last block {STRAND}/{blocks}" in out and "final block hash " in out
    assert "ledgersync: verify read the export in" in err


def test_a_tampered_byte_names_its_block(tmp_path, capsys):
    written = _export(tmp_path, tamper=20)
    code, out, _ = _verify(capsys, written.uri)
    key = next(k for k, bs in zip(written.keys, written.object_blocks)
               if any(f"{STRAND}/{b.sequence_no}" == written.tampered for b in bs))
    assert code == 1
    assert f"first failure: block {written.tampered}: revision-hash: " in out and f"(object {key})" in out
    assert "FAILED: 1 failure\n" in out


def test_a_changed_transaction_info_names_its_block(tmp_path, capsys):
    written = _export(tmp_path)
    key = written.keys[1]
    path = _path(written, key)
    values = simpleion.loads(open(path, "rb").read(), single_value=False)
    values[2]["transactionInfo"]["statements"][0]["statement"] = "UPDATE nothing"
    with open(path, "wb") as handle:
        handle.write(simpleion.dumps(values, binary=True, sequence_as_stream=True))
    code, out, _ = _verify(capsys, written.uri)
    seq = written.object_blocks[1][2].sequence_no
    assert code == 1
    assert f"first failure: block {STRAND}/{seq}: transaction-info: " in out and f"(object {key})" in out


def test_a_dropped_block_names_the_block_after_it(tmp_path, capsys):
    written = _export(tmp_path, drop_block=25)
    code, out, _ = _verify(capsys, written.uri)
    assert code == 1
    assert f"first failure: block {STRAND}/26: chain: " in out and "block 25 of the strand missing" in out


def test_a_reordered_object_names_the_first_block_out_of_place(tmp_path, capsys):
    written = _export(tmp_path)
    keys = list(written.keys)
    keys[1], keys[2] = keys[2], keys[1]
    manifest = os.path.join(written.uri, f"{written.ledger.spec.export_id}.{STRAND}{COMPLETED_SUFFIX}")
    with open(manifest, "w") as handle:
        handle.write(simpleion.dumps({"keys": keys}, binary=False, omit_version_marker=True))
    code, out, _ = _verify(capsys, written.uri)
    moved_first = written.object_blocks[2][0].sequence_no
    assert code == 1
    assert f"first failure: block {STRAND}/{moved_first}: chain: " in out and f"(object {written.keys[2]})" in out
    assert "FAILED: 3 failures" in out  # the moved object, the one after it, and the next one back in place


def test_every_failure_is_counted_and_the_report_has_them(tmp_path, capsys):
    written = _export(tmp_path, tamper=20, drop_block=33)
    report = tmp_path / "report.json"
    code = main(["verify", "--export", written.uri, "--report", str(report)])
    capsys.readouterr()
    import json

    result = json.loads(report.read_text())["verify"]
    assert code == 1 and result["failureCount"] == 2 and not result["ok"]
    assert [(f["sequenceNo"], f["check"]) for f in result["failures"]] == [
        (int(written.tampered.split("/")[1]), REVISION_HASH), (34, CHAIN)]


def test_a_missing_object_and_a_truncated_one_are_failures(tmp_path):
    written = _export(tmp_path)
    os.remove(_path(written, written.keys[1]))
    path = _path(written, written.keys[2])
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[:len(data) // 2])
    store = open_store(written.uri)
    summary = verify_export(store, find_export(store))
    checks = [(f.key, f.check) for f in summary.failures]
    assert (written.keys[1], "object") in checks and (written.keys[2], "object") in checks
    assert any("cannot parse the object's Ion after block" in f.detail for f in summary.failures)


def test_a_json_export_is_refused_with_the_reason(tmp_path, capsys):
    written = _export(tmp_path, fmt=JSON)
    code, out, err = _verify(capsys, written.uri)
    assert code == 2 and out == ""
    assert "is JSON: QLDB down-converted its Ion" in err and "ION_BINARY or ION_TEXT" in err


def test_an_unfinished_export_is_refused(tmp_path, capsys):
    written = _export(tmp_path)
    os.remove(os.path.join(written.uri, f"{written.ledger.spec.export_id}.{STRAND}{COMPLETED_SUFFIX}"))
    code, _, err = _verify(capsys, written.uri)
    assert code == 2 and "has a started manifest but no completed manifest" in err


def test_progress_says_objects_blocks_and_rate():
    from connectors.formats.qldb_verify import Summary

    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    now = [0.0]
    progress = Progress(out=Out(), every_s=5.0, clock=lambda: now[0])
    summary = Summary(objects_total=4, blocks_total=100, objects=1, blocks=30, bytes_read=10_000_000)
    progress(summary)
    assert lines == []
    now[0] = 5.0
    progress(summary)
    assert "verify: objects 1/4, blocks 30/100, 10.0 MB read (2.0 MB/s), failures 0" in "".join(lines)


def test_the_last_block_of_an_object_dropped_is_named_by_the_object_too(tmp_path):
    written = _export(tmp_path, drop_block=30)  # the last block of the object named ...21-30
    store = open_store(written.uri)
    summary = verify_export(store, find_export(store))
    assert [(str(f.address), f.check) for f in summary.failures] == [(f"{STRAND}/29", "object"),
                                                                      (f"{STRAND}/31", CHAIN)]
    assert "name says blocks 21-30 but it ends with block 29" in summary.failures[0].detail
