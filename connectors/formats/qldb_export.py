"""QLDB journal exports (S3 or a local copy) to the same revisions the stream decoder makes.

An export (QLDB developer guide, "Journal export output") lies under one S3 prefix:

- ``<exportId>.started.manifest``: the request (``ledgerName``, ``exportId``,
  ``inclusiveStartTime``, ``exclusiveEndTime``, ``bucket``, ``prefix``,
  ``objectEncryptionType``, ``outputFormat``: ``ION_TEXT`` (the default when absent),
  ``ION_BINARY`` or ``JSON``);
- ``<exportId>.<strandId>.completed.manifest`` per strand, written when the export is
  done: ``{keys: [...]}``, the ordered S3 keys of its data objects
  (``<prefix>/2024/05/06/07/<strandId>.1-4.ion``: blocks 1 to 4 of the strand);
- the data objects: blocks one after another (Ion text or binary; JSON Lines, one block
  per line), each ``{blockAddress, transactionId, blockTimestamp, blockHash, entriesHash,
  previousBlockHash, entriesHashList, transactionInfo: {statements, documents: {docId:
  {tableName, tableId, statements}}}, revisions: [...]}``.

A block's revisions are shaped like the stream's ``payload.revision`` but carry no table:
each document's table comes from ``transactionInfo.documents``. Revisions without
``metadata`` are system revisions (table definitions, redaction requests, ...), not
documents, and are skipped. Each revision then goes through the stream decoder's own
checks (``connectors.formats.qldb.decode_revision_payload``), so an export and a stream
give identical rows.

JSON exports are Ion down-converted by QLDB: timestamps become strings, blobs base64
strings, decimals and floats JSON numbers, symbols strings. Ion text is a superset of
JSON, so a JSON line is read with the Ion reader: a number with a fraction becomes an
exact decimal (as QLDB's decimals are), one with an exponent a float, an integer an int.
Only ``metadata.txTime`` (a timestamp string) and ``dataHash`` (a base64 string) are
turned back into their Ion types. What the down-conversion loses is lost for good: an
Ion decimal without fraction digits (``12.``) reads back as an int, a float without an
exponent as a decimal, NaN and infinities (JSON has none) as whatever QLDB wrote.

Everything here is pure (no Flink); reading goes through an ``ExportStore``.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterator, Optional, Union

from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyBytes

from connectors.dead_letters import NO_SUB_SEQUENCE, DeadLetter
from connectors.formats.export_ranges import ObjectRange
from connectors.formats.ion_json import is_ion_null
from connectors.formats.qldb import BadRecord, Revision, decode_revision_payload, ion_error_text
from connectors.rows.limits import MAX_DOCUMENT_BYTES

ION_TEXT = "ION_TEXT"
ION_BINARY = "ION_BINARY"
JSON = "JSON"
FORMATS = (ION_TEXT, ION_BINARY, JSON)

STARTED_SUFFIX = ".started.manifest"
COMPLETED_SUFFIX = ".completed.manifest"
# "<strandId>.<first>-<last>.<ext>": the object holds blocks first..last of the strand.
_BLOCK_RANGE = re.compile(r"\.(\d+)-(\d+)\.[A-Za-z]+$")
# Dead letters keep at most this much of an object that cannot be parsed; the key names
# the whole object in S3 anyway, and one row must stay far below max_allowed_packet.
MAX_DEAD_LETTER_RAW = 1024 * 1024
# The dead-letter table's stream and shard_id columns are VARCHAR(128).
_MAX_POSITION_CHARS = 128
DEAD_LETTER_STAGE = "decode"


class ExportError(ValueError):
    """The export cannot be backfilled at all (missing, unfinished, ambiguous); says why."""


# --- where the export is -------------------------------------------------------------

@dataclass(frozen=True)
class ExportLocation:
    """``s3://bucket/prefix`` or a local directory holding the same layout."""

    uri: str
    bucket: Optional[str] = None  # None: a local directory
    prefix: str = ""  # S3 prefix without a trailing slash, or the directory path

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None


def parse_export_uri(uri: str) -> ExportLocation:
    text = (uri or "").strip()
    if not text:
        raise ExportError("--export is empty: give s3://bucket/prefix or a local directory")
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://"):].partition("/")
        if not bucket:
            raise ExportError(f"export URI {uri!r} names no bucket (expected s3://bucket/prefix)")
        return ExportLocation(uri=text, bucket=bucket, prefix=prefix.strip("/"))
    if "://" in text:
        raise ExportError(f"export URI {uri!r}: only s3://bucket/prefix and local directories are supported")
    if not os.path.isdir(text):
        raise ExportError(f"export directory {text} does not exist (or is not a directory)")
    # Absolute: the Flink workers that open it again need not share the driver's directory.
    path = os.path.abspath(text)
    return ExportLocation(uri=path, prefix=path)


class ExportStore:
    """Lists the names right under the export's prefix and reads objects by key."""

    location: ExportLocation

    def names(self) -> list:
        raise NotImplementedError

    def read_name(self, name: str) -> bytes:
        """An object right under the prefix (a manifest)."""
        raise NotImplementedError

    def read_key(self, key: str, export_prefix: str) -> bytes:
        """A data object by its key as the completed manifest lists it."""
        raise NotImplementedError

    def open_key(self, key: str, export_prefix: str) -> BinaryIO:
        """A data object as a stream (``verify`` reads objects of hundreds of MB block by
        block); the caller closes it."""
        return io.BytesIO(self.read_key(key, export_prefix))

    def open_range(self, key: str, export_prefix: str, start: int, end: int) -> BinaryIO:
        """Bytes ``start``..``end`` (exclusive) of a data object as a stream (a range of
        blocks, connectors/formats/export_ranges.py); the caller closes it."""
        stream = self.open_key(key, export_prefix)
        remaining = start
        while remaining:
            skipped = len(stream.read(min(remaining, 1 << 20)))
            if not skipped:
                break
            remaining -= skipped
        return _Limited(stream, end - start)


class SourceStream(io.RawIOBase):
    """A readable stream over another, ``self._source``: a subclass says what ``read``
    does on the way; reading into a buffer and closing (the source too) are the same for all."""

    _source: BinaryIO

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()


class _Limited(SourceStream):
    """The first ``limit`` bytes of a stream."""

    def __init__(self, stream: BinaryIO, limit: int):
        self._source = stream
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._source.read(self._left if size is None or size < 0 else min(size, self._left))
        self._left -= len(data)
        return data


class MissingObject(Exception):
    """A listed data object that is not there (the export is damaged or partly copied)."""


class S3ExportStore(ExportStore):
    def __init__(self, location: ExportLocation, region: str, endpoint: Optional[str] = None, client=None):
        self.location = location
        self._region = region
        self._endpoint = endpoint
        self._client = client

    def _s3(self):
        if self._client is None:
            from connectors.aws_clients import aws_client

            self._client = aws_client("s3", self._region, self._endpoint, read_timeout=60.0)
        return self._client

    def _prefix(self) -> str:
        return f"{self.location.prefix}/" if self.location.prefix else ""

    def names(self) -> list:
        out = []
        paginator = self._s3().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self._prefix(), Delimiter="/"):
            out += [item["Key"][len(self._prefix()):] for item in page.get("Contents", [])]
        return out

    def read_name(self, name: str) -> bytes:
        return self._get(self._prefix() + name)

    def read_key(self, key: str, export_prefix: str) -> bytes:
        return self._get(key)

    def open_key(self, key: str, export_prefix: str) -> BinaryIO:
        s3 = self._s3()
        try:
            return s3.get_object(Bucket=self.location.bucket, Key=key)["Body"]
        except s3.exceptions.NoSuchKey:
            raise MissingObject(f"s3://{self.location.bucket}/{key} does not exist") from None

    def open_range(self, key: str, export_prefix: str, start: int, end: int) -> BinaryIO:
        if end <= start:
            return io.BytesIO(b"")
        s3 = self._s3()
        try:
            return s3.get_object(Bucket=self.location.bucket, Key=key, Range=f"bytes={start}-{end - 1}")["Body"]
        except s3.exceptions.NoSuchKey:
            raise MissingObject(f"s3://{self.location.bucket}/{key} does not exist") from None

    def _get(self, key: str) -> bytes:
        s3 = self._s3()
        try:
            return s3.get_object(Bucket=self.location.bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            raise MissingObject(f"s3://{self.location.bucket}/{key} does not exist") from None


class DirectoryExportStore(ExportStore):
    """A local copy (``aws s3 sync s3://bucket/prefix DIR``): the manifests' keys still
    start with the export's S3 prefix, which is taken off to find the file."""

    def __init__(self, location: ExportLocation):
        self.location = location

    def names(self) -> list:
        root = self.location.prefix
        return sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n)))

    def read_name(self, name: str) -> bytes:
        with open(os.path.join(self.location.prefix, name), "rb") as handle:
            return handle.read()

    def path_of(self, key: str, export_prefix: str) -> str:
        root = self.location.prefix
        relative = key
        prefix = export_prefix.strip("/")
        if prefix and key.startswith(prefix + "/"):
            relative = key[len(prefix) + 1:]
        candidate = os.path.normpath(os.path.join(root, relative))
        if not candidate.startswith(os.path.normpath(root) + os.sep):
            raise MissingObject(f"key {key!r} points outside the export directory {root}")
        return candidate

    def read_key(self, key: str, export_prefix: str) -> bytes:
        path = self.path_of(key, export_prefix)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise MissingObject(f"{path} (key {key}) does not exist") from None

    def open_key(self, key: str, export_prefix: str) -> BinaryIO:
        path = self.path_of(key, export_prefix)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise MissingObject(f"{path} (key {key}) does not exist") from None

    def open_range(self, key: str, export_prefix: str, start: int, end: int) -> BinaryIO:
        handle = self.open_key(key, export_prefix)
        handle.seek(start)
        return _Limited(handle, end - start)


def open_store(uri: str, region: str = "us-east-1", endpoint: Optional[str] = None) -> ExportStore:
    location = parse_export_uri(uri)
    return S3ExportStore(location, region, endpoint) if location.is_s3 else DirectoryExportStore(location)


# --- manifests -----------------------------------------------------------------------

@dataclass(frozen=True)
class Export:
    export_id: str
    uri: str
    output_format: str
    ledger_name: str = ""
    prefix: str = ""  # the S3 prefix the export was written under (from the started manifest)
    inclusive_start: str = ""
    exclusive_end: str = ""
    # strandId -> ordered data object keys, from the completed manifests
    strands: dict = field(default_factory=dict)

    @property
    def keys(self) -> list:
        return [key for strand in sorted(self.strands) for key in self.strands[strand]]

    @property
    def blocks_total(self) -> Optional[int]:
        """Blocks the data objects hold, from their names; None if a name does not say."""
        total = 0
        for key in self.keys:
            span = block_range(key)
            if span is None:
                return None
            total += span[1] - span[0] + 1
        return total


def block_range(key: str) -> Optional[tuple]:
    match = _BLOCK_RANGE.search(key)
    if not match:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    return (first, last) if last >= first else None


def _manifest(raw: bytes, what: str) -> Mapping:
    # A manifest is written in the export's output format; Ion text reads JSON too.
    try:
        value = simpleion.loads(raw, single_value=True)
    except Exception as exc:
        raise ExportError(f"{what} cannot be parsed: {ion_error_text(exc)}") from None
    if not isinstance(value, Mapping):
        raise ExportError(f"{what} is not a struct / JSON object")
    return value


def _text(value: Any) -> str:
    if is_ion_null(value):
        return ""
    if getattr(value, "ion_type", None) is IonType.TIMESTAMP:
        return simpleion.dumps(value, binary=False, omit_version_marker=True)
    return str(getattr(value, "text", value))


def parse_started_manifest(raw: bytes, what: str = "started manifest") -> dict:
    value = _manifest(raw, what)
    export_id = _text(value.get("exportId"))
    if not export_id:
        raise ExportError(f"{what} has no exportId")
    output_format = _text(value.get("outputFormat")) or ION_TEXT
    if output_format not in FORMATS:
        raise ExportError(f"{what}: outputFormat {output_format!r} is not one of {', '.join(FORMATS)}")
    return {"export_id": export_id, "output_format": output_format, "ledger_name": _text(value.get("ledgerName")),
            "prefix": _text(value.get("prefix")).strip("/"),
            "inclusive_start": _text(value.get("inclusiveStartTime")),
            "exclusive_end": _text(value.get("exclusiveEndTime"))}


def parse_completed_manifest(raw: bytes, what: str = "completed manifest") -> list:
    value = _manifest(raw, what)
    keys = value.get("keys")
    if is_ion_null(keys):
        keys = []
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ExportError(f"{what}: keys must be a list of strings")
    return [str(k) for k in keys]


def find_export(store: ExportStore, export_id: Optional[str] = None) -> Export:
    """The export under the store's prefix (the only one, or ``export_id``), with its
    completed manifests read; ``ExportError`` if there is none, several, or it is unfinished."""
    uri = store.location.uri
    names = store.names()
    started = sorted(n[:-len(STARTED_SUFFIX)] for n in names if n.endswith(STARTED_SUFFIX))
    if not started:
        raise ExportError(f"no QLDB journal export under {uri}: no <exportId>{STARTED_SUFFIX} there")
    if export_id is None:
        if len(started) > 1:
            raise ExportError(f"{len(started)} exports under {uri} ({', '.join(started)}): "
                              "choose one with --export-id")
        export_id = started[0]
    elif export_id not in started:
        raise ExportError(f"no export {export_id} under {uri} (exports there: {', '.join(started)})")
    request = parse_started_manifest(store.read_name(export_id + STARTED_SUFFIX),
                                     f"{uri}: {export_id}{STARTED_SUFFIX}")
    if request["export_id"] != export_id:
        raise ExportError(f"{uri}: {export_id}{STARTED_SUFFIX} names exportId {request['export_id']}")
    completed = sorted(n for n in names if n.startswith(export_id + ".") and n.endswith(COMPLETED_SUFFIX))
    if not completed:
        raise ExportError(f"export {export_id} under {uri} has a started manifest but no completed manifest: "
                          "the export has not finished (or its completed manifests were not copied)")
    strands = {}
    for name in completed:
        strand = name[len(export_id) + 1:-len(COMPLETED_SUFFIX)]
        strands[strand] = parse_completed_manifest(store.read_name(name), f"{uri}: {name}")
    return Export(export_id=export_id, uri=uri, strands=strands, **{k: v for k, v in request.items()
                                                                   if k != "export_id"})


# --- data objects --------------------------------------------------------------------

@dataclass
class ObjectStats:
    """What reading one data object found (the Flink function turns it into metrics)."""

    blocks: int = 0
    revisions: int = 0
    system_revisions: int = 0
    dead_letters: int = 0


class ObjectStream(SourceStream):
    """A data object read as a stream (objects can be hundreds of MB; only the block being
    read is in memory): counts the bytes read, keeps the first ``MAX_DEAD_LETTER_RAW`` of
    them for a dead letter, and remembers an error of the stream under it (a connection
    lost part-way is not a fault of the export and must not turn into a parse error)."""

    def __init__(self, source: Union[bytes, bytearray, BinaryIO]):
        self._source = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        self.bytes_read = 0
        self.error: Optional[BaseException] = None
        self._head = bytearray()

    @property
    def head(self) -> bytes:
        return bytes(self._head)

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._source.read(size)
        except Exception as exc:
            self.error = exc
            raise
        self.bytes_read += len(data)
        if len(self._head) < MAX_DEAD_LETTER_RAW:
            self._head += data[:MAX_DEAD_LETTER_RAW - len(self._head)]
        return data


def read_object(export_id: str, key: str, data: Union[bytes, BinaryIO], output_format: str, *,
                max_document_bytes: int = MAX_DOCUMENT_BYTES, stats: Optional[ObjectStats] = None,
                part: Optional[ObjectRange] = None,
                head: Optional[Callable[[], bytes]] = None) -> Iterator[Union[Revision, DeadLetter]]:
    """Every document revision in one data object (its bytes, or a stream read block by
    block), in order, or a dead letter saying where (object key, block address or line /
    value number) and why.

    A bad block or revision costs only itself. Ion that stops parsing part-way costs the
    rest of the object (Ion has no point to resume at): one dead letter after the last
    good block. A JSON line that does not parse costs that line.

    ``part``: ``data`` is one range of a binary object (``range_stream``): its blocks
    only, with the dead letters the whole object's reading would give for them (``head``
    reads the object's first bytes for a dead letter's raw column).
    """
    stats = stats if stats is not None else ObjectStats()
    position = _Position(export_id, key)
    stream = data if isinstance(data, ObjectStream) else ObjectStream(data)
    if output_format == JSON:
        values = _json_lines(stream, position)
    elif part is not None and not part.whole:
        values = ion_values(stream, output_format, position, first=part.index, lead=part.index > 0, head=head,
                            past_raw=part.end > MAX_DEAD_LETTER_RAW)
    elif output_format in (ION_TEXT, ION_BINARY):
        values = ion_values(stream, output_format, position)
    else:
        raise ExportError(f"unknown export output format {output_format!r}")
    for item in values:
        if isinstance(item, DeadLetter):
            stats.dead_letters += 1
            yield item
            continue
        where, block = item
        stats.blocks += 1
        for out in _block_revisions(block, where, position, output_format == JSON, max_document_bytes, stats):
            if isinstance(out, DeadLetter):
                stats.dead_letters += 1
            else:
                stats.revisions += 1
            yield out


class _Position:
    """Builds dead letters for one object: stream = the export, shard = the object key."""

    def __init__(self, export_id: str, key: str):
        self.stream = _fit(f"export:{export_id}")
        self.shard = _fit(key)

    def dead(self, where: str, reason: str, raw: bytes, sub_sequence: int = NO_SUB_SEQUENCE,
             stage: str = DEAD_LETTER_STAGE) -> DeadLetter:
        return DeadLetter(stream=self.stream, shard_id=self.shard, sequence_number=where[:255],
                          stage=stage, reason=reason, raw=bytes(raw[:MAX_DEAD_LETTER_RAW]),
                          sub_sequence=sub_sequence)


def _fit(text: str) -> str:
    # Keep the end of a long key: it holds the strand and block range.
    return text if len(text) <= _MAX_POSITION_CHARS else "..." + text[-(_MAX_POSITION_CHARS - 3):]


def object_dead_letter(export_id: str, key: str, reason: str, raw: bytes = b"") -> DeadLetter:
    """The whole object is lost (missing, unreadable)."""
    return _Position(export_id, key).dead("object", reason, raw)


def dead_letter_at(export_id: str, key: str, where: str, reason: str, raw: bytes = b"",
                   stage: str = DEAD_LETTER_STAGE) -> DeadLetter:
    """A dead letter at ``where`` in the object (``block <strandId>/<sequenceNo>``, ...)."""
    return _Position(export_id, key).dead(where, reason, raw, stage=stage)


def block_text(block: Any) -> bytes:
    """A block as Ion text, for a dead letter's raw column (b"" if it cannot be written)."""
    try:
        return simpleion.dumps(block, binary=False, omit_version_marker=True).encode("utf-8")
    except Exception:  # noqa: BLE001 - the dead letter still names the place
        return b""


def ion_values(stream: ObjectStream, output_format: str, position: "_Position", *, first: int = 0,
               lead: bool = False, head: Optional[Callable[[], bytes]] = None, past_raw: Optional[bool] = None):
    """(where, value) for each top-level value, read lazily from the stream; then a dead
    letter if the Ion stops parsing (or the object is empty). An error of the stream under
    it is raised, not turned into a dead letter.

    A range of an object (connectors/formats/export_ranges.py) starts at value ``first``
    of it; with ``lead`` the stream starts with the value before (read only to say where
    the Ion stopped after); ``head`` gives the object's first bytes and ``past_raw`` whether
    the object was read beyond them, for the dead letter."""
    index = first - 1
    last = "the start"
    try:
        # The Ion reader takes text and binary alike; the format only matters for the message.
        values = iter(simpleion.load(stream, single_value=False, parse_eagerly=False))
        if lead:
            last = _block_where(next(values), f"value {first - 1}")
        for index, value in enumerate(values, start=first):
            where = _block_where(value, f"value {index}")
            last = where
            yield where, value
    except Exception as exc:
        if stream.error is not None:
            raise stream.error from None
        if stream.bytes_read == 0:
            yield position.dead("object", "empty data object (no bytes)", b"")
            return
        raw = head() if head is not None else stream.head
        past = past_raw if past_raw is not None else stream.bytes_read > MAX_DEAD_LETTER_RAW
        binary = raw[:4] == b"\xe0\x01\x00\xea"
        kind = "binary Ion" if binary else "Ion text"
        hint = "" if binary == (output_format == ION_BINARY) else f" (the export says {output_format})"
        yield position.dead(f"after {last}" if index >= 0 else "value 0",
                            f"cannot parse {kind}{hint} after {last} of the object ({index + 1} values read): "
                            f"{ion_error_text(exc)}; the rest of the object is not replicated"
                            + (f" (raw: the first {MAX_DEAD_LETTER_RAW} bytes)" if past else ""), raw)
        return
    if stream.bytes_read == 0:
        yield position.dead("object", "empty data object (no bytes)", b"")


def range_stream(store: "ExportStore", export_prefix: str, part: ObjectRange) -> ObjectStream:
    """One range of a binary object as the Ion reader needs it: the version marker and
    symbol tables in effect where it starts, then its bytes from ``lead``."""
    return ObjectStream(_Chained(part.context, store.open_range(part.key, export_prefix, part.lead, part.end)))


def object_head(store: "ExportStore", key: str, export_prefix: str, size: int) -> bytes:
    """The first bytes of an object a dead letter keeps (``MAX_DEAD_LETTER_RAW``)."""
    with store.open_range(key, export_prefix, 0, min(size, MAX_DEAD_LETTER_RAW)) as stream:
        return stream.read()


class _Chained(SourceStream):
    """``first`` (bytes), then a stream."""

    def __init__(self, first: bytes, stream: BinaryIO):
        self._first = io.BytesIO(first)
        self._source = stream

    def read(self, size: int = -1) -> bytes:
        data = self._first.read(size)
        if not data:
            return self._source.read(size)
        return data


def _lines(stream: BinaryIO, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The stream's lines (without the newline), one chunk in memory at a time."""
    pending = b""
    while True:
        data = stream.read(chunk)
        if not data:
            break
        pending += data
        *lines, pending = pending.split(b"\n")
        yield from lines
    yield pending


def _json_lines(stream: ObjectStream, position: _Position):
    offset = 0
    for number, line in enumerate(_lines(stream), start=1):
        start = offset
        offset += len(line) + 1
        if not line.strip():
            continue
        try:
            line.decode("utf-8")
            value = simpleion.loads(line, single_value=True)
        except UnicodeDecodeError as exc:
            yield position.dead(f"line {number} (byte {start})", f"JSON line {number} at byte {start} is not UTF-8: "
                                f"{exc.reason}", line)
            continue
        except Exception as exc:
            yield position.dead(f"line {number} (byte {start})",
                                f"JSON line {number} at byte {start} does not parse: {ion_error_text(exc)}", line)
            continue
        yield _block_where(value, f"line {number} (byte {start})"), value


def block_revisions(export_id: str, key: str, block: Any, where: str, output_format: str, *,
                    max_document_bytes: int = MAX_DOCUMENT_BYTES,
                    stats: Optional[ObjectStats] = None) -> Iterator[Union[Revision, DeadLetter]]:
    """The document revisions of one block already read (``verify`` reads blocks itself,
    as a stream), decoded exactly as ``read_object`` decodes them."""
    yield from _block_revisions(block, where, _Position(export_id, key), output_format == JSON, max_document_bytes,
                                stats if stats is not None else ObjectStats())


def _block_where(block: Any, fallback: str) -> str:
    """``block <strandId>/<sequenceNo>`` when the block says, else ``fallback``."""
    address = block.get("blockAddress") if isinstance(block, Mapping) else None
    if isinstance(address, Mapping):
        strand, seq = address.get("strandId"), address.get("sequenceNo")
        if getattr(seq, "ion_type", None) is IonType.INT and not is_ion_null(strand):
            return f"block {_text(strand)}/{int(seq)}"
    return fallback


def _block_revisions(block: Any, where: str, position: _Position, from_json: bool, max_document_bytes: int,
                     stats: ObjectStats):
    raw = None

    def block_bytes() -> bytes:
        nonlocal raw
        if raw is None:
            raw = block_text(block)
        return raw

    if not isinstance(block, Mapping):
        yield position.dead(where, f"{where}: not a block (a struct / JSON object expected)", block_bytes())
        return
    revisions = block.get("revisions")
    if is_ion_null(revisions):
        return  # a block without revisions (e.g. only statements) has nothing to replicate
    if not isinstance(revisions, list):
        yield position.dead(where, f"{where}: revisions must be a list", block_bytes())
        return
    info = block.get("transactionInfo")
    documents = info.get("documents") if isinstance(info, Mapping) else None
    if is_ion_null(documents):
        documents = {}
    if not isinstance(documents, Mapping):
        yield position.dead(where, f"{where}: transactionInfo.documents must be a struct", block_bytes())
        return
    for index, revision in enumerate(revisions):
        if not isinstance(revision, Mapping):
            yield position.dead(where, f"{where}, revision {index}: not a struct", block_bytes(), index)
            continue
        metadata = revision.get("metadata")
        if is_ion_null(metadata):
            stats.system_revisions += 1  # a system revision: not a document
            continue
        try:
            yield _revision(revision, metadata, documents, from_json, max_document_bytes)
        except BadRecord as exc:
            yield position.dead(where, f"{where}, revision {index}: {exc}", block_bytes(), index)
        except Exception as exc:  # a decoder bug must not cost the neighbours
            yield position.dead(where, f"{where}, revision {index}: unexpected decoder error "
                                f"{type(exc).__name__}: {exc}", block_bytes(), index)


def _revision(revision: Mapping, metadata: Any, documents: Mapping, from_json: bool,
              max_document_bytes: int) -> Revision:
    if not isinstance(metadata, Mapping):
        raise BadRecord("metadata must be a struct")
    document_id = metadata.get("id")
    entry = documents.get(_text(document_id)) if not is_ion_null(document_id) else None
    if not isinstance(entry, Mapping):
        raise BadRecord(f"document {_text(document_id)!r} has no entry in transactionInfo.documents, "
                        "so its table is unknown")
    if from_json:
        revision, metadata = _from_json(revision, metadata)
    table_info = {"tableName": entry.get("tableName"), "tableId": entry.get("tableId")}
    payload = {"tableInfo": table_info, "revision": {**revision, "metadata": metadata}}
    return decode_revision_payload(payload, max_document_bytes=max_document_bytes)


def _from_json(revision: Mapping, metadata: Mapping) -> tuple:
    """Undo the down-conversion where the decoder needs Ion types: txTime, dataHash."""
    metadata = dict(metadata)
    tx_time = metadata.get("txTime")
    if getattr(tx_time, "ion_type", None) is IonType.STRING:
        try:
            parsed = simpleion.loads(str(tx_time), single_value=True)
        except Exception:
            parsed = None
        if getattr(parsed, "ion_type", None) is not IonType.TIMESTAMP:
            raise BadRecord(f"metadata.txTime {str(tx_time)[:60]!r} is not a timestamp")
        metadata["txTime"] = parsed
    revision = dict(revision)
    data_hash = revision.get("dataHash")
    if getattr(data_hash, "ion_type", None) is IonType.STRING:
        try:
            revision["dataHash"] = IonPyBytes.from_value(IonType.BLOB, base64.b64decode(str(data_hash),
                                                                                        validate=True))
        except (binascii.Error, ValueError):
            raise BadRecord("revision.dataHash is not base64 text") from None
    return revision, metadata
