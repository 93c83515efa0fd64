"""boto3 clients for every AWS call, all through one endpoint setting.

``aws.endpoint`` empty means real AWS (the default credential chain); set, it points
at a local stand-in (the moto server, LocalStack), which accepts any credentials.
"""
from __future__ import annotations

import os
from typing import Optional

import boto3
import botocore.session
from botocore.config import Config

# botocore's "standard" retry mode backs off with jitter on throttling and transient
# errors (ProvisionedThroughputExceeded, LimitExceeded, 5xx, connection errors) up to
# the given number of attempts (the first call included), and stops retrying when its
# retry quota says the endpoint is struggling.
DEFAULT_ATTEMPTS = 9


def _raw_timestamp(value):
    return value


def aws_client(service: str, region: str, endpoint: Optional[str] = None,
               connect_timeout: float = 5.0, read_timeout: float = 30.0,
               attempts: int = DEFAULT_ATTEMPTS, max_pool_connections: int = 10,
               raw_timestamps: bool = False):
    """``attempts=1`` turns botocore's retries off, for callers that back off themselves;
    ``max_pool_connections`` must cover the threads that share the client.

    ``raw_timestamps``: timestamps in responses stay as sent (epoch seconds in Kinesis'
    JSON) instead of becoming datetimes in the local zone. botocore's own parsing
    (dateutil, tzlocal) took 14% of the reader's time on GetRecords, where every record
    carries ApproximateArrivalTimestamp, which the job does not use.
    """
    config = Config(
        region_name=region,
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
    )
    kwargs = {"config": config, "region_name": region}
    # The parser setting belongs to a botocore session, so only those clients get their own
    # (every other client shares boto3's default session and its loaded service models).
    session = _raw_timestamp_session() if raw_timestamps else None
    if endpoint:
        kwargs["endpoint_url"] = endpoint
        if (session or boto3.session.Session()).get_credentials() is None:
            # Local stand-ins accept any key; real AWS never takes this branch.
            kwargs["aws_access_key_id"] = os.environ.get("AWS_ACCESS_KEY_ID", "testing")
            kwargs["aws_secret_access_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")
    return session.client(service, **kwargs) if session else boto3.client(service, **kwargs)


def _raw_timestamp_session() -> boto3.session.Session:
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_raw_timestamp)
    return boto3.session.Session(botocore_session=core)
