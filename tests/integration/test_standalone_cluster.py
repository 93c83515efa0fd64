"""A real cluster, not the mini-cluster: a JobManager and two TaskManagers as separate
processes (job/cli/local/cluster.py), the job submitted at parallelism 4, one TaskManager
SIGKILLed mid-stream and a new one started only a minute later; Flink restores the job from
its newest checkpoint on the slots it has again, and MySQL ends exactly equal to the oracle."""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

from connectors.formats.qldb import decode_record
from job.cli.local.cluster import LocalCluster, group_members
from job.cli.local.runner import checkpoint_numbers
from job.cli.tools.simulate.qldb import WorkloadSpec, delivery, encode, ensure_stream, generate, put_records
from tests.conftest import write_properties
from tests.support.job_process import JobProcess
from tests.support.oracle import actual_tables, count_rows, diff, expected_tables


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.load(response)


REPLACEMENT_DELAY_S = 60


@pytest.fixture
def cluster(tmp_path):
    local = LocalCluster(str(tmp_path / "cluster"))
    # As a cluster that has been up for longer than its start-up period (5 min by default):
    # a restart short of slots then fails at once and uses up a restart attempt, which is
    # what a first CI run met when the machine was slow enough to pass the 5 minutes.
    local.up(taskmanagers=2, slots=2, conf={"resourcemanager.standalone.start-up-time": "1 s"})
    try:
        yield local
    finally:
        local.down()


@pytest.mark.slow
def test_taskmanager_killed_mid_stream_on_a_standalone_cluster_loses_nothing(
        tmp_path, cluster, kinesis, stream_name, mysql_database, mysql_conn):
    spec = WorkloadSpec(tables=4, documents=600, revisions=4, duplicates=0.1, shuffle=True, seed=61)
    revisions = generate(spec)
    ensure_stream(kinesis, stream_name, shards=4)
    put_records(kinesis, stream_name, [(r.document_id, encode(r)) for r in delivery(spec, revisions)])
    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=True)
    history_tables = [t for t in expected if t.endswith("_history")]

    # Small GetRecords batches make reading take a while (4 shards x 5 calls/s x 10 records:
    # about 50 s for the 10,500 records), so that the kill lands mid-stream on a quiet machine
    # too (with 40 a record, a CI run read and wrote everything before the first checkpoint).
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             source={"flink.shard.getrecords.maxrecordcount": "10"}, replication={"history": "true"})
    state = cluster.state()
    checkpoints = tmp_path / "checkpoints"
    job = JobProcess(["--properties", props, "--until-caught-up", "--timeout", "480",
                      "--jobmanager", state.jobmanager, "--parallelism", "4",
                      "--checkpoint-dir", str(checkpoints)], tmp_path / "run.log")
    try:
        job_id = job.wait_for(lambda: job.job_id, 120, "the job to start")
        job.wait_for(lambda: checkpoint_numbers(str(checkpoints / job_id))[1] >= 1, 180, "a first checkpoint")
        job.wait_for(lambda: count_rows(mysql_conn, history_tables) >= 1000, 180, "rows in MySQL")
        victim = state.taskmanager_pids[0]
        cluster.kill_taskmanager(victim)
        assert group_members(victim) == []  # its Python workers went with it, as with a machine
        at_kill = count_rows(mysql_conn, history_tables)
        # A replacement that takes a minute to arrive (a machine or pod being replaced): the
        # restarts in between fail for want of slots, and the job must outlast them.
        time.sleep(REPLACEMENT_DELAY_S)
        replacement = cluster.add_taskmanager()
        cluster.wait_for_taskmanagers(2)
        code = job.proc.wait(timeout=600)
        output = job.output()
    finally:
        job.cleanup()
    assert code == 0, output[-4000:]
    assert "caught up" in output, output[-4000:]
    assert at_kill < len(revisions), at_kill  # the kill came while work was left

    # Flink saw the TaskManager go and restarted the job (from its newest checkpoint).
    exceptions = _get(state.rest_port, f"/jobs/{job_id}/exceptions")
    assert exceptions.get("exceptionHistory", {}).get("entries"), exceptions
    assert replacement != victim

    actual = actual_tables(mysql_conn, expected)
    assert sum(len(rows) for table, rows in actual.items() if table.endswith("_history")) == len(revisions)
    assert diff(expected, actual) == [], output[-3000:]
