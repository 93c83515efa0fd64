"""QLDB stream records (Ion) to plain revisions, and back.

A QLDB stream puts one Ion struct per Kinesis user record (usually several user records
per Kinesis record, KPL-aggregated: see ``connectors/formats/kpl.py``):

    {qldbStreamArn, recordType, payload}

with ``recordType`` one of ``CONTROL``, ``BLOCK_SUMMARY`` or ``REVISION_DETAILS``.
Only ``REVISION_DETAILS`` carries document revisions:

    payload: {tableInfo: {tableName, tableId},
              revision: {blockAddress: {strandId, sequenceNo}, hash,
                         data?, dataHash?, metadata: {id, version, txTime, txId}}}

A revision with ``metadata`` and no ``data`` and no ``dataHash`` is a delete; one with
``dataHash`` instead of ``data`` is a redaction (not a delete).

Decoding is pure: bytes in, a ``Decoded`` value out, or ``BadRecord`` raised with a
reason that ends up in the dead-letter table. ``decode_kinesis_record`` does a whole
Kinesis record: de-aggregation, then each user record, turning every failure into a
``DeadLetter`` so one bad user record never costs its neighbours.
"""
from __future__ import annotations

import datetime as _dt
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Union

from amazon.ion import simpleion
from amazon.ion.core import IonType

from connectors.formats import ion_framing, kpl
from connectors.dead_letters import NO_SUB_SEQUENCE, DeadLetter, payload_position
from connectors.formats.ion_json import INT64_MAX, IonMappingError, ion_to_json, is_ion_null, top_level_tags
from connectors.rows.limits import MAX_DOCUMENT_BYTES, MAX_ID_CHARS, MAX_JSON_DEPTH
from connectors.rows.row_images import document_json
from connectors.rows.tags import tags_json

REVISION_DETAILS = "REVISION_DETAILS"
BLOCK_SUMMARY = "BLOCK_SUMMARY"
CONTROL = "CONTROL"
RECORD_TYPES = (CONTROL, BLOCK_SUMMARY, REVISION_DETAILS)
CONTROL_TYPES = ("CREATED", "COMPLETED")

# Binary Ion version marker: every binary Ion value stream starts with it.
ION_BVM = b"\xe0\x01\x00\xea"

# A document's size, depth and ids are held to connectors/rows/limits.py (a record beyond
# one is a dead letter, not a failed batch).

# amazon-ion's C extension reports errors as bare codes; say what they mean.
_ION_ERRORS = {
    "IERR_EOF": "unexpected end of data (truncated?)",
    "IERR_UNEXPECTED_EOF": "unexpected end of data (truncated?)",
    "IERR_INVALID_UTF8": "a string, symbol or field name is not valid UTF-8",
    "IERR_STACK_OVERFLOW": "values nested too deeply",
    "IERR_INVALID_SYNTAX": "invalid Ion text syntax",
    "IERR_NUMERIC_OVERFLOW": "a number is out of range",
    "IERR_TOKEN_TOO_LONG": "a value is too long",
    "IERR_INVALID_TIMESTAMP": "invalid timestamp",
    "IERR_INVALID_BINARY": "invalid binary Ion",
    "IERR_INVALID_TOKEN": "invalid Ion token",
}


class BadRecord(ValueError):
    """A record that cannot be decoded; the message says why (for the dead-letter table)."""


@dataclass(frozen=True)
class Revision:
    """One document revision, as the writer and the ordering state need it."""

    table: str
    document_id: str
    version: int
    tx_id: str
    tx_time: Optional[_dt.datetime]
    # JSON-ready document data; None for a delete or a redaction.
    data: Optional[dict]
    deleted: bool = False
    redacted: bool = False
    table_id: str = ""
    stream_arn: str = ""
    block_strand_id: str = ""
    block_sequence_no: Optional[int] = None
    # ``data`` as the writer's JSON text, made once while checking the size (not compared:
    # it follows from ``data``).
    data_json: Optional[str] = field(default=None, compare=False, repr=False)
    # The Ion types of top-level fields whose JSON is text standing for another type, as
    # JSON text (connectors/mysql/column_types.py): decimal, timestamp, blob. None: none.
    data_types: Optional[str] = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Decoded:
    """The outcome of decoding one user record."""

    record_type: str
    revision: Optional[Revision] = None
    # CONTROL: controlRecordType; BLOCK_SUMMARY: block address, transaction, revision count.
    detail: dict = field(default_factory=dict)
    # Index inside a KPL aggregated record; NO_SUB_SEQUENCE when not aggregated.
    sub_sequence: int = NO_SUB_SEQUENCE


def decode_kinesis_record(stream: str, shard_id: str, sequence_number: str, data: bytes, *,
                          max_document_bytes: int = MAX_DOCUMENT_BYTES) -> Iterator[Union[Decoded, DeadLetter]]:
    """Every user record of one Kinesis record, decoded, or as a dead letter saying why.

    A broken aggregate (bad MD5, protobuf that does not parse) is one dead letter with
    the whole record; a bad user record inside a sound aggregate is a dead letter with
    its own bytes and sub-sequence, and its neighbours decode as usual.
    """
    def dead(reason: str, raw: bytes, sub_sequence: int) -> DeadLetter:
        return DeadLetter(stream=stream, shard_id=shard_id, sequence_number=sequence_number, stage="decode",
                          reason=reason, raw=bytes(raw), sub_sequence=sub_sequence)

    data = bytes(data)
    try:
        user_records = kpl.deaggregate(data)
    except kpl.BadAggregate as exc:
        yield dead(str(exc), data, NO_SUB_SEQUENCE)
        return
    for user in user_records:
        sub_sequence = NO_SUB_SEQUENCE if user.sub_sequence == kpl.NOT_AGGREGATED else user.sub_sequence
        # A broken aggregate above is a whole Kinesis record (-1 is its position); a record that
        # is not an aggregate may be a user record the Kinesis connector took out of one,
        # with no index: its dead letter's position comes from its bytes (payload_position).
        position = payload_position(user.data) if sub_sequence == NO_SUB_SEQUENCE else sub_sequence
        if user.error:
            yield dead(user.error, user.data, position)
            continue
        try:
            decoded = decode_record(user.data, max_document_bytes=max_document_bytes, sub_sequence=sub_sequence)
        except BadRecord as exc:
            yield dead(str(exc), user.data, position)
        except Exception as exc:  # a decoder bug must not stop the job nor lose the neighbours
            yield dead(f"unexpected decoder error {type(exc).__name__}: {exc}", user.data, position)
        else:
            yield decoded


def decode_record(payload: bytes, *, max_document_bytes: int = MAX_DOCUMENT_BYTES,
                  sub_sequence: int = NO_SUB_SEQUENCE) -> Decoded:
    """Decode one (already de-aggregated) QLDB stream record."""
    value = parse_ion(payload)
    if not isinstance(value, Mapping):
        raise BadRecord(f"top-level Ion value is {_ion_type_name(value)}, expected a struct")
    record_type = _text(value.get("recordType"), "recordType")
    if record_type not in RECORD_TYPES:
        raise BadRecord(f"unknown recordType {record_type!r} (expected one of {', '.join(RECORD_TYPES)})")
    payload_struct = value.get("payload")
    if not isinstance(payload_struct, Mapping):
        raise BadRecord(f"{record_type} record: payload must be a struct, got {_ion_type_name(payload_struct)}")
    stream_arn = _optional_text(value.get("qldbStreamArn"), "qldbStreamArn")
    if record_type == CONTROL:
        control = _text(payload_struct.get("controlRecordType"), "payload.controlRecordType")
        return Decoded(CONTROL, detail={"controlRecordType": control, "qldbStreamArn": stream_arn},
                       sub_sequence=sub_sequence)
    if record_type == BLOCK_SUMMARY:
        return Decoded(BLOCK_SUMMARY, detail=_block_summary(payload_struct, stream_arn), sub_sequence=sub_sequence)
    return Decoded(REVISION_DETAILS, revision=_revision(payload_struct, stream_arn, max_document_bytes),
                   sub_sequence=sub_sequence)


def parse_ion(payload: bytes) -> Any:
    """The single top-level Ion value (binary or text) in ``payload``, or ``BadRecord``."""
    if not payload:
        raise BadRecord("empty record (no bytes)")
    binary = payload[:4] == ION_BVM
    try:
        ion_framing.check(payload)  # what would hang the C extension (see connectors/formats/ion_framing.py)
    except ion_framing.BadFraming as exc:
        kind = "binary Ion" if binary else "not binary Ion (no version marker), and not Ion text either"
        raise BadRecord(f"cannot parse Ion ({kind}): {exc}") from None
    try:
        # Ion text goes to the pure-Python reader: the C extension hangs on some malformed
        # text (a symbol id of 23 digits, found by fuzzing) that no cheap check can rule
        # out. QLDB writes binary Ion, so text is rare, and its speed matters little.
        value = (simpleion.loads(payload, single_value=True) if binary
                 else simpleion.load_python(io.BytesIO(payload), single_value=True))
    except Exception as exc:  # the C extension and the pure-Python reader raise different types
        kind = "binary Ion" if binary else "not binary Ion (no version marker), and not Ion text either"
        raise BadRecord(f"cannot parse Ion ({kind}): {ion_error_text(exc)}") from None
    if value is None:
        raise BadRecord("no Ion value in the record (only an Ion version marker)" if binary
                        else "no Ion value in the record")
    return value


def ion_error_text(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "more than 1 values" in text:
        return "more than one top-level value"
    if "nesting exceeded" in text or isinstance(exc, RecursionError):  # the pure-Python reader's words
        return "values nested too deeply"
    code = text.split()[0]
    return f"{_ION_ERRORS[code]} ({code})" if code in _ION_ERRORS else text


def decode_revision_payload(payload: Mapping, stream_arn: str = "", *,
                            max_document_bytes: int = MAX_DOCUMENT_BYTES) -> Revision:
    """``{tableInfo, revision}`` (a REVISION_DETAILS payload) to a ``Revision``, or ``BadRecord``.

    Journal exports (``connectors/formats/qldb_export.py``) build this payload from a block, so
    their revisions pass the very same checks and mapping as the stream's.
    """
    return _revision(payload, stream_arn, max_document_bytes)


def _revision(payload: Mapping, stream_arn: str, max_document_bytes: int) -> Revision:
    table_info = _struct(payload.get("tableInfo"), "payload.tableInfo")
    revision = _struct(payload.get("revision"), "payload.revision")
    metadata = revision.get("metadata")
    if is_ion_null(metadata):
        raise BadRecord("revision without metadata (payload.revision.metadata is missing)")
    metadata = _struct(metadata, "payload.revision.metadata")
    table = _text(table_info.get("tableName"), "tableInfo.tableName")
    if not table:
        raise BadRecord("tableInfo.tableName is empty")
    document_id = _id(metadata.get("id"), "metadata.id", required=True)
    version = metadata.get("version")
    if getattr(version, "ion_type", None) is not IonType.INT or not 0 <= int(version) <= INT64_MAX:
        shown = _ion_type_name(version) if getattr(version, "ion_type", None) is not IonType.INT else int(version)
        raise BadRecord(f"metadata.version must be an int from 0 to 2^63-1, got {shown}")
    tx_time = metadata.get("txTime")
    if is_ion_null(tx_time):
        tx_time = None
    elif getattr(tx_time, "ion_type", None) is not IonType.TIMESTAMP:
        raise BadRecord(f"metadata.txTime must be a timestamp, got {_ion_type_name(tx_time)}")
    data = revision.get("data")
    data_hash = revision.get("dataHash")
    if is_ion_null(data):
        data = None
    if is_ion_null(data_hash):
        data_hash = None
    if data is not None and data_hash is not None:
        raise BadRecord("revision has both data and dataHash (neither a plain revision nor a redaction)")
    if data_hash is not None and getattr(data_hash, "ion_type", None) not in (IonType.BLOB, IonType.CLOB):
        raise BadRecord(f"revision.dataHash must be a blob, got {_ion_type_name(data_hash)}")
    if data is not None and not isinstance(data, Mapping):
        raise BadRecord(f"revision.data must be a struct, got {_ion_type_name(data)}")
    block = revision.get("blockAddress")
    block = block if isinstance(block, Mapping) else {}
    seq_no = block.get("sequenceNo")
    document, document_text = (None, None) if data is None else _document(data, max_document_bytes)
    data_types = None if data is None else tags_json(top_level_tags(data))
    return Revision(
        table=table,
        table_id=_optional_text(table_info.get("tableId"), "tableInfo.tableId"),
        document_id=document_id,
        version=int(version),
        tx_id=_id(metadata.get("txId"), "metadata.txId", required=False),
        tx_time=_utc(tx_time),
        data=document,
        data_json=document_text,
        data_types=data_types,
        deleted=data is None and data_hash is None,
        redacted=data_hash is not None,
        stream_arn=stream_arn,
        block_strand_id=_optional_text(block.get("strandId"), "blockAddress.strandId"),
        block_sequence_no=int(seq_no) if getattr(seq_no, "ion_type", None) is IonType.INT else None,
    )


def _document(data: Mapping, max_bytes: int) -> tuple:
    """The revision data as JSON-ready values and as JSON text, checked against what MySQL can store."""
    try:
        document = ion_to_json(data, max_depth=MAX_JSON_DEPTH, path="data")
    except IonMappingError as exc:
        raise BadRecord(f"revision data cannot be stored as JSON: {exc}") from None
    try:
        # The writer's own serialisation: its size is what MySQL receives.
        text = document_json(document)
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate: not Unicode text MySQL can hold
        raise BadRecord(f"revision data holds a string that is not valid Unicode ({exc.reason})") from None
    if size > max_bytes:
        raise BadRecord(f"revision data too large: {size} bytes as JSON, at most {max_bytes} "
                        f"(QLDB's own limit is 128 KB per document)")
    return document, text


def _block_summary(payload: Mapping, stream_arn: str) -> dict:
    block = payload.get("blockAddress")
    block = block if isinstance(block, Mapping) else {}
    summaries = payload.get("revisionSummaries")
    return {
        "qldbStreamArn": stream_arn,
        "strandId": str(_plain_text(block.get("strandId")) or ""),
        "sequenceNo": int(block["sequenceNo"]) if getattr(block.get("sequenceNo"), "ion_type", None) is IonType.INT
        else None,
        "transactionId": str(_plain_text(payload.get("transactionId")) or ""),
        "revisions": len(summaries) if isinstance(summaries, list) else 0,
    }


def _struct(value: Any, name: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise BadRecord(f"{name} must be a struct, got {_ion_type_name(value)}")
    return value


def _plain_text(value: Any) -> Optional[str]:
    """The text of an Ion string or symbol; None for anything else."""
    ion_type = getattr(value, "ion_type", None)
    if ion_type is IonType.SYMBOL:
        return getattr(value, "text", None)
    if ion_type is IonType.STRING or (ion_type is None and isinstance(value, str)):
        return str(value)
    return None


def _text(value: Any, name: str) -> str:
    text = _plain_text(value)
    if text is None:
        raise BadRecord(f"{name} must be a string or symbol, got {_ion_type_name(value)}")
    return text


def _optional_text(value: Any, name: str) -> str:
    return "" if is_ion_null(value) else _text(value, name)


def _id(value: Any, name: str, required: bool) -> str:
    if not required and is_ion_null(value):
        return ""
    text = _text(value, name)
    if required and not text:
        raise BadRecord(f"{name} is empty")
    if len(text) > MAX_ID_CHARS:
        raise BadRecord(f"{name} is {len(text)} characters long, at most {MAX_ID_CHARS}")
    return text


def _utc(value: Optional[_dt.datetime]) -> Optional[_dt.datetime]:
    if value is None:
        return None
    naive = _dt.datetime(value.year, value.month, value.day, value.hour, value.minute,
                         value.second, value.microsecond)
    if value.tzinfo is None:  # Ion local-offset-unknown (-00:00): treat as UTC, as QLDB does
        return naive.replace(tzinfo=_dt.timezone.utc)
    try:
        return naive.replace(tzinfo=value.tzinfo).astimezone(_dt.timezone.utc)
    except OverflowError:
        raise BadRecord(f"metadata.txTime {value.isoformat()} is out of range in UTC") from None


def _ion_type_name(value: Any) -> str:
    if value is None:
        return "nothing (missing)"
    ion_type = getattr(value, "ion_type", None)
    if ion_type is not None:
        name = ion_type.name.lower()
        if is_ion_null(value):
            return "null" if ion_type is IonType.NULL else f"null.{name}"
        return name
    return type(value).__name__
