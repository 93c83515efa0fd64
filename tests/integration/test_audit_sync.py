"""Audit-log sync end to end, on real services:

MariaDB with server_audit (the audit source, 127.0.0.1:13307) -> its audit log ->
``ledgersync ship-audit --follow`` -> CloudWatch Logs (moto) -> subscription filter ->
Kinesis -> the job on a Flink mini-cluster -> replayed on the shared MariaDB.

A workload of inserts, updates and deletes runs from several connections at once
while the job runs; the job is SIGKILLed in the middle and restarted from its latest
retained checkpoint; at the end the replica's tables equal the source's.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pymysql
import pytest

from job.cli.local import audit_source
from job.functions.status_board import read_board
from job.cli.local.runner import DEFAULT_LOCAL_DIR, checkpoint_numbers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def source(services):
    audit_source.up()
    return audit_source


def _properties(path, *, stream, sink_db, replica_db, source_db, services) -> str:
    groups = [
        {"PropertyGroupId": "source", "PropertyMap": {
            "stream.name": stream, "aws.region": "us-east-1", "aws.endpoint": services.aws_endpoint(),
            "initial.position": "TRIM_HORIZON", "format": "cloudwatch-audit"}},
        {"PropertyGroupId": "sink", "PropertyMap": {
            "mysql.host": services.HOST, "mysql.port": str(services.MYSQL_PORT), "mysql.database": sink_db,
            "mysql.user": services.MYSQL_USER, "mysql.password": services.MYSQL_PASSWORD,
            "batch.max.rows": "500", "batch.interval.ms": "200"}},
        {"PropertyGroupId": "audit", "PropertyMap": {
            "replay.enabled": "true", "replay.database": replica_db, "source.database": source_db,
            "replay.ddl": "CREATE TABLE", "max.out.of.orderness.ms": "2000", "idle.timeout.ms": "2000"}},
    ]
    target = os.path.join(str(path), "audit_properties.json")
    with open(target, "w") as handle:
        json.dump(groups, handle)
    return target


def _start(args, log_path):
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "job.cli", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, log


def _output(log_path) -> str:
    with open(log_path, errors="replace") as handle:
        return handle.read()


def _wait(condition, timeout_s, what, proc=None, log_path=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended while waiting for {what}:\n{_output(log_path)[-4000:]}")
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{_output(log_path)[-4000:]}" if log_path else ""))


def _field(log_path, prefix):
    for line in _output(log_path).splitlines():
        if prefix in line:
            return line.split(prefix, 1)[1].split(";")[0].strip()
    return None


def _count(conn, sql):
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    except pymysql.err.ProgrammingError:
        return 0  # not created yet


def test_replica_equals_source_after_a_kill_and_restart_in_the_middle(tmp_path, source, services, kinesis,
                                                                      stream_name, mysql_database, mysql_conn):
    tag = uuid.uuid4().hex[:10]
    source_db, replica_db = f"s_{tag}", f"r_{tag}"
    props = _properties(tmp_path, stream=stream_name, sink_db=mysql_database, replica_db=replica_db,
                        source_db=source_db, services=services)
    state = tmp_path / "ship-state.json"
    ship_args = ["ship-audit", "--properties", props, "--log-group", f"/ledgersync/test/{tag}", "--state", str(state)]
    shipper, ship_log = _start([*ship_args, "--follow", "--start", "end"], tmp_path / "ship.log")
    job = job_log = None
    try:
        _wait(state.exists, 60, "ship-audit to take its starting position", shipper, tmp_path / "ship.log")
        # The schema too goes through the audit log (CREATE TABLE is replayed: replay.ddl).
        source.create_schema(source_db)
        job, job_log = _start(["run", "--properties", props], tmp_path / "run1.log")
        job_id = _wait(lambda: (_field(tmp_path / "run1.log", "ledgersync: job ") or "").split(" ")[0], 120,
                       "the job to start", job, tmp_path / "run1.log")
        checkpoints = os.path.join(DEFAULT_LOCAL_DIR, "checkpoints", job_id)

        # The job is up and replaying once the schema is there.
        _wait(lambda: _count(mysql_conn, f"SELECT COUNT(*) + 1 FROM `{replica_db}`.`counters`"), 150,
              "the replayed CREATE TABLE", job, tmp_path / "run1.log")
        errors: list = []

        def run_workload(seed, first_id):
            try:
                source.workload(source_db, connections=4, operations=100, seed=seed, pause_s=0.15, first_id=first_id)
            except Exception as exc:  # reported below
                errors.append(exc)

        workload = threading.Thread(target=run_workload, args=(11, 0))
        workload.start()
        # Kill in the middle, when statements were applied after the newest complete
        # checkpoint: the restore must not apply those again.
        ledger = "SELECT COUNT(*) FROM _ledgersync_audit_ledger"
        _wait(lambda: _count(mysql_conn, ledger) > 20, 150, "the first replayed statements", job,
              tmp_path / "run1.log")

        def applied_since_checkpoint(mark={}):
            completed = checkpoint_numbers(checkpoints)[1]
            if completed and mark.get("checkpoint") != completed:
                mark.update(checkpoint=completed, ledger=_count(mysql_conn, ledger))  # after its barrier
                return False
            return completed and _count(mysql_conn, ledger) >= mark["ledger"] + 10 \
                and checkpoint_numbers(checkpoints)[1] == completed

        _wait(applied_since_checkpoint, 90, "statements applied after a checkpoint", job, tmp_path / "run1.log")
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
        job_log.close()
        applied_before_kill = _count(mysql_conn, "SELECT COUNT(*) FROM _ledgersync_audit_ledger")
        completed = checkpoint_numbers(checkpoints)[1]
        restore_from = os.path.join(checkpoints, f"chk-{completed}")
        assert os.path.exists(os.path.join(restore_from, "_metadata"))

        workload.join(timeout=180)
        # ... and more while the job is down.
        run_workload(12, 10_000)
        workload.join(timeout=180)
        assert not workload.is_alive() and not errors, errors
        time.sleep(1.0)  # the server logs a DISCONNECT just after the client has gone
        shipper.send_signal(signal.SIGTERM)  # ships what is left, then ends
        assert shipper.wait(timeout=60) == 0, _output(tmp_path / "ship.log")
        ship_log.close()

        # The restart: from the latest retained checkpoint, until caught up.
        job, job_log = _start(["run", "--properties", props, "--from-savepoint", restore_from,
                               "--until-caught-up", "--timeout", "150"], tmp_path / "run2.log")
        assert job.wait(timeout=240) == 0, _output(tmp_path / "run2.log")[-6000:]
        job_log.close()
        run2 = _output(tmp_path / "run2.log")
        assert "caught up" in run2 and f"restoring from {restore_from}" in run2, run2[-4000:]

        replica = pymysql.connect(host=services.HOST, port=services.MYSQL_PORT, user=services.MYSQL_USER,
                                  password=services.MYSQL_PASSWORD, charset="utf8mb4")
        try:
            lines: list = []
            same = source.compare_databases(source_db, replica, replica_db, out=lines.append)
        finally:
            replica.close()
        assert same, "\n".join(lines)
        want = source.table_contents(source.connect(), source_db)
        assert len(want["accounts"]) > 50 and want["counters"][0][1] > 500  # (rolled-back ones don't count)
        with mysql_conn.cursor() as cursor:
            cursor.execute("SELECT stage, reason FROM _ledgersync_dead_letters")
            assert cursor.fetchall() == ()
        applied_total = _count(mysql_conn, "SELECT COUNT(*) FROM _ledgersync_audit_ledger")
        assert 0 < applied_before_kill < applied_total
        status_dir = _field(tmp_path / "run2.log", "; status in ")
        board = read_board(status_dir)
        replayed = [s for s in board.values() if s.get("kind") == "writer"]
        again = sum(s["already_applied"] for s in replayed)
        print(f"applied before the kill {applied_before_kill}, in all {applied_total}; after the restore: "
              f"{sum(s['applied'] for s in replayed)} applied, {again} skipped as already applied")
        assert again >= 10  # applied after the checkpoint, before the kill: re-read, not re-applied
    finally:
        for proc, log in ((shipper, ship_log), (job, job_log)):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            if log is not None and not log.closed:
                log.close()
        from connectors.aws_clients import aws_client

        try:  # moto keeps every log event in memory
            aws_client("logs", "us-east-1", services.aws_endpoint()).delete_log_group(logGroupName=f"/ledgersync/test/{tag}")
        except Exception:  # never created: nothing to delete
            pass
        conn = source.connect()
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{source_db}`")
        conn.close()
        with mysql_conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{replica_db}`")
