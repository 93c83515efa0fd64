"""Aurora-format audit lines from two servers, as a CloudWatch Logs subscription puts them on
a 3-shard stream (random partition keys, records delivered twice, bad lines, a CONTROL_MESSAGE,
a record that is not gzip): the replica ends exactly as the workload says, in one catch-up run."""
from __future__ import annotations

import uuid

from job.cli.tools.simulate.audit import TABLE, AuditSpec, generate, simulate_audit
from tests.conftest import run_job, write_audit_properties


def test_simulated_aurora_lines_replay_in_order_exactly_once(tmp_path, services, kinesis, stream_name,
                                                              mysql_database, mysql_conn):
    replica_db = f"r_{uuid.uuid4().hex[:10]}"
    spec = AuditSpec(database="sim", servers=2, connections=4, statements=600, events_per_record=20,
                     duplicates=0.2, bad_lines=3, seed=5)
    rows = simulate_audit(kinesis, stream_name, spec, shards=3, out=lambda *_: None)
    kinesis.put_record(StreamName=stream_name, Data=b"not gzip at all", PartitionKey="bad")
    props = write_audit_properties(tmp_path, stream=stream_name, database=mysql_database, replica=replica_db)
    try:
        output = run_job(props, timeout_s=150)
        with mysql_conn.cursor() as cursor:
            cursor.execute(f"SELECT id, owner, balance, note FROM `{replica_db}`.`{TABLE}`")
            have = {row[0]: tuple(row[1:]) for row in cursor.fetchall()}
            assert len(have) == len(rows) > 300
            assert have == rows, output[-3000:]
            logs, _ = generate(spec, start_us=0)
            cursor.execute("SELECT COUNT(*), COUNT(DISTINCT server) FROM audit_events")
            assert cursor.fetchone() == (sum(len(lines) for lines in logs.values()), 2)  # duplicates recorded once
            cursor.execute("SELECT stage, reason, raw FROM _ledgersync_dead_letters")
            letters = cursor.fetchall()
        # Each bad input once per position it came in (a record put twice: twice), never stopping the job.
        raws = {bytes(raw) for _, _, raw in letters}
        assert len(raws) == 4 and b"not gzip at all" in raws
        assert all(raw.startswith(b"not an audit line #") for raw in raws - {b"not gzip at all"})
        assert {stage for stage, _, _ in letters} == {"decode"}
        assert all(("not gzip" in reason) == (raw == b"not gzip at all") for _, reason, raw in letters)
    finally:
        with mysql_conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{replica_db}`")
