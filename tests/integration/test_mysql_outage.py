"""The writer survives the database going away: a private MariaDB is stopped for 20 s in
the middle of a run; the job catches up and MySQL equals the oracle (history included)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pymysql

from connectors.formats.qldb import decode_record
from job.cli.local import services as local_services
from job.cli.tools.simulate.qldb import WorkloadSpec, encode, simulate_qldb
from tests.conftest import ROOT, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


OUTAGE_PORT = _free_port()  # a private server: its own port and data dir per test session


def _connect(database=None):
    return pymysql.connect(host=local_services.HOST, port=OUTAGE_PORT, user=local_services.MYSQL_USER,
                           password=local_services.MYSQL_PASSWORD, database=database, autocommit=True)


def _rows(database) -> int:
    try:
        conn = _connect(database)
    except pymysql.err.MySQLError:
        return 0
    with conn.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(TABLE_ROWS), 0) FROM information_schema.TABLES "
                       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%%_history'")
        estimate = int(cursor.fetchone()[0])
        count = 0
        if estimate:
            cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES "
                           "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%%_history'")
            for (table,) in cursor.fetchall():
                cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
                count += cursor.fetchone()[0]
    conn.close()
    return count


def test_the_job_survives_mysql_stopped_for_20_seconds(tmp_path, kinesis, stream_name, services):
    paths = local_services.Paths(str(tmp_path / "outage-mariadb"))
    local_services.start_mariadb(paths, OUTAGE_PORT)
    job = None
    try:
        conn = _connect()
        with conn.cursor() as cursor:
            cursor.execute("DROP DATABASE IF EXISTS outage")
            cursor.execute("CREATE DATABASE outage")
        conn.close()
        spec = WorkloadSpec(tables=2, documents=1500, revisions=4, duplicates=0.1, shuffle=True, seed=3)
        revisions = simulate_qldb(kinesis, stream_name, spec, shards=2, out=lambda *_: None)
        props = write_properties(tmp_path, stream=stream_name, database="outage",
                                 source={"flink.shard.getrecords.maxrecordcount": "200"},
                                 sink={"mysql.port": str(OUTAGE_PORT), "batch.max.rows": "100",
                                       "batch.interval.ms": "100"},
                                 replication={"history": "true"})
        job = subprocess.Popen([sys.executable, "-m", "job.cli", "run", "--properties", props, "--until-caught-up",
                                "--timeout", "400"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        deadline = time.monotonic() + 120
        while _rows("outage") == 0:
            assert job.poll() is None and time.monotonic() < deadline, "the job wrote nothing"
            time.sleep(0.1)
        local_services.stop_mariadb(paths)
        written_before_outage = _rows("outage")  # 0 now: the server is down
        time.sleep(20)
        assert job.poll() is None, "the job must wait for MySQL, not fail"
        local_services.start_mariadb(paths, OUTAGE_PORT)
        at_restart = _rows("outage")
        output, _ = job.communicate(timeout=480)
        assert job.returncode == 0, output[-6000:]
        assert written_before_outage == 0 and at_restart < len(revisions), "the outage was not in the middle"

        expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=True)
        conn = _connect("outage")
        try:
            assert diff(expected, actual_tables(conn, expected)) == [], output[-3000:]
        finally:
            conn.close()
    finally:
        if job is not None and job.poll() is None:
            job.kill()
        local_services.stop_mariadb(paths)
