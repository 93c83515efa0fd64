import pytest
from hypothesis import given, strategies as st

from connectors.formats.changes import BadChange, Piece
from job.rules.reassembly import Held, join


def pieces(data: bytes, size: int, group="g"):
    chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    return [Piece(group, i, len(chunks), chunk) for i, chunk in enumerate(chunks)]


def test_in_order_out_of_order_and_duplicated_parts_join_once():
    parts = pieces(b"abcdefghij", 3)
    held = Held()
    assert [held.add(p, 1) for p in (parts[2], parts[0], parts[2], parts[1])][:3] == [None, None, None]
    held = Held()
    outcomes = [held.add(p, 1) for p in (parts[3], parts[1], parts[1], parts[0], parts[2])]
    assert outcomes == [None, None, None, None, b"abcdefghij"]


def test_incomplete_parts_expire_and_say_what_is_missing():
    held = Held()
    parts = pieces(b"abcdefghij", 3)
    held.add(parts[0], 1_000)
    held.add(parts[2], 5_000)
    assert not held.expired(60_999, 60_000) and held.expired(61_000, 60_000)
    assert held.describe() == "2 of 4 parts arrived (missing [1, 3])"
    assert held.partial() == b"abcghi"


@pytest.mark.parametrize("second, words", [
    (Piece("g", 1, 3, b"x"), "earlier parts said 2"),
    (Piece("g", 2, 2, b"x"), "not a valid part number"),
    (Piece("g", 0, 2, b"other"), "different bytes"),
])
def test_contradicting_parts_are_refused(second, words):
    held = Held()
    held.add(Piece("g", 0, 2, b"ab"), 0)
    with pytest.raises(BadChange, match=words):
        held.add(second, 0)
    assert held.add(Piece("g", 1, 2, b"cd"), 0) == b"abcd"  # the refused part changed nothing


@given(st.binary(max_size=300), st.integers(1, 40), st.randoms(use_true_random=False), st.integers(0, 5))
def test_any_arrival_order_with_duplicates_joins_to_the_original(data, size, rng, repeats):
    parts = pieces(data, size)
    arrivals = parts + [rng.choice(parts) for _ in range(repeats)]
    rng.shuffle(arrivals)
    held = Held()
    joined = [out for out in (held.add(p, 0) for p in arrivals) if out is not None]
    assert joined and all(out == data for out in joined)


def test_parts_that_do_not_say_the_count_wait_for_one_that_does():
    # DSQL: fragments (count 0) may come before the main record, which says the count.
    held = Held()
    assert held.add(Piece("g", 2, 0, b"c"), 0) is None and held.add(Piece("g", 1, 0, b"b"), 0) is None
    assert held.describe().endswith("(the main record is missing)")
    assert held.add(Piece("g", 0, 3, b"a"), 0) == b"abc"


def test_a_count_that_contradicts_held_parts_is_refused():
    held = Held()
    held.add(Piece("g", 5, 0, b"x"), 0)
    with pytest.raises(BadChange, match=r"parts \[5\] arrived already"):
        held.add(Piece("g", 0, 3, b"a"), 0)
    held = Held()
    held.add(Piece("g", 0, 2, b"a"), 0)
    with pytest.raises(BadChange, match="beyond the record's 2 parts"):
        held.add(Piece("g", 2, 0, b"x"), 0)


def test_join_checks_every_part_is_there():
    assert join(pieces(b"abcdef", 2)[::-1]) == b"abcdef"
    with pytest.raises(BadChange, match="incomplete: 2 of 3"):
        join(pieces(b"abcdef", 2)[:2])
