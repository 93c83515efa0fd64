"""Restores belong to their job (issue 23, defect 1): a second job, for another stream and
another database, run with --from-latest-checkpoint beside the first job's checkpoints,
replicates everything of its own stream (it restored nothing of the first's); and the
first job's checkpoint given to it with --from-savepoint is refused, naming whose it is."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid

import pymysql

from connectors.formats.qldb import decode_record
from job.cli.tools.simulate.qldb import WorkloadSpec, encode, simulate_qldb
from tests.conftest import ROOT, run_job, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables


def test_a_second_job_never_restores_the_first_jobs_checkpoint(tmp_path, services, kinesis, stream_name,
                                                               mysql_database, mysql_conn):
    checkpoints = tmp_path / "checkpoints"
    first = simulate_qldb(kinesis, stream_name, WorkloadSpec(tables=2, documents=40, revisions=3, seed=5),
                          shards=2, out=lambda *_: None)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first_props = write_properties(tmp_path / "a", stream=stream_name, database=mysql_database)
    output = run_job(first_props, extra_args=["--checkpoint-dir", str(checkpoints)])
    checkpoint = re.search(r"its newest checkpoint is (\S+)", output).group(1)

    other_stream, other_database = f"t-{uuid.uuid4().hex[:10]}", f"t_{uuid.uuid4().hex[:10]}"
    root = pymysql.connect(host=services.HOST, port=services.MYSQL_PORT, user=services.MYSQL_USER,
                           password=services.MYSQL_PASSWORD, autocommit=True)
    try:
        second = simulate_qldb(kinesis, other_stream, WorkloadSpec(tables=2, documents=60, revisions=2, seed=6),
                               shards=2, out=lambda *_: None)
        second_props = write_properties(tmp_path / "b", stream=other_stream, database=other_database)
        output = run_job(second_props, extra_args=["--checkpoint-dir", str(checkpoints), "--from-latest-checkpoint"])
        assert "no complete checkpoint of this job" in output and "restoring from" not in output
        read = int(re.search(r"caught up after .*?: read (\d+) records", output).group(1))
        assert read == len(second)
        expected = expected_tables([decode_record(encode(r)).revision for r in second], history=False)
        root.select_db(other_database)
        assert diff(expected, actual_tables(root, expected)) == []

        refused = subprocess.run([sys.executable, "-m", "job.cli", "run", "--properties", second_props,
                                  "--until-caught-up", "--from-savepoint", checkpoint],
                                 cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0
        assert "belongs to another job" in refused.stdout + refused.stderr
        assert f"stream {stream_name}" in refused.stdout + refused.stderr
    finally:
        with root.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{other_database}`")
        root.close()
        try:
            kinesis.delete_stream(StreamName=other_stream, EnforceConsumerDeletion=True)
        except Exception:
            pass
    # The first job's own rows are untouched by all this.
    expected = expected_tables([decode_record(encode(r)).revision for r in first], history=False)
    assert diff(expected, actual_tables(mysql_conn, expected)) == []
