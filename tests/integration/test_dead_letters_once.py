"""Dead letters exactly once: bad records that are read again (a restore from a checkpoint
taken before them, or here, the harshest case, a second job with no state at all that
re-reads the whole stream) are not dead-lettered twice. A dead letter is keyed by
(stream, shard, sequence number, sub-sequence, stage) and its insert keeps the one
stored; the rows around them end equal to the oracle after both runs."""
from __future__ import annotations

import pytest

from connectors.formats.qldb import decode_kinesis_record
from connectors.dead_letters import DeadLetter
from job.cli.local.runner import checkpoint_numbers
from job.cli.tools.simulate.qldb import BAD_KINDS, WorkloadSpec, bad_samples, simulate_qldb
from tests.conftest import run_job, write_properties
from tests.support.job_process import JobProcess
from tests.support.oracle import actual_tables, diff, expected_tables


def _letters(conn) -> list:
    with conn.cursor() as cursor:
        cursor.execute("SELECT stream, shard_id, sequence_number, sub_sequence, stage, raw, id "
                       "FROM _ledgersync_dead_letters ORDER BY id")
        return [tuple(row) for row in cursor.fetchall()]


def test_bad_records_read_again_are_not_dead_lettered_twice(tmp_path, kinesis, stream_name, mysql_database,
                                                             mysql_conn):
    spec = WorkloadSpec(tables=2, documents=30, revisions=3, duplicates=0.2, shuffle=True, seed=13, aggregate=8,
                        deletes=0.2, bad_records=2 * len(BAD_KINDS))
    revisions = simulate_qldb(kinesis, stream_name, spec, shards=2, out=lambda *_: None)
    samples = bad_samples(spec, revisions)
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database, replication={"history": "true"})

    run_job(props, extra_args=["--checkpoint-dir", str(tmp_path / "first")])
    first = _letters(mysql_conn)
    assert len(first) == len(samples)

    # Everything again, from no state: every bad record is decoded and dead-lettered again.
    output = run_job(props, extra_args=["--checkpoint-dir", str(tmp_path / "second")])
    second = _letters(mysql_conn)
    assert second == first, output[-3000:]  # the same rows, ids included: none added, none replaced
    assert len({row[:5] for row in second}) == len(second)

    _assert_the_rest_equals_the_oracle(kinesis, stream_name, mysql_conn, revisions)


@pytest.mark.slow
def test_dead_letters_land_once_across_kills_in_the_middle_of_aggregates(tmp_path, kinesis, stream_name,
                                                                         mysql_database, mysql_conn):
    """The connector keeps each shard's position as (sequence number, sub-sequence number), so a
    restore can resume inside an aggregate; the bad user records of that aggregate are decoded
    again only if they come after the position, and a replayed one finds its dead letter stored
    (its position, from its bytes, is the same on every replay)."""
    spec = WorkloadSpec(tables=2, documents=120, revisions=3, duplicates=0.1, shuffle=True, seed=31, aggregate=8,
                        deletes=0.1, bad_records=3 * len(BAD_KINDS))
    revisions = simulate_qldb(kinesis, stream_name, spec, shards=2, out=lambda *_: None)
    samples = bad_samples(spec, revisions)
    # Two Kinesis records (up to 16 user records) per GetRecords: checkpoints fall all over.
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database, replication={"history": "true"},
                             source={"flink.shard.getrecords.maxrecordcount": "2"})
    checkpoints = tmp_path / "checkpoints"
    args = ["--properties", props, "--checkpoint-dir", str(checkpoints), "--from-latest-checkpoint"]
    kills = 0
    for attempt in range(3):
        job = JobProcess(args, tmp_path / f"run-{attempt}.log")
        try:
            job_id = job.wait_for(lambda: job.job_id, 120, "the job to start")
            job.wait_for(lambda: checkpoint_numbers(str(checkpoints / job_id))[1] >= 2, 120, "two checkpoints")
            if job.alive():
                job.kill_tree()
                kills += 1
        finally:
            job.cleanup()
    run_job(props, timeout_s=300, extra_args=["--checkpoint-dir", str(checkpoints), "--from-latest-checkpoint"])

    letters = _letters(mysql_conn)
    assert kills >= 1
    assert len(letters) == len(samples), (len(letters), len(samples))
    assert len({row[:5] for row in letters}) == len(letters)  # each at its own position, once
    _assert_the_rest_equals_the_oracle(kinesis, stream_name, mysql_conn, revisions)


def _assert_the_rest_equals_the_oracle(kinesis, stream_name, mysql_conn, revisions) -> None:
    """What the decoder makes of every record on the stream, replicated exactly."""
    shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
    decoded = []
    for shard in shards:
        iterator = kinesis.get_shard_iterator(StreamName=stream_name, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                decoded += [item.revision for item in decode_kinesis_record(
                    stream_name, shard["ShardId"], record["SequenceNumber"], record["Data"])
                    if not isinstance(item, DeadLetter) and item.revision is not None]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    expected = expected_tables(decoded, history=True)
    assert len(decoded) >= len(revisions)
    assert diff(expected, actual_tables(mysql_conn, expected)) == []
