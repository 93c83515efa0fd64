import pytest

from job.config.properties import PropertiesError, load_properties, parse_groups


def _groups(audit=None, fmt="cloudwatch-audit"):
    groups = [{"PropertyGroupId": "source", "PropertyMap": {"stream.name": "s", "format": fmt}},
              {"PropertyGroupId": "sink", "PropertyMap": {"mysql.host": "h", "mysql.database": "d",
                                                          "mysql.user": "u", "mysql.password": "p"}}]
    if audit is not None:
        groups.append({"PropertyGroupId": "audit", "PropertyMap": audit})
    return groups


def test_cloudwatch_audit_defaults():
    props = parse_groups(_groups())
    assert props["source.format"] == "cloudwatch-audit"
    assert props["audit.replay.enabled"] is False
    assert props["audit.replay.ddl"] == frozenset()
    assert props["audit.max.out.of.orderness.ms"] == 5000 and props["audit.idle.timeout.ms"] == 3000


def test_replay_needs_a_database():
    with pytest.raises(PropertiesError, match="audit.replay.enabled=true needs audit.replay.database"):
        parse_groups(_groups({"replay.enabled": "true"}))


@pytest.mark.parametrize("key, value, message", [
    ("replay.database", "shop-replica", r"audit\.replay\.database"),
    ("replay.ddl", "DROP DATABASE", r"audit\.replay\.ddl.*unknown DDL DROP DATABASE"),
    ("replay.stop.on.error", "maybe", r"audit\.replay\.stop\.on\.error"),
    ("idle.timeout.ms", "0", r"audit\.idle\.timeout\.ms"),
    ("replay.ddll", "all", r"unknown property audit\.replay\.ddll"),
])
def test_bad_audit_settings_are_named(key, value, message):
    with pytest.raises(PropertiesError, match=message):
        parse_groups(_groups({key: value}))


def test_shipped_audit_demo_properties_are_valid():
    import os

    from job.cli.main import DEFAULT_PROPERTIES

    props = load_properties(os.path.join(os.path.dirname(DEFAULT_PROPERTIES), "audit_properties.json"))
    assert props["source.format"] == "cloudwatch-audit" and props["audit.replay.enabled"]
    assert props["audit.replay.ddl"] >= {"CREATE TABLE", "DROP TABLE"}
