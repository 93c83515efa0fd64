"""A QLDB-like workload: documents with several revisions each, put on a Kinesis stream.

The workload is a pure function of its settings (and seed), so tests and the demo can
compute exactly what MySQL must hold afterwards (``expected_current``).
"""
from __future__ import annotations

import datetime as _dt
import decimal
import random
import time
from dataclasses import dataclass
from typing import Callable, Optional

from connectors.qldb_records import encode_revision

TABLE_NAMES = ("Person", "VehicleRegistration", "DriversLicense", "Vehicle", "Policy", "Claim")
PUT_BATCH = 500  # PutRecords takes at most 500 records per call


@dataclass(frozen=True)
class WorkloadSpec:
    tables: int = 3
    documents: int = 100  # per table
    revisions: int = 4  # per document
    duplicates: float = 0.0  # fraction of revisions put twice
    shuffle: bool = False
    seed: int = 1


@dataclass(frozen=True)
class SimRevision:
    table: str
    document_id: str
    version: int
    data: dict
    tx_id: str
    tx_time: _dt.datetime


def document_id(rng: random.Random) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(rng.choice(alphabet) for _ in range(22))  # QLDB ids: 22 base62 chars


def generate(spec: WorkloadSpec) -> list:
    """Every revision of the workload, in the order it would be put (before duplicates)."""
    if spec.tables < 1 or spec.tables > len(TABLE_NAMES):
        raise ValueError(f"tables must be 1..{len(TABLE_NAMES)}")
    if spec.documents < 1 or spec.revisions < 1:
        raise ValueError("documents and revisions must be at least 1")
    rng = random.Random(spec.seed)
    start = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)
    revisions = []
    tx = 0
    for table in TABLE_NAMES[:spec.tables]:
        for _ in range(spec.documents):
            doc = document_id(rng)
            name = f"{table.lower()}-{rng.randrange(10 ** 6)}"
            for version in range(spec.revisions):
                tx += 1
                revisions.append(SimRevision(
                    table=table, document_id=doc, version=version, tx_id=f"tx{tx:010d}",
                    tx_time=start + _dt.timedelta(milliseconds=tx * 7),
                    data={
                        "name": name,
                        "version_seen": version,
                        "amount": decimal.Decimal(rng.randrange(10 ** 7)) / 100,
                        "active": rng.random() < 0.8,
                        "tags": [f"t{rng.randrange(5)}" for _ in range(rng.randrange(3))],
                        "address": {"city": rng.choice(["Seattle", "Zürich", "São Paulo"]),
                                    "zip": f"{rng.randrange(10 ** 5):05d}"},
                    },
                ))
    return revisions


def delivery(spec: WorkloadSpec, revisions: list) -> list:
    """The order records are put in: with duplicates added and, if asked, shuffled."""
    rng = random.Random(spec.seed + 1)
    out = list(revisions)
    out += [r for r in revisions if rng.random() < spec.duplicates]
    if spec.shuffle:
        rng.shuffle(out)
    return out


def expected_current(revisions: list) -> dict:
    """(table, document_id) -> newest SimRevision: what the current view must hold."""
    newest: dict = {}
    for r in revisions:
        key = (r.table, r.document_id)
        if key not in newest or r.version > newest[key].version:
            newest[key] = r
    return newest


def encode(r: SimRevision) -> bytes:
    return encode_revision(table=r.table, document_id=r.document_id, version=r.version, data=r.data,
                           tx_id=r.tx_id, tx_time=r.tx_time, sequence_no=int(r.tx_id[2:]))


def ensure_stream(client, stream: str, shards: int, timeout_s: float = 60.0) -> None:
    try:
        client.create_stream(StreamName=stream, ShardCount=shards)
    except client.exceptions.ResourceInUseException:
        pass  # exists already: keep it (and its shards) as it is
    deadline = time.monotonic() + timeout_s
    while client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream {stream} not ACTIVE after {timeout_s:.0f}s")
        time.sleep(0.2)


def put_records(client, stream: str, payloads: list, progress: Optional[Callable[[int], None]] = None) -> int:
    """PutRecords in batches of 500, re-putting the records a batch reports as failed."""
    sent = 0
    for start in range(0, len(payloads), PUT_BATCH):
        batch = [{"Data": data, "PartitionKey": key} for key, data in payloads[start:start + PUT_BATCH]]
        delay = 0.1
        while batch:
            response = client.put_records(StreamName=stream, Records=batch)
            if not response.get("FailedRecordCount"):
                break
            batch = [entry for entry, result in zip(batch, response["Records"]) if "ErrorCode" in result]
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        sent += min(PUT_BATCH, len(payloads) - start)
        if progress:
            progress(sent)
    return sent


def simulate_qldb(client, stream: str, spec: WorkloadSpec, shards: int = 2, out=print) -> list:
    """Put the workload on the stream (creating it if needed); returns the revisions generated."""
    ensure_stream(client, stream, shards)
    revisions = generate(spec)
    payloads = [(r.document_id, encode(r)) for r in delivery(spec, revisions)]
    started = time.monotonic()
    last = [0.0]

    def progress(sent: int) -> None:
        if time.monotonic() - last[0] >= 2 or sent == len(payloads):
            last[0] = time.monotonic()
            out(f"simulate: put {sent}/{len(payloads)} records")

    put_records(client, stream, payloads, progress)
    out(f"simulate: {len(revisions)} revisions of {spec.tables * spec.documents} documents in {spec.tables} "
        f"tables ({len(payloads)} records with duplicates) on stream {stream} in {time.monotonic() - started:.1f}s")
    return revisions
