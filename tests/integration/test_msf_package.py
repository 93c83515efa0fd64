"""Smoke test of the MSF package: the zip, unpacked into a clean directory, run by a fresh
Python 3.11 that has nothing but apache-flink installed (as on Amazon Managed Service for
Apache Flink), against the local services, until everything is in MySQL.

Two ways in, both from the unpacked files only:
- the main file run by that Python with PYTHONPATH set to the pyFiles folder (PyFlink's
  local mini-cluster): the packaged code and dependencies replicate a stream, and the
  tooling (CLI, local runner, benchmark) is not in the package;
- the zip's main file started the way MSF starts it, by Flink's own ``flink run -py MAIN
  -pyfs python-packages/`` with the Python workers in separate processes, so nothing the
  workers import can come from anywhere but what the package ships.
"""
from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from connectors.formats.qldb import decode_record
from job.cli.tools import package
from job.cli.tools.simulate.qldb import WorkloadSpec, encode, simulate_qldb
from tests.conftest import ROOT, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables

# Building the zip and the runtime venv asks PyPI; the moto run covers this module.
pytestmark = pytest.mark.needs_network(reason="`ledgersync package` and the runtime venv install from PyPI")
RUNTIME_VENV = os.path.join(ROOT, ".local", "msf-runtime-venv")
SPEC = WorkloadSpec(tables=2, documents=40, revisions=3, duplicates=0.2, shuffle=True, seed=11)


def find_python311():
    """A CPython 3.11 interpreter (what MSF's FLINK-1_20 runtime runs), or None."""
    candidates = [os.environ.get("LEDGERSYNC_PYTHON311"), shutil.which("python3.11"),
                  *sorted(glob.glob("/root/.pyenv/versions/3.11*/bin/python3.11"), reverse=True),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.11*/bin/python3.11")), reverse=True),
                  "/usr/bin/python3.11", "/usr/local/bin/python3.11"]
    if sys.version_info[:2] == (3, 11):
        candidates.append(sys.executable)
    for candidate in candidates:
        if not candidate or not os.path.exists(candidate):
            continue
        probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2] == (3, 11))"],
                               capture_output=True, text=True)
        if probe.stdout.strip() == "True":
            return candidate
    return None


@pytest.fixture(scope="module")
def runtime_python():
    """A venv with only apache-flink (the project's pin) in it, cached under .local/."""
    base = find_python311()
    if base is None:
        pytest.skip("no CPython 3.11 found (python3.11 on PATH, pyenv, or LEDGERSYNC_PYTHON311): "
                    "the MSF package targets Python 3.11 and can only be smoke-tested with it")
    pin = package.runtime_pin()
    marker = os.path.join(RUNTIME_VENV, f".apache-flink-{pin}")
    python = os.path.join(RUNTIME_VENV, "bin", "python")
    os.makedirs(os.path.dirname(RUNTIME_VENV), exist_ok=True)
    with open(RUNTIME_VENV + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building it right now
        if not os.path.exists(marker):
            shutil.rmtree(RUNTIME_VENV, ignore_errors=True)
            subprocess.run([base, "-m", "venv", RUNTIME_VENV], check=True)
            subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "--only-binary", "apache-beam", f"apache-flink=={pin}"], check=True)
            open(marker, "w").close()
    return python


@pytest.fixture(scope="module")
def msf_zip(tmp_path_factory):
    """`ledgersync package`, run as a user runs it."""
    out = tmp_path_factory.mktemp("dist") / "ledgersync-msf.zip"
    result = subprocess.run([sys.executable, "-m", "job.cli", "package", "--output", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote {out}" in result.stdout
    return str(out)


@pytest.fixture
def unpacked(tmp_path, msf_zip):
    """The zip unpacked into a clean directory, as MSF unpacks it."""
    app = tmp_path / "app"
    with zipfile.ZipFile(msf_zip) as archive:
        archive.extractall(app)
    return app


def _clean_env(**extra) -> dict:
    # Nothing from this project's own venv or tree may leak into the runs below.
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "FLINK_CONF_DIR", "_python_worker_execution_mode")}
    env.update(extra)
    return env


def _workload(kinesis, stream_name, tmp_path, mysql_database):
    revisions = simulate_qldb(kinesis, stream_name, SPEC, shards=2, out=lambda *_: None)
    etc = tmp_path / "etc-flink"  # stands in for /etc/flink/ on MSF
    etc.mkdir()
    props = write_properties(etc, stream=stream_name, database=mysql_database)
    with open(props) as handle:  # on MSF the file also holds the service's own run options group
        groups = json.load(handle)
    with open(props, "w") as handle:
        json.dump([{"PropertyGroupId": package.RUN_OPTIONS_GROUP, "PropertyMap": package.run_options()}, *groups],
                  handle, indent=2)
    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=False)
    return props, expected


def test_runtime_venv_has_only_pyflink(runtime_python):
    probe = subprocess.run([runtime_python, "-c", "import importlib.util as u; import pyflink; "
                            "print([m for m in ('boto3', 'pymysql', 'amazon', 'aws_kinesis_agg', 'job') "
                            "if u.find_spec(m)])"],
                           capture_output=True, text=True, env=_clean_env(), cwd="/")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_unpacked_code_replicates_a_stream(runtime_python, unpacked, tmp_path, kinesis, stream_name,
                                           mysql_database, mysql_conn):
    """The zip's main file run by plain Python (PyFlink's local mini-cluster): everything the
    job imports comes from the unpacked files; the tooling (CLI, local runner) is not there."""
    props, expected = _workload(kinesis, stream_name, tmp_path, mysql_database)
    deps = str(unpacked / package.DEPS_DIR)
    env = _clean_env(PYTHONPATH=deps)
    where = subprocess.run([runtime_python, "-c", "import job, connectors, boto3, pymysql, amazon.ion, "
                            "aws_kinesis_agg; print(job.__file__, boto3.__file__, pymysql.__file__)"],
                           cwd=unpacked, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(str(unpacked)) for path in where.stdout.split()), where.stdout
    tooling = subprocess.run([runtime_python, "-c", "import job.cli.main"], cwd=unpacked, env=env,
                             capture_output=True, text=True)
    assert tooling.returncode != 0 and "No module named 'job.cli" in tooling.stderr, tooling.stderr

    log = open(tmp_path / "main.log", "w+")
    process = subprocess.Popen([runtime_python, str(unpacked / package.MAIN_FILE), "--properties", props],
                               cwd=unpacked, env=dict(env, TMPDIR=str(tmp_path), JVM_ARGS=_jvm_tmp(tmp_path)),
                               stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    _replicates(process, log, expected, mysql_conn)


def _replicates(process, log, expected: dict, mysql_conn, timeout_s: float = 300) -> str:
    """Wait until MySQL equals ``expected`` while the (unbounded) job runs; then stop it."""
    try:
        deadline = time.monotonic() + timeout_s
        problems = ["not started"]
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(2)
            try:
                problems = diff(expected, actual_tables(mysql_conn, expected))
            except Exception as exc:  # tables not created yet
                problems = [str(exc)]
            if not problems:
                break
        still_running = process.poll() is None
    finally:
        output = _stop(process, log)
        log.close()
    assert still_running, f"the job ended (exit {process.returncode}) before it caught up:\n{output[-6000:]}"
    assert problems == [], "\n".join(problems) + "\n" + output[-6000:]
    return output


def _jvm_tmp(tmp_path) -> str:
    """Java ignores TMPDIR: without this the mini-cluster's RPC jar and blob store (about
    85 MB a run) stay in /tmp whenever the JVM is stopped by a signal, as here."""
    return f"-Djava.io.tmpdir={tmp_path}"


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _flink_conf_dir(tmp_path, runtime_python) -> str:
    """What MSF supplies around the main file: Flink's configuration. Here: Flink's own
    defaults (JVM options included) with the local mini-cluster settings on top."""
    import yaml

    from job.cli.local.driver import read_flink_conf

    conf = tmp_path / "flink-conf"
    conf.mkdir()
    pyflink_conf = os.path.join(os.path.dirname(os.path.dirname(runtime_python)), "lib", "python3.11",
                                "site-packages", "pyflink", "conf")
    for name in os.listdir(pyflink_conf):
        if name.startswith("log4j"):
            shutil.copy(os.path.join(pyflink_conf, name), conf / name)
    with open(os.path.join(pyflink_conf, "config.yaml")) as handle:
        settings = _flatten(yaml.safe_load(handle))
    settings.update(read_flink_conf(os.path.join(ROOT, "flink-conf", "config.yaml")))
    settings.update({"execution.checkpointing.dir": f"file://{tmp_path / 'checkpoints'}",
                     "python.executable": runtime_python, "python.client.executable": runtime_python})
    (conf / "config.yaml").write_text("".join(f"{key}: {json.dumps(str(value))}\n" for key, value in settings.items()))
    return str(conf)


def _stop(process, log) -> str:
    """End the run (the job is unbounded, like on MSF) with everything it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    log.seek(0)
    return log.read()


def test_main_file_runs_the_job_as_msf_starts_it(runtime_python, unpacked, tmp_path, kinesis, stream_name,
                                                 mysql_database, mysql_conn):
    props, expected = _workload(kinesis, stream_name, tmp_path, mysql_database)
    flink = os.path.join(os.path.dirname(os.path.dirname(runtime_python)), "lib", "python3.11",
                         "site-packages", "pyflink", "bin", "flink")
    options = package.run_options()
    env = _clean_env(FLINK_CONF_DIR=_flink_conf_dir(tmp_path, runtime_python),
                     PATH=os.path.dirname(runtime_python) + os.pathsep + os.environ.get("PATH", ""),
                     # Python workers in their own processes, as on a cluster (not inside the driver).
                     _python_worker_execution_mode="process",
                     TMPDIR=str(tmp_path),  # where msf_main stages the code for the workers
                     JVM_ARGS=_jvm_tmp(tmp_path))
    log = open(tmp_path / "flink-run.log", "w+")
    process = subprocess.Popen(
        [flink, "run", "--target", "local", "--python", str(unpacked / options["python"]),
         "--pyFiles", str(unpacked / options["pyFiles"]), "--jarfile", str(unpacked / options["jarfile"]),
         "--properties", props],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    output = _replicates(process, log, expected, mysql_conn)
    assert "ledgersync: properties from " + props in output  # logged by job/msf_main.py
