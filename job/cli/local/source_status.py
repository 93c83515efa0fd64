"""How far the Kinesis source has read, for the local runner's progress line and for
``--until-caught-up``: the shards from ListShards, and the connector's own metrics
(per shard ``millisBehindLatest``, the source's ``numRecordsOut``) from Flink's REST API.

The connector registers ``KinesisConsumer.stream.<stream>.shardId.<shard>.millisBehindLatest``
for every shard a subtask reads: -1 until its first GetRecords answer, then the answer's
MillisBehindLatest (0 at the tip). A shard restored as finished never gets any metrics.

A MillisBehindLatest of 0 alone does not say the shard is read to its tip: moto computes it
from the arrival times of the last record returned and the last record stored, so a burst
put in one PutRecords call answers 0 on every page while most of it is still unread (seen
on 2026-12-08: under load a run said caught up after its source stalled for 4 s, with 189
records unread). So a shard is at its tip once an answer at 0 ms behind also held no record:
the connector's ``numberOfAggregatedRecordsPerFetch`` (the Kinesis records of the last
answer, set with the lag after those were emitted) is 0. That holds for the polling reader
only: an EFO reader's answers are events the service pushes, and LocalStack's push none
without records (seen on 2026-12-08: its EFO run never counted a shard at its tip), so for
EFO the lag alone says it, as before. The moto burst this guards against is a polling one:
moto has no EFO.

A shard read to its end unregisters its metrics in the TaskManager, but Flink's REST API
keeps serving their last values (its metric store only ever adds; seen on 2026-12-07 after
a reshard on LocalStack: three finished parents kept 1308 and 2324 ms behind while a
thread dump showed no consumer reading them). So a closed shard also counts as read to its
end once its gauges stop moving: a live polling consumer updates ``runLoopTimeNanos`` (a
measured duration) on every GetRecords loop, at least once per retry budget
(``FINISHED_AFTER_S``).
"""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Optional

from job.functions import names

SHARD_SCOPE = ".shardId."
RECORDS_OUT = "numRecordsOut"
LAG_GAUGE = names.MILLIS_BEHIND_LATEST
LOOP_GAUGE = "runLoopTimeNanos"  # the polling publisher's, set after every GetRecords loop
SHARD_GAUGES = (LAG_GAUGE, LOOP_GAUGE)
FETCHED_GAUGE = "numberOfAggregatedRecordsPerFetch"  # Kinesis records in the last answer
# A closed shard whose gauges have not changed for this long is read to its end. It is longer
# than the longest quiet spell of a live consumer: GetRecords retried 10 times
# (PATIENT_RETRIES in connectors/kinesis/source.py) with the connector's default backoff of
# at most 1 s, plus the REST metrics' refresh (1 s).
FINISHED_AFTER_S = 15.0


@dataclass(frozen=True)
class ListedShard:
    shard_id: str
    closed: bool


@dataclass
class SourceStatus:
    """What the source reports at one moment."""

    shards: list = field(default_factory=list)  # ListedShard, from ListShards (None: not listed yet)
    lag_ms: dict = field(default_factory=dict)  # shard id -> millisBehindLatest (-1: no answer yet)
    fetched: dict = field(default_factory=dict)  # shard id -> Kinesis records in its last answer
    records_read: int = 0
    metrics_seen: bool = False
    subtasks: int = 0  # the source's parallelism, from the job graph
    still_s: dict = field(default_factory=dict)  # shard id -> seconds its gauges have not moved
    polling: bool = True  # the polling reader: at the tip also needs an answer with no record

    def finished(self, shard: ListedShard) -> bool:
        """A closed shard read to its end: no metrics in this run (restored as finished) or
        gauges that have stopped moving (its consumer is gone; see the module's docstring)."""
        if not shard.closed or not self.metrics_seen:
            return False
        return shard.shard_id not in self.lag_ms or self.still_s.get(shard.shard_id, 0.0) >= FINISHED_AFTER_S

    @property
    def open_shards(self) -> list:
        return [s for s in self.shards if not s.closed]

    def at_tip(self, shard: ListedShard) -> bool:
        """A shard is at its tip when the connector's last answer for it said 0 ms behind and
        held no record (see the module's docstring), and a closed one also when it is read to
        its end (``finished``)."""
        empty = self.fetched.get(shard.shard_id) == 0 or not self.polling
        return (self.lag_ms.get(shard.shard_id) == 0 and empty) or self.finished(shard)

    @property
    def shards_at_tip(self) -> int:
        return sum(1 for s in self.shards if self.at_tip(s))

    @property
    def all_at_tip(self) -> bool:
        return self.metrics_seen and bool(self.shards) and self.shards_at_tip == len(self.shards)

    @property
    def max_lag_ms(self) -> Optional[int]:
        """The largest lag of the shards still being read."""
        known = [self.lag_ms[s.shard_id] for s in self.shards
                 if self.lag_ms.get(s.shard_id, -1) >= 0 and not self.finished(s)]
        return max(known) if known else None


def parse_source_metrics(values: dict) -> tuple:
    """(records read, {shard id: lag ms}, {shard id: Kinesis records in the last answer},
    {shard id: (gauge values)}) from REST metric ids and values of the source vertex: ids look like
    ``<subtask>.<operator>.KinesisConsumer.stream.<s>.shardId.<id>.millisBehindLatest`` and
    ``<subtask>.<operator>.numRecordsOut`` (a stream name may hold dots, a shard id does not)."""
    records = 0
    lags: dict = {}
    fetched: dict = {}
    gauges: dict = {}
    for metric_id, value in sorted(values.items()):
        if metric_id.endswith("." + RECORDS_OUT) and names.KINESIS_SOURCE in metric_id:
            records += int(float(value))
            continue
        if SHARD_SCOPE not in metric_id:
            continue
        shard_id, _, gauge = metric_id.rsplit(SHARD_SCOPE, 1)[1].partition(".")
        if gauge == FETCHED_GAUGE:
            fetched[shard_id] = int(float(value))
        elif gauge in SHARD_GAUGES:
            gauges.setdefault(shard_id, []).append(value)
            if gauge == LAG_GAUGE:
                lags[shard_id] = int(float(value))
    return records, lags, fetched, {shard_id: tuple(found) for shard_id, found in gauges.items()}


def track_stillness(previous: dict, gauges: dict, now: float) -> dict:
    """{shard id: (its gauge values, since when unchanged)}, from the last call's and the new values."""
    return {shard_id: (values, previous[shard_id][1] if shard_id in previous and previous[shard_id][0] == values
                       else now)
            for shard_id, values in gauges.items()}


class SourceWatcher:
    """Polls ListShards (every ``list_every_s``) and the source vertex's metrics over REST."""

    def __init__(self, kinesis, stream: str, rest_base: str, list_every_s: float = 3.0, polling: bool = True):
        self._kinesis = kinesis
        self._stream = stream
        self._rest = rest_base.rstrip("/")
        self._list_every_s = list_every_s
        self._next_list = 0.0
        self._vertex: Optional[str] = None
        self._gauges: dict = {}  # shard id -> (gauge values, monotonic time they last changed)
        self.status = SourceStatus(polling=polling)
        # (what fails, since when: wall-clock seconds) while ListShards keeps failing: the
        # connector retries the same endpoint, so the progress line says so.
        self.trouble: Optional[tuple] = None

    def poll(self, job_id: str) -> SourceStatus:
        now = time.monotonic()
        if now >= self._next_list:
            self._next_list = now + self._list_every_s
            try:
                self.status.shards = list_shards(self._kinesis, self._stream)
                self.trouble = None
            except Exception as exc:  # reported in the progress line; the job itself retries
                since = self.trouble[1] if self.trouble else time.time()
                self.trouble = (f"Kinesis stream {self._stream}: {_short(exc)}", since)
        try:
            values = self._metrics(job_id)
        except Exception:  # the REST endpoint is busy or not up yet: the next poll asks again
            return self.status
        records, lags, fetched, gauges = parse_source_metrics(values)
        self._gauges = track_stillness(self._gauges, gauges, now)
        self.status.records_read = records
        self.status.lag_ms = lags
        self.status.fetched = fetched
        self.status.still_s = {shard_id: now - since for shard_id, (_values, since) in self._gauges.items()}
        # A stream always has open shards, and each has metrics once its subtask reads it.
        self.status.metrics_seen = bool(lags)
        return self.status

    def _get(self, path: str):
        with urllib.request.urlopen(self._rest + path, timeout=5) as response:
            return json.load(response)

    def _metrics(self, job_id: str) -> dict:
        if self._vertex is None:
            vertices = self._get(f"/jobs/{job_id}")["vertices"]
            found = [v for v in vertices if names.KINESIS_SOURCE in v["name"]]
            if not found:
                return {}
            self._vertex = found[0]["id"]
            self.status.subtasks = int(found[0].get("parallelism", 0))
        base = f"/jobs/{job_id}/vertices/{self._vertex}/metrics"
        wanted = [m["id"] for m in self._get(base)
                  if any(m["id"].endswith("." + gauge) for gauge in (*SHARD_GAUGES, FETCHED_GAUGE)) or
                  (m["id"].endswith("." + RECORDS_OUT) and names.KINESIS_SOURCE in m["id"])]
        values: dict = {}
        for start in range(0, len(wanted), 40):
            chunk = ",".join(wanted[start:start + 40])
            for metric in self._get(f"{base}?get={urllib.parse.quote(chunk, safe=',')}"):
                values[metric["id"]] = metric["value"]
        return values


def list_shards(kinesis, stream: str) -> list:
    """Every shard of the stream still in retention, open or closed (ListShards, paged)."""
    shards, token = [], None
    while True:
        response = kinesis.list_shards(NextToken=token) if token else kinesis.list_shards(StreamName=stream)
        for shard in response.get("Shards", []):
            ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            shards.append(ListedShard(shard["ShardId"], closed=ending is not None))
        token = response.get("NextToken")
        if not token:
            return shards


def _short(exc: BaseException) -> str:
    """An AWS failure in a few words: the endpoint that does not answer, or the error code."""
    from botocore import exceptions as aws

    if isinstance(exc, (aws.EndpointConnectionError, aws.ConnectTimeoutError)):
        return f"endpoint {exc.kwargs.get('endpoint_url', '?')} unreachable"
    if isinstance(exc, aws.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"
