"""Verifying a QLDB journal export: every hash QLDB wrote, recomputed from the data.

What QLDB defines (developer guide, "Data verification"; AWS's sample verifiers):

- a user revision's ``hash`` is ``dot(IonHash(metadata), IonHash(data))``; a redacted one
  carries ``dataHash`` in place of ``data`` and the same formula holds with it; internal
  system entries are revisions with only a ``hash``, which cannot be recomputed but still
  count in the block's hashes;
- ``dot(a, b)`` is SHA-256 of the two hashes concatenated, the smaller first, comparing
  them as *signed* bytes from the *last* byte;
- a block is sound when the Ion hash of its ``transactionInfo`` is in ``entriesHashList``,
  every user revision's hash verifies, the Merkle root of its revisions' hashes is in
  ``entriesHashList``, the Merkle root of ``entriesHashList`` is ``entriesHash``, and
  ``dot(entriesHash, previousBlockHash)`` is ``blockHash``;
- the chain holds when each block's ``previousBlockHash`` is the ``blockHash`` of the block
  before it in its strand (by ``sequenceNo``).

Assumption (no published verifier covers it): a deleted document's revision has
``metadata`` and neither ``data`` nor ``dataHash``; its hash is checked against
``IonHash(metadata)`` alone, as the samples' ``dot`` leaves one hash when the other is
absent.

Each check is a function of one block returning why it fails (or None), so each can be
tested on its own broken input. ``verify_export`` streams an export object by object and
block by block (an object can be hundreds of MB; a block is one top-level Ion value) and
records every failure with the block, the check and the object key.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterator, Optional

from amazon.ion import simpleion
from amazon.ion.core import IonType

from connectors.formats.ion_hash import IonHashError, ion_hash
from connectors.formats.ion_json import is_ion_null
from connectors.formats.qldb import ion_error_text
from connectors.formats.qldb_export import JSON, Export, ExportStore, MissingObject, SourceStream, block_range

HASH_LENGTH = 32

# Check names, as reports and tests use them.
SHAPE = "shape"  # a field the checks need is missing or not what QLDB writes
TRANSACTION_INFO = "transaction-info"
REVISION_HASH = "revision-hash"
REVISIONS_ROOT = "revisions-root"
ENTRIES_HASH = "entries-hash"
BLOCK_HASH = "block-hash"
CHAIN = "chain"
OBJECT = "object"  # the object itself: missing, unparseable, blocks outside its name's range


class HashError(ValueError):
    """A hash that cannot take part in dot (empty, or not SHA-256 sized)."""


class Unverifiable(ValueError):
    """The export cannot be verified at all (JSON, unfinished); says why."""


class _Malformed(Exception):
    """A block field the check needs is missing or of the wrong type."""


# --- hashes ------------------------------------------------------------------------------

def compare_hashes(a: bytes, b: bytes) -> int:
    """QLDB's order: signed bytes, from the last byte to the first."""
    _check_hash(a, "left")
    _check_hash(b, "right")
    for x, y in zip(reversed(a), reversed(b)):
        sx, sy = x - 256 if x > 127 else x, y - 256 if y > 127 else y
        if sx != sy:
            return -1 if sx < sy else 1
    return 0


def _check_hash(h: bytes, which: str) -> None:
    if not h:
        raise HashError(f"the {which} hash is empty")
    if len(h) != HASH_LENGTH:
        raise HashError(f"the {which} hash has {len(h)} bytes, not {HASH_LENGTH}")


def dot(a: bytes, b: bytes) -> bytes:
    """SHA-256 of the two hashes concatenated, the smaller (QLDB's order) first."""
    first, second = (a, b) if compare_hashes(a, b) < 0 else (b, a)
    return hashlib.sha256(first + second).digest()


def merkle_root(hashes: list) -> bytes:
    """Pairs combined with dot level by level, an odd one carried up unchanged."""
    if not hashes:
        raise HashError("no hashes to build a Merkle root of")
    level = list(hashes)
    while len(level) > 1:
        level = [dot(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]


def short(h: Optional[bytes]) -> str:
    return "(none)" if not h else h.hex()[:16] + "…"


# --- block fields --------------------------------------------------------------------------

def _absent(value: Any) -> bool:
    return value is None or is_ion_null(value)


def _blob(struct: Mapping, name: str, what: str) -> bytes:
    value = struct.get(name)
    if _absent(value):
        raise _Malformed(f"{what}{name} is missing")
    if getattr(value, "ion_type", IonType.BLOB) not in (IonType.BLOB, IonType.CLOB) \
            or not isinstance(value, (bytes, bytearray)):
        raise _Malformed(f"{what}{name} is not a blob")
    if len(value) != HASH_LENGTH:
        raise _Malformed(f"{what}{name} has {len(value)} bytes, not {HASH_LENGTH}" if value
                         else f"{what}{name} is empty")
    return bytes(value)


def entries_hash_list(block: Mapping) -> list:
    value = block.get("entriesHashList")
    if _absent(value) or not isinstance(value, list):
        raise _Malformed("entriesHashList is missing or not a list")
    if not value:
        raise _Malformed("entriesHashList is empty")
    return [_blob({"h": item}, "h", f"entriesHashList[{i}]: ") for i, item in enumerate(value)]


def _revisions(block: Mapping) -> list:
    value = block.get("revisions")
    if _absent(value):
        return []
    if not isinstance(value, list):
        raise _Malformed("revisions is not a list")
    return value


def revision_hash(revision: Any) -> Optional[bytes]:
    """The hash a user revision must carry, recomputed; None for a system entry (only a
    hash, nothing to recompute it from)."""
    if not isinstance(revision, Mapping):
        raise _Malformed("not a struct")
    metadata, data, data_hash = (revision.get(n) for n in ("metadata", "data", "dataHash"))
    if _absent(metadata) and _absent(data) and _absent(data_hash):
        return None
    if _absent(metadata):
        raise _Malformed("has data or dataHash but no metadata")
    if not _absent(data) and not _absent(data_hash):
        raise _Malformed("has both data and dataHash")
    metadata_hash = ion_hash(metadata)
    if not _absent(data):
        return dot(metadata_hash, ion_hash(data))
    if not _absent(data_hash):
        return dot(metadata_hash, _blob(revision, "dataHash", ""))
    return metadata_hash  # a delete (see the module's note)


def _describe_revision(index: int, revision: Any) -> str:
    metadata = revision.get("metadata") if isinstance(revision, Mapping) else None
    if isinstance(metadata, Mapping):
        return f"revision {index} (document {metadata.get('id')} version {metadata.get('version')})"
    return f"revision {index}"


# --- the checks, one block each ---------------------------------------------------------------

def _guarded(check: Callable[[Mapping], Optional[str]]) -> Callable[[Mapping], Optional[str]]:
    def run(block: Mapping) -> Optional[str]:
        try:
            return check(block)
        except (_Malformed, HashError, IonHashError) as exc:
            return str(exc)
    run.__name__ = check.__name__
    run.__doc__ = check.__doc__
    return run


@_guarded
def check_transaction_info(block: Mapping) -> Optional[str]:
    """IonHash(transactionInfo) is one of entriesHashList."""
    info = block.get("transactionInfo")
    if _absent(info):
        return "transactionInfo is missing"
    computed = ion_hash(info)
    if computed not in entries_hash_list(block):
        return f"the Ion hash of transactionInfo ({short(computed)}) is not in entriesHashList"
    return None


@_guarded
def check_revision_hashes(block: Mapping) -> Optional[str]:
    """Every user revision's hash is dot(IonHash(metadata), IonHash(data or dataHash))."""
    bad = []
    for index, revision in enumerate(_revisions(block)):
        try:
            expected = revision_hash(revision)
            if expected is None:
                continue
            actual = _blob(revision, "hash", "")
        except (_Malformed, HashError, IonHashError) as exc:
            bad.append(f"{_describe_revision(index, revision)}: {exc}")
            continue
        if actual != expected:
            bad.append(f"{_describe_revision(index, revision)}: hash {short(actual)} but its metadata and data "
                       f"hash to {short(expected)}")
    if not bad:
        return None
    return bad[0] + (f" (and {len(bad) - 1} more revisions of the block)" if len(bad) > 1 else "")


@_guarded
def check_revisions_root(block: Mapping) -> Optional[str]:
    """The Merkle root of the revisions' hashes is one of entriesHashList."""
    revisions = _revisions(block)
    if not revisions:
        return None  # nothing to root (a block of statements only)
    hashes = [_blob(r, "hash", f"revision {i}: ") if isinstance(r, Mapping) else _malformed(f"revision {i}: not a struct")
              for i, r in enumerate(revisions)]
    root = merkle_root(hashes)
    if root not in entries_hash_list(block):
        return f"the Merkle root of the {len(hashes)} revision hashes ({short(root)}) is not in entriesHashList"
    return None


def _malformed(detail: str):
    raise _Malformed(detail)


@_guarded
def check_entries_hash(block: Mapping) -> Optional[str]:
    """The Merkle root of entriesHashList is entriesHash."""
    stated = _blob(block, "entriesHash", "")
    root = merkle_root(entries_hash_list(block))
    if root != stated:
        return f"entriesHash is {short(stated)} but the Merkle root of entriesHashList is {short(root)}"
    return None


@_guarded
def check_block_hash(block: Mapping) -> Optional[str]:
    """blockHash is dot(entriesHash, previousBlockHash)."""
    stated = _blob(block, "blockHash", "")
    computed = dot(_blob(block, "entriesHash", ""), _blob(block, "previousBlockHash", ""))
    if computed != stated:
        return f"blockHash is {short(stated)} but dot(entriesHash, previousBlockHash) is {short(computed)}"
    return None


BLOCK_CHECKS = ((TRANSACTION_INFO, check_transaction_info), (REVISION_HASH, check_revision_hashes),
                (REVISIONS_ROOT, check_revisions_root), (ENTRIES_HASH, check_entries_hash),
                (BLOCK_HASH, check_block_hash))


def verify_block(block: Any) -> list:
    """(check, why) for every check the block fails; [] when it is sound."""
    if not isinstance(block, Mapping):
        return [(SHAPE, "not a block (a struct expected)")]
    return [(name, why) for name, check in BLOCK_CHECKS for why in [check(block)] if why is not None]


# --- the chain -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Address:
    strand: str
    sequence_no: int

    def __str__(self) -> str:
        return f"{self.strand}/{self.sequence_no}"


def block_address(block: Any) -> Optional[Address]:
    address = block.get("blockAddress") if isinstance(block, Mapping) else None
    if not isinstance(address, Mapping):
        return None
    strand, seq = address.get("strandId"), address.get("sequenceNo")
    if _absent(strand) or getattr(seq, "ion_type", None) is not IonType.INT or isinstance(seq, bool):
        return None
    return Address(str(getattr(strand, "text", strand)), int(seq))


@dataclass(frozen=True)
class Link:
    """What the next block of the strand is checked against."""

    address: Address
    block_hash: Optional[bytes]
    key: str


def check_chain(previous: Optional[Link], address: Address, previous_block_hash: Optional[bytes]) -> Optional[str]:
    """The block follows ``previous`` (the block read before it in its strand): the next
    sequenceNo, and its previousBlockHash is that block's blockHash. None when there is no
    previous block: an export can start in the middle of the journal."""
    if previous is None:
        return None
    before = previous.address.sequence_no
    if address.sequence_no <= before:
        return (f"block {address} is read after block {previous.address} (object {previous.key}): "
                "blocks out of order or repeated")
    if address.sequence_no > before + 1:
        missing = (f"block {before + 1}" if address.sequence_no == before + 2
                   else f"blocks {before + 1}..{address.sequence_no - 1}")
        return f"block {address} follows block {previous.address}: {missing} of the strand missing"
    if previous.block_hash is None or previous_block_hash != previous.block_hash:
        return (f"previousBlockHash {short(previous_block_hash)} is not the blockHash {short(previous.block_hash)} "
                f"of block {previous.address}")
    return None


def _optional_blob(block: Any, name: str) -> Optional[bytes]:
    try:
        return _blob(block, name, "") if isinstance(block, Mapping) else None
    except _Malformed:
        return None


# --- streaming over an export ---------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    key: str
    address: Optional[Address]  # None when the object itself failed before any block
    check: str
    detail: str

    @property
    def block(self) -> str:
        return f"block {self.address}" if self.address else "object"

    def describe(self) -> str:
        return f"{self.block}: {self.check}: {self.detail} (object {self.key})"

    def as_dict(self) -> dict:
        return {"key": self.key, "strandId": self.address.strand if self.address else None,
                "sequenceNo": self.address.sequence_no if self.address else None, "check": self.check,
                "detail": self.detail}


@dataclass
class Summary:
    export_id: str = ""
    objects_total: int = 0
    blocks_total: Optional[int] = None  # from the object names; None if a name does not say
    objects: int = 0
    blocks: int = 0
    revisions: int = 0  # user revisions (documents)
    system_revisions: int = 0
    redactions: int = 0
    deletes: int = 0
    bytes_read: int = 0
    first_block: Optional[Address] = None
    last_block: Optional[Address] = None
    final_block_hash: Optional[bytes] = None
    failure_count: int = 0
    failures: list = field(default_factory=list)  # the first MAX_KEPT, in order
    strands: dict = field(default_factory=dict)  # strandId -> last Link

    MAX_KEPT = 1000

    @property
    def ok(self) -> bool:
        return self.failure_count == 0

    def fail(self, failure: Failure) -> None:
        self.failure_count += 1
        if len(self.failures) < self.MAX_KEPT:
            self.failures.append(failure)

    def as_dict(self) -> dict:
        return {"exportId": self.export_id, "ok": self.ok, "objects": self.objects, "objectsTotal": self.objects_total,
                "blocks": self.blocks, "blocksTotal": self.blocks_total, "revisions": self.revisions,
                "systemRevisions": self.system_revisions, "redactions": self.redactions, "deletes": self.deletes,
                "bytesRead": self.bytes_read,
                "firstBlock": str(self.first_block) if self.first_block else None,
                "lastBlock": str(self.last_block) if self.last_block else None,
                "finalBlockHash": self.final_block_hash.hex() if self.final_block_hash else None,
                "failureCount": self.failure_count, "failures": [f.as_dict() for f in self.failures]}


class _Counting(SourceStream):
    """Counts the bytes the Ion reader pulls from an object (progress, MB/s)."""

    def __init__(self, stream: BinaryIO, summary: Summary):
        self._source = stream
        self._summary = summary

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._summary.bytes_read += len(data)
        return data


def check_refusal(export: Export) -> None:
    """``Unverifiable`` for an export whose hashes cannot be recomputed."""
    if export.output_format == JSON:
        raise Unverifiable(f"export {export.export_id} under {export.uri} is JSON: QLDB down-converted its Ion "
                           "(timestamps, blobs, symbols and decimals became JSON text and numbers), so the hashes "
                           "cannot be recomputed from it; export the journal again as ION_BINARY or ION_TEXT")
    if not export.strands:
        raise Unverifiable(f"export {export.export_id} under {export.uri} has no completed manifest")


def verify_export(store: ExportStore, export: Export, *,
                  visit_block: Optional[Callable[[str, Any, str], None]] = None,
                  progress: Optional[Callable[[Summary], None]] = None) -> Summary:
    """Verify every block of every object the completed manifests list, in their order;
    every failure is recorded and the verification goes on. ``visit_block(key, block,
    where)`` sees each block read (the MySQL comparison collects documents with it);
    ``progress(summary)`` is called after each block and object."""
    check_refusal(export)
    summary = Summary(export_id=export.export_id, objects_total=len(export.keys), blocks_total=export.blocks_total)
    for strand in sorted(export.strands):
        for key in export.strands[strand]:
            _verify_object(store, export, strand, key, summary, visit_block, progress)
            summary.objects += 1
            if progress:
                progress(summary)
    return summary


def _blocks(stream: BinaryIO) -> Iterator[Any]:
    return simpleion.load(stream, single_value=False, parse_eagerly=False)


def _verify_object(store: ExportStore, export: Export, strand: str, key: str, summary: Summary,
                   visit_block, progress) -> None:
    try:
        stream = store.open_key(key, export.prefix)
    except MissingObject as exc:
        summary.fail(Failure(key, None, OBJECT, f"the object is missing: {exc}"))
        return
    counting = _Counting(stream, summary)
    try:
        for item in check_object(_blocks(counting), strand, key, summary.strands):
            if isinstance(item, Failure):
                summary.fail(item)
                continue
            summary.blocks += 1
            for failure in item.failures:
                summary.fail(failure)
            if item.address is None:
                continue
            if summary.first_block is None:
                summary.first_block = item.address
            _count(item.block, summary)
            summary.last_block = item.address
            summary.final_block_hash = _optional_blob(item.block, "blockHash")
            if visit_block:
                visit_block(key, item.block, f"block {item.address}")
            if progress:
                progress(summary)
    finally:
        stream.close()


@dataclass
class CheckedBlock:
    """One block of an object and every check it fails (``failures`` empty: sound)."""

    key: str
    index: int  # the block's place in its object, from 0
    block: Any
    address: Optional[Address]  # None: the block names none (then it fails SHAPE)
    failures: list

    @property
    def where(self) -> str:
        return f"block {self.address}" if self.address else f"value {self.index} of the object"

    def checks(self) -> list:
        """The checks it fails, each once, in the order they failed."""
        return list(dict.fromkeys(f.check for f in self.failures))


def check_object(blocks: Iterator[Any], strand: str, key: str, links: dict, *, first: int = 0,
                 before: Optional[Address] = None, final: bool = True,
                 unchained: Optional[str] = None) -> Iterator[Any]:
    """Each block of one object (``blocks``: its top-level values, read lazily) as a
    ``CheckedBlock`` with every failure of its own; then ``Failure``s of the object itself
    (it stops parsing, it holds no blocks). ``links`` (strandId -> the ``Link`` of the
    block read before in that strand) carries the chain from object to object: ``verify``
    passes one for the whole export, ``backfill --verify`` the link to the object before.

    A block is handed out only once the next is read (or the object ends), so a block the
    object ends with short of its name's range already carries that failure: whoever
    writes blocks can refuse exactly the ones ``verify`` names.

    A range of the object (``backfill --verify``, connectors/formats/export_ranges.py):
    its blocks start at block ``first`` of the object, ``before`` is the address of the
    block before it, and only the ``final`` range ends the object. ``unchained`` says why
    the value before the range gives no link (it names no blockAddress): the range's first
    block with an address then fails the chain check, as it does in ``verify``, where it is
    checked against the last block before that value and finds a block missing."""
    span = block_range(key)
    held: Optional[CheckedBlock] = None
    last: Optional[Address] = before
    index = first - 1
    failure: Optional[Failure] = None
    try:
        for index, block in enumerate(blocks, start=first):
            checked = _check_one(block, index, strand, key, span, links)
            if unchained and checked.address is not None:
                checked.failures.append(Failure(key, checked.address, CHAIN, unchained))
                unchained = None
            if held is not None:
                yield held
            held = checked
            last = checked.address or last
    except Exception as exc:  # Ion that stops parsing: the rest of the object is lost
        after = f"after block {last}" if last else "before its first block"
        failure = Failure(key, last, OBJECT, f"cannot parse the object's Ion {after}: {ion_error_text(exc)}; "
                                             "the rest of the object is not verified")
    if failure is None and index < 0:
        failure = Failure(key, None, OBJECT, "the object holds no blocks")
    elif failure is None and final and span and last is not None and last.sequence_no < span[1] and held is not None:
        held.failures.append(Failure(key, last, OBJECT, f"the object's name says blocks {span[0]}-{span[1]} but "
                                                        f"it ends with block {last.sequence_no}"))
    if held is not None:
        yield held
    if failure is not None:
        yield failure


def _check_one(block: Any, index: int, strand: str, key: str, span, links: dict) -> CheckedBlock:
    address = block_address(block)
    if address is None:
        return CheckedBlock(key, index, block, None, [Failure(key, None, SHAPE, f"value {index} of the object has "
                                                                                "no blockAddress (strandId, "
                                                                                "sequenceNo)")])
    failures = [Failure(key, address, check, why) for check, why in verify_block(block)]
    if address.strand != strand:
        failures.append(Failure(key, address, OBJECT, f"the block is of strand {address.strand}, the manifest's "
                                                      f"strand is {strand}"))
    elif span and not span[0] <= address.sequence_no <= span[1]:
        failures.append(Failure(key, address, OBJECT, f"the object's name says blocks {span[0]}-{span[1]}"))
    why = check_chain(links.get(address.strand), address, _optional_blob(block, "previousBlockHash"))
    if why:
        failures.append(Failure(key, address, CHAIN, why))
    links[address.strand] = Link(address, _optional_blob(block, "blockHash"), key)
    return CheckedBlock(key, index, block, address, failures)


def link_of(block: Any, key: str) -> Optional[Link]:
    """What the block after ``block`` in its strand is checked against (None if it names
    no address): a range of an object (``backfill --verify``) starts with it."""
    address = block_address(block)
    return Link(address, _optional_blob(block, "blockHash"), key) if address is not None else None


def link_before(store: ExportStore, export: Export, strand: str, key: str) -> Optional[Link]:
    """The ``Link`` ``verify`` checks the first block of object ``key`` against: the last
    block of the strand read before it, in the nearest object before it in the manifest
    that has one. ``backfill --verify`` reads objects in parallel, so each reader finds it
    by reading the object before its own (parsing only, no hashing: about twice as fast
    as verifying). None for the strand's first object or when none before it holds a block."""
    keys = export.strands.get(strand, [])
    if key not in keys:
        return None
    for previous in reversed(keys[:keys.index(key)]):
        link = last_link(store, export, previous, strand)
        if link is not None:
            return link
    return None


def last_link(store: ExportStore, export: Export, key: str, strand: str) -> Optional[Link]:
    """The last block of ``strand`` in object ``key`` as a ``Link`` (None if it holds none
    that can be read)."""
    try:
        stream = store.open_key(key, export.prefix)
    except MissingObject:
        return None
    link = None
    try:
        for block in _blocks(stream):
            address = block_address(block)
            if address is not None and address.strand == strand:
                link = Link(address, _optional_blob(block, "blockHash"), key)
    except Exception:  # noqa: BLE001 - as verify: the blocks before the Ion stopped parsing count
        pass
    finally:
        stream.close()
    return link


def _count(block: Mapping, summary: Summary) -> None:
    revisions = block.get("revisions")
    if not isinstance(revisions, list):
        return
    for revision in revisions:
        if not isinstance(revision, Mapping) or _absent(revision.get("metadata")):
            summary.system_revisions += 1
        else:
            summary.revisions += 1
            if not _absent(revision.get("dataHash")):
                summary.redactions += 1
            elif _absent(revision.get("data")):
                summary.deletes += 1
