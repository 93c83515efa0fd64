"""Local stand-ins for Aurora and AWS: MariaDB and the moto server, on 127.0.0.1.

``ledgersync services up`` installs what is missing (Debian's mariadb-server, the
moto server into this Python environment), starts both with their state under
``.local/``, and waits until each answers. It is idempotent: a running service is
left alone. ``down`` stops them by pid.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

from job.cli.local.runner import DEFAULT_LOCAL_DIR

MYSQL_PORT = int(os.environ.get("LEDGERSYNC_MYSQL_PORT", "13306"))
AWS_PORT = int(os.environ.get("LEDGERSYNC_AWS_PORT", "15000"))
HOST = "127.0.0.1"
MYSQL_USER = "ledgersync"
MYSQL_PASSWORD = "ledgersync"
MYSQL_DATABASE = "ledgersync"
MOTO_REQUIREMENT = "moto[server]==5.2.5"
START_TIMEOUT_S = 60.0


class ServiceError(RuntimeError):
    pass


@dataclass(frozen=True)
class Paths:
    root: str

    @property
    def mariadb(self) -> str:
        return os.path.join(self.root, "mariadb")

    @property
    def moto(self) -> str:
        return os.path.join(self.root, "moto")

    @property
    def moto_pid(self) -> str:
        return os.path.join(self.moto, "moto.pid")

    @property
    def moto_log(self) -> str:
        return os.path.join(self.moto, "moto.log")


def aws_endpoint() -> str:
    return f"http://{HOST}:{AWS_PORT}"


def _say(message: str) -> None:
    print(f"services: {message}", flush=True)


# --- installing ------------------------------------------------------------------

def _mariadb_binary(name: str):
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)


def ensure_mariadb_installed() -> None:
    if _mariadb_binary("mariadbd") and _mariadb_binary("mariadb-install-db"):
        return
    _say("installing Debian's mariadb-server (apt-get)")
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        raise ServiceError("mariadb-server is missing and this user is not root: "
                           "install it with 'apt-get install -y mariadb-server'")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "mariadb-server"]):
        result = subprocess.run(prefix + command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def ensure_moto_installed() -> None:
    try:
        import moto.server  # noqa: F401
        import flask  # noqa: F401  (the [server] extra)
    except ImportError:
        _say(f"installing {MOTO_REQUIREMENT} into {sys.prefix}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", MOTO_REQUIREMENT], check=True)


# --- processes ---------------------------------------------------------------------

def _read_pid(path: str, expect: str):
    try:
        with open(path) as handle:
            pid = int(handle.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if expect in cmdline else None  # a reused pid is not our service


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _spawn(command: list, log_path: str, pid_path: str) -> int:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    with open(pid_path, "w") as handle:
        handle.write(str(process.pid))
    return process.pid


def _wait(check, name: str, log_path: str, pid: int, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not answering yet
            last_error = exc
        if not os.path.exists(f"/proc/{pid}"):
            raise ServiceError(f"{name} exited during start-up; see its log: {log_path}")
        time.sleep(0.2)
    raise ServiceError(f"{name} did not answer within {timeout_s:.0f}s ({last_error}); see its log: {log_path}")


def mysql_answers(port: int = MYSQL_PORT) -> bool:
    import pymysql

    conn = pymysql.connect(host=HOST, port=port, user=MYSQL_USER, password=MYSQL_PASSWORD,
                           connect_timeout=2)
    conn.close()
    return True


MAX_SOCKET_PATH = 100  # bytes; Linux's sun_path holds 107 and a NUL


@dataclass(frozen=True)
class MariaDB:
    """One local MariaDB: its own datadir, socket, pid file and log under ``base``, on a
    loopback port, with the ledgersync user. The shared one (``services up``) and the
    audited source (``audit-source up``, with the audit plugin in ``extra_args``) are both
    started and stopped through here."""
    name: str
    base: str
    port: int
    port_env: str  # the variable that moves the port, named when it is taken
    buffer_pool: str = "256M"
    max_connections: int = 200
    extra_args: tuple = ()
    database: Optional[str] = None  # created at the first start

    @property
    def data(self) -> str:
        return os.path.join(self.base, "data")

    @property
    def socket(self) -> str:
        path = os.path.join(self.base, "mysqld.sock")
        if len(path.encode()) <= MAX_SOCKET_PATH:
            return path
        # A Unix socket's path has at most 107 bytes (sun_path): a project deep in a home
        # directory, or a test's temporary directory, goes past it ("AF_UNIX path too long").
        # Then a short path in the temporary directory, the same for the same base.
        digest = hashlib.sha1(os.path.abspath(self.base).encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"ledgersync-{digest}.sock")

    @property
    def pid_path(self) -> str:
        return os.path.join(self.base, "mariadbd.pid")

    @property
    def log(self) -> str:
        return os.path.join(self.base, "mariadbd.log")

    def root(self):
        import pymysql

        return pymysql.connect(unix_socket=self.socket, user="root", connect_timeout=2, autocommit=True)

    def pid(self):
        return _read_pid(self.pid_path, "mariadbd")

    def answers(self) -> bool:
        return mysql_answers(self.port)

    def start(self) -> bool:
        """Start it unless it runs; wait until it answers. True if this call started it."""
        pid = self.pid()
        if pid:
            _wait(self.answers, self.name, self.log, pid)
            return False
        if _port_open(self.port):
            raise ServiceError(f"port {HOST}:{self.port} is taken by another process; "
                               f"set {self.port_env} to use another one")
        ensure_mariadb_installed()
        if not os.path.isdir(os.path.join(self.data, "mysql")):
            os.makedirs(self.data, exist_ok=True)
            result = subprocess.run(
                [_mariadb_binary("mariadb-install-db"), "--no-defaults", f"--datadir={self.data}",
                 "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"],
                capture_output=True, text=True)
            if result.returncode != 0:
                raise ServiceError(f"mariadb-install-db failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        pid = _spawn([
            _mariadb_binary("mariadbd"), "--no-defaults", f"--datadir={self.data}",
            f"--socket={self.socket}", f"--port={self.port}", f"--bind-address={HOST}",
            f"--pid-file={os.path.join(self.base, 'mariadbd.server.pid')}", "--user=root",
            "--skip-name-resolve", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin",
            f"--innodb-buffer-pool-size={self.buffer_pool}", f"--max-connections={self.max_connections}",
            f"--log-error={self.log}", *self.extra_args,
        ], self.log, self.pid_path)
        _wait(lambda: self.root().close() or True, self.name, self.log, pid)
        conn = self.root()
        with conn.cursor() as cursor:
            cursor.execute("SELECT CONCAT('DROP USER ', QUOTE(User), '@', QUOTE(Host)) FROM mysql.user WHERE User = ''")
            for (statement,) in cursor.fetchall():
                cursor.execute(statement)  # anonymous users would shadow ours from 127.0.0.1
            if self.database:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            for host in ("127.0.0.1", "localhost"):
                cursor.execute(f"CREATE USER IF NOT EXISTS '{MYSQL_USER}'@'{host}' IDENTIFIED BY %s", (MYSQL_PASSWORD,))
                # Local only: tests create and drop their own databases.
                cursor.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{MYSQL_USER}'@'{host}'")
        conn.close()
        _wait(self.answers, self.name, self.log, pid)
        return True

    def stop(self) -> Optional[int]:
        """Stop it by its pid; the pid it had, or None if it was not running."""
        return _stop_pid(self.pid_path, "mariadbd")


def shared_mariadb(paths: Paths, port: int = MYSQL_PORT) -> MariaDB:
    return MariaDB("MariaDB", paths.mariadb, port, "LEDGERSYNC_MYSQL_PORT", database=MYSQL_DATABASE)


def start_mariadb(paths: Paths, port: int = MYSQL_PORT) -> None:
    """Start the shared MariaDB (a second instance too: pass another ``Paths`` root and port)."""
    server = shared_mariadb(paths, port)
    if server.start():
        _say(f"MariaDB started (pid {server.pid()}) on {HOST}:{port}, data in {server.data}")
    else:
        _say(f"MariaDB already running (pid {server.pid()}) on {HOST}:{port}")


def moto_answers() -> bool:
    """A cheap AWS call (STS GetCallerIdentity): moto's /moto-api/data.json would return
    every stored record and grows with the streams put on it."""
    import urllib.request

    request = urllib.request.Request(
        aws_endpoint() + "/", data=b"Action=GetCallerIdentity&Version=2011-06-15", method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 # moto routes by the signed service name; any credentials will do.
                 "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sts/aws4_request, "
                                  "SignedHeaders=host, Signature=0"})
    with urllib.request.urlopen(request, timeout=15) as response:  # a busy moto is slow, not down
        return response.status == 200 and b"GetCallerIdentityResponse" in response.read()


def start_moto(paths: Paths) -> None:
    pid = _read_pid(paths.moto_pid, "moto")
    if pid:
        _wait(moto_answers, "moto server", paths.moto_log, pid)
        _say(f"moto server already running (pid {pid}) at {aws_endpoint()}")
        return
    if _port_open(AWS_PORT):
        raise ServiceError(f"port {HOST}:{AWS_PORT} is taken by another process; "
                           "set LEDGERSYNC_AWS_PORT to use another one")
    ensure_moto_installed()
    pid = _spawn([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(AWS_PORT)],
                 paths.moto_log, paths.moto_pid)
    _wait(moto_answers, "moto server", paths.moto_log, pid)
    _say(f"moto server started (pid {pid}) at {aws_endpoint()}")


def _stop_pid(pid_path: str, expect: str) -> Optional[int]:
    pid = _read_pid(pid_path, expect)
    if not pid:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if os.path.exists(f"/proc/{pid}"):
        os.kill(pid, signal.SIGKILL)
    os.remove(pid_path)
    return pid


def _stop(pid_path: str, expect: str, name: str) -> None:
    pid = _stop_pid(pid_path, expect)
    _say(f"{name} stopped (pid {pid})" if pid else f"{name} not running")


def stop_mariadb(paths: Paths) -> None:
    pid = shared_mariadb(paths).stop()
    _say(f"MariaDB stopped (pid {pid})" if pid else "MariaDB not running")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@contextlib.contextmanager
def _services_lock(local_dir: str):
    """One `services up/down` at a time: two test sessions starting together must not
    both spawn a server (the loser would overwrite the pid file of the winner)."""
    os.makedirs(local_dir, exist_ok=True)
    with open(os.path.join(local_dir, "services.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(local_dir: str = DEFAULT_LOCAL_DIR) -> None:
    paths = Paths(local_dir)
    with _services_lock(local_dir):
        start_mariadb(paths)
        start_moto(paths)


def down(local_dir: str = DEFAULT_LOCAL_DIR) -> None:
    paths = Paths(local_dir)
    with _services_lock(local_dir):
        _stop(paths.moto_pid, "moto", "moto server")
        stop_mariadb(paths)


def status(local_dir: str = DEFAULT_LOCAL_DIR) -> bool:
    paths = Paths(local_dir)
    healthy = True
    for name, pid_path, expect, check, where in (
        ("MariaDB", shared_mariadb(paths).pid_path, "mariadbd", mysql_answers, f"{HOST}:{MYSQL_PORT}"),
        ("moto server", paths.moto_pid, "moto", moto_answers, aws_endpoint()),
    ):
        pid = _read_pid(pid_path, expect)
        try:
            answering = bool(pid) and check()
        except Exception:
            answering = False
        healthy &= answering
        state = "up" if answering else ("running, not answering" if pid else "down")
        print(f"{name}: {state}" + (f" (pid {pid}, {where})" if pid else ""))
    return healthy
