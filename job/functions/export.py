"""Flink wrapper: one QLDB journal export data object (its key) in, its revisions out.

The logic is ``connectors.formats.qldb_export.read_object``; this function fetches the object
(S3 or a local directory), counts, filters by ``replication.tables.include`` and emits
the same ``ITEM_ROW``s the stream decoder emits (job/pipeline/item_rows.py), so everything after
it is the stream's own path. Progress goes to the status board (job/functions/status_board.py).
"""
from __future__ import annotations

import logging
from typing import Optional

from pyflink.datastream import FlatMapFunction, RuntimeContext

from connectors.dead_letters import DeadLetter
from connectors.formats.qldb_export import MissingObject, ObjectStats, object_dead_letter, open_store, \
    read_object
from job.config.settings import DecodeSettings
from job.functions import names
from job.pipeline.item_rows import dead_letter_row, revision_row
from job.functions.status_board import StatusBoard

log = logging.getLogger(__name__)


class ExportReadError(RuntimeError):
    """A data object could not be fetched for a reason that is not the export's (access
    denied, endpoint unreachable after botocore's retries): the backfill stops, naming it."""


# progress total -> its metric
_METRICS = {"objects": names.OBJECTS_READ, "bytes": names.BYTES_READ, "blocks": names.BLOCKS_READ,
            "revisions": names.REVISIONS_DECODED, "system_revisions": names.SYSTEM_REVISIONS,
            "skipped": names.REVISIONS_SKIPPED, "dead_letters": names.DEAD_LETTERS}


class ReadExportObjectFunction(FlatMapFunction):
    def __init__(self, *, uri: str, region: str, endpoint: Optional[str], export_id: str, export_prefix: str,
                 output_format: str, decode: DecodeSettings, status_dir: Optional[str] = None):
        self._uri = uri
        self._region = region
        self._endpoint = endpoint
        self._export_id = export_id
        self._prefix = export_prefix
        self._format = output_format
        self._slots = decode.writer_slots
        self._include = decode.tables_include
        self._status_dir = status_dir
        self._max_document_bytes = decode.max_document_bytes

    def open(self, ctx: RuntimeContext):
        self._store = open_store(self._uri, self._region, self._endpoint)
        self._board = StatusBoard(self._status_dir)
        self._name = f"export-{ctx.get_index_of_this_subtask()}"
        metrics = ctx.get_metrics_group()
        self._metric = {name: metrics.counter(name) for name in _METRICS.values()}
        self._totals = {"objects": 0, "bytes": 0, "blocks": 0, "revisions": 0, "system_revisions": 0,
                        "skipped": 0, "dead_letters": 0}

    def flat_map(self, key: str):
        stats = ObjectStats()
        skipped = 0
        try:
            data = self._store.read_key(key, self._prefix)
        except MissingObject as exc:
            data = None
            stats.dead_letters += 1
            yield dead_letter_row(object_dead_letter(self._export_id, key, f"data object listed in the completed "
                                                                           f"manifest cannot be read: {exc}"),
                                  self._slots)
        except Exception as exc:
            raise ExportReadError(f"cannot read data object {key} of export {self._export_id} under {self._uri}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        if data is not None:
            for item in read_object(self._export_id, key, data, self._format,
                                    max_document_bytes=self._max_document_bytes, stats=stats):
                self._publish(stats, skipped)  # progress within a big object (at most every 0.5 s)
                if isinstance(item, DeadLetter):
                    log.warning("dead letter from export %s object %s %s: %s", self._export_id, key,
                                item.sequence_number, item.reason[:300])
                    yield dead_letter_row(item, self._slots)
                elif self._include and item.table not in self._include:
                    skipped += 1
                else:
                    yield revision_row(item, self._slots)
        self._count(len(data or b""), stats, skipped)

    def _publish(self, stats: ObjectStats, skipped: int) -> None:
        self._board.publish(self._name, {
            "kind": "export", **self._totals, "blocks": self._totals["blocks"] + stats.blocks,
            "revisions": self._totals["revisions"] + stats.revisions - skipped,
            "dead_letters": self._totals["dead_letters"] + stats.dead_letters})

    def _count(self, size: int, stats: ObjectStats, skipped: int) -> None:
        done = {"objects": 1, "bytes": size, "blocks": stats.blocks, "revisions": stats.revisions - skipped,
                "system_revisions": stats.system_revisions, "skipped": skipped, "dead_letters": stats.dead_letters}
        for name, metric in _METRICS.items():
            self._totals[name] += done[name]
            self._metric[metric].inc(done[name])
        self._board.publish(self._name, {"kind": "export", **self._totals}, force=True)
