"""Re-captures server_audit_mariadb.log from the local audit source (not run by pytest).

    .venv/bin/python tests/unit/data/capture_server_audit.py

Starts `ledgersync audit-source` if needed, points MariaDB's server_audit plugin at a
fresh file for the duration, runs the statements below (the nasty cases the parser
must survive) from a TCP client, and copies the file next to this script.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from job.cli.local import audit_source  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "server_audit_mariadb.log")

STATEMENTS = [
    "CREATE DATABASE IF NOT EXISTS capture_db",
    "USE capture_db",
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
    "INSERT INTO t (id, note) VALUES (1, 'duplicate key fails')",
    "SELECT note FROM t WHERE note LIKE '%,%'",
    "START TRANSACTION",
    "UPDATE t SET n = 42 WHERE id = 1",
    "ROLLBACK",
    "SET autocommit = 0",
    "UPDATE t SET n = 7 WHERE id = 2",
    "COMMIT",
    "SET autocommit = 1",
    "ALTER TABLE t ADD COLUMN extra VARCHAR(10) NULL",
    "RENAME TABLE t TO t2",
    "CREATE USER IF NOT EXISTS 'capture'@'localhost' IDENTIFIED BY 'secret'",
    "DROP USER IF EXISTS 'capture'@'localhost'",
    "TRUNCATE TABLE t2",
    "DROP TABLE t2",
    "SELECT 1 FROM no_such_table",
]


def main() -> None:
    import pymysql

    paths = audit_source.up()
    capture = paths.audit_log + ".capture"
    if os.path.exists(capture):
        os.remove(capture)
    admin = audit_source.connect()
    with admin.cursor() as cursor:
        cursor.execute("SET GLOBAL server_audit_events = 'CONNECT,QUERY,TABLE'")
        cursor.execute("SET GLOBAL server_audit_file_path = %s", (capture,))
    try:
        conn = audit_source.connect()
        with conn.cursor() as cursor:
            for statement in STATEMENTS:
                try:
                    cursor.execute(statement)
                    cursor.fetchall()
                except pymysql.err.MySQLError as exc:
                    print(f"(expected to fail) {statement[:40]!r}: {exc}")
        conn.close()
        try:
            audit_source.connect(database="no_such_db").close()
        except pymysql.err.MySQLError as exc:
            print(f"(expected to fail) connect: {exc}")
    finally:
        with admin.cursor() as cursor:
            cursor.execute("SET GLOBAL server_audit_file_path = %s", (paths.audit_log,))
            cursor.execute("SET GLOBAL server_audit_events = 'CONNECT,QUERY'")
        admin.close()
    shutil.copyfile(capture, TARGET)
    os.remove(capture)
    print(f"captured {sum(1 for _ in open(TARGET, encoding='utf-8'))} lines into {TARGET}")


if __name__ == "__main__":
    main()
