"""The typed rows between the pipeline's stages: every item survives the trip to a row and back."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, strategies as st

from connectors.dead_letters import DeadLetter
from connectors.formats.qldb import Revision
from connectors.rows.row_images import CURRENT, HISTORY, RowImage, image_of
from job.rows.item_rows import (DEAD, GAP, ITEM_NAMES, ITEM_ROW, KIND, REVISION, SLOT, as_image, as_writer_item,
                           dead_letter_row, gap_row, image_row, position_slot, revision_row, writer_slot)
from job.rules.ordering import Gap
from job.pipeline.assembly import rows_to_write_sql

SLOTS = 4


def revision(**overrides) -> Revision:
    fields = dict(table="Orders", document_id="doc-1", version=3, tx_id="tx-9",
                  tx_time=dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc),
                  data={"amount": "12.50", "nested": {"a": [1, 2]}, "name": "Zoë"})
    fields.update(overrides)
    return Revision(**fields)


def test_the_row_type_names_every_field_once():
    assert len(ITEM_NAMES) == len(set(ITEM_NAMES))
    assert ITEM_ROW.get_field_names() == ITEM_NAMES


@pytest.mark.parametrize("rev", [
    revision(),
    revision(data=None, deleted=True),
    revision(data=None, redacted=True),
    revision(tx_time=None),
])
def test_a_revision_row_becomes_the_same_images_as_the_revision(rev):
    row = revision_row(rev, SLOTS)
    assert row[KIND] == REVISION
    assert row[SLOT] == writer_slot(rev.table, rev.document_id, SLOTS)
    assert as_image(row, CURRENT) == image_of(rev, CURRENT)
    assert as_image(row, HISTORY) == image_of(rev, HISTORY)


@given(kind=st.sampled_from([CURRENT, HISTORY]), version=st.integers(0, 2**63 - 1),
       document=st.none() | st.text(), deleted=st.booleans(), redacted=st.booleans(),
       tx_time_us=st.none() | st.integers(0, 2**62))
def test_row_images_round_trip(kind, version, document, deleted, redacted, tx_time_us):
    image = RowImage(kind, "T", "d", version, "tx", tx_time_us, document, deleted, redacted)
    row = image_row(image, SLOTS)
    assert as_writer_item(row) == image
    assert row[SLOT] == writer_slot("T", "d", SLOTS)


def test_dead_letters_round_trip_and_go_by_position():
    letter = DeadLetter("s", "shardId-1", "4960", "decode", "not Ion", b"\x00\xff", 7)
    row = dead_letter_row(letter, SLOTS)
    assert row[KIND] == DEAD
    assert row[SLOT] == position_slot("s", "shardId-1", "4960", SLOTS)
    assert as_writer_item(row) == letter


def test_gaps_round_trip():
    gap = Gap("T", "d", 4, 6, "skip")
    row = gap_row(gap, SLOTS)
    assert row[KIND] == GAP
    assert as_writer_item(row) == gap


def test_the_writer_refuses_a_revision_row_it_cannot_write():
    with pytest.raises(ValueError, match="kind 'revision'"):
        as_writer_item(revision_row(revision(), SLOTS))


@given(st.text(), st.text(), st.integers(1, 64))
def test_slots_are_in_range_and_stable(table, document_id, slots):
    slot = writer_slot(table, document_id, slots)
    assert 0 <= slot < slots
    assert slot == writer_slot(table, document_id, slots)


def test_the_sql_selects_every_field_in_order_for_each_part():
    with_history = rows_to_write_sql(history=True)
    without = rows_to_write_sql(history=False)
    assert with_history.count("UNION ALL") == 2 and without.count("UNION ALL") == 1
    # (slot, item): the writer's key first, then every field in order (assembly.keyed_by_slot)
    outer, inner = with_history.split(" FROM (\n", 1)
    assert outer == "SELECT `slot`, ROW(" + ", ".join(f"`{n}`" for n in ITEM_NAMES) + ") AS item"
    for part in inner.split("UNION ALL"):
        select = part.split(" FROM ")[0]
        assert select.count(",") == len(ITEM_NAMES) - 1
    # newest by version, then by the tie (tx_id) a keyed source may need
    assert "ROW_NUMBER() OVER (PARTITION BY tbl, document_id ORDER BY version DESC, tx_id DESC)" in with_history
    assert "NOT redacted" in with_history  # redactions never reach the current view
