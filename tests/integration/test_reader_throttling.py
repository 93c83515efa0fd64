"""Throttling test: the job reads through a proxy that rejects some GetRecords calls with
ProvisionedThroughputExceededException, expires iterators, answers 500, resets
connections, throttles ListShards, and goes away twice (connections
refused, as in an endpoint restart). The Kinesis connector retries the throttling, the 500s
and the expired iterators; a refused or reset connection fails the job, which is resumed
from its newest checkpoint as a user would; MySQL ends exactly equal to the oracle."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from connectors.formats.qldb import decode_record
from job.cli.tools.simulate.qldb import WorkloadSpec, encode, simulate_qldb
from tests.conftest import ROOT, write_properties
from tests.support.fault_proxy import FaultProxy
from tests.support.oracle import actual_tables, diff, expected_tables


@pytest.mark.slow
def test_throttled_and_failing_endpoint_still_ends_equal_to_the_oracle(
        tmp_path, services, kinesis, stream_name, mysql_database, mysql_conn):
    spec = WorkloadSpec(tables=3, documents=200, revisions=4, duplicates=0.1, shuffle=True, seed=29)
    revisions = simulate_qldb(kinesis, stream_name, spec, shards=3, out=lambda *_: None)
    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=True)

    # LimitExceeded on ListShards only: the connector retries it (flink.list.shards.maxretries)
    # but takes it on GetShardIterator for a client error and fails the job, which then
    # restarts from its newest checkpoint (MSF, `run --jobmanager`) or ends a local run
    # (docs/operations.md, faults).
    proxy = FaultProxy(services.aws_endpoint(), seed=3, throttle=0.3, expire=0.05, server_error=0.05,
                       reset=0.05, limit_every=5, limit_ops=("ListShards",)).start()

    def restart_twice():
        # Once reading is under way, the endpoint goes away for 2 s, twice.
        while proxy.counts["get_records"] < 20:
            time.sleep(0.1)
        for _ in range(2):
            proxy.restart(down_s=2.0)
            time.sleep(3.0)

    restarts = threading.Thread(target=restart_twice, daemon=True)
    restarts.start()
    # 50 records per call: enough calls for the faults to hit every shard many times.
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database, replication={"history": "true"},
                             source={"aws.endpoint": proxy.url, "flink.shard.getrecords.maxrecordcount": "50",
                                     "flink.shard.discovery.intervalmillis": "2000"})
    runs = []
    try:
        # The connector retries throttling, 500s, expired iterators and ListShards' LimitExceeded
        # itself; a refused or reset connection it does not retry (only timeouts): the job
        # fails naming it, and, as a user does, the run is resumed from its newest checkpoint.
        for attempt in range(6):
            args = ["--checkpoint-dir", str(tmp_path / "checkpoints")] + (["--from-latest-checkpoint"] if runs else [])
            result = subprocess.run([sys.executable, "-m", "job.cli", "run", "--properties", props, "--until-caught-up",
                                     "--timeout", "300", *args], cwd=ROOT, capture_output=True, text=True, timeout=420)
            runs.append(result)
            if result.returncode == 0:
                break
            failure = result.stdout + result.stderr
            # The job failed on a refused or reset connection, or (the endpoint still away)
            # the next run's pre-flight check said so and ended with exit 2.
            assert ("failed: Flink job ended" in failure and "onnection" in failure) or \
                (result.returncode == 2 and "cannot reach the AWS endpoint" in failure), failure[-3000:]
            time.sleep(2.0)
        restarts.join(timeout=30)
    finally:
        proxy.stop()

    counts = proxy.counts
    assert runs[-1].returncode == 0 and "caught up after" in runs[-1].stdout, runs[-1].stdout[-3000:]
    assert counts["restarts"] == 2, counts
    assert counts["throttled"] >= 10 and counts["expired"] >= 1 and counts["server_error"] >= 1, counts
    assert counts["reset"] >= 1 and counts["limit_exceeded"] >= 1, counts
    print(counts, f"{len(runs)} run(s)")
    assert diff(expected, actual_tables(mysql_conn, expected)) == []
