"""Replay never skips silently: write statements of another database than
audit.source.database are counted, exactly, per database, in the progress line and at
the end of the run, while the replica still ends equal to the workload's oracle."""
from __future__ import annotations

import re
import uuid

from connectors.formats.audit_lines import parse_audit_line
from job.cli.tools.simulate.audit import TABLE, AuditSpec, generate, simulate_audit
from tests.conftest import run_job, write_audit_properties


def test_statements_for_other_databases_are_counted_and_reported(tmp_path, services, kinesis, stream_name,
                                                                 mysql_database, mysql_conn):
    replica_db = f"r_{uuid.uuid4().hex[:10]}"
    spec = AuditSpec(database="sim", servers=2, connections=3, statements=300, events_per_record=20,
                     duplicates=0.2, bad_lines=0, seed=11)
    rows = simulate_audit(kinesis, stream_name, spec, shards=2, out=lambda *_: None)
    logs, _ = generate(spec, start_us=1_700_000_000_000_000)  # the same lines whatever the start
    # The oracle of the count: successful writes the workload ran in other_schema (each
    # line once, though 20% of the records are put twice).
    other = sum(1 for lines in logs.values() for line in lines
                if (e := parse_audit_line(line)).database == "other_schema" and e.operation == "QUERY"
                and e.retcode == 0)
    assert other > 5
    props = write_audit_properties(tmp_path, stream=stream_name, database=mysql_database, replica=replica_db)
    try:
        output = run_job(props, timeout_s=180)
        caught_up = next(line for line in output.splitlines() if "caught up after" in line)
        expected = f"{other} write statements for database other_schema skipped: audit.source.database is sim"
        assert caught_up.endswith(expected), caught_up
        # The progress lines say it too, counting up to the same total.
        counts = [int(m.group(1)) for m in re.finditer(r"; (\d+) write statements? for database other_schema", output)]
        assert counts and counts == sorted(counts) and counts[-1] == other
        with mysql_conn.cursor() as cursor:
            cursor.execute(f"SELECT id, owner, balance, note FROM `{replica_db}`.`{TABLE}`")
            have = {row[0]: tuple(row[1:]) for row in cursor.fetchall()}
            assert have == rows and len(rows) > 100, output[-3000:]
            cursor.execute("SELECT COUNT(*) FROM audit_events WHERE database_name = 'other_schema' AND retcode = 0 "
                           "AND operation = 'QUERY'")
            assert cursor.fetchone()[0] == other  # recorded, not replayed
    finally:
        with mysql_conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{replica_db}`")
