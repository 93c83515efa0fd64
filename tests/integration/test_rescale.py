"""Rescaling while records keep arriving: stop with a savepoint at parallelism 1, resume at 4,
stop with a savepoint again, resume at 2 and catch up. Keyed state (Top-1 per document, the
writer's pending rows, shard positions) is redistributed each time; MySQL ends exactly equal
to the oracle, nothing read twice into history, nothing skipped."""
from __future__ import annotations

import re
import signal

import pytest

from connectors.formats.qldb import decode_record
from job.cli.tools.simulate.qldb import WorkloadSpec, delivery, encode, ensure_stream, generate
from tests.conftest import run_job, write_properties
from tests.support.job_process import JobProcess
from tests.support.oracle import actual_tables, diff, expected_tables
from tests.support.producer import Producer

SAVEPOINT = re.compile(r"stopped with savepoint (\S+); resume with")


def _written(job: JobProcess) -> int:
    counts = re.findall(r"wrote (\d+) rows", job.output())
    return int(counts[-1]) if counts else 0


def _run_then_savepoint(args: list, log, min_rows: int) -> str:
    """A run that is stopped (SIGTERM) with a savepoint once it has written ``min_rows``."""
    job = JobProcess(args, log)
    try:
        job.wait_for(lambda: _written(job) >= min_rows, 240, f"{min_rows} rows written")
        assert job.stop(signal.SIGTERM, timeout_s=180) == 0, job.output()[-3000:]
    finally:
        job.cleanup()
    found = SAVEPOINT.search(job.output())
    assert found, job.output()[-3000:]
    return found.group(1)


@pytest.mark.slow
def test_savepoint_at_1_restore_at_4_then_at_2_while_records_arrive(
        tmp_path, kinesis, stream_name, mysql_database, mysql_conn):
    spec = WorkloadSpec(tables=3, documents=600, revisions=4, duplicates=0.1, shuffle=True, seed=71)
    revisions = generate(spec)
    payloads = [(r.document_id, encode(r)) for r in delivery(spec, revisions)]
    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=True)
    ensure_stream(kinesis, stream_name, shards=4)

    # about 100 s of arrivals across all three runs; the last 4 batches only after the
    # second savepoint, so that records arrive later however quick the machine.
    producer = Producer(kinesis, stream_name, payloads, batch_size=250, held_batches=4)
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             replication={"history": "true"})
    common = ["--properties", props, "--checkpoint-dir", str(tmp_path / "checkpoints"),
              "--stop-with-savepoint", str(tmp_path / "savepoints")]

    first = _run_then_savepoint([*common, "--parallelism", "1"], tmp_path / "p1.log", 500)
    second = _run_then_savepoint([*common, "--parallelism", "4", "--from-savepoint", first],
                                 tmp_path / "p4.log", 500)
    assert producer.sent < producer.total  # the held batches: records arrive after the second savepoint
    producer.finish()
    final = run_job(props, timeout_s=300, extra_args=["--checkpoint-dir", str(tmp_path / "checkpoints"),
                                                      "--parallelism", "2", "--from-savepoint", second])
    assert f"restoring from {second}" in final

    actual = actual_tables(mysql_conn, expected)
    assert sum(len(rows) for table, rows in actual.items() if table.endswith("_history")) == len(revisions)
    assert diff(expected, actual) == [], final[-3000:]
