"""Crash test: the job's whole process tree is SIGKILLed at random moments while a stream
is replicated, restarted from its newest retained checkpoint each time, and MySQL ends
exactly equal to the oracle (current view and history: nothing lost, nothing twice)."""
from __future__ import annotations

import random
import threading
import time

import pytest

from connectors.formats.qldb import decode_record
from job.cli.local.runner import checkpoint_numbers, latest_checkpoint
from job.cli.tools.simulate.qldb import WorkloadSpec, delivery, encode, ensure_stream, generate, put_records
from tests.conftest import run_job, write_properties
from tests.support.job_process import JobProcess
from tests.support.oracle import actual_tables, count_rows, diff, expected_tables

KILLS = 5


@pytest.mark.slow
def test_sigkilled_job_restarts_from_its_latest_checkpoint_and_loses_nothing(
        tmp_path, kinesis, stream_name, mysql_database, mysql_conn):
    spec = WorkloadSpec(tables=3, documents=1700, revisions=4, duplicates=0.1, shuffle=True, seed=23)
    revisions = generate(spec)
    payloads = [(r.document_id, encode(r)) for r in delivery(spec, revisions)]
    assert len(revisions) >= 20_000
    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=True)
    history_tables = [t for t in expected if t.endswith("_history")]
    ensure_stream(kinesis, stream_name, shards=4)

    # Records keep arriving while the job is killed and restarted: 500 at a time, one batch
    # every two seconds (about 90 s in all), so that even on a quiet machine, where a
    # kill-and-restart cycle takes under 10 s, the first kills land while work is left.
    producer_error: list = []

    def produce():
        try:
            for start in range(0, len(payloads), 500):
                put_records(kinesis, stream_name, payloads[start:start + 500])
                time.sleep(2.0)
        except Exception as exc:  # reported by the test below
            producer_error.append(exc)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()

    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             source={"flink.shard.getrecords.maxrecordcount": "500"}, replication={"history": "true"})
    checkpoints = tmp_path / "checkpoints"
    args = ["--properties", props, "--checkpoint-dir", str(checkpoints), "--from-latest-checkpoint"]
    rng = random.Random(5)
    kills = []
    for attempt in range(KILLS):
        before = latest_checkpoint(str(checkpoints))
        job = JobProcess(args, tmp_path / f"run-{attempt}.log")
        try:
            job_id = job.wait_for(lambda: job.job_id, 120, "the job to start")
            job_dir = checkpoints / job_id
            # A random moment after this run has completed its first checkpoint, so every
            # run moves the job forward; then the whole tree (driver, JVM, Python workers) goes.
            job.wait_for(lambda: checkpoint_numbers(str(job_dir))[1] >= 1, 120, "a first checkpoint")
            time.sleep(rng.uniform(0.0, 4.0))
            processes = job.kill_tree()
        finally:
            job.cleanup()
        output = job.output()
        if before is None:
            assert "starting from the initial position" in output, output[-3000:]
        else:
            assert f"restoring from {before}" in output, output[-3000:]
        kills.append((processes, checkpoint_numbers(str(job_dir))[1], count_rows(mysql_conn, history_tables)))
        print(f"kill {attempt}: after {time.time() - job.started:.1f}s, {kills[-1]}", flush=True)

    producer.join(timeout=120)
    assert not producer_error, producer_error
    final = run_job(props, timeout_s=300, extra_args=["--checkpoint-dir", str(checkpoints), "--from-latest-checkpoint"])
    assert "restoring from" in final

    assert all(processes >= 2 for processes, _, _ in kills), kills  # driver + JVM at least, all killed
    # The kills came while there was work left: history was incomplete at the first ones.
    assert sum(1 for _, _, rows in kills if rows < len(revisions)) >= 3, kills
    actual = actual_tables(mysql_conn, expected)
    assert sum(len(rows) for table, rows in actual.items() if table.endswith("_history")) == len(revisions)
    assert diff(expected, actual) == [], (kills, final[-3000:])
