"""Run a command against LocalStack, in a private network namespace, with a MariaDB beside it.

    python tests/support/localstack_namespace.py [--install-only] [-- COMMAND ...]

``make test-localstack`` runs the integration suite this way. Outside the namespace it
installs LocalStack when missing (``localstack-core[runtime]``, which runs without Docker
only on Python 3.13, in its own venv under ``.local/localstack/``, with its Kinesis backend
``kinesis-local`` from npm, since nothing can be downloaded inside). Then, inside
``unshare --net --mount --pid``, it brings ``lo`` up, starts MariaDB and LocalStack on
127.0.0.1 and runs COMMAND with ``LEDGERSYNC_TEST_AWS_ENDPOINT`` (read by
``tests/conftest.py``) and ``LEDGERSYNC_MYSQL_PORT`` set.

Why each namespace:
- network: LocalStack's Kinesis backend listens on every interface whatever
  ``GATEWAY_LISTEN`` says; in its own namespace the only interface is a private loopback,
  and the host's shared MariaDB and moto server are out of reach, so nothing can mix up.
- mount: ``job/cli/local/services.py`` and the tests find services by pid files and unix
  sockets under ``.local/`` (a unix socket crosses network namespaces); inside, ``.local``
  is the private ``.local/localstack-ns/local``, with the installs in ``SHARED`` bound back in.
- pid: when the command ends, or this script is killed, the kernel ends everything
  started inside, so no LocalStack, kinesis-local or MariaDB is ever left behind.
"""
from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL = os.path.join(ROOT, ".local")
INSTALL_DIR = os.path.join(LOCAL, "localstack")
VENV = os.path.join(INSTALL_DIR, "venv")
VENV_PYTHON = os.path.join(VENV, "bin", "python")
FILESYSTEM_ROOT = os.path.join(INSTALL_DIR, "fs")  # LocalStack's var/lib (kinesis-local), cache, tmp
NS_STATE = os.path.join(LOCAL, "localstack-ns")
PRIVATE_LOCAL = os.path.join(NS_STATE, "local")
# What the namespace reuses from the host's .local/: the LocalStack install.
SHARED = ("localstack",)

# Measured here: newer boto3/openapi-core/cbor2/pyopenssl/twisted break this release.
REQUIREMENTS = ("localstack-core[runtime]==2026.3.0", "boto3==1.42.72", "botocore==1.42.72",
                "openapi-core==0.23.1", "cbor2<6", "pyopenssl<26", "localstack-twisted==25.5.0")
# pyenv's 3.13 by its minor version (the patch release differs between machines), then PATH.
PYTHON313_CANDIDATES = (*sorted(glob.glob("/root/.pyenv/versions/3.13.*/bin/python3"), reverse=True), "python3.13")

HOST = "127.0.0.1"
LOCALSTACK_PORT = 4566
ENDPOINT = f"http://{HOST}:{LOCALSTACK_PORT}"
MYSQL_PORT = int(os.environ.get("LEDGERSYNC_LOCALSTACK_MYSQL_PORT", "13316"))
START_TIMEOUT_S = 120.0


def say(message: str) -> None:
    print(f"localstack: {message}", flush=True)


class SetupError(RuntimeError):
    pass


# --- installing (outside, where the registries are reachable) -----------------------

def find_python313():
    for candidate in PYTHON313_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK) and subprocess.run(
                [path, "-c", "import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))"],
                capture_output=True).returncode == 0:
            return path
    return None


def _marker() -> str:
    return os.path.join(INSTALL_DIR, "installed.json")


def installed() -> bool:
    try:
        with open(_marker()) as handle:
            return json.load(handle).get("requirements") == list(REQUIREMENTS) and os.access(VENV_PYTHON, os.X_OK)
    except (OSError, ValueError):
        return False


def install() -> None:
    """LocalStack in its own Python 3.13 venv, and its Kinesis backend, unless already there."""
    if installed():
        return
    python = find_python313()
    if not python:
        raise SetupError("LocalStack runs on the host only with Python 3.13, and none was found "
                         f"(looked for {', '.join(PYTHON313_CANDIDATES)}); install a CPython 3.13 "
                         "(e.g. 'pyenv install 3.13.0') and run again")
    if not shutil.which("npm") or not shutil.which("node"):
        raise SetupError("LocalStack's Kinesis backend (kinesis-local) needs Node.js and npm: "
                         "install them with 'apt-get install -y nodejs npm'")
    started = time.monotonic()
    say(f"installing {REQUIREMENTS[0]} into {os.path.relpath(VENV, ROOT)} with {python} (about two minutes)")
    shutil.rmtree(VENV, ignore_errors=True)
    os.makedirs(INSTALL_DIR, exist_ok=True)
    subprocess.run([python, "-m", "venv", VENV], check=True)
    subprocess.run([VENV_PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([VENV_PYTHON, "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    # LocalStack installs kinesis-local from npm on the first Kinesis call; inside the
    # namespace there is no network, so it is installed here, where LocalStack will look.
    subprocess.run([VENV_PYTHON, "-c", "from localstack.services.kinesis.packages import kinesismock_package as p; "
                    "p.install(); print(p.get_installed_dir())"],
                   env=localstack_env(), check=True, stdout=subprocess.DEVNULL)
    with open(_marker(), "w") as handle:
        json.dump({"requirements": list(REQUIREMENTS), "python": python}, handle)
    say(f"installed in {time.monotonic() - started:.0f}s")


def localstack_env() -> dict:
    return {
        **os.environ,
        "GATEWAY_LISTEN": f"{HOST}:{LOCALSTACK_PORT}",
        "GATEWAY_SERVER": "hypercorn",
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": FILESYSTEM_ROOT,
        "SERVICES": "kinesis,logs,secretsmanager,sts,iam",
        "DNS_ADDRESS": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",  # no usage analytics (there is no network anyway)
    }


# --- the namespace ------------------------------------------------------------------

def enter_namespace(command: list) -> int:
    """Runs this script again as PID 1 of new network, mount and pid namespaces."""
    if not shutil.which("unshare"):
        raise SetupError("'unshare' (util-linux) is missing: install it with 'apt-get install -y util-linux'")
    flags = ["--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"]
    if os.geteuid() != 0:
        flags.append("--map-root-user")  # a user namespace makes the others possible without root
    inner = ["unshare", *flags, "--", sys.executable, os.path.abspath(__file__), "--inside", "--", *command]
    # One run at a time: a second one would share the namespace's MariaDB data directory.
    os.makedirs(NS_STATE, exist_ok=True)
    lock = open(os.path.join(NS_STATE, "run.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("another LocalStack run (make test-localstack) holds .local/localstack-ns/; waiting for it")
        fcntl.flock(lock, fcntl.LOCK_EX)
    process = subprocess.Popen(inner)
    try:
        return process.wait()
    except KeyboardInterrupt:  # unshare --kill-child takes everything inside down with it
        process.send_signal(signal.SIGINT)
        return process.wait()


def loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _bind(source: str, target: str, recursive: bool = False) -> None:
    subprocess.run(["mount", "--rbind" if recursive else "--bind", source, target], check=True)


def private_local_dir() -> None:
    """Inside the mount namespace, .local is .local/localstack-ns/local plus the SHARED installs."""
    os.makedirs(PRIVATE_LOCAL, exist_ok=True)
    for name in SHARED:
        source, target = os.path.join(LOCAL, name), os.path.join(PRIVATE_LOCAL, name)
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        elif os.path.isfile(source):
            open(target, "a").close()
        else:
            continue
        _bind(source, target)
    _bind(PRIVATE_LOCAL, LOCAL, recursive=True)


def _wait(check, name: str, process: subprocess.Popen, log_path: str, timeout_s: float = START_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not answering yet
            last = exc
        if process.poll() is not None:
            raise SetupError(f"{name} exited during start-up ({process.returncode}); see {log_path}")
        time.sleep(0.2)
    raise SetupError(f"{name} did not answer within {timeout_s:.0f}s ({last}); see {log_path}")


def start_localstack() -> subprocess.Popen:
    log_dir = os.path.join(LOCAL, "localstack-run")
    os.makedirs(log_dir, exist_ok=True)
    log_path = os.path.join(log_dir, "localstack.log")
    shown_log = os.path.join(os.path.relpath(PRIVATE_LOCAL, ROOT), "localstack-run", "localstack.log")
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen([VENV_PYTHON, "-m", "localstack.runtime.main"], env=localstack_env(),
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)

    def healthy():
        with urllib.request.urlopen(f"{ENDPOINT}/_localstack/health", timeout=2) as response:
            services = json.load(response).get("services", {})
        return all(services.get(s) in ("available", "running") for s in ("kinesis", "logs", "secretsmanager"))

    _wait(healthy, "LocalStack", process, shown_log)
    ready = time.monotonic()
    # kinesis-local starts on the first Kinesis call: start it now, so no test pays for it.
    import boto3

    kinesis = boto3.client("kinesis", endpoint_url=ENDPOINT, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    _wait(lambda: kinesis.list_streams(Limit=1) is not None, "LocalStack Kinesis", process, shown_log)
    say(f"LocalStack {ENDPOINT} ready in {ready - started:.1f}s, its Kinesis backend in "
        f"{time.monotonic() - ready:.1f}s more (log: {shown_log})")
    return process


def stop(process: subprocess.Popen, name: str) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    say(f"{name} stopped")


def inside(command: list) -> int:
    # PID 1 ignores SIGTERM unless it handles it; turn it into a clean shutdown.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    loopback_up()
    private_local_dir()
    say(f"inside the namespace .local/ is {os.path.relpath(PRIVATE_LOCAL, ROOT)}/ (MariaDB on {HOST}:{MYSQL_PORT})")
    os.environ["LEDGERSYNC_MYSQL_PORT"] = str(MYSQL_PORT)
    sys.path.insert(0, ROOT)
    from job.cli.local import services as local_services  # reads LEDGERSYNC_MYSQL_PORT when imported

    paths = local_services.Paths(LOCAL)
    localstack = None
    try:
        started = time.monotonic()
        local_services.start_mariadb(paths, MYSQL_PORT)
        say(f"MariaDB ready in {time.monotonic() - started:.1f}s")
        localstack = start_localstack()
        env = {**os.environ, "LEDGERSYNC_TEST_AWS_ENDPOINT": ENDPOINT, "LEDGERSYNC_MYSQL_PORT": str(MYSQL_PORT),
               # Code that falls back to the local default endpoint lands on LocalStack too.
               "LEDGERSYNC_AWS_PORT": str(LOCALSTACK_PORT),
               # Tests marked needs_network (they install from PyPI) are skipped, with that reason.
               "LEDGERSYNC_TEST_OFFLINE": "1"}
        if not command:
            say("LocalStack and MariaDB are up; no command given")
            return 0
        say(f"running: {' '.join(command)}")
        started = time.monotonic()
        code = subprocess.run(command, env=env, cwd=ROOT).returncode
        say(f"command ended ({code}) after {time.monotonic() - started:.0f}s")
        return code
    finally:
        if localstack is not None:
            stop(localstack, "LocalStack")
        local_services.stop_mariadb(paths)


def main(argv: list) -> int:
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    options = argv[:argv.index("--")] if "--" in argv else argv
    unknown = [o for o in options if o not in ("--inside", "--install-only")]
    if unknown:
        print(__doc__, file=sys.stderr)
        print(f"unknown option(s): {' '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        if "--inside" in options:
            try:
                return inside(command)
            except KeyboardInterrupt:
                return 130
        install()
        if "--install-only" in options:
            return 0
        return enter_namespace(command)
    except (SetupError, subprocess.CalledProcessError) as exc:
        print(f"localstack: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
