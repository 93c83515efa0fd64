"""Dead letters exactly once: bad records that are read again (a restore from a checkpoint
taken before them, or here, the harshest case, a second job with no state at all that
re-reads the whole stream) are not dead-lettered twice. A dead letter is keyed by
(stream, shard, sequence number, sub-sequence, stage) and its insert keeps the one
stored; the rows around them end equal to the oracle after both runs."""
from __future__ import annotations

from connectors.formats.qldb import decode_kinesis_record
from connectors.dead_letters import DeadLetter
from job.tools.simulate.qldb import BAD_KINDS, WorkloadSpec, bad_samples, simulate_qldb
from tests.conftest import run_job, write_properties
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

    # The rest equals the oracle: what the decoder makes of every record on the stream.
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
