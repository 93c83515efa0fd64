"""Secret rotation in the middle of a run, in the order a Secrets Manager rotation does it:
the database user's password changes first (ALTER USER, the rotation's setSecret step),
the writer's connections drop, and only 10 s later does the secret's new AWSCURRENT
version appear (finishSecret). Meanwhile every login is refused (1045); the writer keeps
retrying, re-reads the secret at a bounded rate, reconnects with the new password and
loses nothing. MySQL ends equal to the oracle, and neither password is ever logged."""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import time
import uuid

import pymysql
import pytest

from connectors.aws_clients import aws_client
from connectors.formats.qldb import decode_record
from job.functions.status_board import read_board
from job.cli.local.runner import DEFAULT_LOCAL_DIR
from job.cli.tools.simulate.qldb import WorkloadSpec, encode, simulate_qldb
from tests.conftest import ROOT, write_properties
from tests.support.oracle import actual_tables, count_rows, diff, expected_tables


@pytest.fixture
def rotating_user(services, mysql_database):
    user = f"rot{uuid.uuid4().hex[:8]}"
    old, new = f"Old-{uuid.uuid4().hex}", f"New-{uuid.uuid4().hex}"
    root = services.shared_mariadb(services.Paths(DEFAULT_LOCAL_DIR)).root()
    with root.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (old,))
        cursor.execute(f"GRANT ALL PRIVILEGES ON `{mysql_database}`.* TO '{user}'@'127.0.0.1'")
    yield root, user, old, new
    with root.cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
    root.close()


def _rows(services, database) -> int:
    conn = pymysql.connect(host=services.HOST, port=services.MYSQL_PORT, user=services.MYSQL_USER,
                           password=services.MYSQL_PASSWORD, database=database)
    try:
        return count_rows(conn, not_like="\\_ledgersync%")
    finally:
        conn.close()


def test_rotation_mid_run_reconnects_with_the_new_secret_and_loses_nothing(tmp_path, services, kinesis, stream_name,
                                                                           mysql_database, mysql_conn, rotating_user):
    root, user, old, new = rotating_user
    secrets = aws_client("secretsmanager", "us-east-1", services.aws_endpoint())
    arn = secrets.create_secret(Name=f"ledgersync/rotation-{uuid.uuid4().hex}",
                                SecretString=json.dumps({"username": user, "password": old}))["ARN"]
    spec = WorkloadSpec(tables=2, documents=1200, revisions=4, duplicates=0.1, shuffle=True, seed=21)
    revisions = simulate_qldb(kinesis, stream_name, spec, shards=2, out=lambda *_: None)
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             source={"flink.shard.getrecords.maxrecordcount": "200"},
                             sink={"mysql.user": "not-the-secrets-user", "mysql.secret.arn": arn,
                                   "batch.max.rows": "100", "batch.interval.ms": "100"})
    with open(props) as handle:
        groups = json.load(handle)
    for group in groups:
        group["PropertyMap"].pop("mysql.password", None)  # the secret alone
    with open(props, "w") as handle:
        json.dump(groups, handle)

    started = time.time()
    job = subprocess.Popen([sys.executable, "-m", "job.cli", "run", "--properties", props, "--until-caught-up",
                            "--timeout", "400"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while _rows(services, mysql_database) == 0:
            assert job.poll() is None and time.monotonic() < deadline, "the job wrote nothing"
            time.sleep(0.2)
        with root.cursor() as cursor:
            cursor.execute(f"ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (new,))
            cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
            for (connection_id,) in cursor.fetchall():
                try:
                    cursor.execute(f"KILL CONNECTION {int(connection_id)}")
                except pymysql.err.MySQLError:
                    pass
        at_rotation = _rows(services, mysql_database)
        time.sleep(10)  # every login fails now: the secret still holds the old password
        assert job.poll() is None, "a refused login during a rotation must be retried, not fail the job"
        assert _rows(services, mysql_database) == at_rotation, "something was written with a stale password"
        secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": user, "password": new}))
        output, _ = job.communicate(timeout=500)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, output[-6000:]
    assert at_rotation < len(revisions), "the rotation was not in the middle of the run"

    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=False)
    assert diff(expected, actual_tables(mysql_conn, expected)) == [], output[-3000:]
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM _ledgersync_dead_letters")
        assert cursor.fetchone()[0] == 0
    status = re.search(r"status in (\S+);", output).group(1)
    retries = sum(int(s.get("retries", 0)) for s in read_board(status).values() if s.get("kind") == "writer")
    assert retries >= 2, retries
    # Neither password in what the job printed, nor in any Flink or Python worker log of this run.
    logs = [p for p in glob.glob(os.path.join(os.path.dirname(sys.executable), "..", "lib", "python3*",
                                               "site-packages", "pyflink", "log", "*"))
            if os.path.isfile(p) and os.path.getmtime(p) >= started]
    assert logs, "no Flink log of this run found"
    for text in [output] + [open(p, encoding="utf-8", errors="replace").read() for p in logs]:
        assert old not in text and new not in text
