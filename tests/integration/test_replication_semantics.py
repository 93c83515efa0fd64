"""Both modes on a shuffled, duplicated stream with deletes: MySQL equals the oracle,
row by row (history included), and deletes stay deleted after a restart from MySQL alone."""
from __future__ import annotations

import pytest

from tests.conftest import run_job, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables
from tests.support.workloads import deliver, history_with_deletes, put, revisions


@pytest.mark.parametrize("order", ["false", "true"])
def test_shuffled_duplicated_stream_with_deletes_equals_oracle(tmp_path, kinesis, stream_name, mysql_database,
                                                              mysql_conn, order):
    records = history_with_deletes(seed=11)
    put(kinesis, stream_name, deliver(records, seed=12), shards=3)
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             replication={"history": "true", "order": order, "order.timeout.ms": "600000"})

    output = run_job(props)

    expected = expected_tables(revisions(records), history=True)
    actual = actual_tables(mysql_conn, expected)
    assert any(r.deleted for r in revisions(records))
    assert diff(expected, actual) == [], output
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM _ledgersync_gaps")
        assert cursor.fetchone()[0] == 0  # every version arrived: nothing skipped


@pytest.mark.parametrize("order", ["false", "true"])
def test_late_old_revisions_never_resurrect_a_deleted_document_after_restart_from_mysql(
        tmp_path, kinesis, stream_name, mysql_database, mysql_conn, order):
    records = history_with_deletes(seed=21, documents=25, delete_fraction=0.5)
    put(kinesis, stream_name, deliver(records, seed=22), shards=2)
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database,
                             replication={"order": order, "order.timeout.ms": "600000"})
    run_job(props)
    expected = expected_tables(revisions(records), history=False)
    assert diff(expected, actual_tables(mysql_conn, expected)) == []

    # A new job with no Flink state reads a second stream holding only old revisions
    # (every version below each document's newest): MySQL alone must keep them out.
    late = [r for r, rev in zip(records, revisions(records))
            if rev.version < max(x.version for x in revisions(records) if x.document_id == rev.document_id)]
    late_stream = stream_name + "-late"
    put(kinesis, late_stream, deliver(late, seed=23), shards=1)
    try:
        (tmp_path / "late").mkdir()
        late_props = write_properties(tmp_path / "late", stream=late_stream, database=mysql_database,
                                      replication={"order": order, "order.timeout.ms": "600000"})
        run_job(late_props)
    finally:
        kinesis.delete_stream(StreamName=late_stream)
    assert diff(expected, actual_tables(mysql_conn, expected)) == []
