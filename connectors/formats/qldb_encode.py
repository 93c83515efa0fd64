"""QLDB stream records made from revisions: what the simulators, the benchmark, the tests
and `ledgersync record encode` put on a stream. Apart from connectors/formats/qldb.py (the
decoder) so that the job's runtime does not carry it."""
from __future__ import annotations

import datetime as _dt
import hashlib
from typing import Optional

from amazon.ion import simpleion

from connectors.formats.qldb import BLOCK_SUMMARY, CONTROL, REVISION_DETAILS

DEFAULT_STREAM_ARN = "arn:aws:qldb:us-east-1:000000000000:stream/ledgersync-demo/demo"


def encode_revision(
    *,
    table: str,
    document_id: str,
    version: int,
    data: Optional[dict],
    tx_id: str,
    tx_time: _dt.datetime,
    table_id: str = "",
    stream_arn: str = DEFAULT_STREAM_ARN,
    strand_id: str = "strand0",
    sequence_no: int = 0,
    redacted_hash: Optional[bytes] = None,
) -> bytes:
    """A binary Ion REVISION_DETAILS record shaped like QLDB's (data=None: a delete)."""
    revision: dict = {
        "blockAddress": {"strandId": strand_id, "sequenceNo": sequence_no},
        "hash": b"\x00" * 32,  # any 32 bytes have the shape of QLDB's SHA-256
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


def encode_control(control_type: str, stream_arn: str = DEFAULT_STREAM_ARN) -> bytes:
    """A binary Ion CONTROL record (``CREATED`` first on a stream, ``COMPLETED`` last)."""
    record = {"qldbStreamArn": stream_arn, "recordType": CONTROL, "payload": {"controlRecordType": control_type}}
    return simpleion.dumps(record, binary=True)


def encode_block_summary(*, tx_id: str, block_time: _dt.datetime, revisions: list,
                         stream_arn: str = DEFAULT_STREAM_ARN, strand_id: str = "strand0",
                         sequence_no: int = 0, statement: str = "UPDATE") -> bytes:
    """A binary Ion BLOCK_SUMMARY record shaped like QLDB's.

    ``revisions``: ``(table, table_id, document_id)`` of each revision the block commits.
    """
    documents = {}
    for table, table_id, document_id in revisions:
        documents[document_id] = {"tableName": table, "tableId": table_id or table, "statements": [0]}
    record = {
        "qldbStreamArn": stream_arn,
        "recordType": BLOCK_SUMMARY,
        "payload": {
            "blockAddress": {"strandId": strand_id, "sequenceNo": sequence_no},
            "transactionId": tx_id,
            "blockTimestamp": block_time,
            "blockHash": _fake_hash(f"block/{sequence_no}"),
            "entriesHash": _fake_hash(f"entries/{sequence_no}"),
            "previousBlockHash": _fake_hash(f"block/{sequence_no - 1}"),
            "entriesHashList": [_fake_hash(f"entry/{sequence_no}")],
            "transactionInfo": {
                "statements": [{"statement": statement, "startTime": block_time,
                                "statementDigest": _fake_hash(statement)}],
                "documents": documents,
            },
            "revisionSummaries": [{"hash": _fake_hash(f"{t}/{d}"), "documentId": d} for t, _i, d in revisions],
        },
    }
    return simpleion.dumps(record, binary=True)


def _fake_hash(seed: str) -> bytes:
    # QLDB hashes are SHA-256 over Ion hash trees; any 32 bytes have the right shape here.
    return hashlib.sha256(seed.encode("utf-8")).digest()
