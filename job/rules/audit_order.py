"""Replay order for one source server: event-time watermarks, then transactions. Pure.

**Watermarks.** Records reach Kinesis through a subscription filter that spreads them
over shards, and shards are read at their own pace, so one server's events arrive out
of order. Each shard's watermark is the newest event time it delivered for the server
minus ``audit.max.out.of.orderness.ms``; the server's watermark is the lowest over its
shards, and events older than it are released in (event time, query id) order. This
is Flink's per-shard watermark rule, kept here rather than in Flink's watermarks
because the shared shard reader emits every shard on one channel.

Idleness: a shard that has delivered nothing for the server for
``audit.idle.timeout.ms`` no longer holds the watermark back. That time is measured
on the *read clock*: each record carries the time the reader emitted it, so a replay
function that is behind (backpressure, a backlog being read) does not mistake the
shards whose records are still queued in front of it for idle ones. When nothing at
all has arrived for the server for one idle timeout of wall-clock time, the input is
drained and every shard counts as idle: everything waiting is released. That is how
the last events get out at the end of a catch-up run, and how a quiet server's last
statement is applied. Time the function spends replaying is not silence (records
queue in front of it meanwhile). After a (re)start nothing is released before the read
clock has moved one idle timeout past the first record, so that every shard can
deliver before the first release; before the first record arrives, drained means
nothing for ``STARTUP_TIMEOUT_MS``, not one idle timeout: the source may start reading
seconds after this function opened (restoring, listing shards, on a busy machine), and
restored events released before it delivers would make every re-read event older than
them late (a late ``ROLLBACK`` leaves its transaction to be committed by the connection's
next ``BEGIN``). An event that arrives after later events were released is *late*: it is
recorded, not replayed, and goes to the dead-letter table (unless it is a duplicate of
one already recorded).

**Transactions.** Statements are replayed as the source committed them: per
connection, statements inside ``BEGIN``/``START TRANSACTION`` or with
``autocommit=0`` wait for their ``COMMIT`` and are released at the commit's place in
the order (as a binlog would); a ``ROLLBACK`` (or ``ROLLBACK TO SAVEPOINT``, a deadlock,
a disconnect) drops them; DDL and other implicitly committing statements commit first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from connectors.formats import audit_statements as st
from connectors.formats.audit_lines import AuditRecord

DEADLOCK = 1213  # InnoDB rolls back the whole transaction
SESSION_RESETS = ("CONNECT", "DISCONNECT", "FAILED_CONNECT", "CHANGEUSER")
# After a (re)start, nothing arriving for this long (not one idle timeout) counts as drained.
STARTUP_TIMEOUT_MS = 30_000


@dataclass
class Session:
    autocommit: bool = True
    open: bool = False
    buffer: list = field(default_factory=list)  # Replay items waiting for COMMIT
    savepoints: list = field(default_factory=list)  # (name, buffer length)

    @property
    def idle(self) -> bool:
        return self.autocommit and not self.open and not self.buffer


@dataclass
class OrderState:
    """Per server, in Flink keyed state (pickled)."""

    shard_max: dict = field(default_factory=dict)  # shard id -> newest event time (us) delivered
    last_released: Optional[tuple] = None  # order key of the last event released
    sessions: dict = field(default_factory=dict)  # connection id -> Session (only non-idle ones)


@dataclass(frozen=True)
class Replay:
    record: AuditRecord
    verb: str
    ddl: bool


@dataclass
class Plan:
    replay: list = field(default_factory=list)  # Replay, in order
    dead: list = field(default_factory=list)  # (AuditRecord, reason)
    # database -> successful write statements (DML, and DDL of audit.replay.ddl) not
    # replayed because audit.source.database names another: a misconfigured replica
    # shows at once. Counted when seen (one in a transaction rolled back later too).
    skipped: dict = field(default_factory=dict)


def describe_skipped(skipped: dict, source_database: Optional[str]) -> str:
    """'516 write statements for database shop skipped: audit.source.database is shop_replica'."""
    parts = [(n, db) for db, n in sorted(skipped.items(), key=lambda item: (-item[1], item[0])) if n]
    if not parts:
        return ""
    named = [f"{n} write statement{'s' if n != 1 else ''} for " + (f"database {db}" if db else "no default database")
             if i == 0 else f"{n} for " + (f"database {db}" if db else "no default database")
             for i, (n, db) in enumerate(parts)]
    return f"{', '.join(named)} skipped: audit.source.database is {source_database}"


class Watermarks:
    """Per-shard watermarks of one server. Idleness is kept in memory only (a restart
    starts it over); the read clock is the reader's emit time carried by each record."""

    def __init__(self, out_of_orderness_ms: int, idle_timeout_ms: int, opened_ms: int,
                 startup_timeout_ms: int = STARTUP_TIMEOUT_MS):
        self._bound_us = out_of_orderness_ms * 1000
        self._idle_ms = idle_timeout_ms
        self._startup_ms = max(startup_timeout_ms, idle_timeout_ms)
        # Wall clock: when anything last arrived (or the start), moved on by the time the
        # function was busy since (then nothing could arrive: that is not silence).
        self._last_arrival_ms = opened_ms
        self._first_read_ms: Optional[int] = None
        self._latest_read_ms = 0
        self._last_read: dict = {}  # shard -> read clock of its newest record for this server

    def seen(self, shard_id: str, read_ms: int, now_ms: int) -> None:
        if self._first_read_ms is None:
            self._first_read_ms = read_ms
        self._latest_read_ms = max(self._latest_read_ms, read_ms)
        self._last_read[shard_id] = max(self._last_read.get(shard_id, read_ms), read_ms)
        self._last_arrival_ms = max(self._last_arrival_ms, now_ms)

    def busy(self, started_ms: int, ended_ms: int) -> None:
        """The function was busy (replaying) from ``started_ms`` to ``ended_ms``: records
        queued in front of it meanwhile could not arrive, so that time is not silence."""
        start = max(started_ms, self._last_arrival_ms)
        if ended_ms > start:
            self._last_arrival_ms += ended_ms - start

    def drained(self, now_ms: int) -> bool:
        """Nothing arrived for one idle timeout of wall-clock time (the function not busy):
        every shard is idle. Until the first record after a (re)start, the start-up timeout:
        the source may start reading well after this function opened (restoring, listing
        shards, on a busy machine), and restored events released before it delivers would
        make the re-read events older than them late."""
        arrived = self._first_read_ms is not None
        return now_ms - self._last_arrival_ms >= (self._idle_ms if arrived else self._startup_ms)

    def watermark(self, shard_max: dict, now_ms: int) -> Optional[float]:
        """Event time (us) below which events may be released; None: nothing yet (start-up)."""
        if self.drained(now_ms):
            return math.inf
        if self._first_read_ms is None or self._latest_read_ms - self._first_read_ms < self._idle_ms:
            return None
        active = [t for s, t in shard_max.items()
                  # A shard known from restored state but silent since the start counts from the first record.
                  if self._latest_read_ms - self._last_read.get(s, self._first_read_ms) < self._idle_ms]
        if not active:
            return math.inf
        return min(active) - self._bound_us


def take_ready(state: OrderState, pending: list, watermark: Optional[float], limit: Optional[int] = None) -> tuple:
    """Split ``pending`` into (ready in order, late, still waiting); moves the state on.

    Duplicates (same event key) collapse to one. ``late`` holds events ordered before
    the last one released: either duplicates of released events or truly late ones.
    At most ``limit`` events are released; the rest of the ready ones wait for the next call.
    """
    for record in pending:
        t = record.event.event_time_us
        if t > state.shard_max.get(record.shard_id, -1):
            state.shard_max[record.shard_id] = t
    unique: dict = {}
    for record in pending:
        unique.setdefault(record.event.key, record)
    ready, late, waiting = [], [], []
    for record in unique.values():
        key = record.event.order_key
        if state.last_released is not None and key <= state.last_released:
            late.append(record)
        elif watermark is not None and record.event.event_time_us < watermark:
            ready.append(record)
        else:
            waiting.append(record)
    ready.sort(key=lambda r: r.event.order_key)
    if limit is not None and len(ready) > limit:
        waiting += ready[limit:]
        ready = ready[:limit]
    if ready:
        state.last_released = ready[-1].event.order_key
    return ready, late, waiting


def plan(state: OrderState, ordered: list, *, database: Optional[str], ddl: frozenset) -> Plan:
    """What to replay, in order, for events released in order; updates the sessions."""
    result = Plan()
    for record in ordered:
        event = record.event
        if event.operation in SESSION_RESETS:
            state.sessions.pop(event.connection_id, None)  # an open transaction dies with its session
            continue
        if event.operation != "QUERY":
            continue
        session = state.sessions.get(event.connection_id) or Session()
        _step(session, record, result, database, ddl)
        if session.idle:
            state.sessions.pop(event.connection_id, None)
        else:
            state.sessions[event.connection_id] = session
    return result


def _flush(session: Session, result: Plan) -> None:
    result.replay.extend(session.buffer)
    session.buffer = []
    session.savepoints = []
    session.open = False


def _drop(session: Session) -> None:
    session.buffer = []
    session.savepoints = []
    session.open = False


def _step(session: Session, record: AuditRecord, result: Plan, database: Optional[str], ddl: frozenset) -> None:
    event = record.event
    statement = st.classify(event.object)
    ours = database is None or event.database == database
    if event.retcode not in (0, None):
        if statement.kind == st.COMMIT or (event.retcode == DEADLOCK and (session.open or not session.autocommit)):
            _drop(session)  # the transaction was rolled back on the source
        return
    kind = statement.kind
    if kind == st.DML:
        if not ours:
            result.skipped[event.database] = result.skipped.get(event.database, 0) + 1
            return
        replay = Replay(record, statement.verb, ddl=False)
        if session.open or not session.autocommit:
            session.open = True
            session.buffer.append(replay)
        else:
            result.replay.append(replay)
    elif kind in (st.DDL, st.IMPLICIT_COMMIT):
        _flush(session, result)
        if kind == st.DDL and statement.verb in ddl:
            if ours:
                result.replay.append(Replay(record, statement.verb, ddl=True))
            else:
                result.skipped[event.database] = result.skipped.get(event.database, 0) + 1
    elif kind == st.BEGIN:
        _flush(session, result)  # BEGIN commits an open transaction
        session.open = True
    elif kind == st.COMMIT:
        _flush(session, result)
    elif kind == st.ROLLBACK:
        _drop(session)
    elif kind == st.SAVEPOINT:
        session.savepoints = [(n, i) for n, i in session.savepoints if n.upper() != statement.name.upper()]
        session.savepoints.append((statement.name, len(session.buffer)))
    elif kind == st.ROLLBACK_TO:
        for index, (name, length) in enumerate(session.savepoints):
            if name.upper() == statement.name.upper():
                session.buffer = session.buffer[:length]
                session.savepoints = session.savepoints[:index + 1]
                break
    elif kind == st.RELEASE:
        session.savepoints = [(n, i) for n, i in session.savepoints if n.upper() != statement.name.upper()]
    elif kind == st.AUTOCOMMIT:
        if statement.autocommit:
            _flush(session, result)  # switching autocommit on commits
        session.autocommit = bool(statement.autocommit)
    elif kind == st.UNSUPPORTED and ours:
        result.dead.append((record, f"not replayed: {statement.verb} can't be replayed from the audit log"))
