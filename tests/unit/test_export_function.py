"""The export reader's Flink function without Flink: a fake runtime context stands in."""
from __future__ import annotations

from connectors.formats.qldb import MAX_DOCUMENT_BYTES
from connectors.formats.qldb_export import find_export, open_store
from job.config.settings import DecodeSettings
from job.functions.export import ReadExportObjectFunction
from job.pipeline.item_rows import DEAD, KIND, REVISION, SEQUENCE_NUMBER, SHARD_ID, TBL
from job.functions.status_board import read_board
from job.tools.simulate.export import ExportSpec, generate_ledger, write_export


class _Counter:
    def __init__(self):
        self.count = 0

    def inc(self, n: int = 1):
        self.count += n


class _Metrics:
    def __init__(self):
        self.counters = {}

    def counter(self, name):
        return self.counters.setdefault(name, _Counter())


class _Context:
    def __init__(self):
        self.metrics = _Metrics()

    def get_metrics_group(self):
        return self.metrics

    def get_index_of_this_subtask(self):
        return 0


def _decode(include) -> DecodeSettings:
    return DecodeSettings(format="qldb", writer_slots=4, tables_include=frozenset(include),
                          max_document_bytes=MAX_DOCUMENT_BYTES, source=None, split_timeout_ms=600_000)


def _function(tmp_path, include=()):
    ledger = generate_ledger(ExportSpec(tables=2, documents=10, blocks_per_object=10))
    written = write_export(ledger, str(tmp_path / "export"), out=lambda *_: None)
    export = find_export(open_store(str(tmp_path / "export")))
    function = ReadExportObjectFunction(uri=export.uri, region="us-east-1", endpoint=None, export_id=export.export_id,
                                        export_prefix=export.prefix, output_format=export.output_format,
                                        decode=_decode(include), status_dir=str(tmp_path / "status"))
    context = _Context()
    function.open(context)
    return ledger, written, export, function, context


def test_objects_become_item_rows_and_progress(tmp_path):
    ledger, _written, export, function, context = _function(tmp_path)
    rows = [row for key in export.keys for row in function.flat_map(key)]
    assert all(row[KIND] == REVISION for row in rows) and len(rows) == len(ledger.revisions())
    (status,) = read_board(str(tmp_path / "status")).values()
    assert status["objects"] == len(export.keys) and status["blocks"] == len(ledger.blocks)
    assert context.metrics.counters["revisionsDecoded"].count == len(rows)
    assert context.metrics.counters["systemRevisions"].count == status["system_revisions"] > 0


def test_a_missing_object_is_a_dead_letter_naming_it_and_tables_include_filters(tmp_path):
    ledger, written, export, function, context = _function(tmp_path, include=("Person",))
    missing = tmp_path / "export" / written.keys[1][len(written.prefix) + 1:]
    missing.unlink()
    rows = [row for key in export.keys for row in function.flat_map(key)]
    dead = [row for row in rows if row[KIND] == DEAD]
    assert len(dead) == 1 and dead[0][SHARD_ID] == written.keys[1] and dead[0][SEQUENCE_NUMBER] == "object"
    assert {row[TBL] for row in rows if row[KIND] == REVISION} == {"Person"}
    assert context.metrics.counters["revisionsSkipped"].count > 0


def test_other_read_errors_stop_the_backfill_naming_the_object(tmp_path):
    import pytest

    from job.functions.export import ExportReadError

    _ledger, written, export, function, _context = _function(tmp_path)

    class Refusing:
        def read_key(self, key, prefix):
            raise PermissionError("Access Denied")

    function._store = Refusing()
    with pytest.raises(ExportReadError, match=f"cannot read data object {written.keys[0]} of export "
                                              f"{export.export_id} under .*: PermissionError: Access Denied"):
        list(function.flat_map(written.keys[0]))
