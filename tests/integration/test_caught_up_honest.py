"""`run --until-caught-up` says caught up only once the source has read every shard to its tip,
not when the source has merely been quiet for a checkpoint: moto answers 0 ms behind the tip
on every page of records put in one PutRecords call (it measures the lag between the arrival
times of the last record returned and the last one stored), so the lag alone let a run under
load stop with part of the stream unread (tests/integration/test_dead_letters_once.py: 25 of
33 dead letters; job/cli/local/source_status.py)."""
from __future__ import annotations

from connectors.formats.qldb import decode_record
from job.cli.tools.simulate.qldb import WorkloadSpec, encode, simulate_qldb
from tests.conftest import run_job, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables


def test_caught_up_waits_for_the_tip_not_for_a_quiet_source(tmp_path, kinesis, stream_name, mysql_database,
                                                            mysql_conn):
    spec = WorkloadSpec(tables=1, documents=3, revisions=1, seed=5)
    revisions = simulate_qldb(kinesis, stream_name, spec, shards=1, out=lambda *_: None)
    # One record per GetRecords, 8 s apart: between pages the source is quiet for longer than
    # a checkpoint interval (3 s, flink-conf) plus CAUGHT_UP_SETTLE_S, and every page says
    # 0 ms behind, as a source stalled under load does with moto.
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             source={"flink.shard.getrecords.maxrecordcount": "1",
                                     "flink.shard.getrecords.intervalmillis": "8000"})

    output = run_job(props, extra_args=["--checkpoint-dir", str(tmp_path / "checkpoints")])

    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=False)
    assert len(revisions) == 3
    assert diff(expected, actual_tables(mysql_conn, expected)) == [], output[-3000:]
