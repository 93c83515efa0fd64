"""ship-audit's pure parts: tailing the log across restarts and rotations, and PutLogEvents batches."""
import json
import os
import time

from job.cli.tools.ship_audit import MAX_BATCH_BYTES, AuditLogTail, event_time_ms, log_batches

LINE = "20261122 13:57:55,vm,u,127.0.0.1,9,{q},QUERY,db,'INSERT INTO t VALUES ({q}, ''a\\nb'')',0\n"


def _append(path, *queries, raw=""):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(LINE.format(q=q) for q in queries) + raw)


def _ids(records):
    return [int(r.split(",")[5]) for r in records]


def test_tail_resumes_where_it_left_off(tmp_path):
    log, state = tmp_path / "server_audit.log", tmp_path / "state.json"
    _append(log, 1, 2)
    tail = AuditLogTail(str(log), str(state))
    assert _ids(tail.read()) == [1, 2]
    tail.commit()
    _append(log, 3, raw="20261122 13:57:56,vm,u,127.0.0.1,9,4,QUERY,db,'half a rec")  # being written
    assert _ids(tail.read()) == [3]
    tail.commit()
    tail.close()
    with open(log, "a") as handle:
        handle.write("ord',0\n")
    again = AuditLogTail(str(log), str(state))  # a restart
    assert [r.split(",", 8)[8] for r in again.read()] == ["'half a record',0"]
    assert json.loads(state.read_text())["offset"] > 0


def test_tail_follows_a_rotation_and_finds_the_rotated_file_after_a_restart(tmp_path):
    log, state = tmp_path / "server_audit.log", tmp_path / "state.json"
    _append(log, 1)
    tail = AuditLogTail(str(log), str(state))
    assert _ids(tail.read()) == [1]
    tail.commit()
    _append(log, 2)
    os.rename(log, f"{log}.1")  # what server_audit does at file_rotate_size
    _append(log, 3)
    assert _ids(tail.read()) == [2, 3]
    tail.commit()
    tail.close()

    # Shipped up to 3; then 4 is written, the file rotates twice, and ship-audit restarts.
    _append(log, 4)
    os.rename(f"{log}.1", f"{log}.2")
    os.rename(log, f"{log}.1")
    _append(log, 5)
    restarted = AuditLogTail(str(log), str(state))
    assert _ids(restarted.read()) == [4, 5]


def test_start_at_end_ships_only_new_lines(tmp_path):
    log, state = tmp_path / "server_audit.log", tmp_path / "state.json"
    _append(log, 1, 2)
    tail = AuditLogTail(str(log), str(state), start="end")
    assert tail.read() == []
    _append(log, 3)
    assert _ids(tail.read()) == [3]


def test_batches_are_chronological_and_within_limits():
    now = int(time.time() * 1000)
    records = [LINE.format(q=q).rstrip("\n") for q in range(3)] + ["x" * 200_000] * 12
    batches = list(log_batches(records, now))
    assert sum(len(b) for b in batches) == 15
    for batch in batches:
        assert sum(len(e["message"].encode()) + 26 for e in batch) <= MAX_BATCH_BYTES
        stamps = [e["timestamp"] for e in batch]
        assert stamps == sorted(stamps)


def test_event_time_is_the_line_time_when_plausible():
    now = int(time.time() * 1000)
    aurora = f"{now * 1000 - 5_000_000},h,u,x,1,2,QUERY,db,'x',0"
    assert event_time_ms(aurora, now) == now - 5000
    assert event_time_ms("19700101 00:00:01,h,u,x,1,2,QUERY,db,'x',0", now) == now  # too old for CloudWatch
    assert event_time_ms("garbage", now) == now
