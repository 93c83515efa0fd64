"""A user's first mistakes fail fast and say why (issue 23, defects 2 and 3): before Flink
starts, `ledgersync run` checks MySQL and the stream; a closed port, a wrong password, a
missing stream or an unreachable endpoint is exit 2 within seconds, one or two lines that
name the setting and the cause, and no traceback."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, write_properties


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(props: str) -> tuple:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "job.cli", "run", "--properties", props, "--until-caught-up"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


@pytest.mark.parametrize("case", ["mysql closed port", "wrong password", "missing stream", "aws unreachable"])
def test_a_bad_setting_fails_before_flink_starts_naming_the_cause(case, tmp_path, kinesis, stream_name,
                                                                  mysql_database):
    kinesis.create_stream(StreamName=stream_name, ShardCount=1)
    source, sink, expected = {}, {}, ""
    if case == "mysql closed port":
        port = _closed_port()
        sink, expected = {"mysql.port": str(port)}, f"127.0.0.1:{port}"
    elif case == "wrong password":
        sink, expected = {"mysql.password": "not-the-password"}, "access denied"
    elif case == "missing stream":
        source, expected = {"stream.name": "no-such-stream"}, "no-such-stream"
    else:
        port = _closed_port()
        source, expected = {"aws.endpoint": f"http://127.0.0.1:{port}"}, f"127.0.0.1:{port}"
    props = write_properties(tmp_path, stream=source.pop("stream.name", stream_name), database=mysql_database,
                             source=source, sink=sink)

    code, output, elapsed = _run(props)

    assert code == 2, output
    assert elapsed < 15, f"took {elapsed:.1f}s"
    assert expected in output, output
    assert "Traceback" not in output and "running; checkpoints in" not in output, output  # Flink never started
