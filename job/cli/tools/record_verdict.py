"""What the job makes of one Kinesis record under a source format, for `ledgersync record
decode`: one ``Outcome`` per user record (a revision, a change, a dead letter and why,
...), a one-line summary, and which other registered format would take a record that the
chosen one dead-letters (the usual first-hour mistake: the default format qldb for a
DynamoDB or DSQL stream). Pure: bytes in, outcomes out; the same decoders the job runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from connectors.dead_letters import DeadLetter
from connectors.formats.audit_lines import BadAuditLine, parse_audit_line
from connectors.formats.changes import BadChange, NotConfigured, Piece
from connectors.formats.cloudwatch_logs import BadSubscriptionRecord, decode_subscription_record
from connectors.formats import kpl
from connectors.formats.qldb import BLOCK_SUMMARY, CONTROL, REVISION_DETAILS, decode_kinesis_record
from connectors.formats.registry import AUDIT, CHANGES, FORMATS, FormatSpec
from job.config.properties import REQUIRED_BY_FORMAT

# Outcome kinds, as `--json` prints them in "verdict".
DEAD_LETTER = "dead-letter"
REVISION, DELETE, REDACTION = "revision", "delete", "redaction"
CONTROL_RECORD, BLOCK_SUMMARY_RECORD = "control", "block-summary"
CHANGE, TTL_DELETE, PART = "change", "ttl-delete", "part"
AUDIT_EVENT, CONTROL_MESSAGE = "audit-event", "control-message"

# How the summary line names each kind (plural: + "s").
_LABELS = {DEAD_LETTER: "dead letter", CONTROL_RECORD: "CONTROL record", BLOCK_SUMMARY_RECORD: "BLOCK_SUMMARY record",
           TTL_DELETE: "TTL delete", PART: "part of a split record", AUDIT_EVENT: "audit event",
           CONTROL_MESSAGE: "control message (skipped)"}


@dataclass(frozen=True)
class Outcome:
    kind: str  # one of the kinds above
    text: str  # one line: what the job makes of it; for a dead letter, the reason
    sub_sequence: Optional[int] = None  # the user record (KPL) or log event it is about; None: the whole record
    detail: Optional[dict] = None  # the revision or change, for --json (never for a dead letter)

    @property
    def dead(self) -> bool:
        return self.kind == DEAD_LETTER


def outcomes(data: bytes, spec: FormatSpec, settings: Any = None) -> list:
    """Every outcome of one Kinesis record's data under ``spec`` (``settings``: the
    format's, for keyed change streams)."""
    if spec.kind == CHANGES:
        return [_change(data, spec, settings)]
    if spec.kind == AUDIT:
        return _audit(data)
    aggregated = kpl.is_aggregated(data)
    return [_qldb(item, aggregated) for item in decode_kinesis_record("-", "-", "-", data)]


def _qldb(item, aggregated: bool) -> Outcome:
    if isinstance(item, DeadLetter):
        # A dead letter outside an aggregate carries a position made from its bytes
        # (connectors/dead_letters.payload_position), not an index: it is about the whole record.
        return Outcome(DEAD_LETTER, item.reason, item.sub_sequence if aggregated and item.sub_sequence >= 0 else None)
    sub = None if item.sub_sequence < 0 else item.sub_sequence
    if item.record_type == REVISION_DETAILS:
        r = item.revision
        kind = DELETE if r.deleted else REDACTION if r.redacted else REVISION
        suffix = f" ({kind})" if kind != REVISION else ""
        return Outcome(kind, f"REVISION_DETAILS {r.table} {r.document_id} version {r.version}{suffix}", sub,
                       {"table": r.table, "document_id": r.document_id, "version": r.version,
                        "deleted": r.deleted, "redacted": r.redacted})
    if item.record_type == CONTROL:
        return Outcome(CONTROL_RECORD, f"CONTROL {item.detail.get('controlRecordType')}", sub)
    return Outcome(BLOCK_SUMMARY_RECORD, BLOCK_SUMMARY, sub)


def describe_change(outcome) -> str:
    """What the job makes of one record of a keyed change stream."""
    if isinstance(outcome, Piece):
        return f"part {outcome.index + 1} of {outcome.count} of split record {outcome.group}"
    kind = " (TTL delete)" if outcome.ttl else " (delete)" if outcome.deleted else ""
    return f"change {outcome.table} {outcome.document_id} version {outcome.version} tie {outcome.tie}{kind}"


def _change(data: bytes, spec: FormatSpec, settings) -> Outcome:
    try:
        change = spec.decode(data, settings)
    except BadChange as exc:
        return Outcome(DEAD_LETTER, str(exc))
    if isinstance(change, Piece):
        return Outcome(PART, describe_change(change), None,
                       {"group": change.group, "index": change.index, "count": change.count})
    kind = TTL_DELETE if change.ttl else DELETE if change.deleted else CHANGE
    return Outcome(kind, describe_change(change), None, {
        "table": change.table, "key_columns": list(change.key_columns), "document_id": change.document_id,
        "version": change.version, "tie": change.tie, "deleted": change.deleted, "ttl": change.ttl,
        "data": change.data})


def _audit(data: bytes) -> list:
    # As job/functions/audit.py: a bad record is one dead letter, a bad line one per line
    # (that function's length checks on the stored columns are not repeated here).
    try:
        record = decode_subscription_record(data)
    except BadSubscriptionRecord as exc:
        return [Outcome(DEAD_LETTER, str(exc))]
    if record.is_control:
        return [Outcome(CONTROL_MESSAGE, "CONTROL_MESSAGE (skipped)")]
    out = []
    for index, log_event in enumerate(record.log_events):
        try:
            event = parse_audit_line(log_event.message)
        except BadAuditLine as exc:
            out.append(Outcome(DEAD_LETTER, f"unparseable audit line: {exc}", index))
            continue
        out.append(Outcome(AUDIT_EVENT, f"{event.server} connection {event.connection_id} {event.operation} "
                                        f"{event.object[:60]!r}", index))
    return out


def summary(found: list) -> str:
    """``1 revision, 1 dead letter, 1 CONTROL record``: how many of each kind, in order of appearance."""
    counts: dict = {}
    for outcome in found:
        counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
    parts = []
    for kind, n in counts.items():
        label = _LABELS.get(kind, kind)
        parts.append(f"{n} {label}" if n == 1 else f"{n} {label}s".replace(" (skipped)s", "s (skipped)"))
    return ", ".join(parts) or "nothing"


def other_format(data: bytes, spec: FormatSpec) -> Optional[tuple]:
    """``(name, note)`` of another registered format under which this record is no dead
    letter, tried with that format's defaults; None if there is none. A record that only
    lacks a setting of that format (DSQL's table keys) counts, and ``note`` names the
    setting; else ``note`` is None."""
    for name, other in FORMATS.items():
        if name == spec.name:
            continue
        if other.kind == CHANGES:
            try:
                other.decode(data, default_settings(other))
            except NotConfigured:
                return name, REQUIRED_BY_FORMAT[name][0].name
            except BadChange:
                continue
            return name, None
        found = outcomes(data, other)
        if found and not any(o.dead for o in found):
            return name, None
    return None


def default_settings(spec: FormatSpec):
    """A keyed change format's settings from default properties (DSQL then knows no table
    keys: each record says so); None for the other kinds."""
    if spec.kind != CHANGES:
        return None
    from job.config.properties import parse_groups
    from job.config.settings import format_settings

    props = parse_groups([{"PropertyGroupId": "source", "PropertyMap": {"stream.name": "-"}},
                          {"PropertyGroupId": "sink", "PropertyMap": {
                              "mysql.host": "-", "mysql.database": "-", "mysql.user": "-",
                              "mysql.password": "-"}}], origin="defaults")
    return format_settings(props, spec.name)
