"""Application properties: one JSON file in the MSF format, validated at start-up.

The file is a list of ``{"PropertyGroupId": ..., "PropertyMap": {...}}``; locally it is
passed with ``--properties``, on MSF it is ``/etc/flink/application_properties.json``.
Every group and key is listed in ``SPEC`` below (with its type and default); anything
else, or a missing required key, is an error that names it. A value may name environment
variables, ``${NAME}`` or ``${NAME:-default}`` (``$${`` is a literal ``${``), so that one
file serves wherever the ports or credentials differ.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from connectors.formats.registry import FORMATS, UnknownFormat, format_spec
from connectors.kinesis.source import INITIAL_POSITIONS, POLLING, READER_TYPES, is_pass_through
from job.rules.ordering import GAP_ACTIONS, GAP_SKIP

MSF_PROPERTIES_PATH = "/etc/flink/application_properties.json"
MSF_RUN_OPTIONS_GROUP = "kinesis.analytics.flink.run.options"


class PropertiesError(ValueError):
    pass


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError("expected true or false")


def _positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise ValueError("expected a whole number of at least 1")
    return number


def _port(text: str) -> int:
    number = int(text)
    if not 1 <= number <= 65535:
        raise ValueError("expected a port number 1..65535")
    return number


def _int_between(low: int, high: int, why: str = "") -> Callable[[str], int]:
    def parse(text: str) -> int:
        number = int(text)
        if not low <= number <= high:
            raise ValueError(f"expected a whole number {low}..{high}{why}")
        return number
    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return text
    return parse


def _timestamp(text: str) -> _dt.datetime:
    value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def _csv(text: str) -> tuple:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _mysql_identifier(text: str) -> str:
    from connectors.mysql.sql import BadIdentifier, quote_identifier

    try:
        quote_identifier(text)
    except BadIdentifier:
        raise ValueError("expected a database name of letters, digits and _ (at most 64)") from None
    return text


def _format(text: str) -> str:
    try:
        return format_spec(text).name
    except UnknownFormat:
        raise ValueError(f"expected one of {', '.join(FORMATS)}") from None


def _dsql_keys(text: str) -> str:
    from connectors.formats.dsql_cdc import parse_keys

    parse_keys(text)  # its ValueError names the bad part
    return text


def _column_types(text: str) -> tuple:
    from connectors.mysql.column_types import parse_overrides

    return parse_overrides(text)  # its ValueError names the bad entry


def _replay_ddl(text: str) -> frozenset:
    from connectors.formats.audit_statements import parse_ddl_setting

    return parse_ddl_setting(text)


REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """One property: how its text is parsed, its default (REQUIRED: must be given) and what it means.

    The description is what `ledgersync properties` prints; the README's table says the same
    at more length, and tests/unit/test_properties_doc.py checks that it lists every key."""
    parse: Callable[[str], Any]
    default: Any
    description: str


# group -> key -> Key: every property there is, in one place.
SPEC: dict = {
    "source": {
        "stream.name": Key(str, REQUIRED, "Kinesis stream to read"),
        "aws.region": Key(str, "us-east-1", "AWS region"),
        "aws.endpoint": Key(str, None, "local AWS endpoint (moto, LocalStack); none: real AWS"),
        "initial.position": Key(_choice(*INITIAL_POSITIONS), INITIAL_POSITIONS[0],
                                "where the job's very first start begins (a restored job goes on from its positions)"),
        "initial.timestamp": Key(_timestamp, None, "ISO 8601 time for initial.position=AT_TIMESTAMP"),
        "format": Key(_format, "qldb", "what the stream carries: " + "; ".join(
            f"{spec.name} ({spec.description})" for spec in FORMATS.values())),
        "reader.type": Key(_choice(*READER_TYPES), POLLING,
                            "POLLING (GetRecords, shared by every consumer of a shard) or EFO (enhanced "
                            "fan-out: SubscribeToShard, a dedicated 2 MB/s per shard)"),
        "efo.consumer.name": Key(str, None, "the stream consumer's name with reader.type=EFO (registered if missing)"),
        "dsql.keys": Key(_dsql_keys, None, "dsql-cdc: each table's key columns, e.g. order_items=order_id+item_id; "
                                           "sales.orders=id (required with source.format=dsql-cdc)"),
        "dsql.split.timeout.ms": Key(_positive_int, 600_000,
                                     "dsql-cdc: how long the parts of a split record are waited for before "
                                     "they become one dead letter"),
    },
    "sink": {
        "mysql.host": Key(str, REQUIRED, "MySQL host"),
        "mysql.port": Key(_port, 3306, "MySQL port"),
        "mysql.database": Key(str, REQUIRED, "target database (created if missing)"),
        "mysql.user": Key(str, REQUIRED, "MySQL user"),
        "mysql.password": Key(str, None, "password; this or mysql.secret.arn is required (use the secret in production)"),
        "mysql.secret.arn": Key(str, None, "AWS Secrets Manager secret holding the password (or RDS-style JSON); "
                                           "read again after a login is refused (rotation)"),
        "mysql.ssl.mode": Key(_choice("AUTO", "DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"), "AUTO",
                              "TLS to MySQL as the mysql client's --ssl-mode; AUTO: off for a loopback host, else "
                              "VERIFY_IDENTITY with mysql.ssl.ca and REQUIRED (encrypted, unverified) without"),
        "mysql.ssl.ca": Key(str, None, "path of a CA bundle to verify the server against (for Aurora, the RDS CA "
                                       "bundle); with mysql.ssl.mode AUTO it also turns verification on"),
        "mysql.connect.timeout.ms": Key(_positive_int, 10_000, "MySQL connect timeout"),
        "mysql.read.timeout.ms": Key(_positive_int, 60_000, "MySQL read/write timeout"),
        "batch.max.rows": Key(_positive_int, 1000, "a writer slot writes its batch when it holds this many rows"),
        "batch.interval.ms": Key(_positive_int, 200, "... or when its oldest waiting row is this old"),
        "writer.slots": Key(_positive_int, 4, "writer slots (keys of the writer); a document always goes to the same one"),
        "retry.deadline.ms": Key(_positive_int, 300_000,
                                 "how long a batch is retried on transient MySQL errors before the job fails"),
        "column.types": Key(_column_types, (),
                            "typed columns' types instead of the ones the data asks for, e.g. "
                            "Orders.price=DECIMAL(12,2); Orders.placed=DATETIME(3) (BOOLEAN, BIGINT, DOUBLE, "
                            "LONGTEXT, LONGBLOB, DECIMAL(p,s), DATETIME(n)); for new columns only, never widened"),
    },
    "replication": {
        "history": Key(_bool, False, "also keep every revision, deletes included, once, in <table>_history"),
        "order": Key(_bool, False, "apply versions strictly one after another instead of newest-wins"),
        "order.timeout.ms": Key(_positive_int, 60_000, "order mode: how long a gap (a missing version) is waited for"),
        "order.gap": Key(_choice(*GAP_ACTIONS), GAP_SKIP,
                         "order mode, when the wait runs out: skip (apply, record the gap) or wait (keep waiting)"),
        "tables.include": Key(_csv, (), "comma-separated QLDB table names to replicate (default: all)"),
    },
    "audit": {
        "replay.enabled": Key(_bool, False, "cloudwatch-audit: replay the source's statements on audit.replay.database"),
        "replay.database": Key(_mysql_identifier, None, "the database statements are replayed in (required with replay)"),
        "max.out.of.orderness.ms": Key(_positive_int, 5_000,
                                       "how far a shard's events may trail the newest event time it delivered"),
        # Audit-log sync (source.format=cloudwatch-audit); see README "Audit-log sync".
        "source.database": Key(str, None, "only statements for this database are replayed "
                                          "(default: audit.replay.database)"),
        "replay.ddl": Key(_replay_ddl, frozenset(), "table DDL to replay too: all, or a list such as "
                                                     "CREATE TABLE, ALTER TABLE (default: none)"),
        "replay.stop.on.error": Key(_bool, False, "a statement the target refuses: dead letter and go on (false), "
                                                  "or dead letter and fail the job (true)"),
        "idle.timeout.ms": Key(_positive_int, 3_000, "a shard silent this long no longer holds a server's watermark back"),
    },
}


def describe_properties() -> str:
    """Every group and key with its default and meaning (``ledgersync properties``)."""
    lines = []
    for group_id, keys in SPEC.items():
        lines.append(f"[{group_id}]")
        for key, spec in keys.items():
            if spec.default is REQUIRED:
                default = "required"
            elif spec.default in (None, (), frozenset()):
                default = "none"
            else:
                default = str(spec.default).lower() if isinstance(spec.default, bool) else str(spec.default)
            lines.append(f"  {group_id}.{key} = {default}\n      {spec.description}")
    return "\n".join(lines)


SECRET_KEYS = frozenset({"sink.mysql.password"})
# The Kinesis connector's keys given under their own names in the source group: key -> text.
CONNECTOR_PROPERTIES = "source.connector"


@dataclass(frozen=True)
class Properties:
    values: dict  # "group.key" -> typed value (defaults filled in)

    def __repr__(self) -> str:  # never print a password
        shown = {k: ("***" if k in SECRET_KEYS and v else v) for k, v in self.values.items()}
        shown[CONNECTOR_PROPERTIES] = {k: ("***" if "secret" in k.lower() else v)
                                       for k, v in self.values.get(CONNECTOR_PROPERTIES, {}).items()}
        return f"Properties({shown!r})"

    def __getitem__(self, name: str) -> Any:
        return self.values[name]



_VARIABLE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_variables(text: str, name: str, origin: str, environ=None) -> str:
    """``${NAME}`` / ``${NAME:-default}`` in a property value from the environment."""
    environ = os.environ if environ is None else environ

    def replace(match: re.Match) -> str:
        if match.group(0) == "$${":
            return "${"
        variable, default = match.group(1), match.group(2)
        value = environ.get(variable)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise PropertiesError(f"{origin}: {name} names ${{{variable}}}, and {variable} is not set "
                                      f"(set it, or give a default: ${{{variable}:-...}})")
            return default
        return value

    return _VARIABLE.sub(replace, text) if "$" in text else text


def parse_groups(groups: Any, origin: str = "properties", environ=None) -> Properties:
    if not isinstance(groups, list):
        raise PropertiesError(f"{origin}: expected a JSON list of {{PropertyGroupId, PropertyMap}} objects")
    raw: dict = {}
    connector: dict = {}
    for index, group in enumerate(groups):
        if not isinstance(group, dict) or "PropertyGroupId" not in group:
            raise PropertiesError(f"{origin}: entry {index} has no PropertyGroupId")
        group_id = group["PropertyGroupId"]
        if group_id == MSF_RUN_OPTIONS_GROUP:
            continue  # MSF's own (which file to run, pyFiles): in the same file there, not ours to check
        if group_id not in SPEC:
            raise PropertiesError(f"{origin}: unknown property group {group_id!r} (known: {', '.join(SPEC)})")
        property_map = group.get("PropertyMap", {})
        if not isinstance(property_map, dict):
            raise PropertiesError(f"{origin}: PropertyMap of group {group_id!r} must be an object")
        for key, text in property_map.items():
            if group_id == "source" and is_pass_through(key):
                # The Kinesis connector's own keys, under its own names (connectors/kinesis/source.py).
                connector[key] = expand_variables(str(text), f"{group_id}.{key}", origin, environ)
                continue
            if key not in SPEC[group_id]:
                known = ", ".join(SPEC[group_id])
                also = " and the Kinesis connector's flink.* / aws.* keys" if group_id == "source" else ""
                raise PropertiesError(f"{origin}: unknown property {group_id}.{key} (known in {group_id}: {known}{also})")
            name = f"{group_id}.{key}"
            raw[name] = expand_variables(str(text), name, origin, environ)
    values: dict = {}
    for group_id, keys in SPEC.items():
        for key, spec in keys.items():
            name, default = f"{group_id}.{key}", spec.default
            if name in raw and raw[name] != "":
                try:
                    values[name] = spec.parse(raw[name])
                except ValueError as exc:
                    raise PropertiesError(f"{origin}: bad value {raw[name]!r} for {name}: {exc}") from None
            elif default is REQUIRED:
                raise PropertiesError(f"{origin}: missing required property {name}")
            else:
                values[name] = default
    values[CONNECTOR_PROPERTIES] = dict(sorted(connector.items()))
    props = Properties(values)
    _check_combinations(props, origin)
    return props


def _check_combinations(props: Properties, origin: str) -> None:
    if props["source.initial.position"] == "AT_TIMESTAMP" and props["source.initial.timestamp"] is None:
        raise PropertiesError(f"{origin}: source.initial.position=AT_TIMESTAMP needs source.initial.timestamp")
    if props["source.reader.type"] == "EFO" and not props["source.efo.consumer.name"]:
        raise PropertiesError(f"{origin}: source.reader.type=EFO needs source.efo.consumer.name")
    if props["sink.mysql.ssl.mode"] in ("VERIFY_CA", "VERIFY_IDENTITY") and not props["sink.mysql.ssl.ca"]:
        raise PropertiesError(f"{origin}: sink.mysql.ssl.mode={props['sink.mysql.ssl.mode']} needs sink.mysql.ssl.ca "
                              "(the CA bundle to verify the server's certificate against)")
    if props["sink.mysql.password"] is None and props["sink.mysql.secret.arn"] is None:
        raise PropertiesError(f"{origin}: set sink.mysql.password or sink.mysql.secret.arn")
    if props["replication.order"] and not format_spec(props["source.format"]).order_mode:
        raise PropertiesError(f"{origin}: replication.order=true needs a gap-free version sequence per document, "
                              f"which source.format={props['source.format']} does not have (only "
                              + ", ".join(s.name for s in FORMATS.values() if s.order_mode)
                              + " has); leave replication.order false: newest wins, by the format's version")
    if props["source.format"] == "dsql-cdc" and not props["source.dsql.keys"]:
        raise PropertiesError(f"{origin}: source.format=dsql-cdc needs source.dsql.keys: DSQL's records do not say "
                              "which columns are a table's key (e.g. order_items=order_id+item_id; sales.orders=id)")
    if props["audit.replay.enabled"] and not props["audit.replay.database"]:
        raise PropertiesError(f"{origin}: audit.replay.enabled=true needs audit.replay.database")


def load_properties(path: Optional[str] = None) -> Properties:
    """Read the properties file (``path``, else the MSF location)."""
    path = path or MSF_PROPERTIES_PATH
    if not os.path.exists(path):
        raise PropertiesError(f"properties file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            groups = json.load(handle)
    except json.JSONDecodeError as exc:
        raise PropertiesError(f"{path}: not valid JSON: {exc}") from None
    return parse_groups(groups, origin=path)
