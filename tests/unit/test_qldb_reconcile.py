"""The export-against-MySQL comparison (connectors/formats/qldb_reconcile.py): the pure
logic only; reading MySQL is left to the integration tests."""
from __future__ import annotations

import json

from connectors.formats.qldb import Revision
from connectors.formats.qldb_export import ION_BINARY, find_export, open_store, read_object
from connectors.formats.qldb_reconcile import (DATA_DIFFERS, DELETED_PRESENT, MATCH, MISSING, NEWER_IN_MYSQL,
                                               ONLY_IN_MYSQL, STALE, CurrentRow, DocumentState, StateCollector,
                                               compare_states, document_digest, verify_against_mysql)
from job.cli.tools.simulate.export import ExportSpec, generate_ledger, write_export


def rev(doc, version, data=None, deleted=False, redacted=False, table="T"):
    return Revision(table=table, document_id=doc, version=version, tx_id="tx", tx_time=None, data=data,
                    data_json=json.dumps(data) if data is not None else None, deleted=deleted, redacted=redacted)


def state(doc, version, data=None, deleted=False, table="T"):
    return DocumentState(table, doc, version, deleted, None if deleted else document_digest(json.dumps(data)))


def test_digest_ignores_key_order_and_number_spelling_but_not_values():
    assert document_digest('{"a": 1, "b": {"x": 12.30, "y": [1, 2]}}') == \
        document_digest('{"b":{"y":[1,2],"x":12.3},"a":1}')
    assert document_digest('{"a": 100}') == document_digest('{"a": 100.0}')
    assert document_digest('{"a": 1}') != document_digest('{"a": 2}')
    assert document_digest('{"a": "1"}') != document_digest('{"a": 1}')
    assert document_digest(None) is None


def test_the_newest_version_wins_in_any_order_and_redactions_change_nothing():
    collector = StateCollector()
    for r in (rev("d1", 2, {"v": 2}), rev("d1", 0, {"v": 0}), rev("d1", 1, {"v": 1}),
              rev("d2", 0, {"v": 0}), rev("d2", 1, deleted=True),
              rev("d3", 0, {"v": 0}), rev("d3", 1, redacted=True)):
        collector.add(r)
    assert collector.states[("T", "d1")] == state("d1", 2, {"v": 2})
    assert collector.states[("T", "d2")] == state("d2", 1, deleted=True)
    assert collector.states[("T", "d3")] == state("d3", 0, {"v": 0})
    assert collector.revisions == 7 and collector.redactions_skipped == 1


def test_each_outcome():
    states = {("T", d): s for d, s in {
        "match": state("match", 3, {"a": 1}),
        "missing": state("missing", 1, {"a": 1}),
        "gone": state("gone", 2, deleted=True),
        "gone-and-absent": state("gone-and-absent", 2, deleted=True),
        "stale": state("stale", 5, {"a": 5}),
        "differs": state("differs", 2, {"a": 2}),
        "newer": state("newer", 2, {"a": 2}),
    }.items()}
    rows = [CurrentRow("T", "match", 3, '{"a":1}'), CurrentRow("T", "gone", 1, '{"a":0}'),
            CurrentRow("T", "stale", 4, '{"a":4}'), CurrentRow("T", "differs", 2, '{"a":3}'),
            CurrentRow("T", "newer", 3, '{"a":3}'), CurrentRow("T", "stranger", 0, '{}')]
    report = compare_states(states, rows)
    assert report["counts"] == {MATCH: 1, MISSING: 1, DELETED_PRESENT: 1, STALE: 1, DATA_DIFFERS: 1,
                                NEWER_IN_MYSQL: 1, ONLY_IN_MYSQL: 1}
    assert not report["ok"]
    outcomes = {m["documentId"]: m["outcome"] for m in report["mismatches"]}
    assert outcomes == {"gone": DELETED_PRESENT, "stale": STALE, "differs": DATA_DIFFERS, "newer": NEWER_IN_MYSQL,
                        "stranger": ONLY_IN_MYSQL, "missing": MISSING}
    assert report["documents"] == 7 and report["liveDocuments"] == 5 and report["rows"] == 6


def test_newer_rows_and_documents_only_in_mysql_are_not_errors():
    states = {("T", "a"): state("a", 1, {"x": 1})}
    report = compare_states(states, [CurrentRow("T", "a", 4, '{"x":9}'), CurrentRow("T", "b", 0, "{}")])
    assert report["ok"] and report["counts"][NEWER_IN_MYSQL] == 1 and report["counts"][ONLY_IN_MYSQL] == 1


def test_a_delete_after_the_export_is_newer_not_missing():
    states = {("T", "a"): state("a", 1, {"x": 1}), ("T", "b"): state("b", 2, {"x": 2})}
    # a: the stream deleted it at version 3; b: a tombstone older than the export says nothing
    rows = [CurrentRow("T", "a", 3, None, deleted=True), CurrentRow("T", "b", 1, None, deleted=True),
            CurrentRow("T", "z", 5, None, deleted=True)]
    report = compare_states(states, rows)
    assert not report["ok"] and report["counts"][NEWER_IN_MYSQL] == 1 and report["counts"][MISSING] == 1
    assert {m["documentId"]: m["outcome"] for m in report["mismatches"]} == {"a": NEWER_IN_MYSQL, "b": MISSING}
    assert report["counts"][ONLY_IN_MYSQL] == 0  # a tombstone of a document the export does not have


def test_verify_against_mysql_asks_for_the_export_tables_and_compares(tmp_path):
    # The export's own final state read back as MySQL would hold it: everything matches.
    written = write_export(generate_ledger(ExportSpec(tables=2, documents=6, output_format=ION_BINARY)),
                           str(tmp_path / "e"), out=lambda *_: None)
    store = open_store(written.uri)
    export = find_export(store)
    collector = StateCollector()
    for key in export.keys:
        for item in read_object(export.export_id, key, store.read_key(key, export.prefix), export.output_format):
            collector.add(item)
    asked = []

    def read_rows(tables):
        asked.append(tables)
        return [CurrentRow(r.table, r.document_id, r.version, r.data_json) for r in _newest(written.revisions())]

    report = verify_against_mysql(collector.states, read_rows)
    assert asked == [sorted({r.table for r in written.revisions()})] and report["tables"] == asked[0]
    assert report["ok"] and report["counts"][MATCH] == report["liveDocuments"] > 0


def _newest(revisions):
    newest = {}
    for r in revisions:
        if r.redacted:
            continue
        key = (r.table, r.document_id)
        if key not in newest or newest[key].version < r.version:
            newest[key] = r
    return [r for r in newest.values() if not r.deleted]
