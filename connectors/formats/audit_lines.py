"""Audit log lines (MariaDB ``server_audit`` and Aurora MySQL advanced auditing) to events.

Both write one record per event, comma separated::

    timestamp,serverhost,username,host,connectionid,queryid,operation,database,object,retcode

- timestamp: Aurora MySQL writes microseconds since the epoch (``1700000000123456``);
  MariaDB writes its local time to the second (``20261122 13:57:55``).
- host: newer MariaDB writes ``host:port`` (``[::1]:5123`` for IPv6).
- object: for QUERY events the query text in single quotes, with ``\\'``, ``\\\\`` and
  (MariaDB 10.6+) ``\\n \\r \\t \\b \\f`` escaped; older plugins write newlines raw, so a
  record may span lines. For table events (READ, WRITE, CREATE, ...) the bare table
  name, and MariaDB leaves retcode empty there.
- Newer servers append fields after retcode (MariaDB 11+ and Aurora MySQL 3 add the
  connection type to CONNECT records); they are kept in ``extra``.

Pure: text in, ``AuditEvent`` out, or ``BadAuditLine`` with the reason.
"""
from __future__ import annotations

import calendar
import datetime as _dt
import hashlib
import re
from dataclasses import dataclass
from typing import Optional

AURORA = "aurora"
MARIADB = "mariadb"

# ASCII digits only: \d and str.isdigit() also take other scripts' digits and
# superscripts, which int() refuses (found by fuzzing: a ValueError instead of BadAuditLine).
_MARIADB_TIME = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_AURORA_TIME = re.compile(r"[0-9]{13,17}")
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>[0-9]{1,5})")
_WHOLE_NUMBER = re.compile(r"[0-9]+")
# Unescaping of the quoted object (inverse of the plugin's escape map); any other
# backslash pair is kept as written.
_UNESCAPE = {"'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_ESCAPE = {v: "\\" + k for k, v in _UNESCAPE.items()}


_SESSION_RANK = {"CONNECT": 0, "FAILED_CONNECT": 0, "DISCONNECT": 2, "CHANGEUSER": 2}


class BadAuditLine(ValueError):
    """A line that is not an audit record; the message says why (for the dead-letter table)."""


@dataclass(frozen=True)
class AuditEvent:
    dialect: str  # AURORA or MARIADB
    # Microseconds since the epoch. MariaDB's local time is read as UTC: only the order
    # of one server's events matters here, and one server has one zone.
    event_time_us: int
    server: str
    user: str
    host: str
    port: Optional[int]
    connection_id: int
    query_id: int
    operation: str
    database: str
    object: str  # query text (unescaped) for QUERY events, else the table name or empty
    retcode: Optional[int]  # None where the plugin leaves it empty (table events)
    extra: tuple
    line: str  # the record as logged

    @property
    def line_sha1(self) -> bytes:
        # Tells apart events that share server, connection, query id and time (the
        # table events of one query, a CONNECT and a DISCONNECT in the same second).
        return hashlib.sha1(self.line.encode("utf-8", "surrogatepass")).digest()

    @property
    def key(self) -> tuple:
        return (self.server, self.connection_id, self.query_id, self.event_time_us, self.line_sha1)

    @property
    def order_key(self) -> tuple:
        """Replay order within one server: event time, then query id.

        Connection events carry query id 0; MariaDB's times are whole seconds, so
        within one a CONNECT goes first and a DISCONNECT (or CHANGEUSER, which ends
        the session before it) last, as they happened around their session's queries.
        """
        rank = _SESSION_RANK.get(self.operation, 1)
        return (self.event_time_us, rank, self.query_id, self.connection_id, self.line_sha1)


@dataclass(frozen=True)
class AuditRecord:
    """An event and where it came from: the Kinesis record and the log event's index in it."""

    event: AuditEvent
    stream: str
    shard_id: str
    sequence_number: str
    sub_sequence: int
    log_group: str = ""
    log_stream: str = ""
    read_ms: int = 0  # when the reader emitted the Kinesis record (the replay's read clock)


def parse_timestamp(text: str) -> tuple:
    """(dialect, microseconds since the epoch) of a record's first field."""
    if _AURORA_TIME.fullmatch(text):
        return AURORA, int(text)
    match = _MARIADB_TIME.fullmatch(text)
    if match:
        try:
            moment = _dt.datetime(*(int(g) for g in match.groups()))
        except ValueError as exc:
            raise BadAuditLine(f"bad timestamp {text!r}: {exc}") from None
        return MARIADB, calendar.timegm(moment.timetuple()) * 1_000_000
    raise BadAuditLine(f"timestamp {text[:40]!r} is neither microseconds since the epoch (Aurora) "
                       "nor 'YYYYMMDD HH:MM:SS' (MariaDB)")


def split_host_port(text: str) -> tuple:
    match = _HOST_PORT.fullmatch(text)
    if match and int(match.group("port")) <= 65535:
        return (match.group("v6") if match.group("v6") is not None else match.group("host")), int(match.group("port"))
    return text, None


def _int_field(name: str, text: str) -> int:
    if not _WHOLE_NUMBER.fullmatch(text):
        raise BadAuditLine(f"{name} {text[:40]!r} is not a whole number")
    return int(text)


def _quoted(text: str, start: int) -> tuple:
    """The unescaped content of the quote opening at ``start`` and the index after it."""
    out = []
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            out.append(_UNESCAPE.get(nxt, "\\" + nxt))
            i += 2
        elif c == "'":
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise BadAuditLine("the quoted query text is not closed")


def parse_audit_line(line: str) -> AuditEvent:
    """One audit record (without its trailing newline) to an ``AuditEvent``."""
    record = line[:-1] if line.endswith("\n") else line
    if record.endswith("\r"):
        record = record[:-1]
    if not record.strip():
        raise BadAuditLine("empty line")
    # The eight fields before the object never hold a comma.
    head = record.split(",", 8)
    if len(head) < 9:
        raise BadAuditLine(f"expected at least 10 comma-separated fields, found {len(head)}")
    stamp, server, user, host_text, connection, query, operation, database, rest = head
    dialect, event_time_us = parse_timestamp(stamp)
    if not operation or not operation.replace("_", "").isalpha() or not operation.isupper():
        raise BadAuditLine(f"operation {operation[:40]!r} is not an audit operation")
    if rest.startswith("'"):
        obj, end = _quoted(rest, 0)
        tail = rest[end:]
        if not tail.startswith(","):
            raise BadAuditLine("the quoted query text is followed by something other than ',retcode'")
        fields = tail[1:].split(",")
    else:
        obj, _, after = rest.partition(",")
        if not _:
            raise BadAuditLine("no retcode field after the object")
        fields = after.split(",")
    retcode_text, extra = fields[0], tuple(fields[1:])
    if retcode_text == "":
        retcode = None
    elif re.fullmatch(r"-?[0-9]{1,10}", retcode_text):
        retcode = int(retcode_text)
    else:
        raise BadAuditLine(f"retcode {retcode_text[:40]!r} is not a number")
    host, port = split_host_port(host_text)
    return AuditEvent(
        dialect=dialect, event_time_us=event_time_us, server=server, user=user, host=host, port=port,
        connection_id=_int_field("connection id", connection), query_id=_int_field("query id", query),
        operation=operation, database=database, object=obj, retcode=retcode, extra=extra, line=record,
    )


def split_records(text: str, final: bool = False) -> tuple:
    """Complete records in ``text`` and the unfinished rest.

    A newline ends a record unless it is inside the quoted query text (older plugins
    write newlines raw). With ``final``, the rest is returned as a last record.
    """
    records = []
    start = 0
    quoted = False
    i = 0
    n = len(text)
    fields = 0
    while i < n:
        c = text[i]
        if quoted:
            if c == "\\":
                i += 2
                continue
            if c == "'":
                quoted = False
        elif c == ",":
            fields += 1
        elif c == "'" and fields == 8 and text[i - 1] == ",":
            quoted = True  # the object field opens a quote
        elif c == "\n":
            records.append(text[start:i])
            start = i + 1
            fields = 0
        i += 1
    rest = text[start:]
    if final and rest:
        records.append(rest)
        rest = ""
    return records, rest


# --- writing lines (simulator, tests) ----------------------------------------------

def escape_object(query: str) -> str:
    return "'" + "".join(_ESCAPE.get(c, c) for c in query) + "'"


def aurora_line(*, time_us: int, server: str, user: str, host: str, connection_id: int, query_id: int,
                operation: str, database: str, query: str = "", table: str = "", retcode: int = 0) -> str:
    """An Aurora MySQL advanced-auditing record (QUERY events quote the query)."""
    obj = escape_object(query) if operation == "QUERY" else table
    return f"{time_us},{server},{user},{host},{connection_id},{query_id},{operation},{database},{obj},{retcode}"


def utc_datetime(time_us: int) -> _dt.datetime:
    """Naive UTC datetime of microseconds since the epoch (for DATETIME(6) columns)."""
    return _dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=time_us)
