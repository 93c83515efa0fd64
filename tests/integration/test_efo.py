"""Enhanced fan-out: the same job with source.reader.type=EFO (SubscribeToShard over HTTP/2
through the connector's AWS SDK v2 client) replicates a stream equal to the oracle.

moto has no SubscribeToShard (it answers the HTTP/2 call with 505), so this runs against
LocalStack only (`make test-localstack`); on moto it is skipped, and the consumer's EFO
configuration is covered by tests/unit/test_kinesis_source.py."""
from __future__ import annotations

import uuid

import pytest

from connectors.formats.qldb import decode_record
from job.cli.tools.simulate.qldb import WorkloadSpec, encode, simulate_qldb
from tests.conftest import TEST_AWS_ENDPOINT, write_properties
from tests.support.job_process import JobProcess
from tests.support.oracle import actual_tables, diff, expected_tables


@pytest.mark.skipif(not TEST_AWS_ENDPOINT, reason="moto has no SubscribeToShard (EFO): runs on LocalStack, "
                                                  "make test-localstack")
@pytest.mark.localstack
def test_efo_reader_replicates_equal_to_the_oracle(tmp_path, kinesis, stream_name, mysql_database, mysql_conn):
    spec = WorkloadSpec(tables=2, documents=80, revisions=3, duplicates=0.1, shuffle=True, seed=23, aggregate=5)
    revisions = simulate_qldb(kinesis, stream_name, spec, shards=2, out=lambda *_: None)
    consumer = f"ledgersync-{uuid.uuid4().hex[:8]}"
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database, replication={"history": "true"},
                             source={"reader.type": "EFO", "efo.consumer.name": consumer})

    arn = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]["StreamARN"]
    job = JobProcess(["--properties", props, "--until-caught-up", "--timeout", "300", "--parallelism", "2",
                      "--checkpoint-dir", str(tmp_path / "checkpoints")], tmp_path / "run.log")
    try:
        # The connector registers its consumer when the job starts (and deregisters it when it
        # stops): seen while the job runs, it is the proof that the job reads by EFO.
        job.wait_for(lambda: consumer in [c["ConsumerName"] for c in
                                          kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]],
                     180, f"stream consumer {consumer} registered")
        code = job.proc.wait(timeout=400)
    finally:
        job.cleanup()
    output = job.output()
    assert code == 0 and "caught up after" in output, output[-3000:]

    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=True)
    assert diff(expected, actual_tables(mysql_conn, expected)) == [], output[-3000:]
