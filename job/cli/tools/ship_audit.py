"""``ledgersync ship-audit``: tail a MariaDB server_audit log and ship it the way AWS does.

RDS/Aurora publish audit logs to a CloudWatch Logs log group, and a subscription
filter on the group puts them on a Kinesis stream (gzip JSON records). This command
does the first half for a local MariaDB (PutLogEvents into a log group and log stream)
and sets up the second (the log group, the stream if missing, and a subscription
filter to it); CloudWatch Logs itself (the moto server locally) delivers to Kinesis.

The position in the log (file inode and byte offset) is kept in a small JSON state
file, written after each batch CloudWatch accepted, so a restart ships on from there;
a crash between the two ships one batch again, which the job's keys make harmless.
server_audit rotates its file by renaming it to ``.1``, ``.2``...: an open file is read
to its end before the new one is opened, and after a restart the state's inode is
looked up among the rotated files.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Callable, Optional

from connectors.formats.audit_lines import MARIADB, BadAuditLine, parse_timestamp, split_records

log = logging.getLogger(__name__)

# CloudWatch Logs PutLogEvents limits.
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_EVENT_BYTES = 262_144 - EVENT_OVERHEAD
MAX_AGE_MS = 13 * 24 * 3600 * 1000  # CloudWatch refuses events older than 14 days
FILTER_NAME = "ledgersync"
LOCAL_ROLE_ARN = "arn:aws:iam::123456789012:role/ledgersync-cloudwatch-to-kinesis"
READ_CHUNK = 4 * 1024 * 1024
ROTATIONS = 999  # server_audit_file_rotations allows up to 999


class ShipError(RuntimeError):
    pass


@dataclass(frozen=True)
class Position:
    inode: int
    offset: int


class AuditLogTail:
    """Complete records appended to a log file, across restarts and rotations."""

    def __init__(self, path: str, state_path: str, start: str = "beginning"):
        self._path = path
        self._state_path = state_path
        self._queue: list = []  # open files still to read, oldest first: [handle, inode]
        self._rest = b""
        self._opened = False
        self._start = start

    # -- state ----------------------------------------------------------------------
    def _load(self) -> Optional[Position]:
        try:
            with open(self._state_path, encoding="utf-8") as handle:
                data = json.load(handle)
            return Position(int(data["inode"]), int(data["offset"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise ShipError(f"state file {self._state_path} is damaged ({exc}); remove it to start over") from None

    def position(self) -> Optional[Position]:
        """Where the next unread record starts (what commit() persists)."""
        if not self._queue:
            return None
        handle, inode = self._queue[0]
        return Position(inode, handle.tell() - len(self._rest))

    def commit(self) -> None:
        position = self.position()
        if position is None:
            return
        tmp = f"{self._state_path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"path": self._path, "inode": position.inode, "offset": position.offset,
                       "saved": _dt.datetime.now(_dt.timezone.utc).isoformat()}, handle)
        os.replace(tmp, self._state_path)

    # -- files ----------------------------------------------------------------------
    def _open_first(self) -> None:
        self._opened = True
        saved = self._load()
        candidates = [f"{self._path}.{n}" for n in range(ROTATIONS, 0, -1)] + [self._path]
        existing = [p for p in candidates if os.path.exists(p)]
        if saved is not None:
            for index, path in enumerate(existing):
                if os.stat(path).st_ino == saved.inode:
                    for later in existing[index:]:
                        self._queue.append(self._open(later))
                    self._queue[0][0].seek(saved.offset)
                    return
            log.warning("ship-audit: %s (inode %s) is gone; starting at the oldest file there is",
                        self._state_path, saved.inode)
            for path in existing:
                self._queue.append(self._open(path))
            return
        if not os.path.exists(self._path):
            return  # not written yet: try again on the next read
        self._queue.append(self._open(self._path))
        if self._start == "end":
            self._queue[0][0].seek(0, os.SEEK_END)

    @staticmethod
    def _open(path: str) -> list:
        handle = open(path, "rb")
        return [handle, os.fstat(handle.fileno()).st_ino]

    def read(self) -> list:
        """Complete records appended since the last call (each as text, without its newline)."""
        if not self._opened or not self._queue:
            self._opened = False
            self._open_first()
            if not self._queue:
                return []
        records: list = []
        while self._queue:
            handle, inode = self._queue[0]
            chunk = handle.read(READ_CHUNK)
            if chunk:
                records += self._split(chunk)
                if len(records) >= MAX_BATCH_EVENTS:
                    break
                continue
            if len(self._queue) > 1:
                records += self._next_file()
                continue
            try:
                current = os.stat(self._path).st_ino
            except FileNotFoundError:
                break
            if current == inode:
                break
            # Rotated: this file is read to its end; the new one starts at 0.
            self._queue.append(self._open(self._path))
            records += self._next_file()
        return records

    def _next_file(self) -> list:
        """Close the oldest file (read to its end); a last record without newline is returned."""
        leftover = [self._rest.decode("utf-8", "replace")] if self._rest else []
        handle, _ = self._queue.pop(0)
        handle.close()
        self._rest = b""
        return leftover

    def _split(self, chunk: bytes) -> list:
        # Latin-1 maps bytes to characters one to one, so the record split (which only
        # looks at ASCII quotes, backslashes, commas and newlines) works on bytes.
        records, rest = split_records((self._rest + chunk).decode("latin-1"))
        self._rest = rest.encode("latin-1")
        return [r.encode("latin-1").decode("utf-8", "replace") for r in records]

    def close(self) -> None:
        for handle, _ in self._queue:
            handle.close()
        self._queue = []


def event_time_ms(record: str, now_ms: int) -> int:
    """The record's own time for the log event (the publisher's clock), else now."""
    stamp = record.split(",", 1)[0]
    try:
        dialect, micros = parse_timestamp(stamp)
    except BadAuditLine:
        return now_ms
    if dialect == MARIADB:
        # MariaDB writes local time: read it in this machine's zone (the server's).
        micros = int(time.mktime(time.strptime(stamp, "%Y%m%d %H:%M:%S"))) * 1_000_000
    ms = micros // 1000
    return ms if now_ms - MAX_AGE_MS < ms <= now_ms + 3_600_000 else now_ms


def log_batches(records: list, now_ms: int):
    """PutLogEvents batches: chronological, at most 10,000 events and 1 MiB each."""
    batch, size, last = [], 0, 0
    for record in records:
        message = record
        encoded = message.encode("utf-8")
        if len(encoded) > MAX_EVENT_BYTES:
            log.warning("ship-audit: a record of %d bytes is cut to CloudWatch's 256 KiB event limit", len(encoded))
            message = encoded[:MAX_EVENT_BYTES].decode("utf-8", "ignore")
            encoded = message.encode("utf-8")
        stamp = max(last, event_time_ms(record, now_ms))
        last = stamp
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + len(encoded) + EVENT_OVERHEAD > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append({"timestamp": stamp, "message": message})
        size += len(encoded) + EVENT_OVERHEAD
    if batch:
        yield batch


def set_up_delivery(logs, kinesis, *, log_group: str, log_stream: str, stream: str, shards: int,
                    role_arn: Optional[str]) -> str:
    """Log group, log stream, Kinesis stream and the subscription filter between them; returns the stream ARN."""
    from job.cli.tools.simulate.qldb import ensure_stream

    for call, kwargs in ((logs.create_log_group, {"logGroupName": log_group}),
                         (logs.create_log_stream, {"logGroupName": log_group, "logStreamName": log_stream})):
        try:
            call(**kwargs)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
    ensure_stream(kinesis, stream, shards)
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    filters = logs.describe_subscription_filters(logGroupName=log_group).get("subscriptionFilters", [])
    if not any(f.get("filterName") == FILTER_NAME and f.get("destinationArn") == arn for f in filters):
        logs.put_subscription_filter(logGroupName=log_group, filterName=FILTER_NAME, filterPattern="",
                                     destinationArn=arn, roleArn=role_arn)
    return arn


class Shipper:
    def __init__(self, logs, log_group: str, log_stream: str):
        self._logs = logs
        self._group = log_group
        self._stream = log_stream
        self.events = 0
        self.batches = 0

    def ship(self, records: list) -> None:
        now_ms = int(time.time() * 1000)
        for batch in log_batches(records, now_ms):
            response = self._logs.put_log_events(logGroupName=self._group, logStreamName=self._stream, logEvents=batch)
            rejected = response.get("rejectedLogEventsInfo")
            if rejected:
                raise ShipError(f"CloudWatch Logs rejected events of a batch: {rejected}")
            self.events += len(batch)
            self.batches += 1


def ship_audit(*, logs, kinesis, log_path: str, state_path: str, log_group: str, log_stream: str, stream: str,
               shards: int = 2, role_arn: Optional[str], follow: bool = False, start: str = "beginning",
               poll_s: float = 0.2, out: Callable[[str], None] = print) -> int:
    """Ship the log (then keep tailing it with ``follow``, until SIGTERM/SIGINT); returns events shipped."""
    set_up_delivery(logs, kinesis, log_group=log_group, log_stream=log_stream, stream=stream, shards=shards,
                    role_arn=role_arn)
    out(f"ship-audit: {log_path} -> CloudWatch Logs {log_group} / {log_stream} -> subscription filter "
        f"-> Kinesis {stream}" + (" (following; Ctrl-C ends)" if follow else ""))
    tail = AuditLogTail(log_path, state_path, start=start)
    shipper = Shipper(logs, log_group, log_stream)
    stopping = []
    previous = {}
    if follow:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stopping.append(True))
    started = time.monotonic()
    last_report = started
    try:
        first = True
        while True:
            records = tail.read()
            if records:
                shipper.ship(records)
                tail.commit()
                first = False
                continue
            if first:
                tail.commit()  # the starting position, at once: what is written from now on gets shipped
                first = False
            if not follow or stopping:
                break
            if time.monotonic() - last_report >= 10:
                out(f"ship-audit: {shipper.events} events shipped so far")
                last_report = time.monotonic()
            time.sleep(poll_s)
        tail.commit()  # also when nothing was shipped: "--start end" then means from here on
    finally:
        tail.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out(f"ship-audit: shipped {shipper.events} events in {shipper.batches} batches "
        f"in {time.monotonic() - started:.1f}s; position saved in {state_path}")
    return shipper.events
