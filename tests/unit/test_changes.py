import pytest

from connectors.rows.limits import MAX_ID_CHARS
from connectors.formats.changes import BadChange, RowChange, canonical_key, check_key


def test_canonical_key_keeps_types_and_order():
    assert canonical_key((1001, 42)) == "[1001,42]"
    assert canonical_key(("1001",)) == '["1001"]'
    assert canonical_key((1,)) != canonical_key(("1",))
    assert canonical_key(("é",)) == '["é"]'


def test_canonical_key_too_long_is_a_bad_change():
    with pytest.raises(BadChange, match="at most 128"):
        canonical_key(("x" * MAX_ID_CHARS,))


def test_document_id_follows_the_key():
    change = RowChange("orders", ("order_id", "item_id"), (7, 3), 10, "tx", None, {"order_id": 7, "item_id": 3})
    assert change.document_id == "[7,3]"


@pytest.mark.parametrize("columns, key, words", [
    ((), (), "no key columns"),
    (("a", "b"), (1,), "1 values for 2"),
    (("a",), (None,), "null or missing"),
    (("a",), ({"x": 1},), "cannot be a key"),
    (("a",), (1.5,), "cannot be a key"),
])
def test_check_key_refuses(columns, key, words):
    with pytest.raises(BadChange, match=words):
        check_key("t", columns, key)
