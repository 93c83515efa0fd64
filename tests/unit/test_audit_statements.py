import pytest

from connectors.formats import audit_statements as st
from connectors.formats.audit_statements import classify, parse_ddl_setting


@pytest.mark.parametrize("sql, kind, verb", [
    ("INSERT INTO t VALUES (1)", st.DML, "INSERT"),
    ("  insert into t values (1)", st.DML, "INSERT"),
    ("/* hi */ UPDATE t SET a = 1", st.DML, "UPDATE"),
    ("-- note\nDELETE FROM t", st.DML, "DELETE"),
    ("# note\nREPLACE INTO t VALUES (1)", st.DML, "REPLACE"),
    ("/*!40000 INSERT INTO t VALUES (1) */", st.DML, "INSERT"),
    ("WITH x AS (SELECT 1) UPDATE t JOIN x SET t.a = 1", st.DML, "UPDATE"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", st.OTHER, "WITH"),
    ("SELECT 'INSERT INTO t' FROM dual", st.OTHER, "SELECT"),
    ("SELECT * FROM t FOR UPDATE", st.OTHER, "SELECT"),
    ("CREATE TABLE t (a INT)", st.DDL, "CREATE TABLE"),
    ("CREATE OR REPLACE TABLE t (a INT)", st.DDL, "CREATE TABLE"),
    ("CREATE TABLE IF NOT EXISTS t (a INT)", st.DDL, "CREATE TABLE"),
    ("CREATE UNIQUE INDEX i ON t (a)", st.DDL, "CREATE INDEX"),
    ("ALTER ONLINE TABLE t ADD b INT", st.DDL, "ALTER TABLE"),
    ("DROP TABLE IF EXISTS t", st.DDL, "DROP TABLE"),
    ("TRUNCATE t", st.DDL, "TRUNCATE TABLE"),
    ("RENAME TABLE a TO b", st.DDL, "RENAME TABLE"),
    ("CREATE TEMPORARY TABLE tmp (a INT)", st.OTHER, "CREATE TEMPORARY TABLE"),
    ("DROP TEMPORARY TABLE tmp", st.OTHER, "DROP TEMPORARY TABLE"),
    ("CREATE DATABASE d", st.IMPLICIT_COMMIT, "CREATE DATABASE"),
    ("GRANT SELECT ON *.* TO u", st.IMPLICIT_COMMIT, "GRANT"),
    ("LOCK TABLES t WRITE", st.IMPLICIT_COMMIT, "LOCK TABLES"),
    ("BEGIN", st.BEGIN, "BEGIN"),
    ("begin work", st.BEGIN, "BEGIN"),
    ("START TRANSACTION READ WRITE", st.BEGIN, "BEGIN"),
    ("BEGIN NOT ATOMIC SELECT 1; END", st.OTHER, "BEGIN"),
    ("COMMIT", st.COMMIT, "COMMIT"),
    ("commit work", st.COMMIT, "COMMIT"),
    ("ROLLBACK", st.ROLLBACK, "ROLLBACK"),
    ("LOAD DATA INFILE '/x' INTO TABLE t", st.UNSUPPORTED, "LOAD DATA"),
    ("SET NAMES utf8mb4", st.OTHER, "SET"),
    ("", st.OTHER, ""),
    ("USE shop", st.OTHER, "USE"),
])
def test_classify(sql, kind, verb):
    statement = classify(sql)
    assert (statement.kind, statement.verb) == (kind, verb)


@pytest.mark.parametrize("sql, name", [
    ("SAVEPOINT sp1", "SP1"), ("ROLLBACK TO SAVEPOINT sp1", "SP1"), ("ROLLBACK WORK TO sp1", "SP1"),
    ("RELEASE SAVEPOINT sp1", "SP1"),
])
def test_savepoints(sql, name):
    assert classify(sql).name == name


@pytest.mark.parametrize("sql, value", [
    ("SET autocommit = 0", False), ("SET AUTOCOMMIT=1", True), ("set @@autocommit := OFF", False),
    ("SET SESSION autocommit = ON", True), ("SET @@session.autocommit=0", False),
    ("SET sql_mode = '', autocommit = 0", False), ("SET GLOBAL autocommit = 0", None),
    ("SET @@global.autocommit = 0", None), ("SET @autocommit = 0", None), ("SET x = 'autocommit = 0'", None),
])
def test_autocommit(sql, value):
    statement = classify(sql)
    assert statement.autocommit == value
    assert statement.kind == (st.AUTOCOMMIT if value is not None else st.OTHER)


def test_quotes_and_comments_do_not_fool_it():
    assert classify("/* INSERT */ SELECT 1").kind == st.OTHER
    assert classify("SELECT ')' , `(` FROM t").kind == st.OTHER
    assert classify("WITH `a(` AS (SELECT ')') DELETE FROM t").kind == st.DML


def test_ddl_setting():
    assert parse_ddl_setting("") == frozenset()
    assert parse_ddl_setting("none") == frozenset()
    assert parse_ddl_setting("all") == frozenset(st.DDL_VERBS)
    assert parse_ddl_setting("create table, alter  table") == {"CREATE TABLE", "ALTER TABLE"}
    with pytest.raises(ValueError, match="unknown DDL DROP DATABASE"):
        parse_ddl_setting("DROP DATABASE")
