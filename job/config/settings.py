"""Typed settings, one object per stage, built from the properties in one place.

The pipeline assembly takes one ``JobSettings`` (built once, here) and hands each Flink
operator its stage's object; nothing outside job/config reads a property by name. A new
key is: its ``Key`` in job/config/properties.py (type, default, description) and its
field here, read through the key's constant. No PyFlink here: `ledgersync show` and the
audit tools use these without starting Flink.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from connectors.formats.dsql_cdc import DsqlSettings, parse_keys
from connectors.formats.dynamodb import DynamoDbSettings
from connectors.formats.registry import format_spec
from connectors.mysql.client import MySqlSettings, resolve_ssl_mode
from connectors.mysql.credentials import SecretSource
from connectors.kinesis.source import SourceSettings, local_credentials
from connectors.rows.limits import MAX_DOCUMENT_BYTES
from job.config.properties import (
    AUDIT_IDLE_TIMEOUT_MS, AUDIT_MAX_OUT_OF_ORDERNESS_MS, AUDIT_REPLAY_DATABASE, AUDIT_REPLAY_DDL,
    AUDIT_REPLAY_ENABLED, AUDIT_REPLAY_STOP_ON_ERROR, AUDIT_SOURCE_DATABASE, CONNECTOR_PROPERTIES,
    REPLICATION_HISTORY, REPLICATION_ORDER, REPLICATION_ORDER_GAP, REPLICATION_ORDER_TIMEOUT_MS,
    REPLICATION_TABLES_INCLUDE, SINK_BATCH_INTERVAL_MS, SINK_BATCH_MAX_ROWS, SINK_COLUMN_TYPES,
    SINK_MYSQL_CONNECT_TIMEOUT_MS, SINK_MYSQL_DATABASE, SINK_MYSQL_HOST, SINK_MYSQL_PASSWORD, SINK_MYSQL_PORT,
    SINK_MYSQL_READ_TIMEOUT_MS, SINK_MYSQL_SECRET_ARN, SINK_MYSQL_SSL_CA, SINK_MYSQL_SSL_MODE, SINK_MYSQL_USER,
    SINK_RETRY_DEADLINE_MS, SINK_WRITER_SLOTS, SOURCE_AWS_ENDPOINT, SOURCE_AWS_REGION, SOURCE_DSQL_KEYS,
    SOURCE_DSQL_SPLIT_TIMEOUT_MS, SOURCE_EFO_CONSUMER_NAME, SOURCE_FORMAT, SOURCE_INITIAL_POSITION,
    SOURCE_INITIAL_TIMESTAMP, SOURCE_READER_TYPE, SOURCE_STREAM_NAME, Properties,
)


def code_relative(path: Optional[str]) -> Optional[str]:
    """A relative path that is not there from the working directory is looked up beside the
    job's code (on MSF: the unpacked zip, where `ledgersync package --add` put the file)."""
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    beside = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), path)
    return beside if os.path.exists(beside) else path


def mysql_settings(props: Properties) -> MySqlSettings:
    secret_arn = props[SINK_MYSQL_SECRET_ARN]
    return MySqlSettings(
        host=props[SINK_MYSQL_HOST], port=props[SINK_MYSQL_PORT],
        database=props[SINK_MYSQL_DATABASE], user=props[SINK_MYSQL_USER],
        password=props[SINK_MYSQL_PASSWORD],
        secret=SecretSource(secret_arn, props[SOURCE_AWS_REGION], props[SOURCE_AWS_ENDPOINT])
        if secret_arn else None,
        connect_timeout=props[SINK_MYSQL_CONNECT_TIMEOUT_MS] / 1000.0,
        read_timeout=props[SINK_MYSQL_READ_TIMEOUT_MS] / 1000.0,
        retry_deadline_s=props[SINK_RETRY_DEADLINE_MS] / 1000.0,
        ssl_ca=code_relative(props[SINK_MYSQL_SSL_CA]),
        ssl_mode=resolve_ssl_mode(props[SINK_MYSQL_SSL_MODE], props[SINK_MYSQL_HOST], props[SINK_MYSQL_SSL_CA]),
        history=props[REPLICATION_HISTORY],
        column_types=props[SINK_COLUMN_TYPES],
    )


def source_settings(props: Properties) -> SourceSettings:
    """The Kinesis source's settings (its dataclass lives with the source, connectors/kinesis/source.py)."""
    endpoint = props[SOURCE_AWS_ENDPOINT]
    return SourceSettings(stream=props[SOURCE_STREAM_NAME], region=props[SOURCE_AWS_REGION], endpoint=endpoint,
                          initial_position=props[SOURCE_INITIAL_POSITION],
                          initial_timestamp=props[SOURCE_INITIAL_TIMESTAMP],
                          reader_type=props[SOURCE_READER_TYPE], efo_consumer_name=props[SOURCE_EFO_CONSUMER_NAME],
                          connector=dict(props[CONNECTOR_PROPERTIES]),
                          local_credentials=local_credentials() if endpoint else None)


def _dsql_settings(props: Properties) -> DsqlSettings:
    # source.dsql.keys is required with source.format=dsql-cdc (job/config/properties.py
    # checks); empty here for the tools that decode without it (each record then says its
    # table has no key).
    keys = props[SOURCE_DSQL_KEYS]
    return DsqlSettings(keys=parse_keys(keys) if keys else {}, split_timeout_ms=props[SOURCE_DSQL_SPLIT_TIMEOUT_MS])


# A keyed change format's own settings (FormatSpec.decode's second argument), by format.
_FORMAT_SETTINGS = {"dsql-cdc": _dsql_settings, "dynamodb": lambda props: DynamoDbSettings()}


def format_settings(props: Properties, name: Optional[str] = None) -> Any:
    """The settings of format ``name`` (default: source.format) from the properties; None
    for a format without its own (qldb, cloudwatch-audit)."""
    build = _FORMAT_SETTINGS.get(format_spec(name or props[SOURCE_FORMAT]).name)
    return build(props) if build else None


@dataclass(frozen=True)
class DecodeSettings:
    """Decoding (``source.format`` and its own keys, ``replication.tables.include``)."""

    format: str
    writer_slots: int  # each row carries its writer slot (job/rows/item_rows.py)
    tables_include: frozenset  # empty: every table
    max_document_bytes: int
    source: Any  # the format's own settings (format_settings), None when it has none
    split_timeout_ms: int

    @classmethod
    def from_properties(cls, props: Properties) -> "DecodeSettings":
        return cls(format=format_spec(props[SOURCE_FORMAT]).name, writer_slots=props[SINK_WRITER_SLOTS],
                   tables_include=frozenset(props[REPLICATION_TABLES_INCLUDE]),
                   max_document_bytes=MAX_DOCUMENT_BYTES, source=format_settings(props),
                   split_timeout_ms=props[SOURCE_DSQL_SPLIT_TIMEOUT_MS])


@dataclass(frozen=True)
class OrderSettings:
    """order=true's per-document ordering (``replication.order.*``)."""

    mysql: MySqlSettings  # for the stored versions of documents the job has not seen yet
    timeout_ms: int
    gap_action: str
    history: bool
    writer_slots: int

    @classmethod
    def from_properties(cls, props: Properties) -> "OrderSettings":
        return cls(mysql=mysql_settings(props), timeout_ms=props[REPLICATION_ORDER_TIMEOUT_MS],
                   gap_action=props[REPLICATION_ORDER_GAP], history=props[REPLICATION_HISTORY],
                   writer_slots=props[SINK_WRITER_SLOTS])


@dataclass(frozen=True)
class WriterSettings:
    """The MySQL writer (``sink.*``)."""

    mysql: MySqlSettings
    max_rows: int
    interval_ms: int

    @classmethod
    def from_properties(cls, props: Properties) -> "WriterSettings":
        return cls(mysql=mysql_settings(props), max_rows=props[SINK_BATCH_MAX_ROWS],
                   interval_ms=props[SINK_BATCH_INTERVAL_MS])


@dataclass(frozen=True)
class AuditSettings:
    """Audit-log sync's replayer (``audit.*``, and the writer's batch settings)."""

    mysql: MySqlSettings
    replay_enabled: bool
    replay_database: Optional[str]
    source_database: Optional[str]
    ddl: frozenset
    stop_on_error: bool
    out_of_orderness_ms: int
    idle_timeout_ms: int
    interval_ms: int
    max_rows: int

    @classmethod
    def from_properties(cls, props: Properties) -> "AuditSettings":
        return cls(mysql=mysql_settings(props), replay_enabled=props[AUDIT_REPLAY_ENABLED],
                   replay_database=props[AUDIT_REPLAY_DATABASE],
                   source_database=props[AUDIT_SOURCE_DATABASE] or props[AUDIT_REPLAY_DATABASE],
                   ddl=props[AUDIT_REPLAY_DDL], stop_on_error=props[AUDIT_REPLAY_STOP_ON_ERROR],
                   out_of_orderness_ms=props[AUDIT_MAX_OUT_OF_ORDERNESS_MS],
                   idle_timeout_ms=props[AUDIT_IDLE_TIMEOUT_MS], interval_ms=props[SINK_BATCH_INTERVAL_MS],
                   max_rows=props[SINK_BATCH_MAX_ROWS])


@dataclass(frozen=True)
class JobSettings:
    """Everything the pipeline assembly (job/pipeline/) reads, built once from the
    properties: which path the job takes, and each stage's settings."""

    format: str  # source.format
    order: bool  # replication.order: the ordered function instead of Top-1
    history: bool  # replication.history: also the history rows
    aws_region: str  # for the backfill's reader (S3), as for the source
    aws_endpoint: Optional[str]
    source: SourceSettings
    decode: DecodeSettings
    ordering: OrderSettings
    writer: WriterSettings
    audit: AuditSettings

    @classmethod
    def from_properties(cls, props: Properties) -> "JobSettings":
        return cls(format=format_spec(props[SOURCE_FORMAT]).name, order=props[REPLICATION_ORDER],
                   history=props[REPLICATION_HISTORY], aws_region=props[SOURCE_AWS_REGION],
                   aws_endpoint=props[SOURCE_AWS_ENDPOINT], source=source_settings(props),
                   decode=DecodeSettings.from_properties(props), ordering=OrderSettings.from_properties(props),
                   writer=WriterSettings.from_properties(props), audit=AuditSettings.from_properties(props))
