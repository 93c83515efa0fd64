import pytest

from connectors.mysql import sql
def test_quote_identifier_refuses_anything_unsafe():
    assert sql.quote_identifier("Person_1") == "`Person_1`"
    for bad in ("", "a`b", "a b", "x;DROP", "é", "a" * 65):
        with pytest.raises(sql.BadIdentifier):
            sql.quote_identifier(bad)


def test_table_identifier_sanitises_and_fits_history_suffix():
    assert sql.table_identifier("Person") == "Person"
    assert sql.table_identifier("my-table.v2") == "my_table_v2"
    long_a, long_b = "x" * 100 + "a", "x" * 100 + "b"
    assert len(sql.table_identifier(long_a) + sql.HISTORY_SUFFIX) <= sql.MAX_IDENTIFIER
    assert sql.table_identifier(long_a) != sql.table_identifier(long_b)
    assert not sql.table_identifier("_ledgersync_x").startswith("_ledgersync_")


def test_dialect_from_version():
    maria = sql.Dialect.from_version_string("10.11.19-MariaDB-0+deb12u1")
    assert maria.mariadb and not maria.row_alias
    mysql8 = sql.Dialect.from_version_string("8.0.39")
    assert not mysql8.mariadb and mysql8.row_alias
    assert not sql.Dialect.from_version_string("8.0.18").row_alias


@pytest.mark.parametrize("version", ["10.11.19-MariaDB", "8.0.39"])
def test_upsert_assigns_version_last_and_binds_every_value(version):
    dialect = sql.Dialect.from_version_string(version)
    text = sql.upsert_current(dialect, "Person", 2)
    assert text.count("%s") == 2 * len(sql.CURRENT_COLUMNS)
    updates = text.split("ON DUPLICATE KEY UPDATE", 1)[1]
    assignments = [part.split(" = ", 1)[0].strip() for part in updates.split("), ") if " = IF(" in part]
    # tx_id and version last, in that order: every other column tests the old pair
    assert assignments[-2:] == ["`tx_id`", "`version`"] and assignments[0] == "`tx_time`"
    assert updates.rstrip().endswith("`version`)")
    assert updates.count(" > `version`") == len(sql.CURRENT_COLUMNS) - 1
    assert ("AS new" in text) == dialect.row_alias
