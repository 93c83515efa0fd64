"""How a `ledgersync` command reports a failure: one or two lines naming the setting, the
host:port or endpoint and the cause, the full traceback in a log file (its path printed),
and the exit code: 2 for configuration and connection errors, 1 for anything else.
``--debug`` prints the traceback too.

``explain`` is the pure part (an exception in, the short text or None out) and holds
every mapping; ``report_error`` prints, logs and picks the exit code; ``using`` lets a
command say what it was talking to (``MySQL app@db:3306/ledger``), which the drivers'
messages leave out (pymysql's "Can't connect" names the host but not the port).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
import traceback
from typing import Iterator, Optional

from job.cli.project import PROJECT_ROOT

CONFIG_ERROR = 2  # the setting or the service it points at is wrong: fix and run again
OTHER_ERROR = 1
DEFAULT_LOG_DIR = os.path.join(PROJECT_ROOT, ".local", "logs")

# MySQL/MariaDB client and server error codes (pymysql's OperationalError args[0]).
ACCESS_DENIED, UNKNOWN_DATABASE = 1045, 1049
CANNOT_CONNECT, CANNOT_CONNECT_SOCKET, UNKNOWN_HOST = 2003, 2002, 2005

_MYSQL_LOGIN = "sink.mysql.user and sink.mysql.password (or sink.mysql.secret.arn)"
_AWS_CREDENTIAL_CODES = ("UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
                         "AccessDenied", "ExpiredTokenException", "InvalidClientTokenId")
_START_LOCAL = "`ledgersync services up` starts the local ones"


@contextlib.contextmanager
def using(what: str) -> Iterator[None]:
    """Name what the block talks to (e.g. ``MySQL app@127.0.0.1:13306/ledger``) in any
    error that leaves it; the innermost name wins."""
    try:
        yield
    except Exception as exc:
        if getattr(exc, "ledgersync_using", None) is None:
            exc.ledgersync_using = what
        raise


def explain(exc: BaseException, target: Optional[str] = None) -> Optional[str]:
    """The short text for a configuration or connection error (one or two lines), or
    None for anything else. ``target`` (default: what ``using`` recorded) names what the
    command was talking to. The exception's causes are looked at too, so a wrapped
    driver error is still recognised."""
    for cause in _chain(exc):
        target = target or getattr(cause, "ledgersync_using", None)
    for cause in _chain(exc):
        text = _mysql(cause, target) or _aws(cause, target) or _config(cause)
        if text:
            return text
    return None


def _chain(exc: BaseException) -> list:
    seen, out = set(), []
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _mysql(exc: BaseException, target: Optional[str]) -> Optional[str]:
    import pymysql

    if not isinstance(exc, pymysql.err.OperationalError):
        return None
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    where = target or "MySQL (sink.mysql.host, sink.mysql.port)"
    if code == ACCESS_DENIED:
        return f"{where}: access denied ({message})\n  check {_MYSQL_LOGIN}"
    if code == UNKNOWN_DATABASE:
        return (f"{where}: {message} (sink.mysql.database)\n"
                "  create it, or point sink.mysql.database at one that exists")
    if code in (CANNOT_CONNECT, CANNOT_CONNECT_SOCKET, UNKNOWN_HOST):
        return (f"{where}: cannot connect: {message}\n"
                f"  is the server running there? check sink.mysql.host and sink.mysql.port ({_START_LOCAL})")
    return f"{where}: MySQL error {code}: {message}"


def _aws(exc: BaseException, target: Optional[str]) -> Optional[str]:
    from botocore import exceptions as aws

    if isinstance(exc, (aws.EndpointConnectionError, aws.ConnectTimeoutError, aws.ConnectionClosedError)):
        endpoint = exc.kwargs.get("endpoint_url", "?")
        cause = exc.kwargs.get("error")
        why = "timed out" if isinstance(exc, aws.ConnectTimeoutError) else \
            "closed the connection" if isinstance(exc, aws.ConnectionClosedError) else "connection failed"
        reason = f"{why}: {_root(cause)}" if cause is not None else why
        where = f"{target}: " if target else ""
        return (f"{where}cannot reach the AWS endpoint {endpoint} ({reason})\n"
                f"  check source.aws.endpoint (empty: real AWS) and source.aws.region ({_START_LOCAL})")
    if isinstance(exc, aws.ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        where = f"{target}: " if target else ""
        if code == "ResourceNotFoundException":
            return (f"{where}AWS {exc.operation_name}: {message or 'not found'}\n"
                    "  check source.stream.name and source.aws.region (simulate creates the stream it writes to)")
        if code in ("NoSuchBucket", "NoSuchKey"):
            return (f"{where}S3 {exc.operation_name}: {message or code}\n"
                    "  check the export's s3:// URI (--export, --to) and source.aws.endpoint")
        if code in _AWS_CREDENTIAL_CODES:
            return (f"{where}AWS {exc.operation_name} refused the credentials ({code}: {message})\n"
                    "  check the AWS credentials (environment, ~/.aws, role) and source.aws.endpoint")
        return None
    if isinstance(exc, aws.NoCredentialsError):
        return ("no AWS credentials found (environment, ~/.aws, instance role)\n"
                "  for a local endpoint set source.aws.endpoint; for AWS, configure credentials")
    if isinstance(exc, aws.NoRegionError):
        return "no AWS region: set source.aws.region"
    return None


def _root(error) -> str:
    """The innermost reason of a urllib3/socket error: ``[Errno 111] Connection refused``."""
    text = str(error)
    marker = "[Errno"
    return text[text.rindex(marker):].rstrip(")'\"") if marker in text else text


def _config(exc: BaseException) -> Optional[str]:
    from job.config.properties import PropertiesError

    return str(exc) if isinstance(exc, PropertiesError) else None


def log_path(log_dir: str = DEFAULT_LOG_DIR, now: Optional[_dt.datetime] = None) -> str:
    now = now or _dt.datetime.now()
    return os.path.join(log_dir, f"ledgersync-{now.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")


def report_error(exc: BaseException, *, command: str = "", debug: bool = False, stderr=None,
                 log_dir: Optional[str] = None) -> int:
    """Print ``exc`` as one or two lines (plus the traceback with ``debug``), write the
    traceback to a log file whose path is printed, and return the exit code: 2 for a
    configuration or connection error, 1 otherwise."""
    stderr = stderr if stderr is not None else sys.stderr
    prefix = f"ledgersync {command}".rstrip() + ": "
    text = explain(exc)
    code = CONFIG_ERROR if text is not None else OTHER_ERROR
    if text is None:
        text = f"unexpected error {type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if debug:
        stderr.write(trace)
    stderr.write(prefix + text + "\n")
    path = _write_log(trace, log_dir or DEFAULT_LOG_DIR, command)
    stderr.write(f"  full traceback: {_short(path)}\n" if path else
                 "  (could not write a log file; --debug prints the traceback)\n")
    return code


def _short(path: str) -> str:
    """The path relative to the working directory when it is under it (shorter to read)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _write_log(trace: str, log_dir: str, command: str) -> Optional[str]:
    path = log_path(log_dir)
    try:
        os.makedirs(log_dir, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"ledgersync {command} ({' '.join(sys.argv[1:])})\n{trace}")
    except OSError:
        return None  # a read-only checkout must not hide the error itself
    return path
