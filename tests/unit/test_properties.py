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
