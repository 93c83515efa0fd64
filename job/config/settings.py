"""Typed settings, one object per stage, built from the properties in one place.

Each Flink operator takes its stage's object (and nothing read from the properties by
name), so a new key is: its ``Key`` in job/config/properties.py (type, default,
description) and its field here. No PyFlink here: `ledgersync show` and the audit tools
use these without starting Flink.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Optional

from typing import Any

from connectors.formats.qldb import MAX_DOCUMENT_BYTES
from connectors.formats.registry import format_spec
from connectors.mysql.client import MySqlSettings, resolve_ssl_mode
from connectors.mysql.credentials import SecretSource
from connectors.kinesis.source import SourceSettings, local_credentials
from job.config.properties import CONNECTOR_PROPERTIES, Properties


def code_relative(path: Optional[str]) -> Optional[str]:
    """A relative path that is not there from the working directory is looked up beside the
    job's code (on MSF: the unpacked zip, where `ledgersync package --add` put the file)."""
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    beside = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), path)
    return beside if os.path.exists(beside) else path


def mysql_settings(props: Properties) -> MySqlSettings:
    secret_arn = props["sink.mysql.secret.arn"]
    return MySqlSettings(
        host=props["sink.mysql.host"], port=props["sink.mysql.port"],
        database=props["sink.mysql.database"], user=props["sink.mysql.user"],
        password=props["sink.mysql.password"],
        secret=SecretSource(secret_arn, props["source.aws.region"], props["source.aws.endpoint"])
        if secret_arn else None,
        connect_timeout=props["sink.mysql.connect.timeout.ms"] / 1000.0,
        read_timeout=props["sink.mysql.read.timeout.ms"] / 1000.0,
        retry_deadline_s=props["sink.retry.deadline.ms"] / 1000.0,
        ssl_ca=code_relative(props["sink.mysql.ssl.ca"]),
        ssl_mode=resolve_ssl_mode(props["sink.mysql.ssl.mode"], props["sink.mysql.host"], props["sink.mysql.ssl.ca"]),
        history=props["replication.history"],
        column_types=props["sink.column.types"],
    )


def source_settings(props: Properties) -> SourceSettings:
    """The Kinesis source's settings (its dataclass lives with the source, connectors/kinesis/source.py)."""
    endpoint = props["source.aws.endpoint"]
    return SourceSettings(stream=props["source.stream.name"], region=props["source.aws.region"], endpoint=endpoint,
                          initial_position=props["source.initial.position"],
                          initial_timestamp=props["source.initial.timestamp"],
                          reader_type=props["source.reader.type"], efo_consumer_name=props["source.efo.consumer.name"],
                          connector=dict(props[CONNECTOR_PROPERTIES]),
                          local_credentials=local_credentials() if endpoint else None)


@dataclass(frozen=True)
class DecodeSettings:
    """Decoding (``source.format`` and its own keys, ``replication.tables.include``)."""

    format: str
    writer_slots: int  # each row carries its writer slot (job/pipeline/item_rows.py)
    tables_include: frozenset  # empty: every table
    max_document_bytes: int
    source: Any  # the format's own settings (its FormatSpec.configure), None when it has none
    split_timeout_ms: int

    @classmethod
    def from_properties(cls, props: Properties) -> "DecodeSettings":
        spec = format_spec(props["source.format"])
        return cls(format=spec.name, writer_slots=props["sink.writer.slots"],
                   tables_include=frozenset(props["replication.tables.include"]),
                   max_document_bytes=MAX_DOCUMENT_BYTES,
                   source=spec.configure(props) if spec.configure else None,
                   split_timeout_ms=props["source.dsql.split.timeout.ms"])


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
        return cls(mysql=mysql_settings(props), timeout_ms=props["replication.order.timeout.ms"],
                   gap_action=props["replication.order.gap"], history=props["replication.history"],
                   writer_slots=props["sink.writer.slots"])


@dataclass(frozen=True)
class WriterSettings:
    """The MySQL writer (``sink.*``)."""

    mysql: MySqlSettings
    max_rows: int
    interval_ms: int

    @classmethod
    def from_properties(cls, props: Properties) -> "WriterSettings":
        return cls(mysql=mysql_settings(props), max_rows=props["sink.batch.max.rows"],
                   interval_ms=props["sink.batch.interval.ms"])


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
        return cls(mysql=mysql_settings(props), replay_enabled=props["audit.replay.enabled"],
                   replay_database=props["audit.replay.database"],
                   source_database=props["audit.source.database"] or props["audit.replay.database"],
                   ddl=props["audit.replay.ddl"], stop_on_error=props["audit.replay.stop.on.error"],
                   out_of_orderness_ms=props["audit.max.out.of.orderness.ms"],
                   idle_timeout_ms=props["audit.idle.timeout.ms"], interval_ms=props["sink.batch.interval.ms"],
                   max_rows=props["sink.batch.max.rows"])
