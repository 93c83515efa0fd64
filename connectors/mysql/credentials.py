"""MySQL credentials: a password given in the properties, or an AWS Secrets Manager secret.

A secret is read where the connection is made (in the writer's task, not when the job
is built), so the password never travels inside the job graph, and it is read again
after an authentication failure so a rotated secret is picked up.

The secret may be a plain string (the password) or JSON as RDS and Aurora write it
(``{"username", "password", "host", "port", "dbname"}``); only ``password`` (and
``username`` when present) is taken from it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from connectors.aws_clients import aws_client


class CredentialsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SecretSource:
    arn: str
    region: str
    endpoint: Optional[str] = None

    def read(self, default_user: str) -> Credentials:
        client = aws_client("secretsmanager", self.region, self.endpoint)
        try:
            response = client.get_secret_value(SecretId=self.arn)
        except Exception as exc:
            # The error names the secret and the AWS error code, never a value.
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise CredentialsError(f"cannot read secret {self.arn}: {code}") from None
        return parse_secret(response.get("SecretString"), default_user, self.arn)


def parse_secret(text: Optional[str], default_user: str, arn: str = "secret") -> Credentials:
    if not text:
        raise CredentialsError(f"{arn} has no SecretString (a binary secret is not supported)")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError:
            raise CredentialsError(f"{arn} looks like JSON but does not parse") from None
        if not isinstance(value.get("password"), str) or not value["password"]:
            raise CredentialsError(f"{arn} has no \"password\" field")
        user = value.get("username") if isinstance(value.get("username"), str) and value["username"] else default_user
        return Credentials(user=user, password=value["password"])
    return Credentials(user=default_user, password=text)
