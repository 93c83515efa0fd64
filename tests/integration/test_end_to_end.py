"""The whole path on real services: simulated QLDB stream -> mini-cluster -> MariaDB."""
from __future__ import annotations

import json

from job.simulate import WorkloadSpec, expected_current, simulate_qldb
from connectors.mysql_sql import table_identifier
from connectors.mysql_writer import current_row
from connectors.qldb_records import Revision
from tests.conftest import run_job, write_properties


def _as_revision(r) -> Revision:
    from connectors.ion_json import ion_to_json

    return Revision(table=r.table, document_id=r.document_id, version=r.version, tx_id=r.tx_id,
                    tx_time=r.tx_time, data=ion_to_json(r.data))


def test_mysql_holds_exactly_the_newest_version_of_every_document(tmp_path, kinesis, stream_name,
                                                                  mysql_database, mysql_conn):
    spec = WorkloadSpec(tables=3, documents=60, revisions=4, duplicates=0.2, shuffle=True, seed=7)
    revisions = simulate_qldb(kinesis, stream_name, spec, shards=3, out=lambda *_: None)
    bad = [b"not ion at all", b"\xe0\x01\x00\xea\xde\x99"]  # text garbage, truncated binary Ion
    for data in bad:
        kinesis.put_record(StreamName=stream_name, Data=data, PartitionKey="bad")
    props = write_properties(tmp_path, stream=stream_name, database=mysql_database)

    output = run_job(props)

    expected = expected_current(revisions)
    with mysql_conn.cursor() as cursor:
        actual = {}
        for table in {r.table for r in revisions}:
            cursor.execute(f"SELECT document_id, version, tx_id, tx_time, document FROM `{table_identifier(table)}`")
            for document_id, version, tx_id, tx_time, document in cursor.fetchall():
                actual[(table, document_id)] = (document_id, version, tx_id, tx_time, json.loads(document))
    want = {}
    for key, r in expected.items():
        document_id, version, tx_id, tx_time, document = current_row(_as_revision(r))
        want[key] = (document_id, version, tx_id, tx_time, json.loads(document))
    assert len(actual) == len(want) == 180
    assert actual == want, output
    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT raw, stage, reason, stream, shard_id FROM _ledgersync_dead_letters ORDER BY id")
        letters = cursor.fetchall()
    assert sorted(bytes(row[0]) for row in letters) == sorted(bad)
    assert all(row[1] == "decode" and "Ion" in row[2] and row[3] == stream_name for row in letters)
