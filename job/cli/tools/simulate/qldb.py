"""A QLDB-like workload: documents with several revisions each, put on a Kinesis stream.

The workload is a pure function of its settings (and seed), so tests and the demo can
compute exactly what MySQL must hold afterwards (``expected_current``) and which records
must end as dead letters (``bad_samples``).

Beyond plain revisions a workload can hold what real QLDB streams carry: deletes (a last
revision without data), redactions (an older revision again, with ``dataHash`` instead of
``data``), block summaries, CONTROL records, KPL aggregation (several user records per
Kinesis record), and a corpus of bad records mixed in among good ones. Each of those is a
``WorkloadSpec`` field whose default leaves the workload as it was without it.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import hashlib
import random
import time
from dataclasses import dataclass
from typing import Iterable, Callable, Optional

from amazon.ion import simpleion

from connectors.formats import kpl
from connectors.formats.qldb import ION_BVM, REVISION_DETAILS
from connectors.rows.limits import MAX_JSON_DEPTH
from connectors.formats.qldb_encode import DEFAULT_STREAM_ARN, encode_block_summary, encode_control, encode_revision

TABLE_NAMES = ("Person", "VehicleRegistration", "DriversLicense", "Vehicle", "Policy", "Claim")
PUT_BATCH = 500  # PutRecords takes at most 500 records per call
PUT_BATCH_BYTES = 5 * 1024 * 1024  # ... and at most 5 MiB (data and partition keys) per call
# Aggregated records stay under Kinesis' 1 MiB per record, with room for the partition key.
AGGREGATE_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class WorkloadSpec:
    tables: int = 3
    documents: int = 100  # per table
    revisions: int = 4  # per document
    duplicates: float = 0.0  # fraction of revisions put twice
    shuffle: bool = False
    seed: int = 1
    aggregate: int = 0  # user records per KPL-aggregated Kinesis record; 0: one record per put
    deletes: float = 0.0  # fraction of documents deleted after their last revision
    redactions: float = 0.0  # fraction of documents (with 2+ revisions) with one older revision redacted
    block_summaries: bool = False  # a BLOCK_SUMMARY record per transaction, before its revision
    control: bool = False  # CONTROL CREATED first and COMPLETED last
    bad_records: int = 0  # bad records mixed in (see BAD_KINDS), each must end as a dead letter


@dataclass(frozen=True)
class SimRevision:
    table: str
    document_id: str
    version: int
    data: Optional[dict]  # None for a delete and for a redaction
    tx_id: str
    tx_time: _dt.datetime
    deleted: bool = False
    redacted: bool = False


def document_id(rng: random.Random) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(rng.choice(alphabet) for _ in range(22))  # QLDB ids: 22 base62 chars


def generate(spec: WorkloadSpec) -> list:
    """Every revision of the workload, in the order it would be put (before duplicates)."""
    if spec.tables < 1 or spec.tables > len(TABLE_NAMES):
        raise ValueError(f"tables must be 1..{len(TABLE_NAMES)}")
    if spec.documents < 1 or spec.revisions < 1:
        raise ValueError("documents and revisions must be at least 1")
    for name in ("duplicates", "deletes", "redactions"):
        if not 0.0 <= getattr(spec, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    if spec.aggregate < 0 or spec.bad_records < 0:
        raise ValueError("aggregate and bad_records must not be negative")
    rng = random.Random(spec.seed)
    # Deletes and redactions draw from their own generator, so the documents and their
    # data stay what they are without them.
    extras = random.Random(spec.seed * 7919 + 3)
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
            written = revisions[-spec.revisions:]
            if spec.deletes and extras.random() < spec.deletes:
                tx += 1
                revisions.append(SimRevision(
                    table=table, document_id=doc, version=spec.revisions, data=None, deleted=True,
                    tx_id=f"tx{tx:010d}", tx_time=start + _dt.timedelta(milliseconds=tx * 7)))
            if spec.redactions and spec.revisions >= 2 and extras.random() < spec.redactions:
                # QLDB only redacts inactive revisions; the record keeps the original metadata.
                old = written[extras.randrange(spec.revisions - 1)]
                revisions.append(SimRevision(
                    table=table, document_id=doc, version=old.version, data=None, redacted=True,
                    tx_id=old.tx_id, tx_time=old.tx_time))
    return revisions


def delivery(spec: WorkloadSpec, revisions: list) -> list:
    """The order records are put in: with duplicates added and, if asked, shuffled."""
    rng = random.Random(spec.seed + 1)
    out = list(revisions)
    out += [r for r in revisions if rng.random() < spec.duplicates]
    if spec.shuffle:
        rng.shuffle(out)
    return out


def expected_current(revisions: Iterable) -> dict:
    """(table, document_id) -> the newest revision: what the current view must hold (the
    simulators' summary and the tests' oracle, tests/support/oracle.py, use this one copy).

    Newest is the highest (version, tx_id), as the writer's upsert decides
    (connectors/mysql/sql.py, ``newer``): QLDB never gives two revisions one version, but
    the oracle must not be weaker than the SQL it checks. A redaction changes nothing; a
    document whose newest revision is a delete is absent.
    """
    newest: dict = {}
    for r in revisions:
        if getattr(r, "redacted", False):
            continue
        key = (r.table, r.document_id)
        if key not in newest or (r.version, r.tx_id) > (newest[key].version, newest[key].tx_id):
            newest[key] = r
    return {key: r for key, r in newest.items() if not r.deleted}


def encode(r: SimRevision) -> bytes:
    redacted_hash = hashlib.sha256(f"{r.document_id}/{r.version}".encode()).digest() if r.redacted else None
    return encode_revision(table=r.table, document_id=r.document_id, version=r.version, data=r.data,
                           tx_id=r.tx_id, tx_time=r.tx_time, sequence_no=int(r.tx_id[2:]),
                           redacted_hash=redacted_hash)


# --- bad records -----------------------------------------------------------------------

@dataclass(frozen=True)
class BadSample:
    kind: str
    payload: bytes
    reason: str  # a part of the dead letter's reason
    # True: a whole Kinesis record (a broken KPL aggregate); False: a user record.
    envelope: bool = False


_T0 = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)


def _bad_revision(n: int, **changes) -> dict:
    record = {
        "qldbStreamArn": DEFAULT_STREAM_ARN, "recordType": REVISION_DETAILS,
        "payload": {"tableInfo": {"tableName": "Person", "tableId": "Person"}, "revision": {
            "blockAddress": {"strandId": "strand0", "sequenceNo": n},
            "hash": b"\x00" * 32,
            "metadata": {"id": f"BADDOCUMENT{n:011d}", "version": 0, "txTime": _T0, "txId": f"badtx{n}"},
            "data": {"name": "bad"}}}}
    revision = record["payload"]["revision"]
    for key, value in changes.items():
        if key == "record":
            record.update(value)
        elif key == "metadata" and value is not None:
            revision["metadata"].update(value)
        elif value is None:
            revision.pop(key, None)
        else:
            revision[key] = value
    return record


def _ion(value) -> bytes:
    return simpleion.dumps(value, binary=True)


def _non_utf8(n: int) -> bytes:
    # Binary Ion whose string holds the bytes C3 28: not UTF-8. Same length, so the
    # binary Ion framing around it stays valid.
    good = _ion(_bad_revision(n, data={"name": "AB\u00e9CD"}))
    return good.replace("AB\u00e9CD".encode("utf-8"), b"AB\xc3\x28CD")


def _nested(depth: int):
    value = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"inner": value}
    return value


def _broken_aggregate(n: int, kind: str, neighbours: list) -> bytes:
    (_key, data), = kpl.aggregate([(f"bad{n}", payload) for payload in neighbours])
    if kind == "bad-md5":
        return data[:-1] + bytes([data[-1] ^ 0xFF])
    message = data[len(kpl.MAGIC):-kpl.DIGEST_SIZE][:-3]  # truncated protobuf, MD5 recomputed to match
    return kpl.MAGIC + message + hashlib.md5(message).digest()


# kind -> (builder(n, neighbours) -> bytes, reason, envelope); in the order they are cycled.
BAD_KINDS = {
    "not-ion": (lambda n, _: b"this is not a QLDB stream record", "cannot parse Ion", False),
    "truncated-ion": (lambda n, _: _ion(_bad_revision(n))[:60], "cannot parse Ion (binary Ion)", False),
    "unknown-record-type": (lambda n, _: _ion(_bad_revision(n, record={"recordType": "REVISION_SUMMARY"})),
                            "unknown recordType", False),
    "missing-metadata": (lambda n, _: _ion(_bad_revision(n, metadata=None)), "without metadata", False),
    "wrong-field-type": (lambda n, _: _ion(_bad_revision(n, metadata={"version": "3"})),
                         "metadata.version must be an int", False),
    "non-utf8-string": (lambda n, _: _non_utf8(n), "not valid UTF-8", False),
    "too-deep": (lambda n, _: _ion(_bad_revision(n, data=_nested(MAX_JSON_DEPTH + 5))), "nested more than", False),
    # 900,000 nulls: under 1 MiB of Ion, 4.5 MB of JSON.
    "huge-document": (lambda n, _: _ion(_bad_revision(n, data={"values": [None] * 900_000})),
                      "revision data too large", False),
    # Only in aggregated workloads:
    "empty": (lambda n, _: b"", "empty record", False),
    "bad-md5": (lambda n, nb: _broken_aggregate(n, "bad-md5", nb), "MD5 mismatch", True),
    "truncated-kpl": (lambda n, nb: _broken_aggregate(n, "truncated-kpl", nb), "protobuf AggregatedRecord does not parse",
                      True),
}
AGGREGATED_ONLY = ("empty", "bad-md5", "truncated-kpl")


def bad_samples(spec: WorkloadSpec, revisions: Optional[list] = None) -> list:
    """The ``spec.bad_records`` bad records of the workload, cycling through ``BAD_KINDS``.

    A broken aggregate carries copies of good revisions (``revisions``), which also
    arrive intact elsewhere, so it shows that a bad envelope loses nothing else.
    """
    kinds = [k for k in BAD_KINDS if spec.aggregate or k not in AGGREGATED_ONLY]
    if revisions is None:
        revisions = generate(spec) if spec.bad_records else []
    out = []
    for n in range(spec.bad_records):
        kind = kinds[n % len(kinds)]
        build, reason, envelope = BAD_KINDS[kind]
        neighbours = [encode(r) for r in revisions[n:n + 3]] or [ION_BVM]
        out.append(BadSample(kind, build(n, neighbours), reason, envelope))
    return out


# --- what goes on the stream -------------------------------------------------------------

def kinesis_records(spec: WorkloadSpec, revisions: list, shard_of: Optional[Callable[[str], object]] = None) -> list:
    """``(partition_key, data)`` of every Kinesis record the workload puts, in put order.

    ``shard_of`` (partition key -> shard, see ``shard_mapper``): aggregates hold only user
    records bound for one shard, as the KPL packs them; without it, any records share one."""
    users = []
    seen_tx = set()
    for r in delivery(spec, revisions):
        if spec.block_summaries and r.tx_id not in seen_tx:
            seen_tx.add(r.tx_id)
            users.append((r.document_id, encode_block_summary(
                tx_id=r.tx_id, block_time=r.tx_time, revisions=[(r.table, r.table, r.document_id)],
                sequence_no=int(r.tx_id[2:]), statement="DELETE" if r.deleted else "UPDATE")))
        users.append((r.document_id, encode(r)))
    bad = bad_samples(spec, revisions)
    # Bad records at fixed pseudo-random places, so they sit among good neighbours.
    place = random.Random(spec.seed * 7919 + 5)
    for sample in (b for b in bad if not b.envelope):
        users.insert(place.randrange(len(users) + 1), (f"bad-{sample.kind}", sample.payload))
    if spec.control:
        users.insert(0, ("control", encode_control("CREATED")))
        users.append(("control", encode_control("COMPLETED")))
    if spec.aggregate and shard_of is not None:
        records = kpl.aggregate_per_shard(users, shard_of, max_bytes=AGGREGATE_MAX_BYTES, max_records=spec.aggregate)
    elif spec.aggregate:
        records = kpl.aggregate(users, max_bytes=AGGREGATE_MAX_BYTES, max_records=spec.aggregate)
    else:
        records = users
    for sample in (b for b in bad if b.envelope):
        records.insert(place.randrange(len(records) + 1), (f"bad-{sample.kind}", sample.payload))
    return records


def shard_mapper(client, stream: str) -> Callable[[str], str]:
    """partition key -> the id of the open shard whose hash key range holds it (ListShards),
    as the KPL predicts where a record will land before it aggregates."""
    ranges = []
    response = client.list_shards(StreamName=stream)
    while True:
        for shard in response["Shards"]:
            if "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
                keys = shard["HashKeyRange"]
                ranges.append((int(keys["StartingHashKey"]), int(keys["EndingHashKey"]), shard["ShardId"]))
        if not response.get("NextToken"):
            break
        response = client.list_shards(NextToken=response["NextToken"])

    def shard_of(partition_key: str) -> str:
        key = kpl.hash_key(partition_key)
        return next(shard_id for low, high, shard_id in ranges if low <= key <= high)
    return shard_of


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


def _batches(payloads: list):
    batch, size = [], 0
    for key, data in payloads:
        entry_size = len(data) + len(key.encode("utf-8"))
        if batch and (len(batch) >= PUT_BATCH or size + entry_size > PUT_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append({"Data": data, "PartitionKey": key})
        size += entry_size
    if batch:
        yield batch


def put_records(client, stream: str, payloads: list, progress: Optional[Callable[[int], None]] = None) -> int:
    """PutRecords in batches (500 records, 5 MiB), re-putting the records a batch reports as failed."""
    sent = 0
    for batch in _batches(payloads):
        count = len(batch)
        delay = 0.1
        while batch:
            response = client.put_records(StreamName=stream, Records=batch)
            if not response.get("FailedRecordCount"):
                break
            batch = [entry for entry, result in zip(batch, response["Records"]) if "ErrorCode" in result]
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        sent += count
        if progress:
            progress(sent)
    return sent


def simulate_qldb(client, stream: str, spec: WorkloadSpec, shards: int = 2, out=print) -> list:
    """Put the workload on the stream (creating it if needed); returns the revisions generated."""
    ensure_stream(client, stream, shards)
    revisions = generate(spec)
    payloads = kinesis_records(spec, revisions, shard_mapper(client, stream) if spec.aggregate else None)
    started = time.monotonic()
    last = [0.0]

    def progress(sent: int) -> None:
        if time.monotonic() - last[0] >= 2 or sent == len(payloads):
            last[0] = time.monotonic()
            out(f"simulate: put {sent}/{len(payloads)} records")

    put_records(client, stream, payloads, progress)
    out(f"simulate: {len(revisions)} revisions of {spec.tables * spec.documents} documents in {spec.tables} "
        f"tables ({len(payloads)} records with duplicates) on stream {stream} in {time.monotonic() - started:.1f}s")
    extras = describe_extras(spec, revisions)
    if extras:
        out(f"simulate: {extras}")
    return revisions


def describe_extras(spec: WorkloadSpec, revisions: list) -> str:
    """What the workload holds beyond plain revisions, in one line (empty if nothing)."""
    parts = []
    if spec.deletes:
        parts.append(f"{sum(r.deleted for r in revisions)} deletes")
    if spec.redactions:
        parts.append(f"{sum(r.redacted for r in revisions)} redactions")
    if spec.block_summaries:
        parts.append(f"{len({r.tx_id for r in revisions})} block summaries")
    if spec.control:
        parts.append("CONTROL CREATED and COMPLETED")
    if spec.bad_records:
        parts.append(f"{spec.bad_records} bad records (each must end in _ledgersync_dead_letters)")
    if spec.aggregate:
        parts.append(f"KPL-aggregated, up to {spec.aggregate} user records per Kinesis record")
    if parts:
        parts.append(f"current view: {len(expected_current(revisions))} documents")
    return ", ".join(parts)
