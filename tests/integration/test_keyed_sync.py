"""Aurora DSQL CDC and DynamoDB end to end on the mini-cluster, moto's Kinesis and the real MariaDB: a
shuffled, duplicated stream with split records, deletes and rows inserted again, the job
SIGKILLed mid-stream and restarted from its latest checkpoint, ends with MySQL equal to
the oracle (current view and history, every column); bad records and a split record
that never completes are dead letters, once each."""
from __future__ import annotations

import time

import pytest

from connectors.mysql import sql
from job.cli.local.runner import checkpoint_numbers
from job.cli.tools.simulate.changes import (DSQL_KEYS, DYNAMODB_BAD, ChangesSpec, dsql_delivery, dynamodb_delivery,
                                       expected_tables, generate_dsql, generate_dynamodb)
from job.cli.tools.simulate.qldb import ensure_stream, put_records
from tests.conftest import run_job, write_properties
from tests.support.job_process import JobProcess
from tests.support.oracle import actual_keyed_tables, count_rows, diff
from tests.support.producer import Producer


def _dead_letters(conn) -> list:
    with conn.cursor() as cursor:
        cursor.execute("SELECT stage, reason FROM _ledgersync_dead_letters ORDER BY id")
        return cursor.fetchall()


def assert_equal_to_the_oracle(conn, changes: list, bad: int) -> list:
    """MySQL equals the oracle (current view and history, every column), every change is
    in history once, and the ``bad`` records are each one decode dead letter; those letters."""
    expected = expected_tables(changes)
    assert diff(expected, actual_keyed_tables(conn, expected)) == []
    assert count_rows(conn, like="%\\_history") == len(changes)
    letters = _dead_letters(conn)
    assert len(letters) == bad and all(stage == "decode" for stage, _ in letters), letters
    return letters


def kill_once_then_catch_up(tmp_path, props: str, producer: Producer) -> tuple:
    """Run the job, SIGKILL its whole process tree after its first checkpoint (before the
    producer's last batch is put), then, once everything is put, run it again from the
    latest checkpoint until caught up; (processes killed, the second output)."""
    checkpoints = tmp_path / "checkpoints"
    args = ["--properties", props, "--checkpoint-dir", str(checkpoints), "--from-latest-checkpoint"]
    job = JobProcess(args, tmp_path / "first.log")
    try:
        job_id = job.wait_for(lambda: job.job_id, 120, "the job to start")
        job.wait_for(lambda: checkpoint_numbers(str(checkpoints / job_id))[1] >= 1, 120, "a first checkpoint")
        killed = job.kill_tree()
    finally:
        job.cleanup()
    producer.finish()
    output = run_job(props, timeout_s=300, extra_args=["--checkpoint-dir", str(checkpoints),
                                                       "--from-latest-checkpoint"])
    assert "restoring from" in output, output[-3000:]
    return killed, output


@pytest.mark.slow
def test_dsql_stream_with_a_kill_ends_equal_to_the_oracle(tmp_path, kinesis, stream_name, mysql_database,
                                                         mysql_conn):
    spec = ChangesSpec(rows=60, changes=4, duplicates=0.15, split_bytes=700, bad=4, seed=7)
    changes = generate_dsql(spec)
    delivery = dsql_delivery(spec, changes)
    assert delivery.split >= 10
    ensure_stream(kinesis, stream_name, shards=3)
    producer = Producer.in_batches(kinesis, stream_name, delivery.records)
    # The parts of a split record arrive up to the whole production apart (shuffled over
    # batches 3 s apart), and the kill and restart come in between: a generous timeout.
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             source={"format": "dsql-cdc", "dsql.keys": DSQL_KEYS, "dsql.split.timeout.ms": "300000"},
                             replication={"history": "true"})
    killed, _ = kill_once_then_catch_up(tmp_path, props, producer)
    assert killed >= 2
    assert_equal_to_the_oracle(mysql_conn, changes, bad=spec.bad)
    # the key columns under the source's names, with the unique index
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                       "AND TABLE_NAME = 'order_items' AND INDEX_NAME = %s ORDER BY SEQ_IN_INDEX", (sql.KEY_INDEX,))
        assert [c for (c,) in cursor.fetchall()] == ["order_id", "item_id"]


def test_a_split_record_never_completed_is_one_dead_letter_and_never_half_applied(
        tmp_path, kinesis, stream_name, mysql_database, mysql_conn):
    spec = ChangesSpec(rows=5, changes=2, deletes=0.0, split_bytes=300, incomplete=1, seed=3)
    changes = generate_dsql(spec)
    delivery = dsql_delivery(spec, changes)
    ensure_stream(kinesis, stream_name, shards=2)
    put_records(kinesis, stream_name, delivery.records)
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             source={"format": "dsql-cdc", "dsql.keys": DSQL_KEYS, "dsql.split.timeout.ms": "2000"},
                             replication={"history": "true"})
    checkpoints = ["--checkpoint-dir", str(tmp_path / "checkpoints"), "--from-latest-checkpoint"]
    run_job(props, extra_args=checkpoints)
    # The timeout runs in processing time from the first part: a run that caught up before
    # it ran out leaves the parts in its checkpoint, and the next run's restored timer fires.
    deadline = time.monotonic() + 90
    while not _dead_letters(mysql_conn) and time.monotonic() < deadline:
        time.sleep(2)
        run_job(props, extra_args=checkpoints)
    letters = _dead_letters(mysql_conn)
    assert len(letters) == 1 and letters[0][0] == "reassemble", letters
    assert "parts arrived" in letters[0][1] and "source.dsql.split.timeout.ms" in letters[0][1], letters
    expected = expected_tables(changes)
    assert diff(expected, actual_keyed_tables(mysql_conn, expected)) == []  # the lonely row is nowhere


@pytest.mark.slow
def test_dynamodb_stream_with_a_kill_ends_equal_to_the_oracle(tmp_path, kinesis, stream_name, mysql_database,
                                                             mysql_conn):
    spec = ChangesSpec(rows=50, changes=4, duplicates=0.15, bad=len(DYNAMODB_BAD), seed=11)
    items = generate_dynamodb(spec)
    changes = [change for change, *_ in items]
    delivery = dynamodb_delivery(spec, items)
    ties = len(changes) - len({(c.table, c.document_id, c.version) for c in changes})
    assert ties >= 5 and sum(c.ttl for c in changes) >= 3  # the tie rule and TTL deletes are exercised
    ensure_stream(kinesis, stream_name, shards=3)
    producer = Producer.in_batches(kinesis, stream_name, delivery.records)
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             source={"format": "dynamodb"}, replication={"history": "true"})
    killed, _ = kill_once_then_catch_up(tmp_path, props, producer)
    assert killed >= 2
    letters = assert_equal_to_the_oracle(mysql_conn, changes, bad=spec.bad)
    assert any("violates its own key schema" in reason for _, reason in letters)
    with mysql_conn.cursor() as cursor:  # numbers exact, as text; TTL deletes marked in history
        cursor.execute("SELECT COUNT(*) FROM Sessions_history WHERE deleted AND expired")
        assert cursor.fetchone()[0] == sum(c.ttl for c in changes)
        cursor.execute("SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                       "AND TABLE_NAME = 'Counters' AND COLUMN_NAME = 'counter_id'")
        assert cursor.fetchone()[0] == "varchar"
