"""Shared fixtures. Integration tests use the real local services (MariaDB, moto server)
and run the real job on a Flink mini-cluster, each test in its own database and stream."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Set (e.g. http://127.0.0.1:4566), the AWS calls go there instead of the moto server;
# LEDGERSYNC_MYSQL_PORT moves MariaDB. Unset: moto, as always.
TEST_AWS_ENDPOINT = os.environ.get("LEDGERSYNC_TEST_AWS_ENDPOINT", "").strip()

# The JVM flags `ledgersync`'s CLI puts in its environment (job/cli/local/jvm.py), also in
# this process's: a standalone cluster a test starts here gets them as `ledgersync cluster`
# does (Flink's scripts read JVM_ARGS too); jobs run as `python -m job.cli` set them anyway.
from job.cli.local.jvm import apply_local_jvm_defaults  # noqa: E402

apply_local_jvm_defaults()

# Time is measured by `make bench`, never asserted in a test (docs/development.md): no
# per-example deadline for hypothesis, whose default of 200 ms fails on a busy machine.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ledgersync", deadline=None)
_hypothesis_settings.load_profile("ledgersync")


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_network(reason): needs a package registry; skipped where "
                            "LEDGERSYNC_TEST_OFFLINE is set (make test-localstack runs in a namespace without network)")


def pytest_collection_modifyitems(config, items):
    # Everything under tests/integration is an integration test, marked or not.
    offline = os.environ.get("LEDGERSYNC_TEST_OFFLINE")
    for item in items:
        if os.sep + "integration" + os.sep in str(item.fspath):
            item.add_marker(pytest.mark.integration)
        marker = item.get_closest_marker("needs_network")
        if offline and marker:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "needs the network")
            item.add_marker(pytest.mark.skip(reason=f"no network in this run (make test-localstack): {why}"))
    # The slow tests first, then the other integration tests, then the unit tests: with
    # pytest-xdist (make test: PYTEST_WORKERS) a worker that is done takes over the waiting
    # tests of the other, and the run does not end on one long test alone.
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else
               1 if item.get_closest_marker("integration") else 2)


@pytest.fixture(scope="session")
def services():
    """MariaDB and the moto server, started if they are not up (idempotent, locked).

    Never stopped here: other test sessions may share them. `make test` stops what it
    started once pytest is done."""
    from job.cli.local import services as local_services
    if TEST_AWS_ENDPOINT:
        # Another AWS stand-in (LocalStack: `make test-localstack`) instead of moto: every
        # fixture and helper asks local_services.aws_endpoint(); MariaDB is the local one.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(local_services, "aws_endpoint", lambda: TEST_AWS_ENDPOINT)
            with local_services._services_lock(local_services.DEFAULT_LOCAL_DIR):
                local_services.start_mariadb(local_services.Paths(local_services.DEFAULT_LOCAL_DIR))
            yield local_services
        return
    local_services.up()
    yield local_services


@pytest.fixture
def mysql_database(services):
    """A fresh database for one test, dropped afterwards."""
    import pymysql

    name = f"t_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(host=services.HOST, port=services.MYSQL_PORT, user=services.MYSQL_USER,
                           password=services.MYSQL_PASSWORD, autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    yield name
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


@pytest.fixture
def mysql_conn(services, mysql_database):
    import pymysql

    conn = pymysql.connect(host=services.HOST, port=services.MYSQL_PORT, user=services.MYSQL_USER,
                           password=services.MYSQL_PASSWORD, database=mysql_database, autocommit=True,
                           charset="utf8mb4")
    yield conn
    conn.close()


@pytest.fixture
def kinesis(services):
    from connectors.aws_clients import aws_client

    return aws_client("kinesis", "us-east-1", services.aws_endpoint())


@pytest.fixture
def stream_name(kinesis):
    """A fresh stream name (the test creates the stream); deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    except Exception:  # never created by the test: nothing to delete
        pass


def write_properties(path, *, stream: str, database: str, source=None, sink=None, replication=None) -> str:
    from job.cli.local import services as s
    groups = [
        {"PropertyGroupId": "source", "PropertyMap": {
            "stream.name": stream, "aws.region": "us-east-1", "aws.endpoint": s.aws_endpoint(),
            "initial.position": "TRIM_HORIZON", **(source or {})}},
        {"PropertyGroupId": "sink", "PropertyMap": {
            "mysql.host": s.HOST, "mysql.port": str(s.MYSQL_PORT), "mysql.database": database,
            "mysql.user": s.MYSQL_USER, "mysql.password": s.MYSQL_PASSWORD,
            "batch.max.rows": "500", "batch.interval.ms": "200", **(sink or {})}},
        {"PropertyGroupId": "replication", "PropertyMap": {**(replication or {})}},
    ]
    target = os.path.join(str(path), "application_properties.json")
    with open(target, "w") as handle:
        json.dump(groups, handle, indent=2)
    return target


def write_audit_properties(path, *, stream: str, database: str, replica: str, source_database: str = "sim",
                           timeout: str = "2000") -> str:
    """Properties of an audit-log sync test: cloudwatch-audit from ``stream``, replayed on ``replica``."""
    from job.cli.local import services as s
    groups = [
        {"PropertyGroupId": "source", "PropertyMap": {
            "stream.name": stream, "aws.region": "us-east-1", "aws.endpoint": s.aws_endpoint(),
            "format": "cloudwatch-audit"}},
        {"PropertyGroupId": "sink", "PropertyMap": {
            "mysql.host": s.HOST, "mysql.port": str(s.MYSQL_PORT), "mysql.database": database,
            "mysql.user": s.MYSQL_USER, "mysql.password": s.MYSQL_PASSWORD,
            "batch.max.rows": "300", "batch.interval.ms": "200"}},
        {"PropertyGroupId": "audit", "PropertyMap": {
            "replay.enabled": "true", "replay.database": replica, "source.database": source_database,
            "replay.ddl": "CREATE TABLE", "idle.timeout.ms": timeout}},
    ]
    target = os.path.join(str(path), "audit_properties.json")
    with open(target, "w") as handle:
        json.dump(groups, handle)
    return target


def run_job(properties: str, timeout_s: int = 240, extra_args=()) -> str:
    """`ledgersync run --until-caught-up` in its own process, as a user runs it; returns its output."""
    command = [sys.executable, "-m", "job.cli", "run", "--properties", properties, "--until-caught-up",
               "--timeout", str(timeout_s), *extra_args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s + 120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"ledgersync run failed ({result.returncode}):\n{output[-6000:]}"
    assert "caught up" in result.stdout, output[-6000:]
    return result.stdout
