"""`ledgersync backfill` on the mini-cluster: a simulated QLDB journal export in each output
format, from moto's S3 and from a local directory, ends in MySQL exactly as the oracle
says (history included); a stream overlapping the export's last blocks and going beyond
then ends equal to the oracle of both; a corrupt data object costs only its own blocks.
The Ion text one from S3 runs with --verify, and `verify --against-mysql` then finds MySQL
equal to the export (documents the stream changed after it reported as newer), and after
one row is deleted reports exactly that row (tests/integration/test_verify.py has the
rest of verify). Kept to five Flink runs; the reader alone covers every format from both
places."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from connectors.formats.qldb_export import FORMATS, DeadLetter, find_export, open_store, read_object
from connectors.mysql import sql
from job.cli.tools.simulate.export import ExportSpec, generate_ledger, put_stream, write_export
from tests.conftest import ROOT, run_job, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables


def run_backfill(properties: str, export_uri: str, timeout_s: int = 300, extra_args=()) -> str:
    """`ledgersync backfill` in its own process, as a user runs it; returns its output."""
    command = [sys.executable, "-m", "job.cli", "backfill", "--properties", properties, "--export", export_uri,
               "--timeout", str(timeout_s), *extra_args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s + 120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"ledgersync backfill failed ({result.returncode}):\n{output[-6000:]}"
    assert "backfill done after" in result.stdout, output[-6000:]
    return result.stdout


def _s3_uri() -> str:
    return f"s3://bf-{uuid.uuid4().hex[:10]}/journalExport"


def _count(conn, sql: str) -> int:
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


@pytest.mark.parametrize("output_format,where,order,corrupt", [
    ("ION_TEXT", "s3", "false", None),  # ... each then carried on by the stream (below)
    ("ION_BINARY", "directory", "true", None),
    ("JSON", "s3", "false", 1),
])
def test_backfill_equals_oracle(tmp_path, services, kinesis, stream_name, mysql_database, mysql_conn,
                                output_format, where, order, corrupt):
    spec = ExportSpec(tables=3, documents=30, output_format=output_format, blocks_per_object=30, seed=5,
                      overlap_blocks=10, later=40)
    ledger = generate_ledger(spec)
    uri = _s3_uri() if where == "s3" else str(tmp_path / "export")
    written = write_export(ledger, uri, endpoint=services.aws_endpoint(), corrupt_object=corrupt)
    assert len(written.keys) >= 4  # several data objects
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             replication={"history": "true", "order": order, "order.timeout.ms": "600000"})

    verify = output_format == "ION_TEXT"  # JSON cannot be verified; ION_BINARY shows a backfill without it
    output = run_backfill(props, uri, extra_args=["--parallelism", "2"] + (["--verify"] if verify else []))
    assert ("verified: every block passed every check" in output) == verify, output

    revisions = written.revisions()
    assert any(r.deleted for r in revisions) and any(r.redacted for r in revisions)
    expected = expected_tables(revisions, history=True)
    assert diff(expected, actual_tables(mysql_conn, expected)) == [], output
    dead = _count(mysql_conn, "SELECT COUNT(*) FROM _ledgersync_dead_letters")
    if corrupt is None:
        assert dead == 0, output
        assert f"blocks {len(ledger.blocks)}/{len(ledger.blocks)}" in output
    else:
        assert written.lost  # the corruption did cost revisions, and only those
        with mysql_conn.cursor() as cursor:
            cursor.execute("SELECT stream, shard_id, sequence_number, reason FROM _ledgersync_dead_letters")
            (stream, shard, position, reason), = cursor.fetchall()
        assert stream == f"export:{spec.export_id}" and shard == written.keys[corrupt]
        assert position.startswith("line ") and "does not parse" in reason
        assert "dead letters 1" in output
    if order == "true":
        assert _count(mysql_conn, "SELECT COUNT(*) FROM _ledgersync_gaps") == 0

    if corrupt is not None:
        return
    # Then the stream: the export's last 10 blocks again, 40 later transactions and 15 old
    # revisions of documents the export deleted (shuffled, some twice), read by a separate job with no Flink state of the backfill's: MySQL's
    # guards and tombstones alone keep the overlap from being applied twice or a deleted
    # document from coming back.
    stream_revisions = put_stream(ledger, kinesis, stream_name, shards=2, duplicates=0.2, late_deleted=15)
    overlap = {(r.table, r.document_id, r.version) for r in revisions}
    assert sum((r.table, r.document_id, r.version) in overlap for r in stream_revisions) >= 10
    deleted_in_export = {(r.table, r.document_id) for r in revisions if r.deleted}
    assert any((r.table, r.document_id) in deleted_in_export for r in stream_revisions)
    run_job(props)
    expected = expected_tables(revisions + stream_revisions, history=True)
    assert diff(expected, actual_tables(mysql_conn, expected)) == []
    if verify:
        _reconcile_then_delete_one_row(tmp_path, props, uri, revisions, stream_revisions, mysql_conn)


def _reconcile(tmp_path, props: str, uri: str) -> tuple:
    report = tmp_path / f"reconcile-{uuid.uuid4().hex[:6]}.json"
    result = subprocess.run([sys.executable, "-m", "job.cli", "verify", "--export", uri, "--properties", props,
                             "--against-mysql", "--report", str(report)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert "verified, every check holds" in result.stdout, result.stdout + result.stderr
    return result.returncode, json.loads(report.read_text())["mysql"]


def _reconcile_then_delete_one_row(tmp_path, props, uri, revisions, stream_revisions, mysql_conn) -> None:
    """MySQL equals the export's final state, except documents the stream took further
    (newer in MySQL: allowed); once one row is deleted, exactly that row is missing."""
    def final(revs) -> dict:  # (table, id) -> (version, deleted) of the newest revision, redactions aside
        out = {}
        for r in sorted((r for r in revs if not r.redacted), key=lambda r: r.version):
            out[(r.table, r.document_id)] = (r.version, r.deleted)
        return out

    exported, streamed = final(revisions), final(revisions + stream_revisions)
    live = {key for key, (_version, deleted) in exported.items() if not deleted}
    # Taken further by the stream (deleted by it too: its tombstone says so).
    newer = {key for key in live if streamed[key][0] > exported[key][0]}
    untouched = sorted(key for key in live if streamed[key] == exported[key])
    code, report = _reconcile(tmp_path, props, uri)
    assert code == 0 and report["ok"], report
    assert {m["outcome"] for m in report["mismatches"]} <= {"newer_in_mysql", "only_in_mysql"}, report
    assert report["counts"]["newer_in_mysql"] == len(newer) > 0 and report["counts"]["match"] == len(untouched)

    table, document_id = untouched[0]
    with mysql_conn.cursor() as cursor:
        cursor.execute(f"DELETE FROM {sql.quote_identifier(sql.table_identifier(table))} WHERE document_id = %s",
                       (document_id,))
        assert cursor.rowcount == 1
    code, report = _reconcile(tmp_path, props, uri)
    assert code == 1 and not report["ok"] and report["counts"]["match"] == len(untouched) - 1
    errors = [m for m in report["mismatches"] if m["outcome"] not in ("newer_in_mysql", "only_in_mysql")]
    assert [(m["outcome"], m["table"], m["documentId"]) for m in errors] == [("missing", table, document_id)]
    assert sum(report["counts"][k] for k in ("missing", "deleted_but_present", "stale", "data_differs")) == 1


@pytest.mark.parametrize("output_format", FORMATS)
def test_export_reader_from_s3_and_directory(tmp_path, services, output_format):
    """The reader without Flink: every format, from moto's S3 and from a local copy,
    gives exactly the ledger's revisions."""
    ledger = generate_ledger(ExportSpec(tables=2, documents=15, output_format=output_format, blocks_per_object=10))
    for uri in (_s3_uri(), str(tmp_path / output_format)):
        write_export(ledger, uri, endpoint=services.aws_endpoint())
        store = open_store(uri, "us-east-1", services.aws_endpoint())
        export = find_export(store)
        assert export.output_format == output_format and len(export.keys) >= 3
        items = [i for key in export.keys
                 for i in read_object(export.export_id, key, store.read_key(key, export.prefix), output_format)]
        assert not [i for i in items if isinstance(i, DeadLetter)]
        assert [_replicated(r) for r in items] == [_replicated(r) for r in ledger.revisions()], uri


def _replicated(r) -> tuple:
    """What of a revision reaches MySQL (the stream's records also carry a stream ARN)."""
    return (r.table, r.table_id, r.document_id, r.version, r.tx_id, r.tx_time, r.data_json, r.deleted, r.redacted,
            r.block_strand_id, r.block_sequence_no)


def test_unfinished_export_is_an_error_that_says_so(tmp_path, services, mysql_database):
    ledger = generate_ledger(ExportSpec(tables=1, documents=5))
    uri = _s3_uri()
    written = write_export(ledger, uri, endpoint=services.aws_endpoint())
    from connectors.aws_clients import aws_client

    s3 = aws_client("s3", "us-east-1", services.aws_endpoint())
    bucket = uri[len("s3://"):].split("/")[0]
    s3.delete_object(Bucket=bucket, Key=f"{written.prefix}/{ledger.spec.export_id}.JdxjkR9bSYB5jMHWcI464T"
                                        ".completed.manifest")
    props = write_properties(tmp_path, stream="unused", database=mysql_database)
    result = subprocess.run([sys.executable, "-m", "job.cli", "backfill", "--properties", props, "--export", uri],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"export {ledger.spec.export_id} under {uri} has a started manifest but no completed manifest: "
            "the export has not finished") in result.stderr


def test_the_range_reader_alone_takes_one_range_a_bundle(tmp_path):
    """job/pipeline/backfill.py's own_bundle_size reaches into PyFlink (by reflection): in the
    built job the range reader holds its own bundle size of one range, the other Python
    operators do not, and the environment sets none (PyFlink would copy it onto every
    Python operator at submission). Only the opt-in 300 MB test would notice otherwise."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import get_field, get_j_env_configuration

    from job.cli.local.backfill import DEFAULT_FLINK_CONF
    from job.cli.local.driver import LocalJob
    from job.config.properties import load_properties
    from job.functions import names
    from job.pipeline.backfill import READER_BUNDLE_SIZE, build_backfill

    written = write_export(generate_ledger(ExportSpec(tables=1, documents=5)), str(tmp_path / "export"),
                           out=lambda *_: None)
    props = load_properties(write_properties(tmp_path, stream="unused", database="unused"))
    job = LocalJob(flink_conf=DEFAULT_FLINK_CONF, checkpoint_dir=str(tmp_path / "checkpoints"),
                   local_dir=str(tmp_path / "local"))
    env = job.environment()
    build_backfill(env, props, find_export(open_store(written.uri)))
    option = get_gateway().jvm.org.apache.flink.python.PythonOptions.MAX_BUNDLE_SIZE
    sizes = {}
    for transformation in env._j_stream_execution_environment.getTransformations():
        if transformation.getClass().getSimpleName() != "OneInputTransformation":
            continue
        operator = transformation.getOperatorFactory().getOperator()
        if operator is not None and "Python" in operator.getClass().getName():
            sizes[transformation.getName()] = get_field(operator.getClass(), "config").get(operator).get(option)
    assert sizes[names.READ_EXPORT] == READER_BUNDLE_SIZE
    assert sizes[names.SPLIT_EXPORT] != READER_BUNDLE_SIZE
    assert not get_j_env_configuration(env._j_stream_execution_environment).contains(option)
