"""The MySQL writer against the real MariaDB: columns that follow documents, hostile
names and values, deadlocks, per-row dead letters, Secrets Manager, no password leaks."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import pymysql
import pytest

from connectors.mysql.credentials import SecretSource
from connectors.mysql.client import MySqlSettings, connect
from connectors.mysql.writer import MySqlWriter
from connectors.rows.row_images import CURRENT, HISTORY, RowImage, document_json


def settings_for(services, database, **kw) -> MySqlSettings:
    base = dict(host=services.HOST, port=services.MYSQL_PORT, database=database, user=services.MYSQL_USER,
                password=services.MYSQL_PASSWORD, history=True, retry_deadline_s=30)
    base.update(kw)
    return MySqlSettings(**base)


def image(doc, version, data, kind=CURRENT, table="Person", deleted=False):
    return RowImage(kind, table, doc, version, f"tx-{doc}-{version}", 1_700_000_000_000_000 + version,
                    document_json(data), deleted)


def columns(conn, table):
    with conn.cursor() as cursor:
        cursor.execute("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
        return dict(cursor.fetchall())


def test_a_new_field_in_later_revisions_appears_as_a_new_column(services, mysql_database, mysql_conn):
    writer = MySqlWriter(settings_for(services, mysql_database))
    writer.write([image("d1", 0, {"name": "Ann"}), image("d1", 0, {"name": "Ann"}, HISTORY)])
    assert "city" not in columns(mysql_conn, "Person")
    writer.write([image("d1", 1, {"name": "Ann", "city": "Bern", "age": 40, "ok": True, "score": 1.5}),
                  image("d1", 1, {"name": "Ann", "city": "Bern", "age": 40, "ok": True, "score": 1.5}, HISTORY)])
    current = columns(mysql_conn, "Person")
    assert (current["city"], current["age"], current["ok"], current["score"]) == ("longtext", "bigint", "tinyint",
                                                                                    "double")
    assert "city" in columns(mysql_conn, "Person_history")
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT version, name, city, age, ok, score FROM Person WHERE document_id = 'd1'")
        assert cursor.fetchone() == (1, "Ann", "Bern", 40, 1, 1.5)
        cursor.execute("SELECT version, city FROM Person_history ORDER BY version")
        assert cursor.fetchall() == ((0, None), (1, "Bern"))
    # A field that changes type keeps its column for the old type and lives on in the JSON.
    writer.write([image("d2", 0, {"name": "Bob", "age": "forty"})])
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT age, JSON_VALUE(document, '$.age') FROM Person WHERE document_id = 'd2'")
        assert cursor.fetchone() == (None, "forty")
    writer.close()


HOSTILE_NAMES = ["a`b", "x'; DROP TABLE Person; --", 'q"uote', "semi;colon", "n" * 300, "Name", "NAME",
                 "document", "VERSION", "back\\slash", "😀"]
HOSTILE_VALUES = ["'; DROP TABLE Person; --", "`", "\\", "\x00nul", '"', "😀 ünïcode", "a" * 70000]


def test_a_column_added_to_the_current_view_only_is_added_to_history_too(services, mysql_database, mysql_conn):
    # What a connection lost between the two ALTER TABLEs leaves (seen in the MySQL outage
    # test: every later history row was refused as "unknown column" and dead-lettered).
    writer = MySqlWriter(settings_for(services, mysql_database))
    writer.write([image("d1", 0, {"name": "Ann"}), image("d1", 0, {"name": "Ann"}, HISTORY)])
    writer.close()
    with mysql_conn.cursor() as cursor:
        cursor.execute("ALTER TABLE Person ADD COLUMN amount DOUBLE NULL")
    assert "amount" not in columns(mysql_conn, "Person_history")

    writer = MySqlWriter(settings_for(services, mysql_database))  # a new writer, as after a restart
    stats = writer.write([image("d1", 1, {"name": "Ann", "amount": 2.5}),
                          image("d1", 1, {"name": "Ann", "amount": 2.5}, HISTORY)])
    writer.close()
    assert stats.dead_letters == 0
    assert columns(mysql_conn, "Person_history")["amount"] == "double"
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT version, amount FROM Person_history ORDER BY version")
        assert cursor.fetchall() == ((0, None), (1, 2.5))


def test_hostile_field_names_and_values_cannot_break_or_inject_sql(services, mysql_database, mysql_conn, caplog):
    writer = MySqlWriter(settings_for(services, mysql_database))
    data = {name: HOSTILE_VALUES[i % len(HOSTILE_VALUES)] for i, name in enumerate(HOSTILE_NAMES)}
    data["plain"] = "'; DELETE FROM Person; --"
    with caplog.at_level(logging.WARNING):
        writer.write([image("evil'`;--", 0, data), image("evil'`;--", 0, data, HISTORY), image("d2", 0, {"k": 1})])
        writer.write([image("evil'`;--", 1, data)])
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT document_id, version, document, plain FROM Person ORDER BY document_id")
        rows = cursor.fetchall()
    assert [(r[0], r[1]) for r in rows] == [("d2", 0), ("evil'`;--", 1)]
    assert json.loads(rows[1][2]) == data  # every value round-trips exactly through the JSON
    assert rows[1][3] == "'; DELETE FROM Person; --"
    made = columns(mysql_conn, "Person")
    assert "Name" in made and "NAME" not in made and "n" * 300 not in made and "a`b" not in made
    reported = caplog.text
    for name in ("a`b", "NAME", "document", "VERSION"):
        assert repr(name) in reported
    writer.close()


def test_a_row_mysql_refuses_is_a_dead_letter_and_the_rest_is_written(services, mysql_database, mysql_conn):
    writer = MySqlWriter(settings_for(services, mysql_database))
    too_long_id = "x" * 200  # document_id is VARCHAR(128): strict mode refuses it
    stats = writer.write([image("ok1", 0, {"a": 1}), image(too_long_id, 0, {"a": 2}), image("ok2", 0, {"a": 3})])
    assert stats.dead_letters == 1
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT document_id FROM Person ORDER BY document_id")
        assert cursor.fetchall() == (("ok1",), ("ok2",))
        cursor.execute("SELECT stage, reason, raw FROM _ledgersync_dead_letters")
        stage, reason, raw = cursor.fetchone()
    assert stage == "write-current" and "1406" in reason and json.loads(raw)["document_id"] == too_long_id
    writer.close()


def test_a_deadlock_provoked_by_a_concurrent_transaction_is_retried(services, mysql_database, mysql_conn):
    writer = MySqlWriter(settings_for(services, mysql_database))
    writer.write([image(f"d{i:03d}", 0, {"n": 0}) for i in range(60)])
    other = connect(settings_for(services, mysql_database))
    with other.cursor() as cursor:
        # The other transaction is the heavier one, so InnoDB picks the writer as the victim.
        cursor.execute("UPDATE Person SET tx_id = 'other' WHERE document_id >= 'd002'")
    outcome = {}

    def write():
        try:
            outcome["stats"] = writer.write([image("d000", 1, {"n": 1}), image("d001", 1, {"n": 1}),
                                             image("d002", 1, {"n": 1})])
        except Exception as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(1.0)  # the writer now holds d000/d001 and waits for d002
    with other.cursor() as cursor:
        cursor.execute("UPDATE Person SET tx_id = 'other' WHERE document_id = 'd000'")  # closes the cycle
    other.commit()
    thread.join(60)
    other.close()
    assert "error" not in outcome, outcome.get("error")
    assert writer.retries >= 1
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT document_id, version FROM Person WHERE document_id IN ('d000','d001','d002') "
                       "ORDER BY document_id")
        assert cursor.fetchall() == (("d000", 1), ("d001", 1), ("d002", 1))
    writer.close()


@pytest.fixture
def secret_user(services, mysql_database):
    """A MySQL user with a distinctive password, dropped afterwards."""
    user = f"u{uuid.uuid4().hex[:8]}"
    password = f"Pw-{uuid.uuid4().hex}-x"
    from job.cli.local.runner import DEFAULT_LOCAL_DIR

    root = services.shared_mariadb(services.Paths(DEFAULT_LOCAL_DIR)).root()  # GRANT needs root
    with root.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
        cursor.execute(f"GRANT ALL PRIVILEGES ON `{mysql_database}`.* TO '{user}'@'127.0.0.1'")
    yield user, password
    with root.cursor() as cursor:
        cursor.execute(f"DROP USER '{user}'@'127.0.0.1'")
    root.close()


def test_secrets_manager_credentials_work_against_the_moto_server(services, mysql_database, mysql_conn,
                                                                  secret_user):
    from connectors.aws_clients import aws_client

    user, password = secret_user
    client = aws_client("secretsmanager", "us-east-1", services.aws_endpoint())
    arn = client.create_secret(Name=f"ledgersync/{uuid.uuid4().hex}",
                               SecretString=json.dumps({"username": user, "password": password}))["ARN"]
    settings = settings_for(services, mysql_database, user="someone-else", password=None,
                            secret=SecretSource(arn, "us-east-1", services.aws_endpoint()))
    writer = MySqlWriter(settings)
    writer.write([image("s1", 0, {"a": 1})])
    writer.close()
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT document_id FROM Person")
        assert cursor.fetchall() == (("s1",),)
    missing = settings_for(services, mysql_database, password=None,
                           secret=SecretSource(arn + "-nope", "us-east-1", services.aws_endpoint()))
    with pytest.raises(Exception, match="cannot read secret .*-nope: ResourceNotFoundException"):
        MySqlWriter(missing).write([image("s2", 0, {"a": 1})])


def test_the_password_never_appears_in_logs_or_exceptions(services, mysql_database, secret_user, caplog):
    user, password = secret_user
    wrong = settings_for(services, "no_such_db", user=user, password=password, retry_deadline_s=0.5)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(pymysql.err.MySQLError) as raised:
            MySqlWriter(wrong).write([image("p1", 0, {"a": 1})])
    text = f"{raised.value!r} {raised.value} {wrong!r} {caplog.text}"
    assert password not in text and user in text
    from job.config.properties import parse_groups

    props = parse_groups([{"PropertyGroupId": "source", "PropertyMap": {"stream.name": "s"}},
                          {"PropertyGroupId": "sink", "PropertyMap": {"mysql.host": "h", "mysql.database": "d",
                                                                     "mysql.user": "u", "mysql.password": password}}])
    assert password not in repr(props)


@pytest.mark.parametrize("redaction_first", [False, True])
def test_a_redaction_blanks_its_history_version_whichever_arrives_first(services, mysql_database, mysql_conn,
                                                                        redaction_first):
    writer = MySqlWriter(settings_for(services, mysql_database))
    original = image("r1", 0, {"secret": "x"}, HISTORY)
    redaction = RowImage(HISTORY, "Person", "r1", 0, original.tx_id, original.tx_time_us, None, False, True)
    for batch in ([redaction], [original]) if redaction_first else ([original], [redaction]):
        writer.write(batch + [image("r1", 1, {"secret": "y"}, HISTORY)])
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT version, document, secret, redacted FROM Person_history ORDER BY version")
        assert cursor.fetchall() == ((0, None, None, 1), (1, '{"secret":"y"}', "y", 0))
    writer.close()


def test_batches_larger_than_a_packet_are_split_into_statements(services, mysql_database, mysql_conn):
    writer = MySqlWriter(settings_for(services, mysql_database))
    big = "z" * (3 * 1024 * 1024)
    images = [image(f"b{i}", 0, {"blob": big}) for i in range(8)]  # 24 MiB: over MariaDB's 16 MiB packet
    stats = writer.write(images + [image(f"b{i}", 0, {"blob": big}, HISTORY) for i in range(8)])
    assert stats.dead_letters == 0
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), SUM(LENGTH(`blob`)) FROM Person")
        assert cursor.fetchone() == (8, 8 * len(big))
        cursor.execute("SELECT COUNT(*) FROM Person_history")
        assert cursor.fetchone() == (8,)
    writer.close()
