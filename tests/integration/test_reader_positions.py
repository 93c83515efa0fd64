"""Positions: a job stopped with a savepoint resumes where it stopped (after rescaling),
and a fresh start at AT_TIMESTAMP reads only what came after that moment."""
from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from connectors.formats.qldb import decode_record
from job.cli.local.runner import DEFAULT_FLINK_CONF
from job.cli.tools.simulate.qldb import WorkloadSpec, delivery, encode, ensure_stream, generate, put_records
from tests.conftest import run_job, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables


def _read_count(output: str) -> int:
    return int(re.search(r"caught up after .*?: read (\d+) records", output).group(1))


@pytest.mark.slow
def test_stop_with_savepoint_then_resume_rescaled_reads_only_what_is_new(
        tmp_path, kinesis, stream_name, mysql_database, mysql_conn):
    spec = WorkloadSpec(tables=2, documents=150, revisions=4, duplicates=0.1, shuffle=True, seed=41)
    revisions = generate(spec)
    payloads = [(r.document_id, encode(r)) for r in delivery(spec, revisions)]
    first, second = payloads[:len(payloads) // 2], payloads[len(payloads) // 2:]
    ensure_stream(kinesis, stream_name, shards=2)
    put_records(kinesis, stream_name, first)
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database, replication={"history": "true"})
    savepoints = tmp_path / "savepoints"

    output = run_job(props, extra_args=["--checkpoint-dir", str(tmp_path / "checkpoints"),
                                        "--stop-with-savepoint", str(savepoints)])
    assert _read_count(output) == len(first)
    savepoint = re.search(r"stopped with savepoint (\S+); resume with: ledgersync run --from-savepoint", output)
    assert savepoint, output[-2000:]
    assert savepoint.group(1).startswith(str(savepoints))

    put_records(kinesis, stream_name, second)
    # Resume with twice the parallelism: keyed state is redistributed, positions stay.
    with open(DEFAULT_FLINK_CONF) as handle:
        conf = handle.read().replace("parallelism.default: 1", "parallelism.default: 2")
    assert "parallelism.default: 2" in conf
    (tmp_path / "config.yaml").write_text(conf)
    output = run_job(props, extra_args=["--checkpoint-dir", str(tmp_path / "checkpoints"),
                                        "--from-savepoint", savepoint.group(1),
                                        "--flink-conf", str(tmp_path / "config.yaml")])
    assert f"restoring from {savepoint.group(1)}" in output
    assert _read_count(output) == len(second), output[-2000:]  # nothing read twice, nothing skipped

    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=True)
    assert diff(expected, actual_tables(mysql_conn, expected)) == []


@pytest.mark.slow
def test_fresh_start_at_timestamp_reads_only_later_records(tmp_path, kinesis, stream_name, mysql_database,
                                                           mysql_conn):
    before = generate(WorkloadSpec(tables=1, documents=50, revisions=2, seed=43))
    after = generate(WorkloadSpec(tables=1, documents=60, revisions=3, seed=44))
    ensure_stream(kinesis, stream_name, shards=2)
    put_records(kinesis, stream_name, [(r.document_id, encode(r)) for r in before])
    time.sleep(1.0)
    start = dt.datetime.now(dt.timezone.utc)
    time.sleep(1.0)
    put_records(kinesis, stream_name, [(r.document_id, encode(r)) for r in after])
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             source={"initial.position": "AT_TIMESTAMP", "initial.timestamp": start.isoformat()})

    output = run_job(props, extra_args=["--checkpoint-dir", str(tmp_path / "checkpoints")])

    assert _read_count(output) == len(after)
    expected = expected_tables([decode_record(encode(r)).revision for r in after], history=False)
    assert diff(expected, actual_tables(mysql_conn, expected)) == []
