"""Assembles the Flink job from its settings: Kinesis source -> FORMATS[source.format]
-> per-document state -> writer (connectors/formats/registry.py names the formats).

The properties become one ``JobSettings`` (job/config/settings.py) at the entry; the
assembly reads its fields and hands each operator its stage's settings."""
from __future__ import annotations

from typing import Optional

from pyflink.common import Types
from pyflink.datastream import DataStream, KeyedStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment

from connectors.formats.registry import AUDIT, CHANGES, format_spec
from connectors.kinesis.source import add_kinesis_source
from connectors.rows.row_images import CURRENT, HISTORY
from job.functions.changes import PIECES, DecodeChangesFunction, ReassembleFunction, piece_group
from job.functions.decode import DecodeQldbFunction
from job.rows.item_rows import DEAD, ITEM_NAMES, ITEM_ROW, REVISION, SLOT
from job.functions.order import OrderedRevisionsFunction, bucket_of
from job.functions.writer import MySqlWriterFunction, slot_of
from job.config.properties import Properties
from job.config.settings import DecodeSettings, JobSettings
from job.functions import names

ITEMS_VIEW = "ledgersync_items"


def build_pipeline(env: StreamExecutionEnvironment, props: Properties,
                   status_dir: Optional[str] = None) -> None:
    """The streaming job from the properties file's values (local runs and MSF)."""
    assemble(env, JobSettings.from_properties(props), status_dir)


def assemble(env: StreamExecutionEnvironment, job: JobSettings, status_dir: Optional[str] = None) -> None:
    t_env = StreamTableEnvironment.create(env)
    # Stable uids for the SQL operators too (Top-1 keeps per-document state), so a savepoint
    # restores into a job with another parallelism, where the operator chains differ.
    t_env.get_config().set("table.exec.uid.generation", "ALWAYS")
    # The official connector, at the job's parallelism: shards spread over its subtasks.
    records = add_kinesis_source(env, job.source, names.KINESIS_SOURCE)

    spec = format_spec(job.format)
    if spec.kind == AUDIT:
        from job.pipeline.audit import build_audit_stages

        build_audit_stages(records, job.audit, status_dir)  # audit-log sync: see job/pipeline/audit.py
        return

    # Every stage exchanges ITEM_ROWs (job/rows/item_rows.py): typed rows, not pickles.
    if spec.kind == CHANGES:
        items = decode_changes(records, job.decode, status_dir)
    else:
        items = records.flat_map(DecodeQldbFunction(job.decode), output_type=ITEM_ROW
                                 ).name(names.DECODE_QLDB).uid(names.DECODE_QLDB)
    write_items(t_env, items, job, status_dir)


def decode_changes(records, decode: DecodeSettings, status_dir: Optional[str] = None):
    """A keyed change stream: each record decoded to a revision row; the parts of a split
    record (a side output) meet, keyed by their group, and join the rest once complete.
    Only parts cross the keyed step, so whole records pay no extra Python round trip."""
    decoded = records.process(DecodeChangesFunction(decode), output_type=ITEM_ROW
                              ).name(names.DECODE_CHANGES).uid(names.DECODE_CHANGES)
    joined = decoded.get_side_output(PIECES).key_by(piece_group, key_type=Types.STRING()).process(
        ReassembleFunction(decode, status_dir), output_type=ITEM_ROW
    ).name(names.REASSEMBLE_SPLIT_RECORDS).uid(names.REASSEMBLE_SPLIT_RECORDS)
    return decoded.union(joined)


def write_items(t_env: StreamTableEnvironment, items, job: JobSettings, status_dir: Optional[str] = None,
                bounded: bool = False) -> None:
    """Decoded ITEM_ROWs -> per-document state -> writer -> sink: the one path after
    decoding, for the stream (build_pipeline) and for backfills (job/pipeline/backfill.py)."""
    if job.order:
        keyed = items.key_by(bucket_of, key_type=Types.INT()).process(
            OrderedRevisionsFunction(job.ordering, bounded=bounded), output_type=ITEM_ROW,
        ).name(names.ORDER_VERSIONS).uid(names.ORDER_VERSIONS).key_by(slot_of, key_type=Types.INT())
    else:
        keyed = rows_to_write(t_env, items, job.history)

    written = keyed.process(
        MySqlWriterFunction(job.writer, status_dir, bounded=bounded)
    ).name(names.MYSQL_WRITER).uid(names.MYSQL_WRITER)

    # The writer emits nothing; Flink still wants every branch to end in a sink.
    discarding = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()
    written.sink_to(Sink(discarding)).name(names.END)


def _select(kind_sql: str, where: str, source: str) -> str:
    columns = ", ".join(kind_sql if name == "kind" else f"`{name}`" for name in ITEM_NAMES)
    return f"SELECT {columns} FROM {source} WHERE {where}"


def rows_to_write_sql(history: bool) -> str:
    """order=false, in Flink SQL (Java operators, no Python between decoding and the writer):

    - current rows: the newest revision per document (by version, then tx_id: a keyed
      source's tie, connectors/formats/changes.py), Flink's Top-1 (ROW_NUMBER ... = 1) in
      Java keyed state, far cheaper than a Python keyed function per document (see
      README, "What each mode costs"). It emits +I for a document's first revision and
      -U/+U when a newer one arrives; duplicates and older revisions emit nothing.
      Redactions never change the current view, so they stay out.
    - history rows (``history`` on): every revision; the insert-once statement drops repeats.
    - dead letters: as they are.

    Each row comes out as ``(slot, item)``: the writer's key first (see keyed_by_slot).
    """
    newest = ("(SELECT *, ROW_NUMBER() OVER (PARTITION BY tbl, document_id ORDER BY version DESC, tx_id DESC) AS rn "
              f"FROM {ITEMS_VIEW} WHERE kind = '{REVISION}' AND NOT redacted)")
    parts = [_select(f"CAST('{CURRENT}' AS STRING) AS kind", "rn = 1", newest),
             _select("kind", f"kind = '{DEAD}'", ITEMS_VIEW)]
    if history:
        parts.append(_select(f"CAST('{HISTORY}' AS STRING) AS kind", f"kind = '{REVISION}'", ITEMS_VIEW))
    fields = ", ".join(f"`{name}`" for name in ITEM_NAMES)
    union = "\nUNION ALL\n".join(parts)
    return f"SELECT `{ITEM_NAMES[SLOT]}`, ROW({fields}) AS item FROM (\n{union}\n)"


def rows_to_write(t_env: StreamTableEnvironment, items, history: bool) -> KeyedStream:
    t_env.create_temporary_view(ITEMS_VIEW, t_env.from_data_stream(items))
    return keyed_by_slot(t_env.to_changelog_stream(t_env.sql_query(rows_to_write_sql(history))))


def keyed_by_slot(changes: DataStream) -> KeyedStream:
    """The SQL's ``(slot, item)`` rows keyed by their first field in Java, so that no Python
    operator sits between the Top-1 and the writer (issue 24: each one is a JVM-Python
    round trip per row; BENCHMARKS.md). ``DataStream.key_by`` puts a Python map before
    Flink's ``KeyByKeySelector`` to make exactly these ``(key, value)`` rows; here the SQL
    makes them, and the same KeyedStream is built around the same key selector.

    The -U rows of the changelog (the image a newer revision replaces) reach the writer as
    rows too, next to their +U: the writer keeps only the newest image per document in a
    batch (connectors/mysql/writer.py, newest_per_document), and a stale image alone is an
    upsert that never moves a row back. Upsert changelog mode would drop them at the
    source, but the planner keeps them for a result with no primary key.
    """
    j_stream = changes._j_data_stream
    # The changelog's type is an ExternalTypeInfo; PyFlink's keyed Python operator takes a
    # RowTypeInfo. The rows are the same Rows; this must come before anything reads the type.
    j_stream.getTransformation().setOutputType(Types.ROW([Types.INT(), ITEM_ROW]).get_java_type_info())
    key_selector = get_gateway().jvm.org.apache.flink.streaming.api.functions.python.KeyByKeySelector()
    return KeyedStream(j_stream.keyBy(key_selector, Types.ROW([Types.INT()]).get_java_type_info()), ITEM_ROW, changes)
