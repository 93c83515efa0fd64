"""`ledgersync record decode|encode`: Kinesis record payloads to readable text and back.

decode: raw bytes, base64 (one record per line), or the JSON that
``aws kinesis get-records`` prints (or a Lambda Kinesis event) -> each record's layers
peeled (gzip, KPL aggregation) -> each user record as pretty Ion text (``//`` comments
say where it came from), or as JSON lines with ``--json``. Each record's first line says
what the job would make of it under the chosen format (revisions, changes, or dead
letters and why: job/cli/tools/record_verdict.py), with a hint naming ``--format X`` when
another registered format takes a record this one dead-letters; ``--json`` carries the
same as ``verdict``, ``reason`` and ``hint``. Exit code 1 when any record is a dead letter.

encode: Ion text (one or more top-level values, e.g. what ``decode`` printed) -> binary
Ion user records -> optionally one KPL aggregated record (``--aggregate``), gzip
(``--gzip``) -> raw bytes (``-o FILE``) or base64 lines (``--base64``). ``--raw`` takes
the input bytes as the payload as they are (e.g. a CloudWatch Logs JSON document).
"""
from __future__ import annotations

import base64
import binascii
import gzip
import json
import sys
from dataclasses import dataclass, field
from typing import Optional

from amazon.ion import simpleion

from connectors.formats import kpl
from connectors.formats.ion_json import ion_to_json
from connectors.formats.qldb import ION_BVM, BadRecord, ion_error_text, parse_ion
from connectors.formats.registry import AUDIT, CHANGES, FORMATS, REVISIONS, FormatSpec, format_spec
from job.cli.tools import record_verdict

GZIP_MAGIC = b"\x1f\x8b"
KNOWN_MAGIC = (GZIP_MAGIC, kpl.MAGIC, ION_BVM)
DEFAULT_PARTITION_KEY = "ledgersync"
QLDB = FORMATS["qldb"]


class RecordToolError(ValueError):
    """Bad input to `ledgersync record`; the message says what and where."""


@dataclass
class InputRecord:
    """One Kinesis record's data as read from the input, and what is known about it."""

    data: bytes
    label: str
    meta: dict = field(default_factory=dict)


# --- reading input -----------------------------------------------------------------------

def read_input_records(raw: bytes, *, force_base64: bool = False, name: str = "input") -> list:
    """Split the input into Kinesis records: get-records JSON, base64 lines, or one raw record."""
    if force_base64:
        return _base64_lines(raw, name, strict=True)
    stripped = raw.strip()
    if stripped[:1] == b"{":
        records = _json_records(stripped, name)
        if records is not None:
            return records
    lines = _base64_lines(raw, name, strict=False)
    if lines:
        return lines
    return [InputRecord(bytes(raw), name)]


def _json_records(text: bytes, name: str) -> Optional[list]:
    try:
        document = json.loads(text)
    except ValueError:
        return None  # not JSON: maybe Ion text; the caller goes on
    entries = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return None
    out = []
    for index, entry in enumerate(entries):
        # `aws kinesis get-records` prints Data/SequenceNumber/PartitionKey; a Lambda event nests them.
        source = entry.get("kinesis", entry) if isinstance(entry, dict) else {}
        data = source.get("Data", source.get("data"))
        if not isinstance(data, str):
            raise RecordToolError(f"{name}: Records[{index}] has no base64 Data")
        try:
            payload = base64.b64decode(data, validate=True)
        except binascii.Error as exc:
            raise RecordToolError(f"{name}: Records[{index}].Data is not base64: {exc}") from None
        meta = {}
        for key, names in (("sequence", ("SequenceNumber", "sequenceNumber")),
                           ("partition_key", ("PartitionKey", "partitionKey"))):
            found = [source[n] for n in names if n in source]
            if found:
                meta[key] = found[0]
        out.append(InputRecord(payload, f"{name} Records[{index}]", meta))
    return out


def _base64_lines(raw: bytes, name: str, strict: bool) -> list:
    """Base64 records, one per line. Not strict: only if every line decodes to known magic."""
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    out = []
    for number, line in enumerate(lines, 1):
        try:
            data = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            if strict:
                raise RecordToolError(f"{name} line {number}: not base64: {exc}") from None
            return []
        if not strict and not data.startswith(KNOWN_MAGIC):
            return []  # plain text (e.g. Ion text) that happens to look like base64
        out.append(InputRecord(data, f"{name} line {number}"))
    return out


# --- decode ------------------------------------------------------------------------------

@dataclass
class UserView:
    """One user record after peeling its Kinesis record's layers."""

    sub_sequence: int  # kpl.NOT_AGGREGATED if the record is not aggregated
    data: bytes
    partition_key: Optional[str] = None
    error: Optional[str] = None


def peel(data: bytes) -> tuple:
    """(layers, user records, error) for one Kinesis record's data."""
    layers = []
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            return layers + ["gzip (broken)"], [], f"gzip data does not decompress: {exc}"
        layers.append("gzip")
    if kpl.is_aggregated(data):
        try:
            users = kpl.deaggregate(data)
        except kpl.BadAggregate as exc:
            return layers + ["KPL aggregated record (broken)"], [], str(exc)
        layers.append(f"KPL aggregated record, {len(users)} user records")
        return layers, [UserView(u.sub_sequence, u.data, u.partition_key, u.error) for u in users], None
    return layers, [UserView(kpl.NOT_AGGREGATED, data)], None


@dataclass
class RecordView:
    """One input record and what the job makes of it under the chosen format."""

    record: InputRecord
    outcomes: list  # of record_verdict.Outcome
    hint: Optional[tuple] = None  # (format, setting or None): another format takes what this one dead-letters

    @property
    def dead(self) -> bool:
        return any(o.dead for o in self.outcomes)


def judge(records: list, spec: FormatSpec = QLDB, settings=None) -> list:
    """Each record's outcomes under ``spec`` and, if any is a dead letter, a hint."""
    views = []
    for record in records:
        found = record_verdict.outcomes(record.data, spec, settings)
        view = RecordView(record, found)
        if view.dead:
            view.hint = record_verdict.other_format(record.data, spec)
        views.append(view)
    return views


def decode_text(records: list, as_json: bool = False, spec: FormatSpec = QLDB, settings=None) -> str:
    """The readable form of the given input records (JSON lines with ``as_json``)."""
    return render(judge(records, spec, settings), spec, as_json)


def render(views: list, spec: FormatSpec, as_json: bool = False) -> str:
    out = []
    for number, view in enumerate(views, 1):
        if as_json:
            out.extend(_json_lines(number, view, spec))
        else:
            out.extend(_text_lines(number, view, spec))
    return "\n".join(out) + ("\n" if out else "")


def _verdict_lines(number: int, view: RecordView, spec: FormatSpec) -> list:
    """The verdict first: the head line says what the job makes of the record; dead
    letters' reasons and the hint follow, then the record's size and where it came from."""
    record = view.record
    if spec.kind == CHANGES:  # one outcome per record
        (outcome,) = view.outcomes
        what = f"dead letter: {outcome.text}" if outcome.dead else outcome.text
        lines = [f"// record {number} ({record.label}): ledgersync (format {spec.name}): {what}"]
    else:
        lines = [f"// record {number} ({record.label}): ledgersync (format {spec.name}): "
                 f"{record_verdict.summary(view.outcomes)}"]
        for outcome in view.outcomes:
            if outcome.dead:
                where = "" if outcome.sub_sequence is None else f"{_part_name(spec)} {outcome.sub_sequence}: "
                lines.append(f"//   dead letter: {where}{outcome.text}")
    if view.hint:
        name, setting = view.hint
        needs = f", with {setting} set in --properties FILE" if setting else ""
        lines.append(f"//   hint: the record decodes as format {name}: try --format {name}{needs}")
    size = f"//   {len(record.data)} bytes"
    if record.meta:
        size += ", " + ", ".join(f"{k} {v}" for k, v in record.meta.items())
    return lines + [size]


def _part_name(spec: FormatSpec) -> str:
    return "log event" if spec.kind == AUDIT else "user record"


def _text_lines(number: int, view: RecordView, spec: FormatSpec) -> list:
    out = _verdict_lines(number, view, spec)
    record = view.record
    if spec.kind == CHANGES:
        try:
            out.append(json.dumps(json.loads(record.data), ensure_ascii=False, indent=2))
        except (ValueError, UnicodeDecodeError):
            out.append("// not JSON; first bytes: " + record.data[:64].hex(" "))
        return out
    layers, users, error = peel(record.data)
    if layers:
        out.append("//   " + " -> ".join(layers))
    if error:
        out.append(f"//   broken: {error}")
        out.append(f"//   first bytes: {record.data[:64].hex(' ')}")
        return out
    # Per user record, the same outcome as in the head (never a revision for a dead letter).
    by_user = {o.sub_sequence: o for o in view.outcomes} if spec.kind == REVISIONS else {}
    for user in users:
        sub = None if user.sub_sequence == kpl.NOT_AGGREGATED else user.sub_sequence
        label = "payload" if sub is None else f"user record {sub}"
        if user.partition_key is not None:
            label += f", partition key {user.partition_key!r}"
        if user.error:
            out.append(f"// {label}: broken: {user.error}")
            continue
        outcome = by_user.get(sub)
        what = "" if outcome is None else f", dead letter: {outcome.text}" if outcome.dead else f", {outcome.text}"
        out.append(f"// {label}: {len(user.data)} bytes{what}")
        out.append(_payload_text(user.data))
    return out


def _payload_text(data: bytes) -> str:
    try:
        value = parse_ion(data)
    except BadRecord as exc:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return f"// not Ion ({exc}) and not UTF-8 text; hex:\n// " + data[:4096].hex(" ")
        return f"// not Ion ({exc}); as text:\n" + "\n".join("// " + line for line in text.splitlines())
    return simpleion.dumps(value, binary=False, indent="  ", omit_version_marker=True)


def _verdict_fields(outcome, spec: FormatSpec) -> dict:
    """``verdict`` (the outcome's kind) and, for a dead letter, ``reason``; else the
    revision, change or part when there is one."""
    if outcome.dead:
        return {"verdict": outcome.kind, "reason": outcome.text}
    fields = {"verdict": outcome.kind}
    if outcome.detail is not None:
        name = "revision" if spec.kind == REVISIONS else "part" if outcome.kind == record_verdict.PART else "change"
        fields[name] = outcome.detail
    return fields


def _json_lines(number: int, view: RecordView, spec: FormatSpec) -> list:
    record = view.record
    base = {"record": number, "source": record.label, **record.meta, "format": spec.name}
    if view.hint:
        base["hint"] = {"format": view.hint[0], **({"setting": view.hint[1]} if view.hint[1] else {})}
    if spec.kind == CHANGES:
        (outcome,) = view.outcomes
        entry = {**base, **_verdict_fields(outcome, spec)}
        if outcome.dead:
            entry["base64"] = base64.b64encode(record.data).decode("ascii")
        return [json.dumps(entry, ensure_ascii=False)]
    layers, users, error = peel(record.data)
    base["layers"] = layers
    if spec.kind == AUDIT:  # outcomes are per log event, not per user record: one line per record
        entry = {**base, "verdict": record_verdict.DEAD_LETTER if view.dead else "ok",
                 "events": [{"index": o.sub_sequence, **_verdict_fields(o, spec),
                             **({} if o.dead else {"text": o.text})} for o in view.outcomes]}
        if error:
            entry["error"] = error
        return [json.dumps(entry, ensure_ascii=False)]
    by_user = {o.sub_sequence: o for o in view.outcomes}
    if error:  # a broken aggregate: one dead letter for the whole record
        return [json.dumps({**base, **_verdict_fields(by_user[None], spec), "error": error}, ensure_ascii=False)]
    lines = []
    for user in users:
        sub = None if user.sub_sequence == kpl.NOT_AGGREGATED else user.sub_sequence
        entry = {**base, "sub_sequence": sub}
        if user.partition_key is not None:
            entry["partition_key"] = user.partition_key
        outcome = by_user.get(sub)
        if outcome is not None:
            entry.update(_verdict_fields(outcome, spec))
        if user.error:
            entry["error"] = user.error
        else:
            try:
                entry["value"] = ion_to_json(parse_ion(user.data))
            except (BadRecord, ValueError) as exc:
                entry["error"] = str(exc)
                entry["base64"] = base64.b64encode(user.data).decode("ascii")
        lines.append(json.dumps(entry, ensure_ascii=False))
    return lines


# --- encode ------------------------------------------------------------------------------

def ion_values(text: bytes, name: str = "input") -> list:
    """Every top-level value of an Ion text (or binary) input."""
    try:
        values = simpleion.loads(text, single_value=False)
    except Exception as exc:  # the Ion reader's own error types vary (C extension / Python)
        raise RecordToolError(f"{name}: not Ion text: {ion_error_text(exc)}") from None
    if not values:
        raise RecordToolError(f"{name}: no Ion value to encode")
    return list(values)


def partition_key_of(value) -> str:
    """A revision's document id (so a document's records share a shard), else the default."""
    try:
        document_id = value["payload"]["revision"]["metadata"]["id"]
    except (KeyError, TypeError):
        return DEFAULT_PARTITION_KEY
    text = getattr(document_id, "text", document_id)
    return str(text) if isinstance(text, str) and text else DEFAULT_PARTITION_KEY


def encode_records(source: bytes, *, raw: bool = False, aggregate: bool = False, compress: bool = False,
                   partition_key: Optional[str] = None, name: str = "input") -> list:
    """``(partition_key, data)`` of the Kinesis records the input turns into."""
    if raw:
        users = [(partition_key or DEFAULT_PARTITION_KEY, bytes(source))]
    else:
        users = [(partition_key or partition_key_of(value), simpleion.dumps(value, binary=True))
                 for value in ion_values(source, name)]
    records = kpl.aggregate(users) if aggregate else users
    if compress:
        records = [(key, gzip.compress(data, mtime=0)) for key, data in records]
    return records


def run_record(args, stdin=None, stdout=None) -> int:
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout
    try:
        if args.action == "decode":
            return _decode(args, stdin, stdout)
        return _encode(args, stdin, stdout)
    except (RecordToolError, OSError) as exc:
        print(f"ledgersync record {args.action}: {exc}", file=sys.stderr)
        return 2


def _read(path: Optional[str], stdin) -> tuple:
    if path in (None, "-"):
        return stdin.read(), "stdin"
    with open(path, "rb") as handle:
        return handle.read(), path


def _decode(args, stdin, stdout) -> int:
    """Exit 1 when any record is a dead letter (scripts can tell), else 0."""
    records = []
    for path in args.files or [None]:
        raw, name = _read(path, stdin)
        records.extend(read_input_records(raw, force_base64=args.base64, name=name))
    spec, settings = _format(args)
    views = judge(records, spec, settings)
    stdout.write(render(views, spec, as_json=args.json))
    return 1 if any(view.dead for view in views) else 0


def _format(args) -> tuple:
    """The format to decode as, and its settings: --format, else the properties' source.format."""
    from job.config.properties import PropertiesError, load_properties

    props = None
    if getattr(args, "properties", None):
        try:
            props = load_properties(args.properties)
        except PropertiesError as exc:
            raise RecordToolError(str(exc)) from None
    name = getattr(args, "format", None) or (props["source.format"] if props else "qldb")
    spec = format_spec(name)
    if spec.kind != CHANGES:
        return spec, None
    if props is None:  # the format's defaults (dsql-cdc then knows no keys: each record says so)
        return spec, record_verdict.default_settings(spec)
    from job.config.settings import format_settings

    return spec, format_settings(props, spec.name)


def _encode(args, stdin, stdout) -> int:
    if args.base64 and args.output:
        raise RecordToolError("--base64 prints to standard output; leave out --output")
    source, name = _read(args.file, stdin)
    records = encode_records(source, raw=args.raw, aggregate=args.aggregate, compress=args.gzip,
                             partition_key=args.partition_key, name=name)
    if args.base64:
        for _key, data in records:
            stdout.write(base64.b64encode(data).decode("ascii") + "\n")
        return 0
    if len(records) != 1:
        raise RecordToolError(f"{len(records)} Kinesis records: use --aggregate to pack them into one, "
                              "or --base64 for one line per record")
    if not args.output:
        raise RecordToolError("binary output needs --output FILE (or use --base64)")
    with open(args.output, "wb") as handle:
        handle.write(records[0][1])
    print(f"ledgersync record encode: wrote {len(records[0][1])} bytes to {args.output} "
          f"(partition key {records[0][0]!r})", file=sys.stderr)
    return 0
