"""TLS to MySQL against a real server: a MariaDB of the test's own, started with a
certificate the test makes and `require_secure_transport`, so a connection without TLS is
refused. The job replicates into it with sink.mysql.ssl.mode=VERIFY_IDENTITY; a CA that did
not sign the server's certificate is refused at pre-flight, naming the cause."""
from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys

import pymysql
import pytest

from connectors.formats.qldb import decode_record
from connectors.mysql.client import MySqlSettings, connect
from job.cli.local import services
from job.cli.tools.simulate.qldb import WorkloadSpec, encode, simulate_qldb
from tests.conftest import ROOT, run_job, write_properties
from tests.support.oracle import actual_tables, diff, expected_tables


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _openssl(*args, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(directory) -> dict:
    """A CA, a server certificate it signs for 127.0.0.1, and an unrelated CA."""
    d = str(directory)
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=ledgersync test {ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
             "-out", "server.csr", cwd=d)
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    return {name: str(directory / f"{name}.pem") for name in ("ca", "other-ca", "server")} | \
        {"server-key": str(directory / "server.key")}


@pytest.fixture
def tls_mariadb(tmp_path):
    certs = _certificates(tmp_path)
    server = services.MariaDB("TLS MariaDB (test)", str(tmp_path / "mariadb"), _free_port(), "(test)",
                              buffer_pool="64M", max_connections=30, database="replica",
                              extra_args=(f"--ssl-ca={certs['ca']}", f"--ssl-cert={certs['server']}",
                                          f"--ssl-key={certs['server-key']}", "--require-secure-transport=ON"))
    server.start()
    try:
        yield server, certs
    finally:
        server.stop()


def test_the_job_writes_over_verified_tls_and_a_wrong_ca_is_refused(tmp_path, tls_mariadb, kinesis, stream_name):
    server, certs = tls_mariadb
    base = MySqlSettings(host="127.0.0.1", port=server.port, database="replica", user=services.MYSQL_USER,
                         password=services.MYSQL_PASSWORD, connect_timeout=5)
    with pytest.raises(pymysql.err.OperationalError):  # require_secure_transport: no TLS, no entry
        connect(dataclasses.replace(base, ssl_mode="DISABLED")).close()
    conn = connect(dataclasses.replace(base, ssl_mode="VERIFY_IDENTITY", ssl_ca=certs["ca"]))
    with conn.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cursor.fetchone()[1]  # a cipher: the session is encrypted
    conn.close()

    revisions = simulate_qldb(kinesis, stream_name, WorkloadSpec(tables=2, documents=30, revisions=3, seed=9),
                              shards=1, out=lambda *_: None)
    tls = {"mysql.port": str(server.port), "mysql.ssl.mode": "VERIFY_IDENTITY", "mysql.ssl.ca": certs["ca"]}
    props = write_properties(tmp_path, stream=stream_name, database="replica", sink=tls)
    run_job(props, extra_args=["--checkpoint-dir", str(tmp_path / "checkpoints")])
    expected = expected_tables([decode_record(encode(r)).revision for r in revisions], history=False)
    check = connect(dataclasses.replace(base, ssl_mode="VERIFY_IDENTITY", ssl_ca=certs["ca"]))
    try:
        assert diff(expected, actual_tables(check, expected)) == []
    finally:
        check.close()

    (tmp_path / "wrong").mkdir()
    wrong = write_properties(tmp_path / "wrong", stream=stream_name, database="replica",
                             sink={**tls, "mysql.ssl.ca": certs["other-ca"]})
    refused = subprocess.run([sys.executable, "-m", "job.cli", "run", "--properties", wrong, "--until-caught-up"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "certificate verify failed" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
