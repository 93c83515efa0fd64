"""`ledgersync verify` and `backfill --verify` as a user runs them (their own processes),
on exports in moto's S3: the data objects are streamed from the S3 endpoint, not a
directory (the unit tests cover directories, each check and each broken input).

One Flink run: a damaged export's backfill with --verify refuses exactly the blocks `verify`
names and writes the rest. The rest runs without Flink (a few seconds each). An intact
export backfilled with --verify, then reconciled with MySQL before and after a row is
deleted, is part of tests/integration/test_backfill.py (its Ion text run from S3), so as
not to spend another Flink run on the same backfill."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from amazon.ion import simpleion

from connectors.aws_clients import aws_client
from connectors.formats.qldb_export import COMPLETED_SUFFIX, ION_BINARY, ION_TEXT, JSON
from job.cli.tools.simulate.export import STRAND, ExportSpec, generate_ledger, write_export
from tests.conftest import ROOT, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables


def ledgersync(*args: str, timeout_s: int = 420) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "job.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)


def _s3_uri() -> str:
    return f"s3://vf-{uuid.uuid4().hex[:10]}/journalExport"


def _export(services, fmt=ION_BINARY, **kwargs):
    spec = ExportSpec(tables=2, documents=15, output_format=fmt, blocks_per_object=10, seed=7)
    return write_export(generate_ledger(spec), _s3_uri(), endpoint=services.aws_endpoint(), out=lambda *_: None,
                        **kwargs)


def _s3(services):
    return aws_client("s3", "us-east-1", services.aws_endpoint())


def _bucket(written) -> str:
    return written.uri[len("s3://"):].split("/")[0]


def _rewrite_object(services, written, index: int, change) -> str:
    """Apply ``change(values)`` to the blocks of data object ``index`` in S3 (keeping its
    encoding); returns its key."""
    s3, key = _s3(services), written.keys[index]
    data = s3.get_object(Bucket=_bucket(written), Key=key)["Body"].read()
    values = simpleion.loads(data, single_value=False)
    change(values)
    binary = data[:4] == b"\xe0\x01\x00\xea"
    body = simpleion.dumps(values, binary=binary, sequence_as_stream=True)
    s3.put_object(Bucket=_bucket(written), Key=key, Body=body if binary else body.encode("utf-8"))
    return key


def _swap_objects(services, written, a: int, b: int) -> None:
    keys = list(written.keys)
    keys[a], keys[b] = keys[b], keys[a]
    name = f"{written.prefix}/{written.ledger.spec.export_id}.{STRAND}{COMPLETED_SUFFIX}"
    _s3(services).put_object(Bucket=_bucket(written), Key=name,
                             Body=simpleion.dumps({"keys": keys}, binary=True))


def _key_of(written, sequence_no: int) -> str:
    return next(k for k, blocks in zip(written.keys, written.object_blocks)
                if any(b.sequence_no == sequence_no for b in blocks))


def _change_transaction_info(values, index: int = 3) -> None:
    values[index]["transactionInfo"]["statements"][0]["statement"] = "UPDATE nothing"


def _damage(services, written, damage: str) -> tuple:
    """Break the export in S3 one way; (block "strand/seq", check, object key) verify must name first."""
    if damage == "tampered byte":  # write_export(tamper=...) changed a character after hashing
        seq = int(written.tampered.split("/")[1])
        return written.tampered, "revision-hash", _key_of(written, seq)
    if damage == "dropped block":
        return f"{STRAND}/{int(written.dropped.split('/')[1]) + 1}", "chain", _key_of(written, 26)
    if damage == "changed transactionInfo":
        key = _rewrite_object(services, written, 1, _change_transaction_info)
        return f"{STRAND}/{written.object_blocks[1][3].sequence_no}", "transaction-info", key
    if damage == "reordered object":
        _swap_objects(services, written, 1, 2)
        return f"{STRAND}/{written.object_blocks[2][0].sequence_no}", "chain", written.keys[2]
    raise AssertionError(damage)


@pytest.mark.parametrize("damage,kwargs", [
    ("tampered byte", {"tamper": 14}),
    ("changed transactionInfo", {}),
    ("dropped block", {"drop_block": 25}),
    ("reordered object", {}),
])
def test_verify_names_the_block_each_damage_breaks(tmp_path, services, damage, kwargs):
    written = _export(services, **kwargs)
    block, check, key = _damage(services, written, damage)
    props = write_properties(tmp_path, stream="unused", database="unused")
    report = tmp_path / "report.json"
    result = ledgersync("verify", "--export", written.uri, "--properties", props, "--report", str(report))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"first failure: block {block}: {check}: " in result.stdout and f"(object {key})" in result.stdout, \
        result.stdout
    first = json.loads(report.read_text())["verify"]["failures"][0]
    assert (f"{first['strandId']}/{first['sequenceNo']}", first["check"], first["key"]) == (block, check, key)


def test_a_json_export_cannot_be_verified_nor_backfilled_with_verify(tmp_path, services, mysql_database):
    written = _export(services, fmt=JSON)
    props = write_properties(tmp_path, stream="unused", database=mysql_database)
    for command in (["verify"], ["backfill", "--verify"]):
        result = ledgersync(*command, "--export", written.uri, "--properties", props, timeout_s=120)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.startswith("ledgersync: cannot verify: export ") and "is JSON: QLDB down-converted" \
            in result.stderr and "ION_BINARY or ION_TEXT" in result.stderr, result.stderr
        assert "running" not in result.stdout  # refused before any Flink job


def test_verified_backfill_refuses_exactly_the_blocks_verify_names(tmp_path, services, mysql_database, mysql_conn):
    """A tampered revision, a dropped block, a changed transactionInfo and two objects
    swapped: the backfill writes every other block and refuses these, each a dead letter
    (stage verify) at the block verify names, with the check."""
    written = _export(services, tamper=14, drop_block=45)
    _rewrite_object(services, written, 1, lambda values: _change_transaction_info(values, 7))
    _swap_objects(services, written, 2, 3)
    props = write_properties(tmp_path, stream="unused", database=mysql_database, replication={"history": "true"})
    report = tmp_path / "report.json"
    result = ledgersync("verify", "--export", written.uri, "--properties", props, "--report", str(report))
    assert result.returncode == 1, result.stdout + result.stderr
    named: dict = {}
    for failure in json.loads(report.read_text())["verify"]["failures"]:
        named.setdefault((failure["key"], f"block {failure['strandId']}/{failure['sequenceNo']}"),
                         []).append(failure["check"])
    assert {c for checks in named.values() for c in checks} == {"revision-hash", "transaction-info", "chain"}

    result = ledgersync("backfill", "--verify", "--export", written.uri, "--properties", props,
                        "--parallelism", "2", "--timeout", "300")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-6000:]
    assert f"verification FAILED: {len(named)} block(s) refused and 0 object(s) failed" in result.stdout, output
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT shard_id, sequence_number, stage, reason FROM _ledgersync_dead_letters")
        dead = cursor.fetchall()
    assert {(key, where) for key, where, _stage, _reason in dead} == set(named), dead
    for key, where, stage, reason in dead:
        assert stage == "verify" and reason.startswith(f"{where} fails verification (")
        assert all(check in reason for check in named[(key, where)]), reason
    refused = {int(where.split("/")[1]) for _key, where in named} | {45}
    kept = [r for r in written.revisions() if r.block_sequence_no not in refused]
    assert len(kept) < len(written.revisions())
    expected = expected_tables(kept, history=True)
    assert diff(expected, actual_tables(mysql_conn, expected)) == [], output[-3000:]
