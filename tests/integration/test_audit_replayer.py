"""AuditReplayer on the real MariaDB (no Flink): exactly once through the ledger, dead
letters, stop-on-error, late events. The statements are the ones captured from the
server_audit plugin (tests/unit/data/server_audit_mariadb.log)."""
from __future__ import annotations

import os
import uuid

import pymysql
import pytest

from connectors.formats.audit_lines import AuditRecord, aurora_line, parse_audit_line, split_records
from connectors.mysql.audit_replay import AuditReplayer, ReplayStopped
from connectors.formats.audit_statements import DDL_VERBS
from connectors.mysql.client import MySqlSettings
from job.rules.audit_order import OrderState, plan
from tests.unit.data.capture_server_audit import STATEMENTS

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "unit", "data")


@pytest.fixture
def replica(services, mysql_conn):
    name = f"r_{uuid.uuid4().hex[:10]}"
    yield name
    with mysql_conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _settings(services, database):
    return MySqlSettings(host=services.HOST, port=services.MYSQL_PORT, database=database, user=services.MYSQL_USER,
                         password=services.MYSQL_PASSWORD, retry_deadline_s=10)


def _captured(until: str):
    with open(os.path.join(DATA, "server_audit_mariadb.log"), encoding="utf-8") as handle:
        lines, _ = split_records(handle.read())
    records = []
    for index, line in enumerate(lines):
        event = parse_audit_line(line)
        if event.operation == "QUERY" and event.object == until:
            break
        records.append(AuditRecord(event, "stream-1", "shard-1", "49000000000000000001", index))
    return sorted(records, key=lambda r: r.event.order_key)


def _rows(conn, database, table):
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT * FROM `{database}`.`{table}` ORDER BY 1")
        return cursor.fetchall()


def test_captured_statements_replay_once_and_match_a_direct_run(services, mysql_database, mysql_conn, replica):
    released = _captured(until="TRUNCATE TABLE t2")
    steps = plan(OrderState(), released, database="capture_db", ddl=frozenset(DDL_VERBS))
    replayer = AuditReplayer(_settings(services, mysql_database), replay_database=replica)
    result = replayer.apply(released, steps.replay)
    assert (result.events, result.applied, result.failed) == (len(released), len(steps.replay), 0)

    # The same statements run directly, as the source ran them.
    reference = f"x_{uuid.uuid4().hex[:10]}"
    direct = pymysql.connect(host=services.HOST, port=services.MYSQL_PORT, user=services.MYSQL_USER,
                             password=services.MYSQL_PASSWORD, charset="utf8mb4", autocommit=True)
    try:
        with direct.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{reference}`")
            cursor.execute(f"USE `{reference}`")
            for statement in STATEMENTS[2:STATEMENTS.index("TRUNCATE TABLE t2")]:
                try:
                    cursor.execute(statement)
                except pymysql.err.MySQLError:
                    pass  # the same ones failed on the source
        want = _rows(direct, reference, "t2")
    finally:
        with direct.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{reference}`")
        direct.close()
    assert len(want) == 8
    assert _rows(mysql_conn, replica, "t2") == want

    # Again (a restart, or duplicates): nothing is applied twice (UPDATE n = n + 1 would show).
    again = AuditReplayer(_settings(services, mysql_database), replay_database=replica).apply(released, steps.replay)
    assert (again.applied, again.already_applied) == (0, len(steps.replay))
    assert _rows(mysql_conn, replica, "t2") == want
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM audit_events")
        assert cursor.fetchone()[0] == len(released)
        cursor.execute("SELECT COUNT(*) FROM _ledgersync_audit_ledger")
        assert cursor.fetchone()[0] == len(steps.replay)


def _rec(qid, sql, t=1):
    line = aurora_line(time_us=1_700_000_000_000_000 + t, server="db1", user="u", host="h", connection_id=1,
                       query_id=qid, operation="QUERY", database="shop", query=sql)
    return AuditRecord(parse_audit_line(line), "stream-1", "shard-1", str(1000 + qid), 0)


def test_a_failing_statement_is_a_dead_letter_and_replay_goes_on_or_stops(services, mysql_database, mysql_conn,
                                                                        replica):
    records = [_rec(1, "CREATE TABLE t (id INT PRIMARY KEY)"), _rec(2, "INSERT INTO t VALUES (1)"),
               _rec(3, "INSERT INTO t VALUES (1)"), _rec(4, "INSERT INTO t VALUES (2)")]
    steps = plan(OrderState(), records, database="shop", ddl=frozenset({"CREATE TABLE"}))
    result = AuditReplayer(_settings(services, mysql_database), replay_database=replica).apply(records, steps.replay)
    assert (result.applied, result.failed) == (3, 1)
    assert _rows(mysql_conn, replica, "t") == ((1,), (2,))
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT stage, reason, raw, sequence_number FROM _ledgersync_dead_letters")
        (stage, reason, raw, seq), = cursor.fetchall()
    assert stage == "replay" and "1062" in reason and seq == "1003"
    assert bytes(raw).decode() == records[2].event.line

    more = [_rec(5, "INSERT INTO t VALUES (3)", t=5), _rec(6, "INSERT INTO nope VALUES (1)", t=6),
            _rec(7, "INSERT INTO t VALUES (4)", t=7)]
    steps = plan(OrderState(), more, database="shop", ddl=frozenset())
    stopping = AuditReplayer(_settings(services, mysql_database), replay_database=replica, stop_on_error=True)
    with pytest.raises(ReplayStopped, match="nope"):
        stopping.apply(more, steps.replay)
    assert _rows(mysql_conn, replica, "t") == ((1,), (2,), (3,))  # what came before is kept, nothing after


def test_late_events_are_dead_letters_unless_already_recorded(services, mysql_database, mysql_conn, replica):
    first = [_rec(1, "SELECT 1")]
    replayer = AuditReplayer(_settings(services, mysql_database), replay_database=replica)
    replayer.apply(first, [])
    result = replayer.apply([], [], late=[first[0], _rec(2, "DELETE FROM t", t=0)])
    assert (result.duplicates, result.late) == (1, 1)
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT reason FROM _ledgersync_dead_letters")
        (reason,), = cursor.fetchall()
        cursor.execute("SELECT COUNT(*) FROM audit_events")
        assert cursor.fetchone()[0] == 2
    assert reason.startswith("late:")
