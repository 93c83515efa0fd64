"""The export reader's Flink function without Flink: a fake runtime context stands in."""
from __future__ import annotations

from connectors.rows.limits import MAX_DOCUMENT_BYTES
from connectors.formats.qldb_export import find_export, open_store
from job.config.settings import DecodeSettings
from job.functions.export import ReadExportObjectFunction
from job.rows.item_rows import DEAD, KIND, REVISION, SEQUENCE_NUMBER, SHARD_ID, TBL
from job.functions.status_board import read_board
from job.cli.tools.simulate.export import ExportSpec, generate_ledger, write_export


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
        def open_key(self, key, prefix):
            raise PermissionError("Access Denied")

    function._store = Refusing()
    with pytest.raises(ExportReadError, match=f"cannot read data object {written.keys[0]} of export "
                                              f"{export.export_id} under .*: PermissionError: Access Denied"):
        list(function.flat_map(written.keys[0]))


def test_a_connection_lost_part_way_stops_the_backfill_not_a_dead_letter(tmp_path):
    import io

    import pytest

    from job.functions.export import ExportReadError

    _ledger, written, export, function, _context = _function(tmp_path)
    store = function._store

    class Breaking(io.RawIOBase):
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def readable(self):
            return True

        def read(self, size=-1):
            if self._data.tell() > 2000:
                raise ConnectionResetError("Connection reset by peer")
            return self._data.read(min(size, 1000) if size and size > 0 else 1000)

    class Store:
        def open_key(self, key, prefix):
            return Breaking(store.read_key(key, prefix))

    function._store = Store()
    with pytest.raises(ExportReadError, match="ConnectionResetError: Connection reset by peer"):
        list(function.flat_map(written.keys[0]))


# --- backfill --verify ---------------------------------------------------------------------------------

def _verifying(tmp_path, written, include=()):
    export = find_export(open_store(written.uri))
    function = ReadExportObjectFunction(uri=export.uri, region="us-east-1", endpoint=None, export_id=export.export_id,
                                        export_prefix=export.prefix, output_format=export.output_format,
                                        decode=_decode(include), status_dir=str(tmp_path / "status"), verify=True,
                                        strands=export.strands)
    function.open(_Context())
    return export, function


def _rows(function, keys) -> list:
    # Objects in the reverse of their order, each by a fresh look at the one before it:
    # as parallel readers meet them.
    return [row for key in reversed(keys) for row in function.flat_map(key)]


def test_verify_passes_an_intact_export_whole(tmp_path):
    from job.rows.item_rows import DOCUMENT_ID as DOC_ID, VERSION

    ledger = generate_ledger(ExportSpec(tables=2, documents=10, blocks_per_object=10))
    written = write_export(ledger, str(tmp_path / "export"), out=lambda *_: None)
    export, function = _verifying(tmp_path, written)
    rows = _rows(function, export.keys)
    assert all(row[KIND] == REVISION for row in rows)
    assert sorted((r[TBL], r[DOC_ID], r[VERSION]) for r in rows) == sorted(
        (r.table, r.document_id, r.version) for r in ledger.revisions())
    (status,) = read_board(str(tmp_path / "status")).values()
    assert status["refused"] == 0 and status["blocks"] == len(ledger.blocks)


def test_verify_refuses_exactly_the_blocks_verify_names(tmp_path):
    """A tampered revision, a dropped block, a changed transactionInfo and two objects
    swapped in the manifest: the blocks refused (one dead letter each, naming the checks)
    are the blocks `verify` reports, and every other block's revisions are written."""
    import os

    from amazon.ion import simpleion

    from connectors.formats.qldb_export import COMPLETED_SUFFIX
    from connectors.formats.qldb_verify import verify_export
    from job.rows.item_rows import DOCUMENT_ID as DOC_ID, REASON, STAGE, VERSION
    from job.cli.tools.simulate.export import STRAND

    ledger = generate_ledger(ExportSpec(tables=2, documents=15, blocks_per_object=10))
    written = write_export(ledger, str(tmp_path / "export"), tamper=12, drop_block=25, out=lambda *_: None)
    path = os.path.join(written.uri, written.keys[3][len(written.prefix) + 1:])
    values = simpleion.loads(open(path, "rb").read(), single_value=False)
    values[4]["transactionInfo"]["statements"][0]["statement"] = "UPDATE nothing"
    with open(path, "wb") as handle:
        handle.write(simpleion.dumps(values, binary=False, sequence_as_stream=True).encode())
    keys = list(written.keys)
    keys[4], keys[5] = keys[5], keys[4]
    with open(os.path.join(written.uri, f"{ledger.spec.export_id}.{STRAND}{COMPLETED_SUFFIX}"), "w") as handle:
        handle.write(simpleion.dumps({"keys": keys}, binary=False, omit_version_marker=True))

    store = open_store(written.uri)
    summary = verify_export(store, find_export(store))
    named = {}
    for failure in summary.failures:
        named.setdefault((failure.key, f"block {failure.address}"), []).append(failure.check)
    assert {check for checks in named.values() for check in checks} >= {"revision-hash", "transaction-info", "chain"}

    export, function = _verifying(tmp_path, written)
    rows = _rows(function, export.keys)
    dead = [row for row in rows if row[KIND] == DEAD]
    assert {(row[SHARD_ID], row[SEQUENCE_NUMBER]) for row in dead} == set(named)
    for row in dead:
        assert row[STAGE] == "verify" and "fails verification (" in row[REASON]
        assert all(check in row[REASON] for check in named[(row[SHARD_ID], row[SEQUENCE_NUMBER])])
    refused = {int(where.split("/")[1]) for _key, where in named}
    expected = sorted((c.table, c.document_id, c.version) for b in ledger.blocks if b.sequence_no not in refused
                      and b.sequence_no != 25 for c in b.changes)
    assert sorted((r[TBL], r[DOC_ID], r[VERSION]) for r in rows if r[KIND] == REVISION) == expected
    (status,) = read_board(str(tmp_path / "status")).values()
    assert status["refused"] == len(named) == summary.failure_count - sum(len(c) - 1 for c in named.values())


# --- ranges of blocks: the backfill's unit of work ---------------------------------------------------

def _ranged(tmp_path, written, *, verify=False, range_bytes=3000):
    """The splitter and the range reader, as the backfill chains them."""
    from job.functions.export import ReadExportRangeFunction, SplitExportObjectFunction

    export = find_export(open_store(written.uri))
    where = dict(uri=export.uri, region="us-east-1", endpoint=None, export_id=export.export_id,
                 export_prefix=export.prefix, output_format=export.output_format)
    split = SplitExportObjectFunction(**where, range_bytes=range_bytes)
    split.open(_Context())
    read = ReadExportRangeFunction(**where, decode=_decode(()), status_dir=str(tmp_path / "ranged-status"),
                                   verify=verify, strands=export.strands if verify else None)
    context = _Context()
    read.open(context)
    parts = [part for key in export.keys for part in split.flat_map(key)]
    return export, parts, read, context


def _binary_export(tmp_path, **kwargs):
    from connectors.formats.qldb_export import ION_BINARY

    ledger = generate_ledger(ExportSpec(tables=2, documents=15, blocks_per_object=10, output_format=ION_BINARY))
    return ledger, write_export(ledger, str(tmp_path / "export"), out=lambda *_: None, **kwargs)


def test_ranges_give_the_rows_and_counts_of_whole_objects(tmp_path):
    ledger, written = _binary_export(tmp_path)
    export, parts, read, context = _ranged(tmp_path, written)
    assert len(parts) > 2 * len(export.keys)  # the objects were cut
    rows = [row for part in reversed(parts) for row in read.flat_map(part)]
    whole = find_export(open_store(written.uri))
    function = ReadExportObjectFunction(uri=whole.uri, region="us-east-1", endpoint=None, export_id=whole.export_id,
                                        export_prefix=whole.prefix, output_format=whole.output_format,
                                        decode=_decode(()), status_dir=str(tmp_path / "status"))
    function.open(_Context())
    expected = [row for key in reversed(export.keys) for row in function.flat_map(key)]
    assert sorted(map(repr, rows)) == sorted(map(repr, expected)) and len(rows) == len(ledger.revisions())
    (status,) = read_board(str(tmp_path / "ranged-status")).values()
    (object_status,) = read_board(str(tmp_path / "status")).values()
    for total in ("objects", "bytes", "blocks", "revisions", "system_revisions", "dead_letters"):
        assert status[total] == object_status[total], total
    assert context.metrics.counters["objectsRead"].count == len(export.keys)


def test_a_truncated_or_missing_object_gives_the_dead_letters_of_reading_it_whole(tmp_path):
    import os

    _ledger, written = _binary_export(tmp_path)
    truncated = os.path.join(written.uri, written.keys[2][len(written.prefix) + 1:])
    data = open(truncated, "rb").read()
    with open(truncated, "wb") as handle:
        handle.write(data[:-30])
    os.remove(os.path.join(written.uri, written.keys[1][len(written.prefix) + 1:]))
    export, parts, read, _context = _ranged(tmp_path, written)
    assert [p.key for p in parts if p.whole] == [written.keys[1]]  # missing: the reader says so
    rows = [row for part in parts for row in read.flat_map(part)]
    whole = find_export(open_store(written.uri))
    function = ReadExportObjectFunction(uri=whole.uri, region="us-east-1", endpoint=None, export_id=whole.export_id,
                                        export_prefix=whole.prefix, output_format=whole.output_format,
                                        decode=_decode(()), status_dir=None)
    function.open(_Context())
    expected = [row for key in export.keys for row in function.flat_map(key)]
    dead = [row for row in rows if row[KIND] == DEAD]
    assert [r for r in expected if r[KIND] == DEAD] == dead and len(dead) == 2
    assert rows == expected


def test_a_range_that_cannot_be_read_stops_the_backfill_naming_the_object(tmp_path):
    import pytest

    from job.functions.export import ExportReadError

    _ledger, written = _binary_export(tmp_path)
    export, parts, read, _context = _ranged(tmp_path, written)

    class Refusing:
        def open_range(self, key, prefix, start, end):
            raise PermissionError("Access Denied")

    read._store = Refusing()
    part = next(p for p in parts if p.index > 0)
    with pytest.raises(ExportReadError, match=f"cannot read data object {part.key} of export .*: PermissionError"):
        list(read.flat_map(part))


def test_verify_by_ranges_refuses_exactly_the_blocks_verify_names(tmp_path):
    """A tampered revision and a dropped block in a binary export, its ranges read in the
    reverse of their order: the blocks refused are the ones `verify` names, and the
    rows are those reading whole objects gives."""
    from connectors.formats.qldb_verify import verify_export

    import os

    _ledger, written = _binary_export(tmp_path, tamper=12, drop_block=25)
    truncated = os.path.join(written.uri, written.keys[4][len(written.prefix) + 1:])
    data = open(truncated, "rb").read()
    with open(truncated, "wb") as handle:
        handle.write(data[:-30])
    store = open_store(written.uri)
    summary = verify_export(store, find_export(store))
    named = {(f.key, f"after block {f.address}" if f.check == "object" else f"block {f.address}")
             for f in summary.failures}
    assert len(named) >= 3 and (written.keys[4], "object") in {(f.key, f.check) for f in summary.failures}
    export, parts, read, _context = _ranged(tmp_path, written, verify=True, range_bytes=1)
    rows = [row for part in reversed(parts) for row in read.flat_map(part)]
    assert {(row[SHARD_ID], row[SEQUENCE_NUMBER]) for row in rows if row[KIND] == DEAD} == named
    _export, function = _verifying(tmp_path, written)
    expected = _rows(function, export.keys)
    assert sorted(map(repr, rows)) == sorted(map(repr, expected))


def test_an_object_the_splitter_cannot_read_stops_the_backfill_naming_it(tmp_path):
    import pytest

    from job.functions.export import ExportReadError, SplitExportObjectFunction

    _ledger, written = _binary_export(tmp_path)
    export = find_export(open_store(written.uri))
    split = SplitExportObjectFunction(uri=export.uri, region="us-east-1", endpoint=None, export_id=export.export_id,
                                      export_prefix=export.prefix, output_format=export.output_format)
    split.open(_Context())

    class Refusing:
        def open_key(self, key, prefix):
            raise PermissionError("Access Denied")

    split._store = Refusing()
    with pytest.raises(ExportReadError, match=f"cannot read data object {written.keys[0]} of export .*: "
                                              "PermissionError: Access Denied"):
        list(split.flat_map(written.keys[0]))


def test_verify_by_ranges_checks_the_chain_past_a_block_without_an_address(tmp_path):
    """A block whose blockAddress is gone ends a range: `verify` names it (its shape) and the
    block after it (a block missing from the chain); read range by range, the block after it
    is refused just the same, not written unchecked."""
    import os

    from amazon.ion import simpleion

    from connectors.formats.qldb_verify import verify_export

    _ledger, written = _binary_export(tmp_path)
    path = os.path.join(written.uri, written.keys[2][len(written.prefix) + 1:])
    values = simpleion.loads(open(path, "rb").read(), single_value=False)
    del values[4]["blockAddress"]
    with open(path, "wb") as handle:
        handle.write(simpleion.dumps(values, binary=True, sequence_as_stream=True))
    store = open_store(written.uri)
    summary = verify_export(store, find_export(store))
    assert {f.check for f in summary.failures} >= {"shape", "chain"}
    export, parts, read, _context = _ranged(tmp_path, written, verify=True, range_bytes=1)
    rows = [row for part in parts for row in read.flat_map(part)]
    _export, function = _verifying(tmp_path, written)
    expected = _rows(function, export.keys)
    dead = [row for row in rows if row[KIND] == DEAD]
    assert len(dead) == 2 == len([row for row in expected if row[KIND] == DEAD])
    assert sorted(repr(row) for row in rows if row[KIND] == REVISION) == \
        sorted(repr(row) for row in expected if row[KIND] == REVISION)
