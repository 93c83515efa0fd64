"""Data objects cut into ranges of blocks (connectors/formats/export_ranges.py), and each
range read back on its own (connectors/formats/qldb_export.py, ``read_object(part=...)``)."""
from __future__ import annotations

import io

import pytest
from amazon.ion import simpleion

from connectors.dead_letters import DeadLetter
from connectors.formats.export_ranges import ObjectRange, split_object
from connectors.formats.qldb_export import (ION_BINARY, ION_TEXT, DirectoryExportStore, ObjectStats, ObjectStream,
                                            object_head, parse_export_uri, range_stream, read_object)
from job.cli.tools.simulate.export import ExportSpec, block_value, encode_block, generate_ledger

# A symbol table that appends "gamma" to the one in effect (imports: $ion_symbol_table),
# written by hand: amazon-ion's writer only writes tables that replace.
APPEND_GAMMA = bytes.fromhex("ee8e8183db867103 87b6856761 6d6d61".replace(" ", ""))


class _Unseekable(io.RawIOBase):
    """An S3 body: reads only."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def read(self, size=-1):
        return self._data.read(size)


def _values_of(data: bytes, parts: list) -> list:
    """Every range read on its own from ``data``, the values in order."""
    out = []
    for part in parts:
        assert not part.whole
        stream = io.BytesIO(part.context + data[part.lead:part.end])
        values = simpleion.load(stream, single_value=False)
        out += values[1:] if part.index > 0 else values
    return out


def _ledger_object(blocks: int = 8) -> tuple:
    ledger = generate_ledger(ExportSpec(tables=2, documents=12, output_format=ION_BINARY))
    values = [block_value(b) for b in ledger.blocks[:blocks]]
    return ledger, values, b"".join(encode_block(b, ION_BINARY) for b in values)


@pytest.mark.parametrize("wrap", [io.BytesIO, _Unseekable])
@pytest.mark.parametrize("range_bytes", [1, 3000, 10 ** 9])
def test_ranges_tile_the_object_and_hold_every_block_once_in_order(wrap, range_bytes):
    _ledger, values, data = _ledger_object()
    parts = split_object(wrap(data), "k", range_bytes)
    assert parts[0].start == 0 and parts[-1].end == len(data)
    assert all(a.end == b.start for a, b in zip(parts, parts[1:]))
    assert [p.final for p in parts] == [False] * (len(parts) - 1) + [True]
    assert all(p.size == len(data) for p in parts)
    assert [p.index for p in parts] == sorted({p.index for p in parts}) and parts[0].index == 0
    assert _values_of(data, parts) == simpleion.loads(data, single_value=False) == values
    if range_bytes == 1:
        assert len(parts) == len(values)  # a block bigger than the bound is a range alone


def test_symbol_tables_in_the_middle_that_replace_and_append():
    first = simpleion.dumps({"alpha": 1, "beta": "x"}, binary=True)  # BVM, a table (alpha, beta), a value
    replacing = simpleion.dumps({"delta": [1, 2]}, binary=True)[4:]  # a table that replaces, no BVM
    data = (first + APPEND_GAMMA + bytes.fromhex("d38c2105")  # {gamma: 5}: symbol 12, appended
            + bytes.fromhex("d68a21028b8179")  # {alpha: 2, beta: "y"}: the first table still holds
            + replacing + simpleion.dumps({"beta": 3}, binary=True) + bytes.fromhex("0001ff"))  # and NOP padding
    expected = simpleion.loads(data, single_value=False)
    assert expected == [{"alpha": 1, "beta": "x"}, {"gamma": 5}, {"alpha": 2, "beta": "y"}, {"delta": [1, 2]},
                        {"beta": 3}]
    for wrap in (io.BytesIO, _Unseekable):
        parts = split_object(wrap(data), "k", 1)
        assert len(parts) == 5 and [p.index for p in parts] == [0, 1, 2, 3, 4]
        assert _values_of(data, parts) == expected
        # The range of {alpha: 2, ...} is read after {gamma: 5}: both tables in its context.
        assert parts[2].context.endswith(APPEND_GAMMA) and parts[2].context.startswith(first[:4])


def test_what_cannot_be_cut_is_one_range_the_whole_object():
    assert split_object(io.BytesIO(b""), "k") == [ObjectRange("k")]
    assert split_object(io.BytesIO(b'{a: 1}\n{a: 2}\n'), "k") == [ObjectRange("k")]  # text
    assert split_object(io.BytesIO(b"\xe0\x01\x00\xea"), "k") == [ObjectRange("k")]  # no block
    assert ObjectRange("k").whole


def _read_parts(data: bytes, parts: list, fmt: str = ION_BINARY) -> list:
    items = []
    for part in parts:
        stream = ObjectStream(io.BytesIO(part.context + data[part.lead:part.end]))
        items += list(read_object("e", "k", stream, fmt, part=part, head=lambda: data[:1024 * 1024]))
    return items


def test_a_truncated_object_gives_the_dead_letter_reading_it_whole_gives():
    _ledger, _values, data = _ledger_object(6)
    data = data[:-20]
    whole = list(read_object("e", "k", data, ION_BINARY))
    assert isinstance(whole[-1], DeadLetter) and "cannot parse binary Ion" in whole[-1].reason
    for range_bytes in (1, 2500, 10 ** 9):
        parts = split_object(io.BytesIO(data), "k", range_bytes)
        assert parts[-1].end == len(data) and parts[-1].final
        assert _read_parts(data, parts) == whole


def test_ranges_read_back_to_the_revisions_and_counts_of_the_whole_object():
    _ledger, _values, data = _ledger_object(10)
    whole_stats, stats = ObjectStats(), ObjectStats()
    whole = list(read_object("e", "k", data, ION_BINARY, stats=whole_stats))
    items = []
    for part in split_object(io.BytesIO(data), "k", 2000):
        stream = ObjectStream(io.BytesIO(part.context + data[part.lead:part.end]))
        items += list(read_object("e", "k", stream, ION_BINARY, part=part, stats=stats))
    assert items == whole and stats == whole_stats and stats.revisions > 0


def test_a_directory_store_reads_a_range_and_the_head(tmp_path):
    _ledger, values, data = _ledger_object(5)
    (tmp_path / "k.ion").write_bytes(data)
    store = DirectoryExportStore(parse_export_uri(str(tmp_path)))
    parts = split_object(open(tmp_path / "k.ion", "rb"), "k.ion", 1)
    got = []
    for part in parts:
        stream = range_stream(store, "", part)
        loaded = simpleion.load(stream, single_value=False)
        got += loaded[1:] if part.index else loaded
        stream.close()
    assert got == values
    assert object_head(store, "k.ion", "", parts[0].size) == data[:1024 * 1024]


def test_ion_text_is_read_whole():
    ledger = generate_ledger(ExportSpec(tables=1, documents=3, output_format=ION_TEXT))
    data = b"".join(encode_block(block_value(b), ION_TEXT) for b in ledger.blocks)
    (part,) = split_object(io.BytesIO(data), "k")
    assert part.whole
