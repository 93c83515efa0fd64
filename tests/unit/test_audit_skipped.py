"""Statements that audit.source.database filters out are counted and reported, never
skipped silently (README "Audit-log sync")."""
from __future__ import annotations

from job.rules.audit_order import OrderState, describe_skipped, plan
from job.cli.local.runner import summarize
from tests.unit.test_audit_order import rec


def test_write_statements_of_other_databases_are_counted_per_database():
    records = [rec(1, 1, "INSERT INTO t VALUES (1)", db="shop"), rec(2, 2, "UPDATE t SET a = 2", db="shop"),
               rec(3, 3, "SELECT * FROM t", db="shop"),  # a read: nothing to skip
               rec(4, 4, "DELETE FROM t", db="shop", retcode=1146),  # failed on the source: not a write
               rec(5, 5, "CREATE TABLE u (a INT)", db="shop"),  # DDL not in audit.replay.ddl: not replayed anyway
               rec(6, 6, "ALTER TABLE t ADD b INT", db="other"),
               rec(7, 7, "INSERT INTO shop.t VALUES (3)", db=""),
               rec(8, 8, "INSERT INTO t VALUES (4)", db="shop_replica")]
    steps = plan(OrderState(), records, database="shop_replica", ddl=frozenset({"ALTER TABLE"}))
    assert [r.record.event.object for r in steps.replay] == ["INSERT INTO t VALUES (4)"]
    assert steps.skipped == {"shop": 2, "other": 1, "": 1}


def test_statements_inside_transactions_are_counted_too():
    records = [rec(1, 1, "BEGIN", db="shop"), rec(2, 2, "INSERT INTO t VALUES (1)", db="shop"),
               rec(3, 3, "COMMIT", db="shop")]
    assert plan(OrderState(), records, database="shop_replica", ddl=frozenset()).skipped == {"shop": 1}


def test_nothing_is_skipped_when_the_databases_match():
    records = [rec(1, 1, "INSERT INTO t VALUES (1)", db="shop")]
    steps = plan(OrderState(), records, database="shop", ddl=frozenset())
    assert steps.skipped == {} and len(steps.replay) == 1


def test_the_report_names_counts_databases_and_the_setting():
    assert describe_skipped({"shop": 516}, "shop_replica") == \
        "516 write statements for database shop skipped: audit.source.database is shop_replica"
    assert describe_skipped({"a": 1, "b": 7, "": 2}, "x") == \
        "7 write statements for database b, 2 for no default database, 1 for database a skipped: " \
        "audit.source.database is x"
    assert describe_skipped({"shop": 1}, "r").startswith("1 write statement for database shop")
    assert describe_skipped({}, "x") == ""


def test_the_progress_line_adds_the_skipped_statements_of_every_server():
    board = {"writer-audit-a": {"kind": "writer", "written": 10, "skipped": {"shop": 500},
                                "source_database": "shop_replica"},
             "writer-audit-b": {"kind": "writer", "written": 5, "skipped": {"shop": 16},
                                "source_database": "shop_replica"},
             "writer-0": {"kind": "writer", "written": 3}}
    progress = summarize(board)
    assert progress.rows_written == 18
    assert progress.line().endswith(
        "; 516 write statements for database shop skipped: audit.source.database is shop_replica")
    assert "skipped" not in summarize({"writer-0": {"kind": "writer", "written": 3}}).line()


def test_writer_notices_are_gathered_once_from_every_subtask():
    board = {"notices-0": {"kind": "notices", "notices": ["table A: field 'x' keeps its LONGTEXT column"]},
             "notices-1": {"kind": "notices", "notices": ["table A: field 'x' keeps its LONGTEXT column",
                                                          "table B: field 'y' widened from decimal(20,2) to decimal(24,6)"]}}
    assert summarize(board).notices == ["table A: field 'x' keeps its LONGTEXT column",
                                        "table B: field 'y' widened from decimal(20,2) to decimal(24,6)"]
