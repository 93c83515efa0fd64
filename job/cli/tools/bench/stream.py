"""The benchmark's Kinesis side: reading shards to their tip with bare GetRecords calls,
and putting revisions at a fixed rate that carry their put time. No MySQL here
(job/cli/tools/bench/consumers.py is the MySQL side; job/cli/tools/bench/main.py puts them together).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from botocore.exceptions import ClientError

from connectors.aws_clients import aws_client
from connectors.formats.qldb import decode_kinesis_record
from connectors.formats.qldb_encode import encode_revision
from job.cli.tools.simulate.qldb import document_id, ensure_stream, put_records

# The per-record consumer reads as the job does: up to this many records a call; the
# batched consumer takes what one call can give (Kinesis' own maximum).
READ_LIMIT = 1000
MAX_READ_LIMIT = 10_000
# A read that fails in a way a backoff can fix (throttled, endpoint busy) is retried
# after this long; the benchmark never expects one, it only must not die of one.
RETRY_WAIT_S = 0.2
_RETRY_CODES = {"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException"}


@dataclass(frozen=True)
class ShardRecord:
    """One Kinesis record as the decoder takes it (``decode_kinesis_record``'s arguments)."""

    stream: str
    shard_id: str
    sequence_number: str
    data: bytes


def kinesis(endpoint: Optional[str], region: str = "us-east-1"):
    return aws_client("kinesis", region, endpoint, max_pool_connections=16)


def shard_ids(client, stream: str) -> list:
    """The open shards (the benchmark's streams are never resharded)."""
    shards, kwargs = [], {"StreamName": stream}
    while True:
        response = client.list_shards(**kwargs)
        shards += [s["ShardId"] for s in response["Shards"]
                   if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})]
        if not response.get("NextToken"):
            return shards
        kwargs = {"NextToken": response["NextToken"]}


def read_to_tip(client, stream: str, shard_id: str, limit: int = READ_LIMIT) -> Iterator[list]:
    """Every record of one open shard from its start, one GetRecords call's records at a
    time, until a call finds nothing waiting: a bare boto3 loop as a Lambda consumer
    writes it (no pacing: the endpoint's pace), independent of the job's own reader."""
    iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                         ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while iterator:
        try:
            response = client.get_records(ShardIterator=iterator, Limit=limit)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _RETRY_CODES:
                raise
            time.sleep(RETRY_WAIT_S)
            continue
        records = [ShardRecord(stream, shard_id, r["SequenceNumber"], r["Data"]) for r in response["Records"]]
        if records:
            yield records
        iterator = response.get("NextShardIterator")
        if not records and not response.get("MillisBehindLatest"):
            return


def revisions_of(records: list) -> Iterator:
    """The revisions in a batch of Kinesis records (bad records and non-revisions skipped:
    the benchmark's workload has none)."""
    for record in records:
        for item in decode_kinesis_record(record.stream, record.shard_id, record.sequence_number, record.data):
            revision = getattr(item, "revision", None)
            if revision is not None:
                yield revision


# --- putting at a fixed rate, for the latency measurement -------------------------------

PUT_TICK_S = 0.05  # one round of PutRecords calls every 50 ms: 50 revisions a round at 1,000/s


@dataclass
class PutLog:
    """What the putter put: how many, how fast, and when the measured part started."""

    put: int = 0
    measured_from_us: int = 0  # revisions put before this are warm-up
    started: float = 0.0
    ended: float = 0.0
    late_ticks: int = 0  # calls that started more than one tick late (the putter fell behind)
    call_ms: list = field(default_factory=list)  # how long each PutRecords call took
    tables: dict = field(default_factory=dict)  # QLDB table -> revisions put

    @property
    def rate(self) -> float:
        return self.put / (self.ended - self.started) if self.ended > self.started else 0.0


def now_us() -> int:
    return time.time_ns() // 1000


def shard_of(partition_key: str, ranges: list) -> str:
    """The shard Kinesis puts a partition key in: MD5 of the key as a 128-bit number,
    inside the shard's hash key range. ``ranges``: (shard id, start, end)."""
    value = int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")
    return next(shard for shard, start, end in ranges if start <= value <= end)


def hash_ranges(client, stream: str) -> list:
    shards = client.list_shards(StreamName=stream)["Shards"]
    return [(s["ShardId"], int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
            for s in shards if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})]


def put_at_rate(client, stream: str, *, rate: int, warmup_s: float, seconds: float, tables: list,
                documents: int = 1000, seed: int = 7, say: Callable[[str], None] = lambda _t: None,
                log: Optional[PutLog] = None) -> PutLog:
    """Put ``rate`` revisions a second for ``warmup_s + seconds``, each carrying its put
    time in microseconds (``data.put_us``, also its ``txTime``): the moment the
    PutRecords call that carries it starts. Documents cycle through a pool, so the
    current view sees updates as well as inserts.

    One putter thread per shard, each putting only its shard's documents: calls to
    different shards are in flight at once (one slow call does not hold up the rest),
    while one shard never gets two at once (the moto server assigns a shard's sequence
    numbers without a lock, so two concurrent puts to one shard can lose a record).

    ``log``: filled as it goes, so that another thread (the soak's sampler) can read
    ``log.put`` while this runs."""
    rng = random.Random(seed)
    ranges = hash_ranges(client, stream)
    pool = [(tables[i % len(tables)], document_id(rng)) for i in range(documents)]
    by_shard: dict = {}
    for index, (_table, doc) in enumerate(pool):
        by_shard.setdefault(shard_of(doc, ranges), []).append(index)
    log = PutLog() if log is None else log
    lock = threading.Lock()
    per_tick = max(1, round(rate * PUT_TICK_S))
    tick = per_tick / rate

    def put_tick(numbers: list, due: float) -> None:
        if time.monotonic() - due > tick:
            with lock:
                log.late_ticks += 1
        put_us = now_us()
        put_time = _dt.datetime.fromtimestamp(put_us / 1e6, _dt.timezone.utc)
        payloads = []
        for n in numbers:
            table, doc = pool[n % len(pool)]
            payloads.append((doc, encode_revision(
                table=table, document_id=doc, version=n // len(pool), tx_id=f"lat{n:012d}", tx_time=put_time,
                data={"put_us": put_us, "n": n, "note": "latency probe"}, sequence_no=n)))
        put_records(client, stream, payloads)
        with lock:
            log.call_ms.append((now_us() - put_us) / 1000.0)
            log.put += len(numbers)
            for n in numbers:
                table = pool[n % len(pool)][0]
                log.tables[table] = log.tables.get(table, 0) + 1

    shard_of_index = {index: shard for shard, indexes in by_shard.items() for index in indexes}
    putters = {shard: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"put-{shard}") for shard in by_shard}
    log.started = time.monotonic()
    log.measured_from_us = now_us() + int(warmup_s * 1e6)
    end = log.started + warmup_s + seconds
    due = log.started
    first = 0
    last_say = log.started
    futures = []
    try:
        while due < end:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            rounds: dict = {}
            for n in range(first, first + per_tick):
                rounds.setdefault(shard_of_index[n % len(pool)], []).append(n)
            for shard, numbers in rounds.items():
                futures.append(putters[shard].submit(put_tick, numbers, due))
            first += per_tick
            due += tick
            if time.monotonic() - last_say >= 5:
                last_say = time.monotonic()
                say(f"latency: put {log.put} revisions ({log.put / (last_say - log.started):.0f}/s)")
        for future in futures:
            future.result()  # a failed put fails the run
    finally:
        for putter in putters.values():
            putter.shutdown(wait=True, cancel_futures=True)
    log.ended = time.monotonic()
    return log


def create_stream(client, stream: str, shards: int) -> None:
    ensure_stream(client, stream, shards)


def delete_stream(client, stream: str) -> None:
    try:
        client.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
    except Exception:  # already gone: nothing to clean up
        pass
