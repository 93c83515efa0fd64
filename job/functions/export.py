"""Flink wrappers: a QLDB journal export's data objects cut into ranges of blocks, and
each range (or a whole object) read into revisions.

``SplitExportObjectFunction`` takes an object's key and gives its ranges
(``connectors.formats.export_ranges.split_object``: framing only); ``ReadExportRangeFunction``
takes one range and gives what reading the whole object gives for its blocks. The logic of
reading is ``connectors.formats.qldb_export.read_object``; the reader opens the range or
object (S3 or a local directory) as a stream, counts, filters by
``replication.tables.include`` and emits the same ``ITEM_ROW``s the stream decoder emits
(job/rows/item_rows.py), so everything after it is the stream's own path. Progress goes to
the status board (job/functions/status_board.py); an object counts as read with its last
range.

With ``verify`` (``backfill --verify``) every block goes through ``verify``'s own checks
(``connectors.formats.qldb_verify.check_object``) before its revisions are decoded; a block
that fails one is not written but becomes one dead letter (stage ``verify``) naming the
checks, so the blocks a verified backfill refuses are the blocks ``verify`` names. Ranges
are read in parallel, so the chain into a range's first block is checked against the block
before it (a range's stream starts with it), and into an object's first block against the
last block of the object before it, which this function reads (parsing, no hashing) to
find it.
"""
from __future__ import annotations

import logging
from typing import Optional

from amazon.ion import simpleion
from pyflink.datastream import FlatMapFunction, RuntimeContext

from connectors.dead_letters import DeadLetter
from connectors.formats.export_ranges import RANGE_BYTES, ObjectRange, split_object, whole_object
from connectors.formats.qldb import ion_error_text
from connectors.formats.qldb_export import (ION_BINARY, Export, MissingObject, ObjectStats, ObjectStream,
                                            block_revisions, block_text, dead_letter_at, object_dead_letter,
                                            object_head, open_store, range_stream, read_object)
from connectors.formats.qldb_verify import OBJECT, CheckedBlock, check_object, link_before, link_of
from job.config.settings import DecodeSettings
from job.functions import names
from job.rows.item_rows import dead_letter_row, revision_row
from job.functions.status_board import StatusBoard

log = logging.getLogger(__name__)

VERIFY_STAGE = "verify"  # the dead-letter stage of a block backfill --verify refuses


class ExportReadError(RuntimeError):
    """A data object could not be fetched for a reason that is not the export's (access
    denied, endpoint unreachable after botocore's retries): the backfill stops, naming it."""


# progress total -> its metric
_METRICS = {"objects": names.OBJECTS_READ, "bytes": names.BYTES_READ, "blocks": names.BLOCKS_READ,
            "revisions": names.REVISIONS_DECODED, "system_revisions": names.SYSTEM_REVISIONS,
            "skipped": names.REVISIONS_SKIPPED, "dead_letters": names.DEAD_LETTERS,
            "refused": names.BLOCKS_REFUSED, "objects_failed": names.OBJECTS_FAILED}


def refusal(checked: CheckedBlock) -> str:
    """Why a block is not written: the checks it fails and the first one's detail."""
    first = checked.failures[0]
    more = len(checked.failures) - 1
    return (f"{checked.where} fails verification ({', '.join(checked.checks())}): {first.detail}"
            + (f" (and {more} more failure{'s' if more > 1 else ''})" if more else "")
            + "; its revisions are not written")


class _ExportFunction(FlatMapFunction):
    """Where the export is (``uri``, the object keys' ``export_prefix``) and what it is; the
    store it is read from, opened in each worker."""

    def __init__(self, *, uri: str, region: str, endpoint: Optional[str], export_id: str, export_prefix: str,
                 output_format: str):
        self._uri = uri
        self._region = region
        self._endpoint = endpoint
        self._export_id = export_id
        self._prefix = export_prefix
        self._format = output_format

    def open(self, ctx: RuntimeContext):
        self._store = open_store(self._uri, self._region, self._endpoint)


class ReadExportObjectFunction(_ExportFunction):
    def __init__(self, *, decode: DecodeSettings, status_dir: Optional[str] = None, verify: bool = False,
                 strands: Optional[dict] = None, **where):
        super().__init__(**where)
        self._settings = decode
        self._status_dir = status_dir
        self._verify = verify
        self._strands = dict(strands or {})  # strandId -> keys in manifest order (verify: the chain)

    def open(self, ctx: RuntimeContext):
        super().open(ctx)
        self._export = Export(export_id=self._export_id, uri=self._uri, output_format=self._format,
                              prefix=self._prefix, strands=self._strands)
        self._strand_of = {key: strand for strand, keys in self._strands.items() for key in keys}
        self._board = StatusBoard(self._status_dir)
        self._name = f"export-{ctx.get_index_of_this_subtask()}"
        metrics = ctx.get_metrics_group()
        self._metric = {name: metrics.counter(name) for name in _METRICS.values()}
        self._totals = {name: 0 for name in _METRICS}

    def flat_map(self, key: str):
        yield from self._read(key, lambda: ObjectStream(self._store.open_key(key, self._prefix)), None)

    def _read(self, key: str, open_stream, part: Optional[ObjectRange]):
        """The rows of object ``key`` (``part`` None) or of one range of it."""
        stats = ObjectStats()
        skipped = 0
        refused = [0, 0]  # --verify: blocks refused, failures of the object itself
        try:
            stream = open_stream()
        except MissingObject as exc:
            stream = None
            stats.dead_letters += 1
            refused[1] += self._verify
            yield dead_letter_row(object_dead_letter(self._export_id, key, f"data object listed in the completed "
                                                                           f"manifest cannot be read: {exc}"),
                                  self._settings.writer_slots)
        except Exception as exc:
            raise self._read_error(key, exc) from exc
        head = None if part is None else (lambda: object_head(self._store, key, self._prefix, part.size))
        if stream is not None:
            try:
                items = self._verified(key, stream, stats, refused, part, head) if self._verify else \
                    read_object(self._export_id, key, stream, self._format,
                                max_document_bytes=self._settings.max_document_bytes, stats=stats, part=part,
                                head=head)
                for item in items:
                    self._publish(stats, skipped, refused)  # progress within a big object (at most every 0.5 s)
                    if isinstance(item, DeadLetter):
                        log.warning("dead letter from export %s object %s %s: %s", self._export_id, key,
                                    item.sequence_number, item.reason[:300])
                        yield dead_letter_row(item, self._settings.writer_slots)
                    elif self._settings.tables_include and item.table not in self._settings.tables_include:
                        skipped += 1
                    else:
                        yield revision_row(item, self._settings.writer_slots)
            except ExportReadError:
                raise
            except Exception as exc:
                if stream.error is None:
                    raise
                raise self._read_error(key, stream.error) from exc
            finally:
                stream.close()
        if part is None:
            size, objects = (stream.bytes_read if stream is not None else 0), 1
        else:
            size, objects = part.end - part.start, int(part.final)
        self._count(size, objects, stats, skipped, refused)

    def _read_error(self, key: str, exc: BaseException) -> ExportReadError:
        return ExportReadError(f"cannot read data object {key} of export {self._export_id} under {self._uri}: "
                               f"{type(exc).__name__}: {exc}")

    def _verified(self, key: str, stream: ObjectStream, stats: ObjectStats, refused: list,
                  part: Optional[ObjectRange] = None, head=None):
        """The object's (or range's) revisions, block by block, each block only if it
        passes verify's checks; a dead letter per block that fails, and per failure of the
        object itself."""
        strand = self._strand_of.get(key, "")
        links = {}
        before = None
        unchained = None
        blocks = simpleion.load(stream, single_value=False, parse_eagerly=False)
        if part is None or part.index == 0:
            try:
                link = link_before(self._store, self._export, strand, key)
            except Exception as exc:
                raise ExportReadError(f"cannot read the data object before {key} of export {self._export_id} "
                                      f"under {self._uri} (backfill --verify checks the chain into {key} against "
                                      f"its last block): {type(exc).__name__}: {exc}") from exc
            if link is not None:
                links[strand] = link
        else:
            # The range starts with the block before it: the chain into its first block.
            blocks = iter(blocks)
            try:
                link = link_of(next(blocks), key)
            except Exception as exc:
                if stream.error is not None:
                    raise self._read_error(key, stream.error) from exc
                stats.dead_letters += 1
                refused[1] += 1
                where = f"after value {part.index - 1}"
                yield dead_letter_at(self._export_id, key, where, f"{where}: {OBJECT}: cannot parse the object's "
                                     f"Ion: {ion_error_text(exc)}; the rest of the range is not verified", head(),
                                     stage=VERIFY_STAGE)
                return
            if link is not None:
                links[link.address.strand] = link
                before = link.address
            else:
                unchained = (f"the value before it (value {part.index - 1} of the object) names no blockAddress: "
                             "the chain into it cannot be checked")
        raw = (lambda: stream.head) if head is None else head
        checked = check_object(blocks, strand, key, links) if part is None else \
            check_object(blocks, strand, key, links, first=part.index, before=before, final=part.final,
                         unchained=unchained)
        for item in checked:
            if not isinstance(item, CheckedBlock):  # the object itself: stops parsing, holds no blocks
                if stream.error is not None:
                    raise self._read_error(key, stream.error)
                stats.dead_letters += 1
                refused[1] += 1
                where = f"after {item.block}" if item.address else "object"
                yield dead_letter_at(self._export_id, key, where, f"{where}: {item.check}: {item.detail}",
                                     raw(), stage=VERIFY_STAGE)
                continue
            stats.blocks += 1
            if item.failures:
                refused[0] += 1
                stats.dead_letters += 1
                yield dead_letter_at(self._export_id, key, item.where, refusal(item), block_text(item.block),
                                     stage=VERIFY_STAGE)
                continue
            for out in block_revisions(self._export_id, key, item.block, item.where, self._format,
                                       max_document_bytes=self._settings.max_document_bytes, stats=stats):
                if isinstance(out, DeadLetter):
                    stats.dead_letters += 1
                else:
                    stats.revisions += 1
                yield out

    def _publish(self, stats: ObjectStats, skipped: int, refused: list) -> None:
        self._board.publish(self._name, {
            "kind": "export", **self._totals, "blocks": self._totals["blocks"] + stats.blocks,
            "revisions": self._totals["revisions"] + stats.revisions - skipped,
            "dead_letters": self._totals["dead_letters"] + stats.dead_letters,
            "refused": self._totals["refused"] + refused[0],
            "objects_failed": self._totals["objects_failed"] + refused[1]})

    def _count(self, size: int, objects: int, stats: ObjectStats, skipped: int, refused: list) -> None:
        done = {"objects": objects, "bytes": size, "blocks": stats.blocks, "revisions": stats.revisions - skipped,
                "system_revisions": stats.system_revisions, "skipped": skipped, "dead_letters": stats.dead_letters,
                "refused": refused[0], "objects_failed": refused[1]}
        for name, metric in _METRICS.items():
            self._totals[name] += done[name]
            self._metric[metric].inc(done[name])
        self._board.publish(self._name, {"kind": "export", **self._totals}, force=True)


class ReadExportRangeFunction(ReadExportObjectFunction):
    """A range of blocks of a data object in (``SplitExportObjectFunction``), its rows out:
    the rows, dead letters, counts and ``--verify`` refusals reading the whole object
    gives for those blocks. The object counts as read with its last range."""

    def flat_map(self, part: ObjectRange):
        if part.whole:
            yield from super().flat_map(part.key)
            return
        yield from self._read(part.key, lambda: range_stream(self._store, self._prefix, part), part)


class SplitExportObjectFunction(_ExportFunction):
    """A data object's key in, its ranges of blocks out (connectors/formats/export_ranges.py):
    only a binary object's framing is read. An object that is missing, or that is not
    binary Ion, is one whole-object range: the reader gives what it gives today."""

    def __init__(self, *, range_bytes: int = RANGE_BYTES, **where):
        super().__init__(**where)
        self._range_bytes = range_bytes

    def flat_map(self, key: str):
        if self._format != ION_BINARY:
            yield whole_object(key)
            return
        try:
            stream = self._store.open_key(key, self._prefix)
        except MissingObject:
            yield whole_object(key)
            return
        except Exception as exc:
            raise self._error(key, exc) from exc
        try:
            parts = split_object(stream, key, self._range_bytes)
        except Exception as exc:
            raise self._error(key, exc) from exc
        finally:
            stream.close()
        yield from parts

    def _error(self, key: str, exc: BaseException) -> ExportReadError:
        return ExportReadError(f"cannot read data object {key} of export {self._export_id} under {self._uri} "
                               f"(cutting it into ranges of blocks): {type(exc).__name__}: {exc}")
