"""TLS to MySQL: on by default away from loopback, in the mysql client's --ssl-mode terms."""
import pytest

from connectors.mysql.client import resolve_ssl_mode, ssl_options
from job.config.properties import PropertiesError, parse_groups
from job.config.settings import mysql_settings


def _props(sink: dict):
    return parse_groups([
        {"PropertyGroupId": "source", "PropertyMap": {"stream.name": "s"}},
        {"PropertyGroupId": "sink", "PropertyMap": {"mysql.database": "d", "mysql.user": "u",
                                                   "mysql.password": "p", **sink}},
    ])


def test_auto_is_off_on_loopback_and_on_elsewhere():
    assert mysql_settings(_props({"mysql.host": "127.0.0.1"})).ssl_mode == "DISABLED"
    assert mysql_settings(_props({"mysql.host": "localhost"})).ssl_mode == "DISABLED"
    assert mysql_settings(_props({"mysql.host": "db.cluster-x.eu-west-1.rds.amazonaws.com"})).ssl_mode == "REQUIRED"
    with_ca = _props({"mysql.host": "db.example", "mysql.ssl.ca": "/etc/rds.pem"})
    assert mysql_settings(with_ca).ssl_mode == "VERIFY_IDENTITY"
    assert mysql_settings(_props({"mysql.host": "db.example", "mysql.ssl.mode": "DISABLED"})).ssl_mode == "DISABLED"


def test_pymysql_options_per_mode(tmp_path):
    import ssl

    assert ssl_options("DISABLED", None) == {"ssl_disabled": True}  # pymysql would otherwise prefer TLS
    required = ssl_options("REQUIRED", None)["ssl"]  # encrypted, not verified
    assert required.verify_mode == ssl.CERT_NONE and not required.check_hostname
    ca = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    verify_ca = ssl_options("VERIFY_CA", ca)["ssl"]
    assert verify_ca.verify_mode == ssl.CERT_REQUIRED and not verify_ca.check_hostname
    identity = ssl_options("VERIFY_IDENTITY", ca)["ssl"]
    assert identity.verify_mode == ssl.CERT_REQUIRED and identity.check_hostname
    assert resolve_ssl_mode("AUTO", "127.0.0.2", "/ca.pem") == "DISABLED"


def test_verifying_without_a_ca_is_refused_at_start_up():
    with pytest.raises(PropertiesError, match="sink.mysql.ssl.mode=VERIFY_IDENTITY needs sink.mysql.ssl.ca"):
        _props({"mysql.host": "db.example", "mysql.ssl.mode": "VERIFY_IDENTITY"})
    with pytest.raises(PropertiesError, match="sink.mysql.ssl.mode"):
        _props({"mysql.host": "db.example", "mysql.ssl.mode": "PREFERRED"})
