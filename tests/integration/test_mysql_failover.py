"""An Aurora failover, as MariaDB can play it, in the middle of a run: the writer's
connections are killed again and again (2013/2006), as when the cluster endpoint still
points at the old writer, then for 20 s the server is read-only (1290); then
a transaction holds every row of the current views for 8 s (lock wait timeouts, 1205);
then a heavier transaction deadlocks with the writer in the middle of a batch (1213).
The job keeps running, retries with backoff, dead-letters nothing, and MySQL ends equal
to the oracle (history included). InnoDB's own counters show that lock waits timed out
and that the deadlock happened."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pymysql

from connectors.formats.qldb import decode_record
from job.cli.local import services as local_services
from job.functions.status_board import read_board
from job.cli.tools.simulate.qldb import WorkloadSpec, encode, simulate_qldb
from tests.conftest import ROOT, write_properties
from tests.support.oracle import actual_tables, count_rows, diff, expected_tables

USER, PASSWORD = "failover_writer", "failover-pw"
DATABASE = "failover"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _history_rows(port: int) -> int:
    conn = pymysql.connect(host=local_services.HOST, port=port, user=USER, password=PASSWORD, database=DATABASE)
    try:
        return count_rows(conn, like="%\\_history")
    finally:
        conn.close()


def _kill_writer_connections(root) -> int:
    with root.cursor() as cursor:
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (USER,))
        ids = [row[0] for row in cursor.fetchall()]
        for connection_id in ids:
            try:
                cursor.execute(f"KILL CONNECTION {int(connection_id)}")
            except pymysql.err.MySQLError:
                pass  # gone already
    return len(ids)


def _innodb_metric(root, name: str) -> int:
    with root.cursor() as cursor:
        cursor.execute("SELECT COUNT FROM information_schema.INNODB_METRICS WHERE NAME = %s", (name,))
        return int(cursor.fetchone()[0])


def _deadlock_the_writer(paths, root, tables: list) -> bool:
    """One try; True when a deadlock rolled back the writer. InnoDB rolls back the lighter
    transaction of a deadlock, so this one first inserts 5,000 rows elsewhere."""
    helper = local_services.shared_mariadb(paths).root()
    try:
        with helper.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS scratch.ballast (n INT PRIMARY KEY)")
            cursor.execute("BEGIN")
            cursor.execute("INSERT INTO scratch.ballast SELECT seq FROM scratch.seq_1_to_5000")
            try:
                cursor.execute(f"SELECT COUNT(*) FROM {DATABASE}.`{tables[1]}` FOR UPDATE")
            except pymysql.err.MySQLError:
                cursor.execute("ROLLBACK")
                return False  # the writer held some of them for longer than the lock wait timeout
            waited = time.monotonic() + 10
            while time.monotonic() < waited:  # until the writer waits for a row we hold
                with root.cursor() as watch:
                    watch.execute("SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_current_waits'")
                    if int(watch.fetchone()[1]) > 0:
                        break
                time.sleep(0.02)
            before = _innodb_metric(root, "lock_deadlocks")
            try:
                cursor.execute(f"SELECT COUNT(*) FROM {DATABASE}.`{tables[0]}` FOR UPDATE")
            except pymysql.err.MySQLError:
                return False  # this one was the victim (1213) or waited in vain (1205): try again
            finally:
                cursor.execute("ROLLBACK")
            return _innodb_metric(root, "lock_deadlocks") > before  # else the writer held none of them
    finally:
        helper.close()


def test_read_only_failover_killed_connections_and_lock_waits_mid_stream(tmp_path, kinesis, stream_name, services):
    port = _free_port()
    paths = local_services.Paths(str(tmp_path / "failover-mariadb"))
    local_services.start_mariadb(paths, port)
    job = None
    try:
        root = local_services.shared_mariadb(paths).root()
        with root.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
            cursor.execute("CREATE DATABASE scratch")  # the deadlock's ballast, away from the replicated tables
            # Not ledgersync's local user, which has every privilege (READ ONLY ADMIN too)
            # and so would write through read_only: Aurora's application users don't.
            cursor.execute(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY %s", (PASSWORD,))
            cursor.execute(f"GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{USER}'@'127.0.0.1'")
            cursor.execute("SET GLOBAL innodb_lock_wait_timeout = 2")  # new sessions: 1205 after 2 s
        spec = WorkloadSpec(tables=2, documents=2500, revisions=4, duplicates=0.1, deletes=0.05, shuffle=True, seed=8)
        revisions = simulate_qldb(kinesis, stream_name, spec, shards=2, out=lambda *_: None)
        props = write_properties(tmp_path, stream=stream_name, database=DATABASE,
                                 source={"flink.shard.getrecords.maxrecordcount": "200"},
                                 sink={"mysql.port": str(port), "mysql.user": USER, "mysql.password": PASSWORD,
                                       "batch.max.rows": "100", "batch.interval.ms": "100"},
                                 replication={"history": "true"})
        job = subprocess.Popen([sys.executable, "-m", "job.cli", "run", "--properties", props, "--until-caught-up",
                                "--timeout", "500"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        deadline = time.monotonic() + 180
        while _history_rows(port) == 0:
            assert job.poll() is None and time.monotonic() < deadline, "the job wrote nothing"
            time.sleep(0.2)

        # DNS still points at the old writer: its connections are dropped again and again
        # (2013/2006). Done while the server is writable, when the writer holds a connection
        # between batches; once read-only, the writer is mostly disconnected, in backoff.
        killed = 0
        ends = time.monotonic() + 3
        while time.monotonic() < ends:
            killed += _kill_writer_connections(root)
            time.sleep(0.3)
        # Then the old writer turns read-only (1290) for 20 s, still dropping what connects.
        with root.cursor() as cursor:
            cursor.execute("SET GLOBAL read_only = ON")
        before = _history_rows(port)
        ends = time.monotonic() + 20
        while time.monotonic() < ends:
            killed += _kill_writer_connections(root)
            time.sleep(0.5)
        during = _history_rows(port)
        assert job.poll() is None, "the job must wait for a writable server, not fail"
        with root.cursor() as cursor:
            cursor.execute("SET GLOBAL read_only = OFF")  # the new writer answers
        assert during == before, "rows were written while the server was read-only"
        assert killed > 0 and before < len(revisions), f"the failover was not in the middle of the run ({killed}, {before}, {len(revisions)})"

        # A long transaction holds every current-view row: the writer's statements time out (1205).
        time.sleep(3)
        waited = time.monotonic() + 60
        while True:  # both current views exist once a batch with rows of each was written
            with root.cursor() as cursor:
                cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                               "AND TABLE_NAME NOT LIKE '%%\\_history' AND TABLE_NAME NOT LIKE '\\_ledgersync%%' "
                               "ORDER BY TABLE_NAME", (DATABASE,))
                tables = [row[0] for row in cursor.fetchall()]
            if len(tables) == spec.tables or time.monotonic() > waited:
                break
            time.sleep(0.2)
        assert len(tables) == spec.tables
        timeouts = _innodb_metric(root, "lock_timeouts")
        locker = local_services.shared_mariadb(paths).root()
        with locker.cursor() as cursor:
            cursor.execute("BEGIN")
            for table in tables:
                cursor.execute(f"SELECT COUNT(*) FROM {DATABASE}.`{table}` FOR UPDATE")
            locked_at = _history_rows(port)
            time.sleep(8)
            cursor.execute("ROLLBACK")
        locker.close()
        assert locked_at < len(revisions), "nothing was left to write while the rows were locked"
        assert _innodb_metric(root, "lock_timeouts") > timeouts, "the writer never waited out a lock"

        # A deadlock mid-batch: the writer, holding rows of the first table, waits for rows
        # of the second that a heavier transaction holds, which then asks for the first.
        victim = any(_deadlock_the_writer(paths, root, tables) for _attempt in range(8))
        assert victim, "no deadlock rolled back the writer"
        assert _history_rows(port) < len(revisions), "nothing was left to write after the deadlock"

        output, _ = job.communicate(timeout=600)
        assert job.returncode == 0, output[-6000:]
        status = re.search(r"status in (\S+);", output).group(1)
        retries = sum(int(s.get("retries", 0)) for s in read_board(status).values() if s.get("kind") == "writer")
        assert retries >= 3, f"the writer should have retried through the failover, retried {retries}"

        expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=True)
        conn = pymysql.connect(host=local_services.HOST, port=port, user=USER, password=PASSWORD, database=DATABASE)
        try:
            assert diff(expected, actual_tables(conn, expected)) == [], output[-3000:]
            with conn.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM _ledgersync_dead_letters")
                assert cursor.fetchone()[0] == 0, "a transient error was dead-lettered"
        finally:
            conn.close()
        root.close()
    finally:
        if job is not None and job.poll() is None:
            job.kill()
        local_services.stop_mariadb(paths)
