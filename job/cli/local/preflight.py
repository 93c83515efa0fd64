"""Checks before Flink starts (about 20 s of start-up), each a few seconds at most: MySQL
answers, takes the login and has (or can create) the database; the Kinesis endpoint answers
and the stream exists. A failure raises the driver's own error, named with ``using`` so
that job/cli/errors.py reports it in one or two lines (exit 2) instead of a job that fails
later under a page of Beam and gRPC traceback, or waits forever."""
from __future__ import annotations

import dataclasses
from typing import Callable

from connectors.aws_clients import aws_client
from connectors.mysql.client import connect
from job.cli.errors import using
from job.config.properties import Properties
from job.config.settings import mysql_settings

CONNECT_TIMEOUT_S = 5.0
AWS_TIMEOUT_S = 5.0


def check_mysql(props: Properties) -> None:
    settings = dataclasses.replace(mysql_settings(props), connect_timeout=CONNECT_TIMEOUT_S, read_timeout=10.0)
    with using(f"MySQL {settings.describe()}"):
        connect(settings, create_database=True).close()


def check_stream(props: Properties) -> None:
    stream, region, endpoint = props["source.stream.name"], props["source.aws.region"], props["source.aws.endpoint"]
    client = aws_client("kinesis", region, endpoint, connect_timeout=AWS_TIMEOUT_S, read_timeout=AWS_TIMEOUT_S,
                        attempts=2)
    with using(f"Kinesis stream {stream} (source.stream.name) at {endpoint or f'AWS {region}'}"):
        client.describe_stream_summary(StreamName=stream)


def preflight(props: Properties, say: Callable[[str], None]) -> None:
    check_mysql(props)
    check_stream(props)
    say(f"checked: MySQL {props['sink.mysql.host']}:{props['sink.mysql.port']}/{props['sink.mysql.database']} "
        f"and stream {props['source.stream.name']} answer")
