import json

import pytest

from job.config.properties import PropertiesError, load_properties, parse_groups


def _groups(**maps):
    return [{"PropertyGroupId": g, "PropertyMap": m} for g, m in maps.items()]


BASE = dict(source={"stream.name": "s"},
            sink={"mysql.host": "h", "mysql.database": "d", "mysql.user": "u", "mysql.password": "p"})


def test_defaults_are_filled_in():
    props = parse_groups(_groups(**BASE))
    assert props["source.initial.position"] == "TRIM_HORIZON"
    assert props["sink.mysql.port"] == 3306
    assert props["replication.history"] is False
    assert props["sink.batch.max.rows"] == 1000


def test_unknown_group_is_named():
    with pytest.raises(PropertiesError, match="unknown property group 'sourc'"):
        parse_groups(_groups(**BASE, sourc={}))


def test_unknown_key_is_named():
    with pytest.raises(PropertiesError, match=r"unknown property sink\.batch\.max\.row "):
        parse_groups(_groups(source=BASE["source"], sink={**BASE["sink"], "batch.max.row": "5"}))


def test_missing_required_key_is_named():
    with pytest.raises(PropertiesError, match=r"missing required property source\.stream\.name"):
        parse_groups(_groups(source={}, sink=BASE["sink"]))


def test_bad_value_names_key_and_value():
    with pytest.raises(PropertiesError, match=r"bad value 'x' for sink\.mysql\.port"):
        parse_groups(_groups(source=BASE["source"], sink={**BASE["sink"], "mysql.port": "x"}))


def test_at_timestamp_needs_a_timestamp():
    with pytest.raises(PropertiesError, match="initial.timestamp"):
        parse_groups(_groups(source={**BASE["source"], "initial.position": "AT_TIMESTAMP"}, sink=BASE["sink"]))


def test_password_or_secret_required():
    sink = {k: v for k, v in BASE["sink"].items() if k != "mysql.password"}
    with pytest.raises(PropertiesError, match="mysql.password or sink.mysql.secret.arn"):
        parse_groups(_groups(source=BASE["source"], sink=sink))


def test_load_properties_reads_msf_format(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_groups(**BASE)))
    assert load_properties(str(path))["source.stream.name"] == "s"


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PropertiesError, match="not found"):
        load_properties(str(tmp_path / "nope.json"))


def test_shipped_local_properties_are_valid():
    from job.cli.main import DEFAULT_PROPERTIES

    assert load_properties(DEFAULT_PROPERTIES)["source.stream.name"] == "ledgersync-demo"


def _with_sink(**sink):
    return _groups(source=BASE["source"], sink={**BASE["sink"], **sink})


def test_values_name_environment_variables():
    environ = {"DB_PORT": "23306", "DB_PASSWORD": "s3cret", "EMPTY": ""}
    props = parse_groups(_with_sink(**{"mysql.port": "${DB_PORT}", "mysql.password": "${DB_PASSWORD}",
                                       "mysql.host": "db-${UNSET:-one}.${EMPTY:-local}"}), environ=environ)
    assert props["sink.mysql.port"] == 23306
    assert props["sink.mysql.password"] == "s3cret"
    assert props["sink.mysql.host"] == "db-one.local"
    # $${ is a literal ${; a lone $ is left alone (passwords have them)
    props = parse_groups(_with_sink(**{"mysql.password": "a$b$${X}"}), environ={})
    assert props["sink.mysql.password"] == "a$b${X}"


def test_an_unset_variable_without_a_default_names_the_key_and_the_variable():
    with pytest.raises(PropertiesError, match=r"sink\.mysql\.port names \$\{DB_PORT\}, and DB_PORT is not set"):
        parse_groups(_with_sink(**{"mysql.port": "${DB_PORT}"}), environ={})


def test_the_demo_properties_follow_the_service_port_variables(monkeypatch):
    import os

    from job.cli.args import DEFAULT_PROPERTIES

    folder = os.path.dirname(DEFAULT_PROPERTIES)
    names = sorted(n for n in os.listdir(folder) if n.endswith("_properties.json"))
    assert len(names) == 4, names
    monkeypatch.setenv("LEDGERSYNC_MYSQL_PORT", "53306")
    monkeypatch.setenv("LEDGERSYNC_AWS_PORT", "55000")
    for name in names:
        props = load_properties(os.path.join(folder, name))
        assert props["sink.mysql.port"] == 53306, name
        assert props["source.aws.endpoint"] == "http://127.0.0.1:55000", name
    monkeypatch.delenv("LEDGERSYNC_MYSQL_PORT")
    monkeypatch.delenv("LEDGERSYNC_AWS_PORT")
    for name in names:
        props = load_properties(os.path.join(folder, name))
        assert (props["sink.mysql.port"], props["source.aws.endpoint"]) == (13306, "http://127.0.0.1:15000"), name
