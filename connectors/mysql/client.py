"""The one MySQL client every part of ledgersync uses: settings, credentials (a password
or a Secrets Manager secret, re-read after a refused login), connecting, which errors are
transient, and the one retry policy (capped exponential backoff with jitter until
``sink.retry.deadline.ms``, reconnecting between tries).

The writer, order mode's version lookup and the audit replayer each hold one
``MySqlClient``; what they do inside a try is theirs, how they retry is this module's.
"""
from __future__ import annotations

import dataclasses
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

import pymysql

from connectors.mysql.credentials import Credentials, SecretSource
from connectors.mysql.sql import quote_identifier

log = logging.getLogger(__name__)
T = TypeVar("T")

ACCESS_DENIED = 1045
# MySQL/MariaDB error codes worth retrying: deadlock, lock wait timeout, server gone
# away, lost connection, can't connect, server shutting down, read-only (failover).
TRANSIENT_ERRORS = {1213, 1205, 2006, 2013, 2003, 2002, 1053, 1290, 1836, 1047, 1927}


@dataclass(frozen=True)
class MySqlSettings:
    host: str
    port: int
    database: str
    user: str
    password: Optional[str] = field(default=None, repr=False)  # never in logs or reprs
    secret: Optional[SecretSource] = None  # read at connect time instead of a password
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_deadline_s: float = 300.0
    ssl_ca: Optional[str] = None
    ssl_mode: str = "DISABLED"  # one of SSL_MODES, resolved (never AUTO here)
    history: bool = False
    # sink.column.types (connectors/mysql/column_types.py, ColumnOverride): the writer's only.
    column_types: tuple = ()

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.database}"

    def credentials(self, refresh: bool = False) -> Credentials:
        if self.secret is None:
            return Credentials(self.user, self.password or "")
        return _SECRETS.get(self.secret, self.user, refresh=refresh)


# A refused login re-reads the secret at most this often per process: during a rotation
# every retry of every writer would otherwise call Secrets Manager (which throttles, and bills).
SECRET_REFRESH_MIN_INTERVAL_S = 5.0


class SecretCache:
    """Each secret's credentials, read once, and again after a refused login, but not
    more often than ``min_interval_s``."""

    def __init__(self, min_interval_s: float = SECRET_REFRESH_MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self._min_interval = min_interval_s
        self._clock = clock
        self._entries: dict = {}  # SecretSource -> (Credentials, when read)
        self.reads = 0

    def get(self, secret: SecretSource, default_user: str, refresh: bool = False) -> Credentials:
        entry = self._entries.get(secret)
        now = self._clock()
        if entry is None or (refresh and now - entry[1] >= self._min_interval):
            entry = self._entries[secret] = (secret.read(default_user), now)
            self.reads += 1
        return entry[0]


_SECRETS = SecretCache()  # per process (one Python worker holds every writer slot of its task)


class SecretLoginRefused(pymysql.err.OperationalError):
    """Login refused (1045) with credentials from a secret, after reading it again.

    Transient: a rotation changes the secret's AWSCURRENT version and the user's password
    at two different moments, so for a while neither the old nor the new secret may match.
    The retry (with backoff, until ``sink.retry.deadline.ms``) reads the secret again."""


UNKNOWN_DATABASE = 1049


def connect(settings: MySqlSettings, create_database: bool = False):
    """A connection to ``settings.database``; with ``create_database`` the database is
    created first when the server says it does not exist (the writer's: the README
    promises ``sink.mysql.database`` is created if missing)."""
    try:
        return _connect(settings)
    except pymysql.err.OperationalError as exc:
        if not create_database or error_code(exc) != UNKNOWN_DATABASE:
            raise
    server = _connect(dataclasses.replace(settings, database=None))
    try:
        with server.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(settings.database)} "
                           "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        server.commit()
    finally:
        server.close()
    return _connect(settings)


# TLS to MySQL, in the MySQL client's own terms (--ssl-mode): DISABLED; REQUIRED (encrypted;
# the server's certificate checked only when a CA is given); VERIFY_CA (the certificate is
# signed by the CA); VERIFY_IDENTITY (... and names the host). AUTO: DISABLED for a loopback
# host, else VERIFY_IDENTITY with a CA and REQUIRED without one.
SSL_MODES = ("AUTO", "DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
LOOPBACK_HOSTS = ("localhost", "::1")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def resolve_ssl_mode(mode: str, host: str, ca: Optional[str]) -> str:
    if mode != "AUTO":
        return mode
    if is_loopback(host):
        return "DISABLED"
    return "VERIFY_IDENTITY" if ca else "REQUIRED"


def ssl_options(mode: str, ca: Optional[str]) -> dict:
    """pymysql.connect's TLS arguments for a resolved mode. pymysql's own default is
    "preferred" (TLS when the server offers it, else plain), so DISABLED says so, and the
    other modes pass a context built here: pymysql's ssl_* flags cannot ask for "encrypted
    but unverified" (REQUIRED without a CA), and its dict form is deprecated."""
    import ssl

    if mode == "DISABLED":
        return {"ssl_disabled": True}
    if mode in ("VERIFY_CA", "VERIFY_IDENTITY") and not ca:
        raise ValueError(f"sink.mysql.ssl.mode={mode} needs sink.mysql.ssl.ca (the CA bundle to verify against)")
    if ca:
        context = ssl.create_default_context(cafile=ca)
        context.check_hostname = mode == "VERIFY_IDENTITY"  # REQUIRED with a CA checks the CA only, as mysql does
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return {"ssl": context}


def _connect(settings: MySqlSettings):
    def attempt(credentials: Credentials):
        return pymysql.connect(
            host=settings.host, port=settings.port, user=credentials.user, password=credentials.password,
            database=settings.database, charset="utf8mb4", autocommit=False,
            connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
            write_timeout=settings.read_timeout,
            **ssl_options(settings.ssl_mode, settings.ssl_ca),
        )

    try:
        return attempt(settings.credentials())
    except pymysql.err.OperationalError as exc:
        if settings.secret is None or error_code(exc) != ACCESS_DENIED:
            raise
    try:
        return attempt(settings.credentials(refresh=True))  # the secret may have been rotated
    except pymysql.err.OperationalError as exc:
        if error_code(exc) != ACCESS_DENIED:
            raise
        # MySQL's message names the user and host, never the password.
        raise SecretLoginRefused(*exc.args) from None


def error_code(exc: BaseException) -> Optional[int]:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (pymysql.err.InterfaceError, SecretLoginRefused)):
        return True  # the connection is closed or broken: reconnect and retry
    if isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InternalError)):
        return error_code(exc) in TRANSIENT_ERRORS
    return isinstance(exc, (ConnectionError, TimeoutError, OSError))


def backoff_delays(base: float = 0.1, cap: float = 10.0, rng: Callable[[], float] = random.random):
    """Capped exponential backoff with jitter: between half and all of base*2^n, at most cap."""
    attempt = 0
    while True:
        yield min(cap, base * (2 ** attempt)) * (0.5 + rng() / 2)
        attempt += 1


def outage_text(exc: BaseException) -> str:
    """A transient error in a few words for the progress line ("unreachable: connection refused")."""
    code = error_code(exc)
    message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if code in (2002, 2003, 2005) or isinstance(exc, (ConnectionError, OSError)) and code is None:
        cause = message.rsplit("(", 1)[-1].rstrip(")") if "(" in message else message
        return f"unreachable: {cause.strip() or type(exc).__name__}"
    if isinstance(exc, SecretLoginRefused) or code == 1045:
        return "refuses the login (waiting for the secret to rotate?)"
    return f"error {code}: {message}" if code else f"{type(exc).__name__}: {message}"


def describe_error(exc: BaseException) -> str:
    # pymysql errors carry (code, message); the message never holds the password.
    return f"{type(exc).__name__}{exc.args!r}"


class MySqlClient:
    """One connection, opened when first needed, and the retry policy around work on it.

    ``opener`` makes and prepares a connection (default: ``connect(settings)``);
    ``passthrough`` exceptions leave ``retrying`` at once, untouched (no rollback)."""

    def __init__(self, settings: MySqlSettings, *, what: str, opener: Optional[Callable[[], object]] = None,
                 sleep: Callable[[float], None] = time.sleep, passthrough: tuple = (),
                 on_trouble: Optional[Callable[[Optional[str], float], None]] = None):
        """``on_trouble(text, since)``: told before each backoff what is wrong and since when
        (wall-clock seconds), and ``(None, 0)`` once work succeeds again, so an outage shows
        in the progress line while it lasts."""
        self.settings = settings
        self._on_trouble = on_trouble
        self._what = what
        self._opener = opener or (lambda: connect(settings))
        self._sleep = sleep
        self._passthrough = passthrough
        self._conn = None
        self.retries = 0

    def connection(self):
        if self._conn is None:
            self._conn = self._opener()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a dead connection: nothing to save
                pass
            self._conn = None

    def rollback_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except Exception:  # the connection is likely gone; close() follows
                pass

    def retrying(self, work: Callable[[], T], detail: str = "") -> T:
        """``work()``, again after each transient error (rolled back, reconnected, after a
        backoff) until the deadline; a permanent error, or one at the deadline, is raised."""
        deadline = time.monotonic() + self.settings.retry_deadline_s
        delays = backoff_delays()
        troubled_since: Optional[float] = None
        while True:
            try:
                result = work()
            except self._passthrough:
                raise
            except Exception as exc:
                self.rollback_quietly()
                if not is_transient(exc) or time.monotonic() >= deadline:
                    raise
                self.retries += 1
                self.close()
                troubled_since = troubled_since or time.time()
                if self._on_trouble:
                    self._on_trouble(f"MySQL {self.settings.host}:{self.settings.port} {outage_text(exc)}",
                                     troubled_since)
                delay = next(delays)
                log.warning("MySQL %s: transient error %s; retrying %s%s in %.2fs", self.settings.describe(),
                            describe_error(exc), self._what, detail, delay)
                self._sleep(delay)
                continue
            if troubled_since is not None and self._on_trouble:
                self._on_trouble(None, 0.0)
            return result
