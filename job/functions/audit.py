"""Flink wrappers for audit-log sync: decode subscription records, order and replay.

``DecodeAuditFunction`` turns each Kinesis record (from the shared shard reader) into
``AuditRecord``s, one per log event, or dead letters. ``AuditReplayFunction`` is keyed
by source server (a handful of keys): events wait in keyed list state until the
server's watermark passes them (see ``job.rules.audit_order``), then a processing-time timer
releases them in order to ``AuditReplayer`` (``connectors.mysql.audit_replay``).
"""
from __future__ import annotations

import logging
import re
import time
import zlib
from typing import Optional

from pyflink.common import Types
from pyflink.datastream import FlatMapFunction, KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from connectors.kinesis.source import record_parts
from connectors.mysql import audit_replay
from connectors.formats.audit_lines import AuditRecord, BadAuditLine, parse_audit_line
from connectors.formats.cloudwatch_logs import BadSubscriptionRecord, decode_subscription_record
from connectors.dead_letters import DeadLetter
from job.config.settings import AuditSettings
from job.rules.audit_order import OrderState, Watermarks, describe_skipped, plan, take_ready
from job.functions.status_board import StatusBoard
from job.functions import names

log = logging.getLogger(__name__)

# Dead letters from decoding have no server; they travel under this key (no server
# name can start with NUL) and are written as they come.
DEAD_LETTER_KEY = "\x00dead-letters"
# Per timer call at most this many batches (sink.batch.max.rows each) are replayed; the
# next call follows at once.
RELEASE_BATCHES = 4
SKIPPED_LOG_INTERVAL_S = 60.0


def replay_key(item) -> str:
    return DEAD_LETTER_KEY if isinstance(item, DeadLetter) else item.event.server


def check_event(record: AuditRecord) -> Optional[str]:
    """Why an event can't be stored in audit_events, or None."""
    e = record.event
    for name, value, limit in (("server", e.server, audit_replay.MAX_SERVER), ("username", e.user, audit_replay.MAX_NAME),
                               ("host", e.host, audit_replay.MAX_NAME), ("database", e.database, audit_replay.MAX_NAME),
                               ("log group", record.log_group, audit_replay.MAX_LOG_NAME),
                               ("log stream", record.log_stream, audit_replay.MAX_LOG_NAME)):
        if len(value) > limit:
            return f"{name} longer than {limit} characters"
    try:
        e.line.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"not valid Unicode text: {exc}"
    return None


class DecodeAuditFunction(FlatMapFunction):
    def open(self, ctx: RuntimeContext):
        metrics = ctx.get_metrics_group()
        self._events = metrics.counter(names.AUDIT_EVENTS_DECODED)
        self._control = metrics.counter(names.CONTROL_MESSAGES_SKIPPED)
        self._bad = metrics.counter(names.BAD_RECORDS)

    def flat_map(self, record):
        stream, shard_id, sequence_number, data = record_parts(record)
        try:
            decoded = decode_subscription_record(data)
        except BadSubscriptionRecord as exc:
            self._bad.inc()
            yield DeadLetter(stream=stream, shard_id=shard_id, sequence_number=sequence_number,
                             stage="decode", reason=str(exc), raw=bytes(data))
            return
        if decoded.is_control:
            self._control.inc()
            return
        read_ms = int(time.time() * 1000)  # the replay's read clock (see job/rules/audit_order.py)
        for index, log_event in enumerate(decoded.log_events):
            reason = None
            try:
                event = parse_audit_line(log_event.message)
                item = AuditRecord(event=event, stream=stream, shard_id=shard_id, sequence_number=sequence_number,
                                   sub_sequence=index, log_group=decoded.log_group, log_stream=decoded.log_stream,
                                   read_ms=read_ms)
                reason = check_event(item)
            except BadAuditLine as exc:
                reason = f"unparseable audit line: {exc}"
            if reason is not None:
                self._bad.inc()
                yield DeadLetter(stream=stream, shard_id=shard_id, sequence_number=sequence_number,
                                 sub_sequence=index, stage="decode", reason=reason,
                                 raw=log_event.message.encode("utf-8", "surrogatepass"))
                continue
            self._events.inc()
            yield item


def _status_name(server: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", server)[:60]
    return f"writer-audit-{safe}-{zlib.crc32(server.encode('utf-8', 'replace')):08x}"


class AuditReplayFunction(KeyedProcessFunction):
    def __init__(self, settings: AuditSettings, status_dir: Optional[str] = None):
        self._settings = settings
        self._status_dir = status_dir

    def open(self, ctx: RuntimeContext):
        self._pending = ctx.get_list_state(ListStateDescriptor("audit-pending", Types.PICKLED_BYTE_ARRAY()))
        self._order = ctx.get_state(ValueStateDescriptor("audit-order", Types.PICKLED_BYTE_ARRAY()))
        self._replayer = audit_replay.AuditReplayer(
            self._settings.mysql,
            replay_database=self._settings.replay_database if self._settings.replay_enabled else None,
            stop_on_error=self._settings.stop_on_error)
        self._board = StatusBoard(self._status_dir)
        self._opened_ms = int(time.time() * 1000)
        # In memory, per server: watermark idleness, waiting count, timer set, totals.
        self._marks: dict = {}
        self._waiting: dict = {}
        self._timer: dict = {}
        self._totals: dict = {}
        metrics = ctx.get_metrics_group()
        self._recorded = metrics.counter(names.AUDIT_EVENTS_RECORDED)
        self._applied = metrics.counter(names.STATEMENTS_APPLIED)
        self._failed = metrics.counter(names.STATEMENTS_FAILED)
        self._late = metrics.counter(names.LATE_EVENTS)
        # Write statements of other databases than audit.source.database (see job/rules/audit_order.py).
        self._skipped = metrics.counter(names.STATEMENTS_SKIPPED)
        self._skipped_logged = 0.0

    def close(self):
        self._replayer.close()

    def _watermarks(self, server: str) -> Watermarks:
        marks = self._marks.get(server)
        if marks is None:
            marks = self._marks[server] = Watermarks(self._settings.out_of_orderness_ms,
                                                     self._settings.idle_timeout_ms, self._opened_ms)
        return marks

    def process_element(self, item, ctx: KeyedProcessFunction.Context):
        server = ctx.get_current_key()
        if server == DEAD_LETTER_KEY:
            self._replayer.write_dead_letters([item])
            return ()
        now = ctx.timer_service().current_processing_time()
        self._watermarks(server).seen(item.shard_id, item.read_ms, now)
        self._pending.add(item)
        self._waiting[server] = self._waiting.get(server, 0) + 1
        if self._waiting[server] == 1:
            self._publish(server, pending=True)
        if server not in self._timer:
            self._schedule(ctx, server, now)
        return ()

    def _schedule(self, ctx, server: str, now: int, soon: bool = False) -> None:
        due = now + (1 if soon else self._settings.interval_ms)
        ctx.timer_service().register_processing_time_timer(due)
        self._timer[server] = due

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        server = ctx.get_current_key()
        if self._timer.get(server) == timestamp:
            del self._timer[server]
        now = ctx.timer_service().current_processing_time()
        waiting, more_ready = self._release(server, now)
        # Records that reached the function while it replayed were queued, not absent.
        self._watermarks(server).busy(now, ctx.timer_service().current_processing_time())
        if waiting and server not in self._timer:
            self._schedule(ctx, server, now, soon=more_ready)
        return ()  # PyFlink iterates what a timer returns

    def _release(self, server: str, now: int) -> tuple:
        """Release what the watermark allows (a bounded amount, so that checkpoint barriers
        are not held up by one long call); returns (events still waiting, more ready now)."""
        records = list(self._pending.get() or [])
        if not records:
            self._waiting[server] = 0
            self._publish(server, pending=False)
            return 0, False
        state = self._order.value() or OrderState()
        for record in records:  # newest event time per shard, before the watermark is read
            t = record.event.event_time_us
            if t > state.shard_max.get(record.shard_id, -1):
                state.shard_max[record.shard_id] = t
        watermark = self._watermarks(server).watermark(state.shard_max, now)
        ready, late, waiting = take_ready(state, records, watermark, limit=self._settings.max_rows * RELEASE_BATCHES)
        more_ready = watermark is not None and any(r.event.event_time_us < watermark for r in waiting)
        if ready or late:
            totals = self._totals.setdefault(server, {"events": 0, "applied": 0, "already_applied": 0,
                                                      "failed": 0, "late": 0})
            for start in range(0, max(len(ready), 1), self._settings.max_rows):
                chunk = ready[start:start + self._settings.max_rows]
                if self._settings.replay_enabled:
                    steps = plan(state, chunk, database=self._settings.source_database, ddl=self._settings.ddl)
                    replay, dead = steps.replay, steps.dead
                    self._count_skipped(server, steps.skipped)
                else:
                    replay, dead = [], []
                result = self._replayer.apply(chunk, replay, late if start == 0 else (), dead)
                for name, value in (("events", result.events), ("applied", result.applied),
                                    ("already_applied", result.already_applied), ("failed", result.failed),
                                    ("late", result.late)):
                    totals[name] += value
                self._recorded.inc(result.events)
                self._applied.inc(result.applied)
                self._failed.inc(result.failed)
                self._late.inc(result.late)
            if waiting:
                self._pending.update(waiting)
            else:
                self._pending.clear()
            self._order.update(state)
        self._waiting[server] = len(waiting)
        self._publish(server, pending=bool(waiting), watermark=watermark)
        return len(waiting), more_ready

    def _count_skipped(self, server: str, skipped: dict) -> None:
        if not skipped:
            return
        counts = self._totals.setdefault(server, {}).setdefault("skipped", {})
        for database, n in skipped.items():
            counts[database] = counts.get(database, 0) + n
            self._skipped.inc(n)
        now = time.monotonic()
        if now - self._skipped_logged >= SKIPPED_LOG_INTERVAL_S:  # the first, then once a minute
            self._skipped_logged = now
            log.warning("server %s: %s", server, describe_skipped(counts, self._settings.source_database))

    def _publish(self, server: str, pending: bool, watermark=None) -> None:
        totals = self._totals.get(server, {})
        self._board.publish(_status_name(server), {
            "kind": "writer", "slot": server, "pending": pending, "waiting": self._waiting.get(server, 0),
            "written": totals.get("events", 0), "applied": totals.get("applied", 0),
            "already_applied": totals.get("already_applied", 0),
            "failed": totals.get("failed", 0), "late": totals.get("late", 0),
            "retries": self._replayer.retries,
            "skipped": totals.get("skipped", {}), "source_database": self._settings.source_database,
            "watermark_us": None if watermark is None or watermark == float("inf") else int(watermark),
        }, force=True)
