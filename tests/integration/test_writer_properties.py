"""Property tests of the shipped writer (``MySqlWriter`` and its SQL) against the real
MariaDB: random histories, delivered at least once in any order and cut into batches at
random points (as the Flink writer flushes), must leave the current view and history
equal to the oracle's, row by row.

- ``order=false``: the writer gets every current and history row image, duplicated and
  shuffled: the most Flink's Top-1 can send it after restarts that lost its state (it
  sends a subset: the newest revision per document and some older ones).
- ``order=true``: ``OrderedDocument`` (job/rules/ordering.py) in front of the writer, with
  restarts from a checkpoint or from nothing but MySQL (``StoredVersions``), as
  job/functions/order.py runs them; a crash loses what the writer had not flushed.
- keyed sources (DSQL CDC, DynamoDB): equal versions with other ties, deletes (some by
  TTL) and re-inserts, against job/cli/tools/simulate/changes.py's oracle.

One database per test; its tables are emptied between examples (the writer keeps its
picture of their columns, as it does between batches).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.formats.changes import canonical_key
from connectors.formats.qldb import Revision
from connectors.mysql import sql
from connectors.mysql.lookup import StoredVersions
from connectors.rows.row_images import document_json, image_of
from connectors.mysql.writer import CURRENT, HISTORY, MySqlWriter, RowImage
from job.cli.tools.simulate.changes import SimChange, expected_tables as expected_keyed_tables
from job.rules.ordering import OrderedDocument
from tests.integration.test_mysql_writer import settings_for
from tests.support.oracle import actual_keyed_tables, actual_tables, diff, expected_tables

# The writer is shared by the examples of one test (a fixture, not made per example).
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
T0 = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)
TIMEOUT_MS = 1000


def _tables(history: bool) -> tuple:
    # Other names with history on: a table the history-off writer made has no history table.
    return ("Person_h", "Vehicle_h") if history else ("Person", "Vehicle")


@st.composite
def histories(draw, history: bool, ties: bool):
    """QLDB revisions of a few documents in two tables: versions from 0, some ending in a
    delete, some older versions redacted (same tx_id and time: a redaction is that revision
    with its data gone). A tx_id is in no order with the version (as in QLDB), so a
    statement that compares or moves one without the other shows. ``ties``: some versions get a second revision with another tx_id,
    below or above the first, live or a delete; QLDB never makes one (history keys a QLDB
    revision by version alone, which would keep whichever came first), so only there."""
    revisions = []
    tables = _tables(history)
    for d in range(draw(st.integers(1, 4))):
        table, doc = draw(st.sampled_from(tables)), f"d{d}"
        versions = draw(st.integers(1, 5))
        deleted = draw(st.booleans())

        def revision(version, tx_id, is_delete, micros):
            return Revision(table=table, document_id=doc, version=version, tx_id=tx_id,
                            tx_time=T0 + _dt.timedelta(seconds=version, microseconds=micros),
                            data=None if is_delete else {"v": version, "tx": tx_id}, deleted=is_delete)

        for v in range(versions):
            is_delete = deleted and v == versions - 1 and v > 0
            original = revision(v, f"m{draw(st.integers(0, 9))}-{d}-{v}", is_delete, d)
            revisions.append(original)
            if ties and draw(st.booleans()):
                letter = draw(st.sampled_from("az"))  # "a..." loses to the first ("m..."), "z..." beats it
                revisions.append(revision(v, f"{letter}-{d}-{v}", draw(st.booleans()), 100 + ord(letter)))
            if not is_delete and v < versions - 1 and draw(st.integers(0, 3)) == 0:
                revisions.append(replace(original, data=None, redacted=True))
    return revisions


def batches(draw, items: list) -> list:
    """``items`` cut at random points into the writer's batches: from one batch (``rate``
    0) to one item a batch (4); a batch keeps only each document's newest current row, so
    many small batches are what make the statements decide."""
    rate = draw(st.integers(0, 4))
    cuts = [i for i in range(1, len(items)) if draw(st.integers(0, 3)) < rate]
    return [items[a:b] for a, b in zip([0] + cuts, cuts + [len(items)]) if a < b]


def at_least_once(draw, items: list) -> list:
    """Every item once, some again, in any order."""
    return draw(st.permutations(items + draw(st.lists(st.sampled_from(items), max_size=len(items)))))


@pytest.fixture
def writers(services, mysql_database):
    made = {history: MySqlWriter(settings_for(services, mysql_database, history=history))
            for history in (False, True)}
    yield made
    for writer in made.values():
        writer.close()


def _check(conn, expected: dict, actual: dict) -> None:
    """MySQL holds exactly ``expected``: its tables row by row, nothing in any other table
    (a history table with history off, a dead letter, a gap). Every table is emptied after."""
    with conn.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        tables = [t for (t,) in cursor.fetchall()]
        # DELETE says how many rows it removed: the other tables' check and the cleanup in one.
        removed = {t: cursor.execute(f"DELETE FROM {sql.quote_identifier(t)}") for t in tables}
    others = {t: n for t, n in removed.items() if t not in expected and t != sql.TOMBSTONES_TABLE}
    assert diff(expected, actual) == []
    assert {t: n for t, n in others.items() if n} == {}


@PROPERTY
@given(data=st.data(), history=st.booleans(), ties=st.booleans())
def test_any_delivery_in_any_batches_ends_equal_to_the_oracle(writers, mysql_conn, data, history, ties):
    revisions = data.draw(histories(history, ties and not history))
    items = [image_of(r, CURRENT) for r in revisions if not r.redacted]  # as Top-1 sends them: no redactions
    if history:
        items += [image_of(r, HISTORY) for r in revisions]
    for batch in batches(data.draw, at_least_once(data.draw, items)):
        writers[history].write(batch)
    expected = expected_tables(revisions, history)
    _check(mysql_conn, expected, actual_tables(mysql_conn, expected))


@pytest.fixture
def stored(services, mysql_database):
    lookup = StoredVersions(settings_for(services, mysql_database))
    yield lookup
    lookup.close()


@PROPERTY
@given(data=st.data(), history=st.booleans())
def test_order_mode_with_restarts_through_the_writer_ends_equal_to_the_oracle(writers, stored, mysql_conn, data,
                                                                           history):
    revisions = data.draw(histories(history, ties=False))
    delivered = at_least_once(data.draw, revisions)
    restarts = dict(data.draw(st.lists(st.tuples(st.integers(0, len(delivered) - 1), st.booleans()), max_size=3,
                                       unique_by=lambda t: t[0])))
    flushes = data.draw(st.lists(st.booleans(), min_size=len(delivered), max_size=len(delivered)))
    writer = writers[history]
    state: dict = {}
    pending: list = []
    checkpoint = (0, {})
    position = now = 0
    while position < len(delivered):
        if position in restarts:  # a crash: the writer's unflushed rows are gone
            lose_state = restarts.pop(position)
            pending = []
            position, state = (0, {}) if lose_state else (checkpoint[0], dict(checkpoint[1]))
            continue
        r = delivered[position]
        position, now = position + 1, now + 1
        if history:  # every revision goes to history, before ordering (job/functions/order.py)
            pending.append(image_of(r, HISTORY))
        key = (r.table, r.document_id)
        doc = state.get(key) or OrderedDocument.starting_after(*stored.lookup(r.table, r.document_id))
        state[key], applied = doc.offer(image_of(r, CURRENT), now, TIMEOUT_MS)
        pending += applied
        if flushes[position - 1] or position % 3 == 0:
            writer.write(pending)
            pending = []
        if position % 3 == 0:  # a checkpoint completes once the writer has flushed
            checkpoint = (position, dict(state))
    writer.write(pending)
    # Every version was delivered after the last restart (or is in MySQL): nothing waits.
    assert [key for key, doc in state.items() if doc.waiting] == []
    expected = expected_tables(revisions, history)
    _check(mysql_conn, expected, actual_tables(mysql_conn, expected))


KEYED = (("order_items", ("order_id", "item_id")), ("customers", ("id",)))


@st.composite
def keyed_changes(draw, history: bool):
    """Row changes of a few rows: versions shared by two changes with other ties, deletes
    (some by TTL), changes after a delete (a re-insert); every (version, tie) once a row."""
    changes = []
    for n in range(draw(st.integers(1, 4))):
        table, key_columns = draw(st.sampled_from(KEYED))
        table += "_h" if history else ""  # as _tables: history on has tables of its own
        key = (n, f"i{n}") if len(key_columns) == 2 else (f"c{n}",)
        stamps = draw(st.sets(st.tuples(st.integers(1, 3), st.sampled_from("abc")), min_size=1, max_size=6))
        for version, tie in sorted(stamps):
            deleted = draw(st.booleans())  # often: a late older delete must not move a tombstone back
            data = dict(zip(key_columns, key))
            if not deleted:
                data.update(qty=version * 10 + ord(tie) - ord("a"), note=f"{version}{tie}")
            changes.append(SimChange(table, key_columns, key, version, tie, deleted, data,
                                     ttl=deleted and draw(st.booleans())))
    return changes


def _keyed_image(c: SimChange, kind: str) -> RowImage:
    return RowImage(kind, c.table, canonical_key(c.key), c.version, c.tie, 1_700_000_000_000_000 + c.version,
                    document_json(c.data), c.deleted, False, c.key_columns, c.ttl)


@PROPERTY
@given(data=st.data(), history=st.booleans())
def test_keyed_changes_in_any_delivery_and_batches_end_equal_to_the_oracle(writers, mysql_conn, data, history):
    changes = data.draw(keyed_changes(history))
    items = [_keyed_image(c, CURRENT) for c in changes]
    if history:
        items += [_keyed_image(c, HISTORY) for c in changes]
    for batch in batches(data.draw, at_least_once(data.draw, items)):
        writers[history].write(batch)
    expected = expected_keyed_tables(changes, history)
    _check(mysql_conn, expected, actual_keyed_tables(mysql_conn, expected))


def test_a_late_older_delete_never_moves_a_tombstone_back(writers, mysql_conn):
    # Rare in random draws (two deletes of a row, a change between them, arriving newest
    # delete first, in three batches), so stated once here: the tombstone keeps version 3.
    row = [SimChange("customers", ("id",), ("x",), 3, "a", True, {"id": "x"}),
           SimChange("customers", ("id",), ("x",), 1, "b", True, {"id": "x"}),
           SimChange("customers", ("id",), ("x",), 2, "c", False, {"id": "x", "qty": 2})]
    for change in row:
        writers[False].write([_keyed_image(change, CURRENT)])
    expected = expected_keyed_tables(row, history=False)
    _check(mysql_conn, expected, actual_keyed_tables(mysql_conn, expected))
