"""A QLDB stream as it really looks (KPL-aggregated, block summaries, CONTROL records,
deletes, redactions) with bad records mixed in, replicated by the job on a mini-cluster:
MySQL must hold exactly what the simulator says, and every bad record one dead letter."""
from __future__ import annotations

import json

from connectors.formats.ion_json import ion_to_json
from connectors.mysql.sql import table_identifier
from job.cli.tools.simulate.qldb import BAD_KINDS, WorkloadSpec, bad_samples, expected_current, kinesis_records, simulate_qldb
from tests.conftest import run_job, write_properties


def test_aggregated_stream_with_deletes_and_bad_records(tmp_path, kinesis, stream_name, mysql_database,
                                                        mysql_conn):
    spec = WorkloadSpec(tables=3, documents=40, revisions=3, duplicates=0.2, shuffle=True, seed=11,
                        aggregate=10, deletes=0.25, redactions=0.2, block_summaries=True, control=True,
                        bad_records=len(BAD_KINDS))
    revisions = simulate_qldb(kinesis, stream_name, spec, shards=2, out=lambda *_: None)
    samples = bad_samples(spec, revisions)
    deleted = {(r.table, r.document_id) for r in revisions if r.deleted}
    assert deleted and any(r.redacted for r in revisions)
    # Several revisions per Kinesis record, as a QLDB stream puts them.
    assert len(kinesis_records(spec, revisions)) * 3 < len(revisions)

    output = run_job(write_properties(tmp_path, stream=stream_name, database=mysql_database))

    expected = {key: (r.version, r.tx_id, ion_to_json(r.data)) for key, r in expected_current(revisions).items()}
    actual = {}
    with mysql_conn.cursor() as cursor:
        for table in sorted({r.table for r in revisions}):
            cursor.execute(f"SELECT document_id, version, tx_id, document FROM `{table_identifier(table)}`")
            for document_id, version, tx_id, document in cursor.fetchall():
                actual[(table, document_id)] = (version, tx_id, json.loads(document))
    assert not deleted & set(actual), "a deleted document is in the current view"
    assert len(actual) == len(expected) == 120 - len(deleted)
    assert actual == expected, output[-3000:]

    with mysql_conn.cursor() as cursor:
        cursor.execute("SELECT raw, stage, reason, stream, shard_id, sequence_number, sub_sequence "
                       "FROM _ledgersync_dead_letters")
        letters = cursor.fetchall()
    assert len(letters) == len(samples) == len(BAD_KINDS)
    by_raw = {bytes(raw): (stage, reason, stream, shard, sequence, sub) for raw, stage, reason, stream, shard,
              sequence, sub in letters}
    for sample in samples:
        stage, reason, stream, shard, sequence, sub = by_raw[sample.payload]
        assert stage == "decode" and stream == stream_name and shard.startswith("shardId-") and int(sequence) > 0
        assert sample.reason in reason, (sample.kind, reason)
        # A broken aggregate is one dead letter for the whole record; a bad user record
        # inside a sound aggregate is its own, at its index, and its neighbours were replicated.
        assert (sub == -1) if sample.envelope else (sub >= 0), (sample.kind, sub)
