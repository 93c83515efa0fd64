"""Reading one Kinesis shard from a position, one GetRecords call at a time, and pacing the calls.

No Flink here: the caller (a keyed Flink function) owns the positions and checkpoints
them; this module turns "shard X after sequence number S" into records, keeps shard
iterators (which expire after five minutes) as a cache in memory, sorts failures into
kinds a caller can back off from, and says when each shard may be polled next.

Positions are whole Kinesis records: the reader emits each record as it came (KPL
aggregates are split further down, in decoding), so "after sequence number S" is exact
and no sub-sequence number is needed: an aggregate is never half emitted.
"""
from __future__ import annotations

import datetime as _dt
import logging
import random
from dataclasses import dataclass, field
from typing import Callable, Optional

from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError
from botocore.parsers import ResponseParserError

from connectors.kinesis.shards import Shard

log = logging.getLogger(__name__)

INITIAL_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
# Kinesis allows 5 GetRecords calls per second per shard (shared by every consumer).
MIN_CALL_INTERVAL_S = 0.2
MAX_RECORDS_PER_CALL = 10_000


def sequence_key(sequence_number: str) -> int:
    """Kinesis sequence numbers are decimal strings of any length: compare as integers."""
    return int(sequence_number)


@dataclass(frozen=True)
class StartPosition:
    """Where a shard with no position of its own starts: the job's first start decides it once.

    ``LATEST`` becomes ``AT_TIMESTAMP`` of the moment the job first started, so a restart
    before any record arrived does not skip what came in meanwhile.
    """
    kind: str  # TRIM_HORIZON | AT_TIMESTAMP
    timestamp_ms: Optional[int] = None

    def encode(self) -> str:
        return self.kind if self.timestamp_ms is None else f"{self.kind}:{self.timestamp_ms}"

    @classmethod
    def decode(cls, text: str) -> "StartPosition":
        kind, _, ms = text.partition(":")
        if kind not in ("TRIM_HORIZON", "AT_TIMESTAMP") or (kind == "AT_TIMESTAMP") != bool(ms):
            raise ValueError(f"not a start position: {text!r}")
        return cls(kind, int(ms) if ms else None)

    @classmethod
    def first_start(cls, initial_position: str, initial_timestamp: Optional[_dt.datetime],
                    now: _dt.datetime) -> "StartPosition":
        if initial_position == "TRIM_HORIZON":
            return cls("TRIM_HORIZON")
        if initial_position == "LATEST":
            return cls("AT_TIMESTAMP", int(now.timestamp() * 1000))
        if initial_position == "AT_TIMESTAMP":
            if initial_timestamp is None:
                raise ValueError("initial position AT_TIMESTAMP needs a timestamp")
            return cls("AT_TIMESTAMP", int(initial_timestamp.timestamp() * 1000))
        raise ValueError(f"initial position must be one of {INITIAL_POSITIONS}, got {initial_position!r}")


@dataclass(frozen=True)
class KinesisRecord:
    stream: str
    shard_id: str
    sequence_number: str
    data: bytes


# What went wrong with a call, as far as the caller's backoff is concerned.
THROTTLED = "throttled"      # ProvisionedThroughputExceeded, LimitExceeded: wait longer, same iterator
EXPIRED = "expired"          # the iterator is too old: get a new one from the position
TRANSIENT = "transient"      # network error, endpoint restart, 5xx: wait, then start over from the position
SHARD_GONE = "shard-gone"    # the shard (or stream) is not found: list the shards again

_THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException",
    "Throttling", "KMSThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
})
_TRANSIENT_CODES = frozenset({
    "InternalFailure", "InternalFailureException", "InternalServerError", "ServiceUnavailable",
    "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
})


class KinesisReadError(RuntimeError):
    """A failure that backing off will not fix (access denied, bad argument, KMS key disabled)."""


def classify(exc: BaseException) -> Optional[str]:
    """The backoff kind of a failed call, or None if retrying cannot help."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _THROTTLING_CODES:
            return THROTTLED
        if code == "ExpiredIteratorException":
            return EXPIRED
        if code == "ResourceNotFoundException":
            return SHARD_GONE
        if code in _TRANSIENT_CODES or status >= 500:
            return TRANSIENT
        return None
    # Connection refused / reset / timed out: the endpoint is restarting or far away; a
    # proxy or a restarting endpoint can also answer with a body botocore cannot parse.
    if isinstance(exc, (BotoConnectionError, HTTPClientError, ResponseParserError)):
        return TRANSIENT
    return None


@dataclass(frozen=True)
class ShardRead:
    records: list
    # The shard is closed and read to its end: never read it again.
    finished: bool = False
    # No record was waiting: the shard is read up to its tip for now.
    at_tip: bool = False
    millis_behind_latest: Optional[int] = None
    # Set when the call failed in a way a backoff can fix: one of THROTTLED, EXPIRED, TRANSIENT, SHARD_GONE.
    error: Optional[str] = None
    error_text: str = ""

    @property
    def byte_count(self) -> int:
        return sum(len(r.data) for r in self.records)


class ShardReader:
    """GetRecords for one shard at a time; safe to call from several threads for different shards."""

    def __init__(self, data_client, control_client, stream_name: str, limit: int = 1000):
        if not 1 <= limit <= MAX_RECORDS_PER_CALL:
            raise ValueError(f"GetRecords limit must be 1..{MAX_RECORDS_PER_CALL}, got {limit}")
        # GetRecords goes through a client without botocore retries (the caller backs off
        # per shard, so one throttled shard never stalls the others); GetShardIterator
        # through one with them (rare calls that must simply get through).
        self._data = data_client
        self._control = control_client
        self._stream = stream_name
        self._limit = limit
        # shard_id -> (iterator, the position it continues after, or None for the start position)
        self._iterators: dict = {}

    def read(self, shard: Shard, after_sequence: Optional[str], start: StartPosition) -> ShardRead:
        shard_id = shard.shard_id
        try:
            iterator = self._iterator(shard_id, after_sequence, start)
            response = self._data.get_records(ShardIterator=iterator, Limit=self._limit)
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise KinesisReadError(f"reading {self._stream}/{shard_id} failed: {exc}") from exc
            if kind != THROTTLED:
                self._iterators.pop(shard_id, None)  # start over from the checkpointed position
            return ShardRead(records=[], error=kind, error_text=f"{type(exc).__name__}: {exc}")
        records = []
        floor = sequence_key(after_sequence) if after_sequence else None
        for item in response.get("Records", []):
            sequence = item["SequenceNumber"]
            if floor is not None and sequence_key(sequence) <= floor:
                continue  # already emitted before (defensive: iterators are at-least-once)
            records.append(KinesisRecord(stream=self._stream, shard_id=shard_id, sequence_number=sequence,
                                         data=bytes(item["Data"])))
        position = records[-1].sequence_number if records else after_sequence
        next_iterator = response.get("NextShardIterator")
        finished = next_iterator is None or read_to_end(shard, position)
        if finished:
            self._iterators.pop(shard_id, None)
        else:
            self._iterators[shard_id] = (next_iterator, position)
        behind = response.get("MillisBehindLatest")
        return ShardRead(records=records, finished=finished,
                         at_tip=finished or (not records and not behind), millis_behind_latest=behind)

    def forget(self, shard_id: str) -> None:
        self._iterators.pop(shard_id, None)

    def _iterator(self, shard_id: str, after_sequence: Optional[str], start: StartPosition) -> str:
        cached = self._iterators.get(shard_id)
        if cached is not None and cached[1] == after_sequence:
            return cached[0]
        kwargs = {"StreamName": self._stream, "ShardId": shard_id}
        if after_sequence:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after_sequence)
        elif start.kind == "AT_TIMESTAMP":
            kwargs.update(ShardIteratorType="AT_TIMESTAMP",
                          Timestamp=_dt.datetime.fromtimestamp(start.timestamp_ms / 1000, _dt.timezone.utc))
        else:
            kwargs.update(ShardIteratorType="TRIM_HORIZON")
        return self._control.get_shard_iterator(**kwargs)["ShardIterator"]


def read_to_end(shard: Shard, position: Optional[str]) -> bool:
    """A closed shard whose last sequence number has been emitted.

    Kinesis itself says so with a null NextShardIterator; some stand-ins (moto) never
    do, but list the closed shard's last sequence number, which is the same fact.
    """
    if not shard.closed:
        return False
    ending = sequence_key(shard.ending_sequence_number)
    # kinesis-local (LocalStack) lists every closed shard's end as 2**63-1, below its own
    # 56-digit sequence numbers: an end under the shard's start is no end at all. It does
    # return the null NextShardIterator, which then decides.
    if shard.starting_sequence_number and ending < sequence_key(shard.starting_sequence_number):
        return False
    return (sequence_key(position) if position else 0) >= ending


@dataclass
class _Pace:
    due: float = 0.0
    idle: int = 0       # empty reads at the tip in a row
    failures: int = 0   # throttled or failed calls in a row


@dataclass
class ShardPacer:
    """When each shard may be polled next (all times in seconds on one monotonic clock).

    - never more often than ``MIN_CALL_INTERVAL_S`` (5 calls/s/shard, the Kinesis limit);
    - a shard with records waiting: every ``poll_interval_s``;
    - a shard at its tip: the wait doubles with each empty read, up to ``idle_interval_s``;
    - throttled: the wait doubles from 0.5 s up to ``max_backoff_s``; other failures
      from 1 s; with jitter, so shards that failed together do not retry together.
    """
    poll_interval_s: float = MIN_CALL_INTERVAL_S
    idle_interval_s: float = 1.0
    max_backoff_s: float = 30.0
    jitter: Callable[[], float] = field(default=random.random)
    _shards: dict = field(default_factory=dict)

    def __post_init__(self):
        self.poll_interval_s = max(self.poll_interval_s, MIN_CALL_INTERVAL_S)
        self.idle_interval_s = max(self.idle_interval_s, self.poll_interval_s)

    def due(self, shard_id: str, now: float) -> bool:
        return self._shards.get(shard_id, _Pace()).due <= now

    def after_read(self, shard_id: str, now: float, result: ShardRead) -> float:
        """Schedules the shard's next call from the outcome of this one; returns the wait."""
        pace = self._shards.setdefault(shard_id, _Pace())
        if result.error in (THROTTLED, TRANSIENT, SHARD_GONE):
            pace.failures += 1
            base = 0.5 if result.error == THROTTLED else 1.0
            wait = min(self.max_backoff_s, base * 2 ** (pace.failures - 1))
            wait = max(MIN_CALL_INTERVAL_S, wait * (0.5 + 0.5 * self.jitter()))
        elif result.error == EXPIRED:
            wait = self.poll_interval_s  # a fresh iterator is all it needs
        else:
            pace.failures = 0
            if result.at_tip and not result.records:
                pace.idle += 1
                wait = min(self.idle_interval_s, self.poll_interval_s * 2 ** pace.idle)
            else:
                pace.idle = 0
                wait = self.poll_interval_s
        pace.due = now + wait
        return wait

    def forget(self, shard_id: str) -> None:
        self._shards.pop(shard_id, None)
