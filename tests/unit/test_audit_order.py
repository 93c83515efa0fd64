import math
import os
import random

from hypothesis import given, settings, strategies as hs

from connectors.formats.audit_lines import AuditRecord, aurora_line, parse_audit_line, split_records
from connectors.formats.audit_statements import DDL_VERBS
from job.rules.audit_order import STARTUP_TIMEOUT_MS, OrderState, Watermarks, plan, take_ready

DATA = os.path.join(os.path.dirname(__file__), "data")
BASE_US = 1_700_000_000_000_000


def rec(t_us, qid, sql="SELECT 1", *, conn=1, shard="s1", op="QUERY", db="shop", retcode=0, server="db1"):
    line = aurora_line(time_us=BASE_US + t_us, server=server, user="u", host="h", connection_id=conn, query_id=qid,
                       operation=op, database=db, query=sql, retcode=retcode)
    return AuditRecord(event=parse_audit_line(line), stream="st", shard_id=shard, sequence_number=str(qid),
                       sub_sequence=0)


def replayed(state, records, database="shop", ddl=frozenset()):
    return [r.record.event.object for r in plan(state, records, database=database, ddl=ddl).replay]


# --- watermarks ----------------------------------------------------------------------

def test_nothing_is_released_before_the_read_clock_passes_the_grace():
    marks = Watermarks(out_of_orderness_ms=1000, idle_timeout_ms=3000, opened_ms=0)
    marks.seen("s1", read_ms=5000, now_ms=20_000)  # read at 5000, arrives late (backpressure)
    marks.seen("s1", read_ms=7000, now_ms=20_100)
    assert marks.watermark({"s1": 10_000_000}, now_ms=20_200) is None  # read clock moved 2 s < 3 s
    marks.seen("s2", read_ms=8000, now_ms=20_300)
    assert marks.watermark({"s1": 10_000_000, "s2": 12_000_000}, now_ms=20_400) == 9_000_000


def test_idleness_runs_on_the_read_clock_not_on_arrival():
    marks = Watermarks(out_of_orderness_ms=500, idle_timeout_ms=1000, opened_ms=0)
    for read, shard in ((0, "a"), (100, "b"), (1500, "a"), (1600, "b")):
        marks.seen(shard, read_ms=read, now_ms=10_000)  # all arrive at once: the function was behind
    shard_max = {"a": 9_000_000, "b": 4_000_000}
    assert marks.watermark(shard_max, now_ms=10_100) == 3_500_000
    marks.seen("a", read_ms=2700, now_ms=10_200)
    assert marks.watermark(shard_max, now_ms=10_300) == 8_500_000  # b: nothing for 1.1 s of read clock
    # Nothing arrives for one idle timeout of wall-clock time: drained, release everything.
    assert marks.watermark(shard_max, now_ms=11_200) == math.inf


def test_restored_events_with_nothing_arriving_are_released_once_drained():
    # Nothing has arrived since the start: the start-up timeout, not one idle timeout.
    marks = Watermarks(out_of_orderness_ms=1000, idle_timeout_ms=3000, opened_ms=100, startup_timeout_ms=20_000)
    assert marks.watermark({"s1": 10_000_000}, now_ms=3100) is None
    assert marks.watermark({"s1": 10_000_000}, now_ms=20_099) is None
    assert marks.watermark({"s1": 10_000_000}, now_ms=20_100) == math.inf


def _restore_with_a_slow_source(startup_timeout_ms):
    """A job killed after the checkpoint below and restored; its source delivers the first
    re-read record 2.5 s after the replay function opened. Returns (replayed, late)."""
    state = OrderState()
    # Before the checkpoint: connection 5 began a transaction and inserted row 7 (released,
    # held in its session); connection 6's update (shard s1, 10 s) waited for the watermark.
    begun = [rec(8_000_000, 1, "START TRANSACTION", conn=5, shard="s2"),
             rec(8_000_000, 2, "INSERT INTO t VALUES (7)", conn=5, shard="s2")]
    held = [rec(10_000_000, 4, "UPDATE c SET n = n + 1", conn=6, shard="s1")]
    ready, _, pending = take_ready(state, begun + held, watermark=BASE_US + 9_000_000)
    assert replayed(state, ready) == [] and pending == held
    # Read after the checkpoint by the killed job, so read again: the source of truth
    # rolled row 7 back, and connection 5 went on with another transaction.
    reread = [rec(9_000_000, 3, "ROLLBACK", conn=5, shard="s2"),
              rec(11_000_000, 5, "START TRANSACTION", conn=5, shard="s2"),
              rec(11_000_000, 6, "COMMIT", conn=5, shard="s2")]
    marks = Watermarks(out_of_orderness_ms=2000, idle_timeout_ms=2000, opened_ms=0,
                       startup_timeout_ms=startup_timeout_ms)
    out, late = [], []
    for now in range(0, 10_000, 200):  # the function's timer
        if now == 2_600:
            marks.seen("s2", read_ms=2_600, now_ms=now)
            pending += reread
        ready, too_late, pending = take_ready(state, pending, marks.watermark(state.shard_max, now))
        out += replayed(state, ready)
        late += too_late
    assert pending == []
    return out, [r.event.object for r in late]


def test_a_restore_does_not_release_restored_events_before_the_source_delivers():
    assert _restore_with_a_slow_source(STARTUP_TIMEOUT_MS) == (["UPDATE c SET n = n + 1"], [])
    # Drained after one idle timeout, as before: the held update went first, the re-read
    # ROLLBACK came late, and the next BEGIN committed the rolled-back INSERT.
    assert _restore_with_a_slow_source(2000) == (
        ["UPDATE c SET n = n + 1", "INSERT INTO t VALUES (7)"], ["ROLLBACK"])


def test_time_spent_replaying_is_not_silence():
    marks = Watermarks(out_of_orderness_ms=1000, idle_timeout_ms=2000, opened_ms=0)
    marks.seen("s1", read_ms=0, now_ms=100)
    marks.busy(500, 3000)  # a long release: records queued in front of the function meanwhile
    assert not marks.drained(4500)  # 400 ms quiet before, 1.5 s after
    assert marks.drained(4600)


def test_take_ready_orders_by_time_then_query_id_and_dedups():
    state = OrderState()
    a, b, c = rec(2_000_000, 7), rec(1_000_000, 9), rec(1_000_000, 8)
    ready, late, waiting = take_ready(state, [a, b, c, b], watermark=BASE_US + 1_000_001)
    assert [r.event.query_id for r in ready] == [8, 9]
    assert late == [] and waiting == [a]
    assert state.last_released == b.event.order_key
    # A duplicate of a released event, and an older event, come back as late.
    old = rec(900_000, 3)
    ready, late, waiting = take_ready(state, [a, b, old], watermark=math.inf)
    assert ready == [a] and set(late) == {b, old} and waiting == []


@settings(max_examples=200, deadline=None)
@given(seed=hs.integers(0, 10 ** 6), shards=hs.integers(1, 4), n=hs.integers(1, 60))
def test_per_shard_order_is_enough_for_a_total_order(seed, shards, n):
    """Each shard delivers its events in time order (as a subscription does); shards
    interleave arbitrarily. Min-over-shards watermarks release everything in order, none late."""
    rng = random.Random(seed)
    events = [rec(1_000_000 + rng.randrange(50) * 100_000, q, shard=f"s{rng.randrange(shards)}") for q in range(n)]
    queues = {s: sorted([e for e in events if e.shard_id == s], key=lambda r: r.event.order_key)
              for s in {e.shard_id for e in events}}
    state = OrderState()
    pending, released = [], []
    while any(queues.values()):
        shard = rng.choice([s for s, q in queues.items() if q])
        batch = [queues[shard].pop(0) for _ in range(rng.randint(1, 3)) if queues[shard]]
        pending += batch
        for r in pending:
            state.shard_max[r.shard_id] = max(state.shard_max.get(r.shard_id, -1), r.event.event_time_us)
        if len(state.shard_max) == len(queues):  # every shard has spoken
            watermark = min(state.shard_max.values())  # (what marks.watermark gives past the grace, no idle shard)
            ready, late, pending = take_ready(state, pending, watermark, limit=rng.choice((None, 1, 5)))
            assert late == []
            released += ready
    ready, late, pending = take_ready(state, pending, math.inf)  # end of input: every shard idle
    assert late == [] and pending == []
    released += ready
    assert released == sorted(events, key=lambda r: r.event.order_key)


# --- transactions ------------------------------------------------------------------

def test_autocommit_statements_replay_at_once_reads_failures_and_other_schemas_do_not():
    state = OrderState()
    records = [rec(1, 1, "INSERT INTO t VALUES (1)"), rec(2, 2, "SELECT * FROM t"),
               rec(3, 3, "INSERT INTO t VALUES (1)", retcode=1062), rec(4, 4, "DELETE FROM t", db="other"),
               rec(5, 5, "UPDATE t SET a = 2")]
    assert replayed(state, records) == ["INSERT INTO t VALUES (1)", "UPDATE t SET a = 2"]
    assert state.sessions == {}


def test_transaction_waits_for_commit_and_rollback_drops_it():
    state = OrderState()
    assert replayed(state, [rec(1, 1, "BEGIN", conn=1), rec(2, 2, "INSERT INTO t VALUES (1)", conn=1),
                            rec(3, 3, "INSERT INTO t VALUES (9)", conn=2)]) == ["INSERT INTO t VALUES (9)"]
    assert replayed(state, [rec(4, 4, "UPDATE t SET a = 1", conn=1), rec(5, 5, "COMMIT", conn=1)]) == [
        "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1"]
    assert replayed(state, [rec(6, 6, "START TRANSACTION", conn=1), rec(7, 7, "DELETE FROM t", conn=1),
                            rec(8, 8, "ROLLBACK", conn=1)]) == []
    assert state.sessions == {}


def test_autocommit_off_savepoints_deadlock_and_disconnect():
    state = OrderState()
    out = replayed(state, [
        rec(1, 1, "SET AUTOCOMMIT = 0"), rec(2, 2, "INSERT INTO t VALUES (1)"), rec(3, 3, "SAVEPOINT a"),
        rec(4, 4, "INSERT INTO t VALUES (2)"), rec(5, 5, "ROLLBACK TO SAVEPOINT a"), rec(6, 6, "INSERT INTO t VALUES (3)"),
        rec(7, 7, "COMMIT"), rec(8, 8, "INSERT INTO t VALUES (4)"),
        rec(9, 9, "UPDATE t SET a = 1", retcode=1213),  # deadlock: InnoDB rolled the transaction back
        rec(10, 10, "INSERT INTO t VALUES (5)"), rec(11, 0, "", op="DISCONNECT"),  # never committed
    ])
    assert out == ["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (3)"]
    assert state.sessions == {}


def test_ddl_commits_first_and_replays_only_when_opted_in():
    state = OrderState()
    records = [rec(1, 1, "BEGIN"), rec(2, 2, "INSERT INTO t VALUES (1)"), rec(3, 3, "ALTER TABLE t ADD b INT"),
               rec(4, 4, "CREATE DATABASE x"), rec(5, 5, "TRUNCATE TABLE t")]
    assert replayed(state, records, ddl=frozenset({"TRUNCATE TABLE"})) == [
        "INSERT INTO t VALUES (1)", "TRUNCATE TABLE t"]


def test_set_autocommit_on_commits_and_load_data_is_a_dead_letter():
    state = OrderState()
    steps = plan(state, [rec(1, 1, "SET autocommit=0"), rec(2, 2, "DELETE FROM t WHERE a = 1"),
                         rec(3, 3, "SET autocommit=1"), rec(4, 4, "LOAD DATA INFILE '/x' INTO TABLE t")],
                 database="shop", ddl=frozenset())
    assert [r.record.event.object for r in steps.replay] == ["DELETE FROM t WHERE a = 1"]
    assert len(steps.dead) == 1 and "LOAD DATA" in steps.dead[0][1]


def test_plan_of_the_captured_mariadb_log():
    with open(os.path.join(DATA, "server_audit_mariadb.log"), encoding="utf-8") as handle:
        records, _ = split_records(handle.read())
    events = [AuditRecord(parse_audit_line(r), "st", "s1", str(i), 0) for i, r in enumerate(records)]
    events.sort(key=lambda r: r.event.order_key)
    out = replayed(OrderState(), events, database="capture_db", ddl=frozenset(DDL_VERBS))
    assert out == [
        "DROP TABLE IF EXISTS t",
        "CREATE TABLE t (id INT PRIMARY KEY, note TEXT, n INT DEFAULT 0) DEFAULT CHARSET=utf8mb4",
        "INSERT INTO t (id, note) VALUES (1, 'a, b, c'), (2, 'it''s'), (3, 'it\\'s')",
        "INSERT INTO t (id, note) VALUES (4, 'back\\\\slash'), (5, 'say \"hi\"')",
        "INSERT INTO t (id, note) VALUES (6, 'escaped\\nnewline and \\ttab')",
        "INSERT INTO t\n  (id, note)\nVALUES\n\t(7, 'raw\nnewline in literal')",
        "INSERT INTO t (id, note) VALUES (8, 'Zürich – São Paulo – 東京 🦆')",
        "INSERT INTO t (id, note) VALUES (9, ''',0\n20260101 00:00:00,fake,line')",
        "/* leading comment */ UPDATE t SET n = n + 1 WHERE id IN (1, 2)",
        "-- line comment\nDELETE FROM t WHERE id = 3",
        "REPLACE INTO t (id, note) VALUES (2, 'replaced')",
        "UPDATE t SET n = 7 WHERE id = 2",  # autocommit=0, then COMMIT
        "ALTER TABLE t ADD COLUMN extra VARCHAR(10) NULL",
        "RENAME TABLE t TO t2",
        "TRUNCATE TABLE t2",
        "DROP TABLE t2",
    ]


def test_connection_events_keep_their_place_within_a_mariadb_second():
    # Real lines (the same second): a COMMIT, then the client disconnects. The DISCONNECT
    # carries query id 0, but must not sort before the COMMIT and drop the transaction.
    lines = [
        "20261122 14:08:08,vm,ledgersync,127.0.0.1,13,0,CONNECT,shop,,0",
        "20261122 14:08:08,vm,ledgersync,127.0.0.1,13,380,QUERY,shop,'SET AUTOCOMMIT = 0',0",
        "20261122 14:08:08,vm,ledgersync,127.0.0.1,13,383,QUERY,shop,'UPDATE t SET n = n + 1',0",
        "20261122 14:08:09,vm,ledgersync,127.0.0.1,13,384,QUERY,shop,'COMMIT',0",
        "20261122 14:08:09,vm,ledgersync,127.0.0.1,13,0,DISCONNECT,shop,,0",
    ]
    records = [AuditRecord(parse_audit_line(line), "st", "s1", str(i), 0) for i, line in enumerate(lines)]
    ordered = sorted(reversed(records), key=lambda r: r.event.order_key)
    assert ordered == records
    assert replayed(OrderState(), ordered) == ["UPDATE t SET n = n + 1"]


def test_events_that_the_target_cannot_store_are_refused_at_decode():
    from job.functions.audit import check_event

    assert check_event(rec(1, 1)) is None
    assert "server longer than 128" in check_event(rec(1, 1, server="x" * 129))
