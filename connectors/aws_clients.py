"""boto3 clients for every AWS call, all through one endpoint setting.

``aws.endpoint`` empty means real AWS (the default credential chain); set, it points
at a local stand-in (the moto server, LocalStack), which accepts any credentials.
"""
from __future__ import annotations

import os
from typing import Optional

import boto3
from botocore.config import Config

# botocore's "standard" retry mode backs off with jitter on throttling and transient
# errors (ProvisionedThroughputExceeded, 5xx, connection errors) up to max_attempts.
_RETRY_ATTEMPTS = 8


def aws_client(service: str, region: str, endpoint: Optional[str] = None,
               connect_timeout: float = 5.0, read_timeout: float = 30.0):
    config = Config(
        region_name=region,
        retries={"mode": "standard", "max_attempts": _RETRY_ATTEMPTS},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    kwargs = {"config": config, "region_name": region}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
        session = boto3.session.Session()
        if session.get_credentials() is None:
            # Local stand-ins accept any key; real AWS never takes this branch.
            kwargs["aws_access_key_id"] = os.environ.get("AWS_ACCESS_KEY_ID", "testing")
            kwargs["aws_secret_access_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client(service, **kwargs)
