"""A simulated QLDB ledger written as a journal export (and, optionally, its later
revisions put on a stream), for the demo and the tests of ``ledgersync backfill``.

The blocks carry real hashes (revision hashes, entriesHashList, entriesHash, blockHash and
the previousBlockHash chain), so ``ledgersync verify`` accepts a simulated export, and
``write_export(tamper=..., drop_block=...)`` makes ones it must reject.

The ledger is a pure function of ``ExportSpec``: tables are created (system revisions),
documents inserted, updated and deleted a few at a time per transaction (one block per
transaction), some older revisions redacted in place (their block then holds ``dataHash``
instead of ``data``, followed by a block with the redaction's system revision). The
blocks are split into several data objects and written in ``ION_TEXT``, ``ION_BINARY``
or ``JSON`` (Ion down-converted as QLDB does it: timestamps and blobs as strings,
decimals as numbers) with the started and completed manifests, to ``s3://bucket/prefix``
or a local directory.

``revisions()`` is what the export holds, decoded by the stream's own decoder from the
stream encoding of each revision, so the tests' oracle (tests/support/oracle.py) never goes
through the export reader it checks. ``stream_revisions`` are the ledger's revisions from
the export's last ``overlap_blocks`` blocks on, plus ``later`` transactions after the
export, as a QLDB stream would carry them.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import hashlib
import json
import math
import os
import random
from dataclasses import dataclass, field
from typing import Optional

from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPySymbol

from connectors.formats.ion_hash import ion_hash
from connectors.formats.ion_json import decimal_text, is_ion_null, timestamp_text
from connectors.formats.qldb_export import (COMPLETED_SUFFIX, FORMATS, ION_BINARY, ION_TEXT, JSON, STARTED_SUFFIX,
                                    parse_export_uri)
from connectors.formats.qldb import decode_record
from connectors.formats.qldb_encode import encode_revision
from connectors.formats.qldb_verify import dot, merkle_root, revision_hash
from job.cli.tools.simulate.qldb import TABLE_NAMES, document_id

STRAND = "JdxjkR9bSYB5jMHWcI464T"
LEDGER = "ledgersync-demo"
T0 = _dt.datetime(2026, 3, 1, 8, 0, tzinfo=_dt.timezone.utc)
DEFAULT_DIRECTORY_PREFIX = "journalExport"  # what the manifests' keys start with for a local copy


@dataclass(frozen=True)
class ExportSpec:
    tables: int = 3
    documents: int = 40  # inserted per table during the export
    transactions: int = 0  # user transactions in the export; 0: enough for ~3 revisions per document
    deletes: float = 0.15  # chance that a transaction's change to a document is a delete
    redactions: int = 5  # older revisions redacted in place
    blocks_per_object: int = 40
    seed: int = 1
    output_format: str = ION_TEXT
    export_id: str = "8UyXulxccYLAsbN1aon7e4"
    # The stream part: revisions of the export's last N blocks again, then L later transactions.
    overlap_blocks: int = 0
    later: int = 0
    # Pad each document's data with a string of this many bytes (0: none): a large export
    # made of few large documents, quick to generate (the 300 MB test). QLDB's own limit
    # is 128 KB a revision.
    document_bytes: int = 0


@dataclass(frozen=True)
class SimChange:
    table: str
    document_id: str
    version: int
    data: Optional[dict]  # Python / Ion values; None for a delete
    redacted: bool = False


@dataclass
class SimBlock:
    sequence_no: int
    tx_id: str
    time: _dt.datetime
    statement: str
    changes: list = field(default_factory=list)  # SimChange, in revision order
    system_revisions: int = 0


@dataclass
class SimLedger:
    spec: ExportSpec
    blocks: list  # in the export
    later_blocks: list  # after the export (only on the stream)

    def objects(self) -> list:
        """Blocks grouped into data objects, in order."""
        n = max(1, self.spec.blocks_per_object)
        return [self.blocks[i:i + n] for i in range(0, len(self.blocks), n)]

    def revisions(self) -> list:
        """The export's revisions as the stream decoder makes them (the oracle's input)."""
        return _decoded(self.blocks)

    def stream_blocks(self) -> list:
        # The last blocks that hold document revisions (the very last ones may be redactions' system blocks).
        with_changes = [b for b in self.blocks if b.changes]
        overlap = with_changes[-self.spec.overlap_blocks:] if self.spec.overlap_blocks else []
        return overlap + self.later_blocks

    def stream_revisions(self) -> list:
        return _decoded(self.stream_blocks())


def _symbol(text: str):
    return IonPySymbol.from_value(IonType.SYMBOL, text)


def _padding(doc: str, version: int, size: int) -> str:
    # Text that differs per revision without costing the random generator anything (the
    # ledger stays the same function of the seed whatever the size).
    unit = f"{doc}/{version};"
    return (unit * (size // len(unit) + 1))[:size]


def _data(rng: random.Random, table: str, doc: str, version: int, when: _dt.datetime) -> dict:
    data = {
        "name": f"{table.lower()}-{doc[:6]}",
        "version_seen": version,
        # Two fraction digits, as money is: a decimal that survives JSON's down-conversion
        # exactly (a decimal without fraction digits would come back as an int).
        "amount": decimal.Decimal(rng.randrange(10 ** 7)).scaleb(-2),
        "active": rng.random() < 0.8,
        "kind": _symbol(rng.choice(["car", "truck", "bike"])),
        "since": when,
        "photo": hashlib.sha256(f"{doc}/{version}".encode()).digest()[:12],
        "tags": [f"t{rng.randrange(5)}" for _ in range(rng.randrange(3))],
        "address": {"city": rng.choice(["Seattle", "Zürich", "São Paulo"]), "zip": f"{rng.randrange(10 ** 5):05d}"},
    }
    if rng.random() < 0.1:
        data["serial"] = 2 ** 70 + rng.randrange(1000)  # beyond 64 bits: text in MySQL's JSON
    return data


def generate_ledger(spec: ExportSpec) -> SimLedger:
    if not 1 <= spec.tables <= len(TABLE_NAMES):
        raise ValueError(f"tables must be 1..{len(TABLE_NAMES)}")
    if spec.output_format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    rng = random.Random(spec.seed)
    tables = TABLE_NAMES[:spec.tables]
    blocks: list = []
    seq = 0

    def new_block(statement: str) -> SimBlock:
        nonlocal seq
        seq += 1
        block = SimBlock(seq, f"tx{spec.seed}x{seq:07d}", T0 + _dt.timedelta(milliseconds=250 * seq), statement)
        blocks.append(block)
        return block

    for table in tables:
        new_block(f"CREATE TABLE {table}").system_revisions = 1
    live: dict = {}  # (table, doc) -> newest version
    inserted = {t: 0 for t in tables}
    history: dict = {}  # (table, doc) -> [changes]
    target = spec.transactions or spec.tables * spec.documents * 2

    def transaction(allow_insert: bool) -> SimBlock:
        block = new_block("")
        touched = set()
        for _ in range(rng.randint(1, 3)):
            candidates = [t for t in tables if inserted[t] < spec.documents] if allow_insert else []
            if candidates and (not live or rng.random() < 0.45):
                table = rng.choice(candidates)
                doc = document_id(rng)
                inserted[table] += 1
                change = SimChange(table, doc, 0, _data(rng, table, doc, 0, block.time))
                if spec.document_bytes:
                    change.data["notes"] = _padding(doc, 0, spec.document_bytes)
            elif live:
                table, doc = rng.choice(sorted(live))
                if (table, doc) in touched:
                    continue
                version = live[(table, doc)] + 1
                if rng.random() < spec.deletes:
                    change = SimChange(table, doc, version, None)
                else:
                    change = SimChange(table, doc, version, _data(rng, table, doc, version, block.time))
                    if spec.document_bytes:
                        change.data["notes"] = _padding(doc, version, spec.document_bytes)
            else:
                continue
            touched.add((change.table, change.document_id))
            block.changes.append(change)
            history.setdefault((change.table, change.document_id), []).append((block, len(block.changes) - 1))
            if change.data is None:
                live.pop((change.table, change.document_id), None)
            else:
                live[(change.table, change.document_id)] = change.version
        kinds = {"INSERT" if c.version == 0 else "DELETE" if c.data is None else "UPDATE" for c in block.changes}
        block.statement = " / ".join(sorted(kinds)) or "SELECT 1"
        return block

    while len(blocks) - len(tables) < target:
        transaction(allow_insert=True)
    # Redactions: an older (not the newest) revision's data replaced by its hash, in place,
    # then a block with the redaction request's system revision.
    olders = [(key, entries[:-1]) for key, entries in sorted(history.items()) if len(entries) >= 2]
    for key, entries in rng.sample(olders, min(spec.redactions, len(olders))):
        block, index = rng.choice(entries)
        change = block.changes[index]
        if change.data is None:
            continue
        block.changes[index] = SimChange(change.table, change.document_id, change.version, None, redacted=True)
        new_block(f"EXEC redact_revision '{change.document_id}' v{change.version}").system_revisions = 1
    exported = blocks
    blocks = []
    for t in tables:  # a few new documents after the export too
        inserted[t] = max(0, inserted[t] - 3)
    for _ in range(spec.later):
        transaction(allow_insert=True)
    return SimLedger(spec, exported, blocks)


# --- Ion shapes ----------------------------------------------------------------------

def _hash(seed: str) -> bytes:
    return hashlib.sha256(seed.encode("utf-8")).digest()


def _data_hash(change: SimChange) -> bytes:
    return _hash(f"data/{change.table}/{change.document_id}/{change.version}")


def block_value(block: SimBlock, previous_block_hash: Optional[bytes] = None) -> dict:
    """One journal block as QLDB exports it (Ion values), with real hashes: revision hashes,
    entriesHashList (the transactionInfo's Ion hash, the revisions' Merkle root and one
    internal entry, as QLDB's lists hold hashes of its own), entriesHash and blockHash
    chained to ``previous_block_hash`` (default: a stand-in for the block before the
    ledger's first, since the export starts there)."""
    address = {"strandId": STRAND, "sequenceNo": block.sequence_no}
    revisions = [{"hash": _hash(f"system/{block.sequence_no}/{i}")} for i in range(block.system_revisions)]
    documents = {}
    for change in block.changes:
        table_id = _hash(change.table).hex()[:22]
        documents[change.document_id] = {"tableName": change.table, "tableId": table_id, "statements": [0]}
        revision = {"blockAddress": address, "hash": None}
        if change.redacted:
            revision["dataHash"] = _data_hash(change)
        elif change.data is not None:
            revision["data"] = change.data
        revision["metadata"] = {"id": change.document_id, "version": change.version, "txTime": block.time,
                                "txId": block.tx_id}
        revisions.append(revision)
    value = {
        "blockAddress": address,
        "transactionId": block.tx_id,
        "blockTimestamp": block.time,
        "blockHash": None,
        "entriesHash": None,
        "previousBlockHash": None,
        "entriesHashList": None,
        "transactionInfo": {
            "statements": [{"statement": block.statement, "startTime": block.time,
                            "statementDigest": _hash(block.statement)}],
            "documents": documents,
        },
        "revisions": revisions,
    }
    return _with_hashes(value, previous_block_hash or _hash(f"block/{block.sequence_no - 1}"))


def _with_hashes(value: dict, previous_block_hash: bytes) -> dict:
    # Hash what a reader of the export gets back (Ion values with their types and
    # precision), not the Python values the simulator built.
    loaded = simpleion.loads(simpleion.dumps(value, binary=True))
    for revision, read_back in zip(value["revisions"], loaded["revisions"]):
        computed = revision_hash(read_back)
        if computed is not None:
            revision["hash"] = computed
    entries = [ion_hash(loaded["transactionInfo"])]
    if value["revisions"]:
        entries.append(merkle_root([r["hash"] for r in value["revisions"]]))
    entries.append(_hash(f"internal/{value['blockAddress']['sequenceNo']}"))
    value["entriesHashList"] = entries
    value["entriesHash"] = merkle_root(entries)
    value["previousBlockHash"] = previous_block_hash
    value["blockHash"] = dot(value["entriesHash"], previous_block_hash)
    return value


def chained_block_values(blocks: list) -> list:
    """The blocks' values, each one's previousBlockHash the blockHash of the one before."""
    out, previous = [], None
    for block in blocks:
        out.append(block_value(block, previous))
        previous = out[-1]["blockHash"]
    return out


def tamper_block(value: dict) -> str:
    """Change one character of the first revision's data (after the hashes were made), as
    an edit of the export would; says what changed."""
    for index, revision in enumerate(value["revisions"]):
        data = revision.get("data")
        if data:
            name = data["name"]
            data["name"] = ("X" if name[0] != "X" else "Y") + name[1:]
            return f"revision {index} (document {revision['metadata']['id']}): data.name {name!r} -> {data['name']!r}"
    raise ValueError(f"block {value['blockAddress']['sequenceNo']} has no revision with data to tamper with")


def stream_record(block: SimBlock, change: SimChange) -> bytes:
    """The REVISION_DETAILS record a QLDB stream puts for one revision."""
    return encode_revision(table=change.table, document_id=change.document_id, version=change.version,
                           data=change.data, tx_id=block.tx_id, tx_time=block.time,
                           table_id=_hash(change.table).hex()[:22], strand_id=STRAND,
                           sequence_no=block.sequence_no,
                           redacted_hash=_data_hash(change) if change.redacted else None)


def _decoded(blocks: list) -> list:
    return [decode_record(stream_record(b, c)).revision for b in blocks for c in b.changes]


# --- JSON down-conversion, as QLDB writes a JSON export --------------------------------

def downconvert(value) -> str:
    """JSON text of an Ion value (as ``simpleion`` loads it): timestamps as their Ion text,
    blobs as base64, decimals as numbers, symbols as strings, annotations dropped."""
    if is_ion_null(value):
        return "null"
    ion_type = getattr(value, "ion_type", None)
    if ion_type is IonType.BOOL:
        return "true" if value else "false"
    if ion_type is IonType.INT:
        return str(int(value))
    if ion_type is IonType.FLOAT:
        number = float(value)
        return "null" if math.isnan(number) or math.isinf(number) else repr(number)
    if ion_type is IonType.DECIMAL:
        return decimal_text(decimal.Decimal(value))
    if ion_type is IonType.TIMESTAMP:
        return json.dumps(timestamp_text(value))
    if ion_type in (IonType.STRING, IonType.SYMBOL):
        return json.dumps(str(getattr(value, "text", value)), ensure_ascii=False)
    if ion_type in (IonType.BLOB, IonType.CLOB):
        import base64

        return json.dumps(base64.b64encode(bytes(value)).decode("ascii"))
    if ion_type in (IonType.LIST, IonType.SEXP):
        return "[" + ",".join(downconvert(v) for v in value) + "]"
    if ion_type is IonType.STRUCT:
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{downconvert(v)}"
                              for k, v in value.items()) + "}"
    raise ValueError(f"cannot down-convert Ion {ion_type}")


def encode_block(block: dict, output_format: str) -> bytes:
    """One block in the output format. Each binary block carries its own version marker and
    symbol table (a valid Ion stream), so the objects can be cut at block boundaries."""
    if output_format == ION_BINARY:
        return simpleion.dumps(block, binary=True)
    if output_format == ION_TEXT:
        return simpleion.dumps(block, binary=False, omit_version_marker=True).encode("utf-8") + b"\n"
    loaded = simpleion.loads(simpleion.dumps(block, binary=True))
    return downconvert(loaded).encode("utf-8") + b"\n"


def _manifest(value: dict, output_format: str) -> bytes:
    if output_format == JSON:
        return downconvert(simpleion.loads(simpleion.dumps(value, binary=True))).encode("utf-8")
    return encode_block(value, output_format)


# --- writing the export ------------------------------------------------------------------

@dataclass
class WrittenExport:
    ledger: SimLedger
    uri: str
    prefix: str  # the S3 prefix the keys start with
    keys: list  # data object keys in manifest order
    object_blocks: list  # per key: its SimBlocks
    lost: list = field(default_factory=list)  # (table, document_id, version) a corruption cost
    tampered: Optional[str] = None  # "strand/seq" of the block changed after hashing (--tamper)
    dropped: Optional[str] = None  # "strand/seq" of the block left out (--drop-block)

    def revisions(self) -> list:
        """What the backfill must replicate: the export's revisions minus those lost."""
        lost = set(self.lost)
        return [r for r in self.ledger.revisions() if (r.table, r.document_id, r.version) not in lost]


def object_key(prefix: str, blocks: list, output_format: str) -> str:
    first = blocks[0]
    t = first.time
    ext = "json" if output_format == JSON else "ion"
    return (f"{prefix + '/' if prefix else ''}{t:%Y/%m/%d/%H}/{STRAND}.{first.sequence_no}-{blocks[-1].sequence_no}"
            f".{ext}")


def write_export(ledger: SimLedger, uri: str, *, region: str = "us-east-1", endpoint: Optional[str] = None,
                 corrupt_object: Optional[int] = None, tamper: Optional[int] = None,
                 drop_block: Optional[int] = None, out=print) -> WrittenExport:
    """Write the ledger's export to ``s3://bucket/prefix`` (the bucket is created if missing)
    or a local directory. ``corrupt_object``: cut that data object in the middle of a block
    (a JSON line is garbled instead), so its dead letters can be checked. ``tamper``: change
    a character of a revision's data in the first block from that sequenceNo on that has
    one, after hashing; ``drop_block``: leave the block with that sequenceNo out of its
    object (its name still says it is there). Both make exports ``verify`` must reject."""
    spec = ledger.spec
    fmt = spec.output_format
    location = parse_export_uri(uri) if uri.startswith("s3://") else None
    if location is None:
        os.makedirs(uri, exist_ok=True)
        location = parse_export_uri(uri)
    prefix = location.prefix if location.is_s3 else DEFAULT_DIRECTORY_PREFIX
    put = _s3_writer(location, region, endpoint) if location.is_s3 else _directory_writer(location.prefix, prefix)
    started = {"ledgerName": LEDGER, "exportId": spec.export_id,
               "inclusiveStartTime": ledger.blocks[0].time.replace(minute=0, second=0, microsecond=0),
               "exclusiveEndTime": ledger.blocks[-1].time + _dt.timedelta(seconds=1),
               "bucket": location.bucket or "local-copy", "prefix": prefix,
               "objectEncryptionType": "NO_ENCRYPTION", "outputFormat": fmt}
    put(f"{prefix}/{spec.export_id}{STARTED_SUFFIX}" if prefix else f"{spec.export_id}{STARTED_SUFFIX}",
        _manifest(started, fmt))
    written = WrittenExport(ledger, location.uri, prefix, [], [])
    values = dict(zip((b.sequence_no for b in ledger.blocks), chained_block_values(ledger.blocks)))
    if tamper is not None:
        target = next((b for b in ledger.blocks if b.sequence_no >= tamper and any(c.data for c in b.changes)), None)
        if target is None:
            raise ValueError(f"--tamper {tamper}: no block from sequenceNo {tamper} on has a revision with data")
        what = tamper_block(values[target.sequence_no])
        written.tampered = f"{STRAND}/{target.sequence_no}"
        out(f"simulate: tampered with block {written.tampered}: {what}")
    if drop_block is not None:
        if drop_block not in values:
            raise ValueError(f"--drop-block {drop_block}: the export has blocks "
                             f"{ledger.blocks[0].sequence_no}..{ledger.blocks[-1].sequence_no}")
        written.dropped = f"{STRAND}/{drop_block}"
        written.lost += [(c.table, c.document_id, c.version) for b in ledger.blocks if b.sequence_no == drop_block
                         for c in b.changes]
        out(f"simulate: left block {written.dropped} out of its object")
    for index, blocks in enumerate(ledger.objects()):
        key = object_key(prefix, blocks, fmt)
        kept = [b for b in blocks if b.sequence_no != drop_block]
        parts = [encode_block(values[b.sequence_no], fmt) for b in kept]
        if index == corrupt_object:
            parts, lost_blocks = _corrupt(parts, kept, fmt)
            written.lost += [(c.table, c.document_id, c.version) for b in lost_blocks for c in b.changes]
        put(key, b"".join(parts))
        written.keys.append(key)
        written.object_blocks.append(blocks)
    completed = {"keys": written.keys}
    put(f"{prefix}/{spec.export_id}.{STRAND}{COMPLETED_SUFFIX}" if prefix
        else f"{spec.export_id}.{STRAND}{COMPLETED_SUFFIX}", _manifest(completed, fmt))
    revisions = ledger.revisions()
    out(f"simulate: export {spec.export_id} ({fmt}) at {location.uri}: {len(ledger.blocks)} blocks in "
        f"{len(written.keys)} data objects, {len(revisions)} revisions of "
        f"{len({(r.table, r.document_id) for r in revisions})} documents in {spec.tables} tables "
        f"({sum(r.deleted for r in revisions)} deletes, {sum(r.redacted for r in revisions)} redactions, "
        f"{sum(b.system_revisions for b in ledger.blocks)} system revisions)"
        + (f"; object {corrupt_object} corrupted, {len(written.lost)} revisions lost with it"
           if corrupt_object is not None else ""))
    return written


def _corrupt(parts: list, blocks: list, fmt: str) -> tuple:
    cut = len(parts) // 2
    if fmt == JSON:
        parts = parts[:cut] + [b'{"blockAddress": {"strandId": "' + STRAND.encode() + b'", "sequenceNo": \n'] \
            + parts[cut + 1:]
        return parts, [blocks[cut]]
    return parts[:cut] + [parts[cut][:len(parts[cut]) // 2]], blocks[cut:]


def _s3_writer(location, region: str, endpoint: Optional[str]):
    from connectors.aws_clients import aws_client

    s3 = aws_client("s3", region, endpoint)
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=location.bucket)
        else:
            s3.create_bucket(Bucket=location.bucket, CreateBucketConfiguration={"LocationConstraint": region})
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        pass

    def put(key: str, data: bytes) -> None:
        s3.put_object(Bucket=location.bucket, Key=key, Body=data)
    return put


def _directory_writer(root: str, prefix: str):
    def put(key: str, data: bytes) -> None:
        relative = key[len(prefix) + 1:] if prefix and key.startswith(prefix + "/") else key
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    return put


def late_revisions_of_deleted(ledger: SimLedger, limit: int) -> list:
    """(block, change) of older revisions of documents the export ends with a delete:
    arriving late on a stream, they must not bring those documents back."""
    last: dict = {}
    for block in ledger.blocks:
        for change in block.changes:
            last[(change.table, change.document_id)] = change
    deleted = {key for key, change in last.items() if change.data is None and not change.redacted}
    out = [(b, c) for b in ledger.blocks for c in b.changes
           if (c.table, c.document_id) in deleted and c.data is not None]
    return out[:limit]


def put_stream(ledger: SimLedger, kinesis, stream: str, *, shards: int = 2, duplicates: float = 0.1,
               late_deleted: int = 0, out=print) -> list:
    """Put the ledger's stream part (overlap + later, and ``late_deleted`` old revisions of
    documents the export deleted) on ``stream``, shuffled, some twice; returns the revisions
    put (decoded, for the oracle)."""
    from job.cli.tools.simulate.qldb import ensure_stream, put_records

    rng = random.Random(ledger.spec.seed + 17)
    pairs = [(b, c) for b in ledger.stream_blocks() for c in b.changes] + late_revisions_of_deleted(ledger,
                                                                                                    late_deleted)
    records = [(c.document_id, stream_record(b, c)) for b, c in pairs]
    records += [r for r in records if rng.random() < duplicates]
    rng.shuffle(records)
    ensure_stream(kinesis, stream, shards)
    put_records(kinesis, stream, records)
    revisions = [decode_record(stream_record(b, c)).revision for b, c in pairs]
    out(f"simulate: {len(revisions)} revisions ({ledger.spec.overlap_blocks} blocks overlapping the export, "
        f"{ledger.spec.later} later transactions, {len(pairs) - len(ledger.stream_revisions())} old revisions of "
        f"deleted documents; {len(records)} records with duplicates, shuffled) on stream {stream}")
    return revisions
