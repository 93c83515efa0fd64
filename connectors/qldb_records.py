"""QLDB stream records (Ion) to plain revisions, and back.

A QLDB stream puts one Ion struct per Kinesis user record:

    {qldbStreamArn, recordType, payload}

with ``recordType`` one of ``CONTROL``, ``BLOCK_SUMMARY`` or ``REVISION_DETAILS``.
Only ``REVISION_DETAILS`` carries document revisions:

    payload: {tableInfo: {tableName, tableId},
              revision: {blockAddress: {strandId, sequenceNo}, hash,
                         data?, dataHash?, metadata: {id, version, txTime, txId}}}

A revision with ``metadata`` and no ``data`` and no ``dataHash`` is a delete; one with
``dataHash`` instead of ``data`` is a redaction (not a delete).

Decoding is pure: bytes in, a ``Decoded`` value out, or ``BadRecord`` raised with a
reason that ends up in the dead-letter table.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from amazon.ion import simpleion
from amazon.ion.exceptions import IonException

from connectors.ion_json import ion_to_json, is_ion_null

REVISION_DETAILS = "REVISION_DETAILS"
BLOCK_SUMMARY = "BLOCK_SUMMARY"
CONTROL = "CONTROL"
RECORD_TYPES = (CONTROL, BLOCK_SUMMARY, REVISION_DETAILS)

# Binary Ion version marker: every binary Ion value stream starts with it.
ION_BVM = b"\xe0\x01\x00\xea"


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


@dataclass(frozen=True)
class Decoded:
    """The outcome of decoding one user record."""

    record_type: str
    revision: Optional[Revision] = None
    # For CONTROL records: the control type (CREATED / COMPLETED); informational.
    detail: dict = field(default_factory=dict)


def decode_record(payload: bytes) -> Decoded:
    """Decode one (already de-aggregated) QLDB stream record."""
    if not payload:
        raise BadRecord("empty record")
    try:
        value = simpleion.loads(payload, single_value=True)
    except (IonException, ValueError, TypeError, UnicodeDecodeError, IndexError) as exc:
        kind = "binary Ion" if payload[:4] == ION_BVM else "not Ion (no binary Ion version marker)"
        raise BadRecord(f"cannot parse Ion ({kind}): {exc}") from None
    if not isinstance(value, Mapping):
        raise BadRecord(f"top-level Ion value is {_ion_type_name(value)}, expected a struct")
    record_type = _text(value.get("recordType"), "recordType")
    if record_type not in RECORD_TYPES:
        raise BadRecord(f"unknown recordType {record_type!r}")
    payload_struct = value.get("payload")
    if not isinstance(payload_struct, Mapping):
        raise BadRecord(f"{record_type} record has no payload struct")
    if record_type == CONTROL:
        return Decoded(CONTROL, detail={"controlRecordType": str(payload_struct.get("controlRecordType", ""))})
    if record_type == BLOCK_SUMMARY:
        return Decoded(BLOCK_SUMMARY)
    return Decoded(REVISION_DETAILS, revision=_revision(value, payload_struct))


def _revision(record: dict, payload: dict) -> Revision:
    table_info = payload.get("tableInfo")
    if not isinstance(table_info, Mapping):
        raise BadRecord("REVISION_DETAILS without payload.tableInfo")
    revision = payload.get("revision")
    if not isinstance(revision, Mapping):
        raise BadRecord("REVISION_DETAILS without payload.revision")
    metadata = revision.get("metadata")
    if not isinstance(metadata, Mapping):
        raise BadRecord("revision without metadata")
    document_id = _text(metadata.get("id"), "metadata.id")
    if not document_id:
        raise BadRecord("metadata.id is empty")
    version = metadata.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise BadRecord(f"metadata.version must be a non-negative int, got {version!r}")
    tx_time = metadata.get("txTime")
    if is_ion_null(tx_time):
        tx_time = None
    if tx_time is not None and not isinstance(tx_time, _dt.datetime):
        raise BadRecord(f"metadata.txTime must be a timestamp, got {_ion_type_name(tx_time)}")
    data = revision.get("data")
    if is_ion_null(data):
        data = None
    redacted = data is None and not is_ion_null(revision.get("dataHash"))
    deleted = data is None and not redacted
    if data is not None and not isinstance(data, Mapping):
        raise BadRecord(f"revision.data must be a struct, got {_ion_type_name(data)}")
    block = revision.get("blockAddress") if isinstance(revision.get("blockAddress"), Mapping) else {}
    seq_no = block.get("sequenceNo")
    return Revision(
        table=_text(table_info.get("tableName"), "tableInfo.tableName"),
        table_id=str(table_info.get("tableId") or ""),
        document_id=document_id,
        version=int(version),
        tx_id=str(metadata.get("txId") or ""),
        tx_time=_utc(tx_time),
        data=None if data is None else ion_to_json(data),
        deleted=deleted,
        redacted=redacted,
        stream_arn=str(record.get("qldbStreamArn") or ""),
        block_strand_id=str(block.get("strandId") or ""),
        block_sequence_no=int(seq_no) if isinstance(seq_no, int) and not isinstance(seq_no, bool) else None,
    )


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadRecord(f"{name} must be a string or symbol, got {_ion_type_name(value)}")
    return str(value)


def _utc(value: Optional[_dt.datetime]) -> Optional[_dt.datetime]:
    if value is None:
        return None
    if value.tzinfo is None:  # Ion local-offset-unknown (-00:00): treat as UTC, as QLDB does
        return _dt.datetime(value.year, value.month, value.day, value.hour, value.minute,
                            value.second, value.microsecond, tzinfo=_dt.timezone.utc)
    return _dt.datetime(value.year, value.month, value.day, value.hour, value.minute,
                        value.second, value.microsecond, tzinfo=value.tzinfo).astimezone(_dt.timezone.utc)


def _ion_type_name(value: Any) -> str:
    ion_type = getattr(value, "ion_type", None)
    if ion_type is not None:
        return ion_type.name.lower()
    return "missing" if value is None else type(value).__name__


# --- encoding (simulator, tests, `ledgersync record encode`) -------------------------

def encode_revision(
    *,
    table: str,
    document_id: str,
    version: int,
    data: Optional[dict],
    tx_id: str,
    tx_time: _dt.datetime,
    table_id: str = "",
    stream_arn: str = "arn:aws:qldb:us-east-1:000000000000:stream/ledgersync-demo/demo",
    strand_id: str = "strand0",
    sequence_no: int = 0,
    redacted_hash: Optional[bytes] = None,
) -> bytes:
    """A binary Ion REVISION_DETAILS record shaped like QLDB's (data=None: a delete)."""
    revision: dict = {
        "blockAddress": {"strandId": strand_id, "sequenceNo": sequence_no},
        "hash": b"\x00" * 32,
        "metadata": {"id": document_id, "version": version, "txTime": tx_time, "txId": tx_id},
    }
    if redacted_hash is not None:
        revision["dataHash"] = redacted_hash
    elif data is not None:
        revision["data"] = data
    record = {
        "qldbStreamArn": stream_arn,
        "recordType": REVISION_DETAILS,
        "payload": {"tableInfo": {"tableName": table, "tableId": table_id or table}, "revision": revision},
    }
    return simpleion.dumps(record, binary=True)
