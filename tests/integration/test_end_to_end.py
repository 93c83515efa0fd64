"""The whole path on real services: simulated QLDB stream -> mini-cluster -> MariaDB."""
from __future__ import annotations

import pytest

from connectors.formats.qldb import decode_record
from job.cli.tools.simulate.qldb import WorkloadSpec, encode, simulate_qldb
from tests.conftest import run_job, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables


@pytest.mark.localstack
def test_mysql_holds_exactly_the_newest_version_of_every_document(tmp_path, kinesis, stream_name,
                                                                  mysql_database, mysql_conn):
    spec = WorkloadSpec(tables=3, documents=60, revisions=4, duplicates=0.2, shuffle=True, seed=7)
    revisions = simulate_qldb(kinesis, stream_name, spec, shards=3, out=lambda *_: None)
    bad = [b"not ion at all", b"\xe0\x01\x00\xea\xde\x99"]  # text garbage, truncated binary Ion
    for data in bad:
        kinesis.put_record(StreamName=stream_name, Data=data, PartitionKey="bad")
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database)

    output = run_job(props)

    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=False)
    actual = actual_tables(mysql_conn, expected)
    assert sum(len(rows) for rows in actual.values()) == 180
    assert diff(expected, actual) == [], output
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT raw, stage, reason, stream, shard_id FROM _ledgersync_dead_letters ORDER BY id")
        letters = cursor.fetchall()
    assert sorted(bytes(row[0]) for row in letters) == sorted(bad)
    assert all(row[1] == "decode" and "Ion" in row[2] and row[3] == stream_name for row in letters)
