"""Aurora DSQL CDC records for tests and the simulator, in the documented shape
(https://docs.aws.amazon.com/aurora-dsql/latest/userguide/cdc-record-format.html),
including oversized records split into a ``chunked`` main record and ``fragment``s.
Tooling: the runtime decoder is connectors/formats/dsql_cdc.py; the simulated workload
and its oracle (for DSQL and DynamoDB alike) are in job/cli/tools/simulate/changes.py."""
from __future__ import annotations

import json
from typing import Optional

from connectors.formats.dsql_cdc import crc32c


def envelope(op: str, table: str, ts_ns: int, tx_id: str, *, after: Optional[dict] = None,
             before: Optional[dict] = None, schema: str = "public") -> dict:
    return {"type": "full", "op": op, "before": before, "after": after,
            "source": {"version": "1.0", "ts_ms": ts_ns // 1_000_000, "ts_ns": ts_ns, "txId": tx_id,
                       "schema": schema, "table": table, "db": "postgres", "cluster": "simcluster"},
            "ts_ms": ts_ns // 1_000_000 + 125, "ts_ns": ts_ns + 125_000_000}


def to_bytes(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def split(doc: dict, fragment_chars: int, chunk_id: str) -> list:
    """The Kinesis records DSQL sends for ``doc`` when it is too large: the main record,
    then the fragments of its image (``after``, or ``before`` for a delete), each at most
    ``fragment_chars`` characters of the image's JSON text (split on characters, so each
    is valid UTF-8)."""
    image = "before" if doc["op"] == "d" else "after"
    text = json.dumps(doc[image], ensure_ascii=False, separators=(",", ":"))
    pieces = [text[i:i + fragment_chars] for i in range(0, len(text), fragment_chars)]
    main = dict(doc, type="chunked", **{image: None})
    main["chunked"] = {image: {"chunk_id": chunk_id, "total_fragments": len(pieces),
                               "crc32c": str(crc32c(text.encode("utf-8")))}}
    return [to_bytes(main)] + [to_bytes({"type": "fragment", "chunk_id": chunk_id, "index": i, "data": p})
                               for i, p in enumerate(pieces)]
