"""A failing command prints one or two lines naming the setting, host:port or endpoint and
the cause, exits 2 for configuration and connection errors, and leaves the traceback in a
log file (printed with --debug): job/cli/errors.py and its use in job/cli/main.py. No
services: the unreachable ones are closed ports on 127.0.0.1."""
import functools
import io
import json
import socket

import pymysql
import pytest
from botocore import exceptions as aws

from job.cli import errors
from job.cli.errors import explain, report_error, using
from job.cli.main import main


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def log_dir(tmp_path, monkeypatch):
    path = tmp_path / "logs"
    monkeypatch.setattr(errors, "DEFAULT_LOG_DIR", str(path))
    return path


@pytest.fixture
def properties(tmp_path):
    port = closed_port()
    path = tmp_path / "props.json"
    path.write_text(json.dumps([
        {"PropertyGroupId": "source", "PropertyMap": {"stream.name": "demo", "aws.region": "us-east-1",
                                                      "aws.endpoint": f"http://127.0.0.1:{port}"}},
        {"PropertyGroupId": "sink", "PropertyMap": {"mysql.host": "127.0.0.1", "mysql.port": str(port),
                                                    "mysql.database": "ledger", "mysql.user": "app",
                                                    "mysql.password": "hunter2",
                                                    "mysql.connect.timeout.ms": "2000"}}]))
    return str(path), port


TARGET = "MySQL app@db.example:3306/ledger"


@pytest.mark.parametrize("code, message, words", [
    (1045, "Access denied for user 'app'@'10.0.0.9' (using password: YES)",
     [TARGET, "access denied", "Access denied for user 'app'", "sink.mysql.user and sink.mysql.password"]),
    (1049, "Unknown database 'ledger'", [TARGET, "Unknown database 'ledger'", "sink.mysql.database"]),
    (2003, "Can't connect to MySQL server on 'db.example' ([Errno 111] Connection refused)",
     [TARGET, "cannot connect", "Connection refused", "sink.mysql.host and sink.mysql.port"]),
])
def test_mysql_errors_name_the_server_the_setting_and_the_cause(code, message, words):
    text = explain(pymysql.err.OperationalError(code, message), TARGET)
    assert len(text.splitlines()) <= 2
    for word in words:
        assert word in text


def test_aws_errors_name_the_endpoint_and_the_cause():
    refused = aws.EndpointConnectionError(endpoint_url="http://127.0.0.1:1/",
                                          error=ConnectionRefusedError(111, "Connection refused"))
    text = explain(refused, "Kinesis stream 'demo' (us-east-1, http://127.0.0.1:1)")
    assert text.startswith("Kinesis stream 'demo' (us-east-1, http://127.0.0.1:1): cannot reach the AWS endpoint "
                           "http://127.0.0.1:1/ (connection failed: [Errno 111] Connection refused)")
    assert "source.aws.endpoint" in text and len(text.splitlines()) == 2
    timeout = explain(aws.ConnectTimeoutError(endpoint_url="https://kinesis.eu-west-1.amazonaws.com/",
                                              error="timed out"))
    assert "cannot reach the AWS endpoint https://kinesis.eu-west-1.amazonaws.com/ (timed out" in timeout
    missing = aws.ClientError({"Error": {"Code": "ResourceNotFoundException",
                                         "Message": "Stream demo under account 123 not found."}}, "DescribeStream")
    text = explain(missing)
    assert "AWS DescribeStream: Stream demo under account 123 not found." in text and "source.stream.name" in text


def test_other_errors_are_not_explained_but_wrapped_ones_are():
    assert explain(ValueError("a bug")) is None
    try:
        try:
            raise pymysql.err.OperationalError(1049, "Unknown database 'x'")
        except pymysql.err.OperationalError as exc:
            raise RuntimeError("while connecting") from exc
    except RuntimeError as outer:
        assert "Unknown database 'x'" in explain(outer)


def test_using_names_the_target_once_the_innermost_wins():
    with pytest.raises(pymysql.err.OperationalError) as caught:
        with using("outer"):
            with using("MySQL a@h:1/d"):
                raise pymysql.err.OperationalError(2003, "Can't connect")
    assert explain(caught.value).startswith("MySQL a@h:1/d: cannot connect")


def test_report_error_prints_two_lines_and_the_log_path_and_debug_adds_the_traceback(log_dir):
    stderr = io.StringIO()
    exc = _raised(pymysql.err.OperationalError(1045, "Access denied for user 'app'@'h'"))
    assert report_error(exc, command="show", stderr=stderr) == 2
    lines = stderr.getvalue().splitlines()
    assert lines[0].startswith("ledgersync show: MySQL") and len(lines) == 3
    (log,) = log_dir.iterdir()
    assert lines[2] == f"  full traceback: {log}" and "Traceback (most recent call last)" in log.read_text()
    stderr = io.StringIO()
    assert report_error(_raised(KeyError("x")), command="show", debug=True, stderr=stderr) == 1
    assert "Traceback (most recent call last)" in stderr.getvalue()
    assert "ledgersync show: unexpected error KeyError: 'x'" in stderr.getvalue()


def _raised(exc):
    try:
        raise exc
    except Exception as caught:
        return caught


def test_show_with_mysql_unreachable_prints_a_short_error_and_exits_2(properties, log_dir, capsys):
    path, port = properties
    assert main(["show", "--properties", path]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 3 and "Traceback" not in err and "hunter2" not in err
    assert lines[0].startswith(f"ledgersync show: MySQL app@127.0.0.1:{port}/ledger")
    assert "cannot connect" in lines[0] and "Connection refused" in lines[0]
    assert "sink.mysql.host and sink.mysql.port" in lines[1]
    assert main(["show", "--properties", path, "--debug"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    assert main(["--debug", "show", "--properties", path]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_simulate_with_the_aws_endpoint_unreachable_prints_a_short_error_and_exits_2(
        properties, log_dir, capsys, monkeypatch):
    from connectors import aws_clients

    # One attempt instead of botocore's nine: the same error, sooner.
    monkeypatch.setattr(aws_clients, "aws_client", functools.partial(aws_clients.aws_client, attempts=1))
    path, port = properties
    assert main(["simulate", "dynamodb", "--properties", path, "--rows", "2"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    assert lines[0] == (f"ledgersync simulate dynamodb: Kinesis stream 'demo' (us-east-1, http://127.0.0.1:{port}): "
                        f"cannot reach the AWS endpoint http://127.0.0.1:{port}/ "
                        "(connection failed: [Errno 111] Connection refused)")
    assert "source.aws.endpoint" in lines[1] and lines[2].startswith("  full traceback: ")
