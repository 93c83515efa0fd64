"""CloudWatch Logs subscription records, as a subscription filter puts them on Kinesis.

Each Kinesis record is gzip-compressed JSON::

    {"messageType": "DATA_MESSAGE" | "CONTROL_MESSAGE", "owner": "123456789012",
     "logGroup": "...", "logStream": "...", "subscriptionFilters": ["..."],
     "logEvents": [{"id": "...", "timestamp": 1700000000000, "message": "..."}, ...]}

A ``CONTROL_MESSAGE`` is the health check CloudWatch sends when a filter is created:
it carries no log data and is skipped. Pure: bytes in, a ``SubscriptionRecord`` out,
or ``BadSubscriptionRecord`` with the reason.
"""
from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from typing import Optional

DATA_MESSAGE = "DATA_MESSAGE"
CONTROL_MESSAGE = "CONTROL_MESSAGE"
_GZIP_MAGIC = b"\x1f\x8b"
# A record is at most 1 MB on Kinesis; refuse to inflate anything absurdly larger.
MAX_INFLATED = 64 * 1024 * 1024


class BadSubscriptionRecord(ValueError):
    """Not a CloudWatch Logs subscription record; the message says why."""


@dataclass(frozen=True)
class LogEvent:
    id: str
    timestamp_ms: int
    message: str


@dataclass(frozen=True)
class SubscriptionRecord:
    message_type: str
    owner: str
    log_group: str
    log_stream: str
    subscription_filters: tuple
    log_events: tuple  # of LogEvent

    @property
    def is_control(self) -> bool:
        return self.message_type == CONTROL_MESSAGE


def _inflate(data: bytes) -> bytes:
    if not data.startswith(_GZIP_MAGIC):
        raise BadSubscriptionRecord("not gzip data (CloudWatch Logs subscription records are gzip-compressed JSON)")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_INFLATED)
        if inflater.unconsumed_tail:
            raise BadSubscriptionRecord(f"inflates to more than {MAX_INFLATED} bytes")
        out += inflater.flush()
    except zlib.error as exc:
        raise BadSubscriptionRecord(f"corrupt gzip data: {exc}") from None
    if not inflater.eof:
        raise BadSubscriptionRecord("truncated gzip data")
    return out


def decode_subscription_record(data: bytes) -> SubscriptionRecord:
    text = _inflate(bytes(data))
    try:
        body = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadSubscriptionRecord(f"not JSON after gunzip: {exc}") from None
    except RecursionError:  # json's own limit (about 1,000 levels): a dead letter, not a failed job
        raise BadSubscriptionRecord("JSON after gunzip is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadSubscriptionRecord("JSON is not an object")
    message_type = body.get("messageType")
    if message_type not in (DATA_MESSAGE, CONTROL_MESSAGE):
        raise BadSubscriptionRecord(f"unknown messageType {message_type!r}")
    events = body.get("logEvents", [])
    if not isinstance(events, list):
        raise BadSubscriptionRecord("logEvents is not a list")
    log_events = []
    for index, item in enumerate(events):
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            raise BadSubscriptionRecord(f"logEvents[{index}] has no message string")
        timestamp = item.get("timestamp")
        if not isinstance(timestamp, int):
            raise BadSubscriptionRecord(f"logEvents[{index}] has no integer timestamp")
        log_events.append(LogEvent(id=str(item.get("id", "")), timestamp_ms=timestamp, message=item["message"]))
    if message_type == DATA_MESSAGE:
        for name in ("logGroup", "logStream"):
            if not isinstance(body.get(name), str):
                raise BadSubscriptionRecord(f"DATA_MESSAGE without {name}")
    filters = body.get("subscriptionFilters") or []
    return SubscriptionRecord(
        message_type=message_type, owner=str(body.get("owner", "")), log_group=str(body.get("logGroup", "")),
        log_stream=str(body.get("logStream", "")),
        subscription_filters=tuple(str(f) for f in filters) if isinstance(filters, list) else (),
        log_events=tuple(log_events),
    )


def encode_subscription_record(*, log_group: str, log_stream: str, events: list, owner: str = "123456789012",
                               filter_name: str = "ledgersync", message_type: str = DATA_MESSAGE,
                               mtime: Optional[float] = 0) -> bytes:
    """The bytes CloudWatch Logs puts on Kinesis for ``events`` (``LogEvent`` values)."""
    body = {
        "messageType": message_type, "owner": owner, "logGroup": log_group, "logStream": log_stream,
        "subscriptionFilters": [filter_name],
        "logEvents": [{"id": e.id, "timestamp": e.timestamp_ms, "message": e.message} for e in events],
    }
    return gzip.compress(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), mtime=mtime)


def control_message(log_group: str = "", log_stream: str = "", owner: str = "CloudwatchLogs",
                    filter_name: str = "ledgersync") -> bytes:
    """The health check CloudWatch Logs sends when a subscription filter is created."""
    return encode_subscription_record(
        log_group=log_group, log_stream=log_stream, owner=owner, filter_name=filter_name,
        message_type=CONTROL_MESSAGE,
        events=[LogEvent(id="", timestamp_ms=0,
                         message="CWL CONTROL MESSAGE: Checking health of destination Kinesis stream.")])
