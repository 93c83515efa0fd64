"""Secret rotation, the pure part: a refused login re-reads the secret at a bounded rate,
and a login refused with a secret's credentials is retried, not fatal."""
from __future__ import annotations

from dataclasses import dataclass

import pymysql

from connectors.mysql.credentials import Credentials
from connectors.mysql.client import (ACCESS_DENIED, SECRET_REFRESH_MIN_INTERVAL_S, SecretCache, SecretLoginRefused,
                                     describe_error, is_transient)


@dataclass(frozen=True)
class CountingSecret:
    """Stands in for SecretSource: hands out the current password and counts reads."""

    arn: str
    box: dict

    def read(self, default_user: str) -> Credentials:
        self.box["reads"] = self.box.get("reads", 0) + 1
        return Credentials(default_user, self.box["password"])

    def __hash__(self):
        return hash(self.arn)


def test_the_secret_is_read_once_then_again_after_a_refused_login_at_most_every_interval():
    now = [100.0]
    cache = SecretCache(min_interval_s=5.0, clock=lambda: now[0])
    box = {"password": "old"}
    secret = CountingSecret("arn:1", box)
    assert cache.get(secret, "u").password == "old"
    assert cache.get(secret, "u").password == "old" and box["reads"] == 1  # no refresh asked: cached
    box["password"] = "new"
    now[0] += 1
    # A refresh asked for within the interval of the last read reads nothing.
    assert cache.get(secret, "u", refresh=True).password == "old" and box["reads"] == 1
    now[0] += 4
    assert cache.get(secret, "u", refresh=True).password == "new" and box["reads"] == 2
    # Many retries in a row (every writer slot, every backoff step) cost one read per interval.
    for _ in range(20):
        now[0] += 0.5
        cache.get(secret, "u", refresh=True)
    assert box["reads"] == 2 + 2  # 10 s of retries: two more reads


def test_the_default_interval_is_bounded():
    assert 1.0 <= SECRET_REFRESH_MIN_INTERVAL_S <= 60.0


def test_a_login_refused_with_a_secret_is_transient_and_a_plain_one_is_not():
    refused = pymysql.err.OperationalError(ACCESS_DENIED, "Access denied for user 'u'@'127.0.0.1' (using password: YES)")
    assert not is_transient(refused)  # a wrong sink.mysql.password stays a clear failure
    rotating = SecretLoginRefused(*refused.args)
    assert is_transient(rotating)
    assert "1045" in describe_error(rotating) and "Access denied" in describe_error(rotating)
