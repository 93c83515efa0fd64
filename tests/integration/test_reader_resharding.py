"""Resharding test: the stream is split and merged (twice) while the job runs; MySQL ends
equal to the oracle, and every parent shard was read to its end before any of its children.

moto 5.2.5 (the local stand-in) does not reshard as Kinesis does: SplitShard moves the
parent's records back into the parent under new sequence numbers, puts after a split or a
merge still go to the closed parent, and a drained closed shard never returns a null
NextShardIterator. This test therefore runs its own moto server with those three things
made as the Kinesis documentation describes them (the parent is closed and keeps its
records; new records go to the open shard whose hash range holds the key; reading a
closed shard past its last record ends with a null NextShardIterator).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
import uuid

import pymysql
import pytest

from connectors.aws_clients import aws_client
from connectors.formats.qldb import decode_record
from job.tools.simulate.qldb import WorkloadSpec, delivery, encode, ensure_stream, generate, put_records
from tests.conftest import write_properties
from tests.support.job_process import JobProcess
from tests.support.oracle import actual_tables, diff, expected_tables


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def resharding_kinesis(monkeypatch):
    """An endpoint URL of a moto server (in this process) that reshards as Kinesis does;
    or, when the tests run against another endpoint (LEDGERSYNC_TEST_AWS_ENDPOINT, e.g.
    LocalStack), that endpoint as it is."""
    from tests.conftest import TEST_AWS_ENDPOINT

    if TEST_AWS_ENDPOINT:
        yield TEST_AWS_ENDPOINT
        return
    from moto.kinesis import models
    from moto.kinesis.exceptions import InvalidArgumentError
    from moto.kinesis.utils import decompose_shard_iterator
    from moto.server import ThreadedMotoServer

    def next_id(stream) -> int:
        return max(s._shard_id for s in stream.shards.values()) + 1

    def split_shard(self, shard_to_split, new_starting_hash_key):
        shard = self.shards[shard_to_split]
        new_start = int(new_starting_hash_key)
        if not shard.is_open or not shard.starting_hash < new_start < shard.ending_hash:
            raise InvalidArgumentError(f"cannot split {shard_to_split} at {new_starting_hash_key}")
        first = models.Shard(next_id(self), shard.starting_hash, new_start - 1, parent=shard.shard_id)
        self.shards[first.shard_id] = first
        second = models.Shard(next_id(self), new_start, shard.ending_hash, parent=shard.shard_id)
        self.shards[second.shard_id] = second
        shard.is_open = False  # and it keeps its records

    def merge_shards(self, shard_to_merge, adjacent_shard_to_merge):
        low, high = self.shards[shard_to_merge], self.shards[adjacent_shard_to_merge]
        if not (low.is_open and high.is_open and low.ending_hash + 1 == high.starting_hash):
            raise InvalidArgumentError(f"cannot merge {shard_to_merge} with {adjacent_shard_to_merge}")
        child = models.Shard(next_id(self), low.starting_hash, high.ending_hash, parent=low.shard_id,
                             adjacent_parent=high.shard_id)
        self.shards[child.shard_id] = child
        low.is_open = high.is_open = False

    original_shard_for_key = models.Stream.get_shard_for_key

    def get_shard_for_key(self, partition_key, explicit_hash_key):
        original_shard_for_key(self, partition_key, explicit_hash_key)  # moto's argument checks
        key = int(explicit_hash_key) if explicit_hash_key else \
            int(models.md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
        return next(s for s in self.shards.values() if s.is_open and s.starting_hash <= key <= s.ending_hash)

    original_get_records = models.KinesisBackend.get_records

    def get_records(self, stream_arn, shard_iterator, limit):
        next_iterator, records, behind = original_get_records(self, stream_arn, shard_iterator, limit)
        stream_name, shard_id, last = decompose_shard_iterator(next_iterator)
        shard = self.describe_stream(stream_arn=None, stream_name=stream_name).get_shard(shard_id)
        if not shard.is_open and int(last) >= shard.get_max_sequence_number():
            next_iterator = None  # a closed shard read to its end
        return next_iterator, records, behind

    monkeypatch.setattr(models.Stream, "split_shard", split_shard)
    monkeypatch.setattr(models.Stream, "merge_shards", merge_shards)
    monkeypatch.setattr(models.Stream, "get_shard_for_key", get_shard_for_key)
    monkeypatch.setattr(models.KinesisBackend, "get_records", get_records)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _wait_active(client, stream, timeout_s: float = 60.0) -> None:
    """Kinesis (and LocalStack) refuse the next SplitShard/MergeShards while the last one
    keeps the stream UPDATING; moto is ACTIVE at once."""
    deadline = time.monotonic() + timeout_s
    while client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, f"stream {stream} not ACTIVE after {timeout_s:.0f}s"
        time.sleep(0.2)


def _open_shards(client, stream) -> list:
    shards = client.list_shards(StreamName=stream)["Shards"]
    return sorted((s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]),
                  key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))


def _differences(conn, expected) -> list:
    try:
        return diff(expected, actual_tables(conn, expected))
    except pymysql.err.ProgrammingError as exc:  # the job has not created every table yet
        return [str(exc)]


def _reader_board(job: JobProcess) -> dict:
    with open(os.path.join(job.status_dir, "reader.json")) as handle:
        return json.load(handle)


@pytest.mark.slow
def test_split_and_merge_while_running_keeps_parents_before_children(
        request, tmp_path, resharding_kinesis, services, mysql_database, mysql_conn):
    client = aws_client("kinesis", "us-east-1", resharding_kinesis)
    stream = f"resharded-{uuid.uuid4().hex[:8]}"
    spec = WorkloadSpec(tables=2, documents=400, revisions=5, duplicates=0.1, shuffle=True, seed=17)
    revisions = generate(spec)
    payloads = [(r.document_id, encode(r)) for r in delivery(spec, revisions)]
    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=True)
    phases = [payloads[:len(payloads) // 2], payloads[len(payloads) // 2:len(payloads) * 3 // 4],
              payloads[len(payloads) * 3 // 4:len(payloads) * 7 // 8], payloads[len(payloads) * 7 // 8:]]
    ensure_stream(client, stream, shards=2)
    request.addfinalizer(lambda: client.delete_stream(StreamName=stream, EnforceConsumerDeletion=True))
    put_records(client, stream, phases[0])

    # A slow reader (50 records per call) so the resharding lands while the parents still
    # hold unread records; shards are listed every second.
    props = write_properties(tmp_path, stream=stream, database=mysql_database, replication={"history": "true"},
                             source={"aws.endpoint": resharding_kinesis, "flink.shard.getrecords.maxrecordcount": "50",
                                     "flink.shard.discovery.intervalmillis": "1000"})
    job = JobProcess(["--properties", props, "--checkpoint-dir", str(tmp_path / "checkpoints")],
                     tmp_path / "run.log")
    try:
        job.wait_for(lambda: job.status_dir and os.path.exists(os.path.join(job.status_dir, "reader.json"))
                     and sum(s["read"] for s in _reader_board(job)["shards"].values()) > 0, 180, "reading to start")

        # Split the lower open shard in the middle of its hash range: two children.
        low = _open_shards(client, stream)[0]
        middle = (int(low["HashKeyRange"]["StartingHashKey"]) + int(low["HashKeyRange"]["EndingHashKey"])) // 2
        client.split_shard(StreamName=stream, ShardToSplit=low["ShardId"], NewStartingHashKey=str(middle))
        _wait_active(client, stream)
        put_records(client, stream, phases[1])
        # Merge the split's two children back into one shard, then that one with its neighbour.
        first, second, third = _open_shards(client, stream)
        client.merge_shards(StreamName=stream, ShardToMerge=first["ShardId"], AdjacentShardToMerge=second["ShardId"])
        _wait_active(client, stream)
        put_records(client, stream, phases[2])
        merged, neighbour = _open_shards(client, stream)
        client.merge_shards(StreamName=stream, ShardToMerge=merged["ShardId"],
                            AdjacentShardToMerge=neighbour["ShardId"])
        put_records(client, stream, phases[3])
        shards = {s["ShardId"]: s for s in client.list_shards(StreamName=stream)["Shards"]}
        assert len(shards) == 6 and len(_open_shards(client, stream)) == 1

        deadline = time.monotonic() + 240
        while _differences(mysql_conn, expected):
            assert job.alive(), job.output()[-4000:]
            assert time.monotonic() < deadline, (_differences(mysql_conn, expected), job.output()[-4000:])
            time.sleep(2)
        time.sleep(1.5)  # the board is written at most every 0.5 s
        board = _reader_board(job)
        assert job.stop(signal.SIGTERM) == 0
    finally:
        job.cleanup()
    output = job.output()
    assert "SIGTERM: stopping" in output and "stopped (SIGTERM)" in output, output[-3000:]

    assert diff(expected, actual_tables(mysql_conn, expected)) == []
    read = board["shards"]
    assert set(read) == set(shards)
    assert sum(s["read"] for s in read.values()) == len(payloads)
    for shard_id, shard in shards.items():
        parents = [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]
        assert read[shard_id]["read"] > 0, (shard_id, read)
        assert read[shard_id]["finished"] == ("EndingSequenceNumber" in shard["SequenceNumberRange"]), read
        for parent in parents:
            # Every record of the parent was emitted before the first record of the child.
            assert read[parent]["last_emit"] < read[shard_id]["first_emit"], (parent, shard_id, read)
