"""The typed-column rules for documents whose field names or types are hostile (README
"Hostile document shapes"): each case decides a column, or no column, never an error."""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.mysql import sql
from connectors.mysql.schema import FIXED_COLUMNS, MAX_TYPED_COLUMNS, TableColumns

LONG_A = "a" * 64 + "_first"
LONG_B = "a" * 64 + "_second"


def test_fields_named_like_our_own_columns_get_no_column_in_any_case():
    schema = TableColumns()
    document = {name: 1 for name in ("document_id", "version", "deleted", "redacted", "tx_id", "tx_time",
                                     "document", "Redacted", "DOCUMENT_ID", "Tx_Time")}
    new, notes = schema.plan([document])
    assert new == {}
    assert {name for name, _ in notes} == set(document)
    assert all("fixed column" in reason for _, reason in notes)


def test_redacted_is_fixed_because_history_has_that_column():
    # Before, a field `redacted` became a typed column, which the history table already
    # has: every history row of such a document was refused ("specified twice").
    assert "redacted" in FIXED_COLUMNS and set(sql.HISTORY_COLUMNS) <= set(FIXED_COLUMNS)


def test_names_differing_only_in_case_get_one_column_for_the_first_spelling():
    schema = TableColumns()
    new, notes = schema.plan([{"Name": "x", "name": "y", "NAME": "z"}])
    assert new == {"Name": "LONGTEXT"}
    assert sorted(n for n, _ in notes) == ["NAME", "name"]
    schema.columns.update(new)
    values, _ = schema.values({"Name": "x", "name": "y"})
    assert values == ("x",)  # the column holds its own spelling's value, never the other's
    values, _ = schema.values({"name": "y"})
    assert values == (None,)


def test_an_existing_column_decides_the_spelling_in_later_batches():
    schema = TableColumns(columns={"Name": "LONGTEXT"})
    new, notes = schema.plan([{"name": "y"}])
    assert new == {} and notes and "ignoring case" in notes[0][1]


def test_names_over_64_characters_and_names_equal_in_their_first_64_get_no_column():
    schema = TableColumns()
    new, notes = schema.plan([{LONG_A: 1, LONG_B: 2, "b" * 64: 3}])
    assert new == {"b" * 64: "BIGINT"}  # exactly 64 is a valid MySQL identifier
    assert {n for n, _ in notes} == {LONG_A, LONG_B}


def test_reserved_words_are_columns_and_quoted():
    schema = TableColumns()
    new, _ = schema.plan([{"select": 1, "order": "x", "key": True, "from": 1.5, "new": 2}])
    assert new == {"select": "BIGINT", "order": "LONGTEXT", "key": "BOOLEAN", "from": "DOUBLE", "new": "BIGINT"}
    dialect = sql.Dialect(mariadb=False, version=(8, 0, 36))
    statement = sql.upsert_current(dialect, "T", 1, tuple(new))
    assert f"`select` = IF({sql.newer(dialect)}, new.`select`, `select`)" in statement
    assert "new.`new`" in statement


def test_spaces_dots_and_other_characters_get_no_column():
    schema = TableColumns()
    names = ["a b", "a.b", "a-b", "`x`", "ä", "", "a\x00b", "x;DROP TABLE t"]
    new, notes = schema.plan([{n: 1 for n in names}])
    assert new == {} and {n for n, _ in notes} == set(names)


def test_a_type_change_keeps_the_first_type_and_sets_other_values_to_null():
    schema = TableColumns()
    new, _ = schema.plan([{"amount": 17}])
    schema.columns.update(new)
    assert schema.values({"amount": 17})[0] == (17,)
    values, notes = schema.values({"amount": "seventeen"})
    assert values == (None,) and "type changed" in notes[0][1]
    assert schema.values({"amount": {"value": 17}})[0] == (None,)  # a struct: no scalar
    assert schema.values({"amount": [17]})[0] == (None,)
    assert schema.values({"amount": True})[0] == (None,)  # JSON true is not an integer
    assert schema.values({})[0] == (None,)
    # Reported once, not per row.
    assert schema.values({"amount": "again"})[1] == []


def test_a_field_first_seen_as_a_struct_gets_its_column_from_the_first_scalar():
    schema = TableColumns()
    assert schema.plan([{"x": {"a": 1}}, {"x": None}])[0] == {}
    assert schema.plan([{"x": "s"}])[0] == {"x": "LONGTEXT"}


def test_the_column_limit_leaves_later_fields_in_the_document():
    schema = TableColumns(columns={f"c{i}": "BIGINT" for i in range(MAX_TYPED_COLUMNS)})
    new, notes = schema.plan([{"one_more": 1}])
    assert new == {} and "typed columns" in notes[0][1]


_names = st.text(st.characters(codec="utf-8"), max_size=70)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                     st.text(max_size=5), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(_names, _scalars, max_size=8), max_size=6))
@example([{"0\n": False}])  # found by this test: "$" in the name check let a trailing newline through
def test_any_documents_give_safe_columns_and_values_of_the_columns_type(documents):
    schema = TableColumns()
    for document in documents:
        new, _ = schema.plan([document])
        # Every planned column is a quotable identifier, distinct ignoring case from the
        # fixed columns and from every other column: ALTER TABLE cannot fail on it.
        for name in new:
            sql.quote_identifier(name)
        schema.columns.update(new)
        lower = [n.lower() for n in schema.columns]
        assert len(lower) == len(set(lower))
        assert not set(lower) & {c.lower() for c in FIXED_COLUMNS}
        values, _ = schema.values(document)
        for (name, kind), value in zip(schema.columns.items(), values):
            assert value is None or (document.get(name) == value and kind == {
                bool: "BOOLEAN", int: "BIGINT", float: "DOUBLE", str: "LONGTEXT"}[type(value)])
