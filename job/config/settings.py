"""Typed settings built from the properties, for the stages that need them (no PyFlink here:
`ledgersync show` and the audit tools use them without starting Flink)."""
from __future__ import annotations

from connectors.mysql.credentials import SecretSource
from connectors.mysql.client import MySqlSettings
from job.config.properties import Properties


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
        ssl_ca=props["sink.mysql.ssl.ca"],
        history=props["replication.history"],
    )
