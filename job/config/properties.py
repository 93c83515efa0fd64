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
    name: str  # "group.key", as the properties file spells it
    parse: Callable[[str], Any]
    default: Any
    description: str

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.name.split(".", 1)[1]


# Every property there is, in one place: each key's name is spelled here once (its
# constant), and the code reads a value through the constant: props[SINK_MYSQL_HOST]
# (tests/unit/test_layout.py checks that no other runtime module spells a key).

# [source]
SOURCE_STREAM_NAME = Key("source.stream.name", str, REQUIRED, "Kinesis stream to read")
SOURCE_AWS_REGION = Key("source.aws.region", str, "us-east-1", "AWS region")
SOURCE_AWS_ENDPOINT = Key("source.aws.endpoint", str, None, "local AWS endpoint (moto, LocalStack); none: real AWS")
SOURCE_INITIAL_POSITION = Key("source.initial.position", _choice(*INITIAL_POSITIONS), INITIAL_POSITIONS[0],
    "where the job's very first start begins (a restored job goes on from its positions)")
SOURCE_INITIAL_TIMESTAMP = Key("source.initial.timestamp", _timestamp, None, "ISO 8601 time for initial.position=AT_TIMESTAMP")
SOURCE_FORMAT = Key("source.format", _format, "qldb", "what the stream carries: " + "; ".join(
    f"{spec.name} ({spec.description})" for spec in FORMATS.values()))
SOURCE_READER_TYPE = Key("source.reader.type", _choice(*READER_TYPES), POLLING,
    "POLLING (GetRecords, shared by every consumer of a shard) or EFO (enhanced "
    "fan-out: SubscribeToShard, a dedicated 2 MB/s per shard)")
SOURCE_EFO_CONSUMER_NAME = Key("source.efo.consumer.name", str, None, "the stream consumer's name with reader.type=EFO (registered if missing)")
SOURCE_DSQL_KEYS = Key("source.dsql.keys", _dsql_keys, None, "dsql-cdc: each table's key columns, e.g. order_items=order_id+item_id; "
    "sales.orders=id (required with source.format=dsql-cdc)")
SOURCE_DSQL_SPLIT_TIMEOUT_MS = Key("source.dsql.split.timeout.ms", _positive_int, 600_000,
    "dsql-cdc: how long the parts of a split record are waited for before "
    "they become one dead letter")

# [sink]
SINK_MYSQL_HOST = Key("sink.mysql.host", str, REQUIRED, "MySQL host")
SINK_MYSQL_PORT = Key("sink.mysql.port", _port, 3306, "MySQL port")
SINK_MYSQL_DATABASE = Key("sink.mysql.database", str, REQUIRED, "target database (created if missing)")
SINK_MYSQL_USER = Key("sink.mysql.user", str, REQUIRED, "MySQL user")
SINK_MYSQL_PASSWORD = Key("sink.mysql.password", str, None, "password; this or mysql.secret.arn is required (use the secret in production)")
SINK_MYSQL_SECRET_ARN = Key("sink.mysql.secret.arn", str, None, "AWS Secrets Manager secret holding the password (or RDS-style JSON); "
    "read again after a login is refused (rotation)")
SINK_MYSQL_SSL_MODE = Key("sink.mysql.ssl.mode", _choice("AUTO", "DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"), "AUTO",
    "TLS to MySQL as the mysql client's --ssl-mode; AUTO: off for a loopback host, else "
    "VERIFY_IDENTITY with mysql.ssl.ca and REQUIRED (encrypted, unverified) without")
SINK_MYSQL_SSL_CA = Key("sink.mysql.ssl.ca", str, None, "path of a CA bundle to verify the server against (for Aurora, the RDS CA "
    "bundle); with mysql.ssl.mode AUTO it also turns verification on")
SINK_MYSQL_CONNECT_TIMEOUT_MS = Key("sink.mysql.connect.timeout.ms", _positive_int, 10_000, "MySQL connect timeout")
SINK_MYSQL_READ_TIMEOUT_MS = Key("sink.mysql.read.timeout.ms", _positive_int, 60_000, "MySQL read/write timeout")
SINK_BATCH_MAX_ROWS = Key("sink.batch.max.rows", _positive_int, 1000, "a writer slot writes its batch when it holds this many rows")
SINK_BATCH_INTERVAL_MS = Key("sink.batch.interval.ms", _positive_int, 200, "... or when its oldest waiting row is this old")
SINK_WRITER_SLOTS = Key("sink.writer.slots", _positive_int, 4, "writer slots (keys of the writer); a document always goes to the same one")
SINK_RETRY_DEADLINE_MS = Key("sink.retry.deadline.ms", _positive_int, 300_000,
    "how long a batch is retried on transient MySQL errors before the job fails")
SINK_COLUMN_TYPES = Key("sink.column.types", _column_types, (),
    "typed columns' types instead of the ones the data asks for, e.g. "
    "Orders.price=DECIMAL(12,2); Orders.placed=DATETIME(3) (BOOLEAN, BIGINT, DOUBLE, "
    "LONGTEXT, LONGBLOB, DECIMAL(p,s), DATETIME(n)); for new columns only, never widened")

# [replication]
REPLICATION_HISTORY = Key("replication.history", _bool, False, "also keep every revision, deletes included, once, in <table>_history")
REPLICATION_ORDER = Key("replication.order", _bool, False, "apply versions strictly one after another instead of newest-wins")
REPLICATION_ORDER_TIMEOUT_MS = Key("replication.order.timeout.ms", _positive_int, 60_000, "order mode: how long a gap (a missing version) is waited for")
REPLICATION_ORDER_GAP = Key("replication.order.gap", _choice(*GAP_ACTIONS), GAP_SKIP,
    "order mode, when the wait runs out: skip (apply, record the gap) or wait (keep waiting)")
REPLICATION_TABLES_INCLUDE = Key("replication.tables.include", _csv, (), "comma-separated QLDB table names to replicate (default: all)")

# [audit]
AUDIT_REPLAY_ENABLED = Key("audit.replay.enabled", _bool, False, "cloudwatch-audit: replay the source's statements on audit.replay.database")
AUDIT_REPLAY_DATABASE = Key("audit.replay.database", _mysql_identifier, None, "the database statements are replayed in (required with replay)")
AUDIT_MAX_OUT_OF_ORDERNESS_MS = Key("audit.max.out.of.orderness.ms", _positive_int, 5_000,
    "how far a shard's events may trail the newest event time it delivered")
# Audit-log sync (source.format=cloudwatch-audit); see README "Audit-log sync".
AUDIT_SOURCE_DATABASE = Key("audit.source.database", str, None, "only statements for this database are replayed "
    "(default: audit.replay.database)")
AUDIT_REPLAY_DDL = Key("audit.replay.ddl", _replay_ddl, frozenset(), "table DDL to replay too: all, or a list such as "
    "CREATE TABLE, ALTER TABLE (default: none)")
AUDIT_REPLAY_STOP_ON_ERROR = Key("audit.replay.stop.on.error", _bool, False, "a statement the target refuses: dead letter and go on (false), "
    "or dead letter and fail the job (true)")
AUDIT_IDLE_TIMEOUT_MS = Key("audit.idle.timeout.ms", _positive_int, 3_000, "a shard silent this long no longer holds a server's watermark back")

KEYS: tuple = (
    SOURCE_STREAM_NAME, SOURCE_AWS_REGION, SOURCE_AWS_ENDPOINT, SOURCE_INITIAL_POSITION,
    SOURCE_INITIAL_TIMESTAMP, SOURCE_FORMAT, SOURCE_READER_TYPE, SOURCE_EFO_CONSUMER_NAME, SOURCE_DSQL_KEYS,
    SOURCE_DSQL_SPLIT_TIMEOUT_MS, SINK_MYSQL_HOST, SINK_MYSQL_PORT, SINK_MYSQL_DATABASE, SINK_MYSQL_USER,
    SINK_MYSQL_PASSWORD, SINK_MYSQL_SECRET_ARN, SINK_MYSQL_SSL_MODE, SINK_MYSQL_SSL_CA,
    SINK_MYSQL_CONNECT_TIMEOUT_MS, SINK_MYSQL_READ_TIMEOUT_MS, SINK_BATCH_MAX_ROWS, SINK_BATCH_INTERVAL_MS,
    SINK_WRITER_SLOTS, SINK_RETRY_DEADLINE_MS, SINK_COLUMN_TYPES, REPLICATION_HISTORY, REPLICATION_ORDER,
    REPLICATION_ORDER_TIMEOUT_MS, REPLICATION_ORDER_GAP, REPLICATION_TABLES_INCLUDE, AUDIT_REPLAY_ENABLED,
    AUDIT_REPLAY_DATABASE, AUDIT_MAX_OUT_OF_ORDERNESS_MS, AUDIT_SOURCE_DATABASE, AUDIT_REPLAY_DDL,
    AUDIT_REPLAY_STOP_ON_ERROR, AUDIT_IDLE_TIMEOUT_MS,
)
# group -> key -> Key, as the properties file groups them.
SPEC: dict = {}
for _key in KEYS:
    SPEC.setdefault(_key.group, {})[_key.key] = _key


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


SECRET_KEYS = frozenset({SINK_MYSQL_PASSWORD.name})
# What a source.format cannot run without (checked at start-up; `record decode` names it).
REQUIRED_BY_FORMAT = {"dsql-cdc": (SOURCE_DSQL_KEYS, "DSQL's records do not say which columns are a table's key "
                                                      "(e.g. order_items=order_id+item_id; sales.orders=id)")}
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

    def __getitem__(self, key: "Key | str") -> Any:
        # The runtime reads through the Key constants above; the tooling may still name a key.
        return self.values[key.name if isinstance(key, Key) else key]



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
    if props[SOURCE_INITIAL_POSITION] == "AT_TIMESTAMP" and props[SOURCE_INITIAL_TIMESTAMP] is None:
        raise PropertiesError(f"{origin}: source.initial.position=AT_TIMESTAMP needs source.initial.timestamp")
    if props[SOURCE_READER_TYPE] == "EFO" and not props[SOURCE_EFO_CONSUMER_NAME]:
        raise PropertiesError(f"{origin}: source.reader.type=EFO needs source.efo.consumer.name")
    if props[SINK_MYSQL_SSL_MODE] in ("VERIFY_CA", "VERIFY_IDENTITY") and not props[SINK_MYSQL_SSL_CA]:
        raise PropertiesError(f"{origin}: sink.mysql.ssl.mode={props[SINK_MYSQL_SSL_MODE]} needs sink.mysql.ssl.ca "
                              "(the CA bundle to verify the server's certificate against)")
    if props[SINK_MYSQL_PASSWORD] is None and props[SINK_MYSQL_SECRET_ARN] is None:
        raise PropertiesError(f"{origin}: set sink.mysql.password or sink.mysql.secret.arn")
    if props[REPLICATION_ORDER] and not format_spec(props[SOURCE_FORMAT]).order_mode:
        raise PropertiesError(f"{origin}: replication.order=true needs a gap-free version sequence per document, "
                              f"which source.format={props[SOURCE_FORMAT]} does not have (only "
                              + ", ".join(s.name for s in FORMATS.values() if s.order_mode)
                              + " has); leave replication.order false: newest wins, by the format's version")
    if props[SOURCE_FORMAT] in REQUIRED_BY_FORMAT:
        needed, why = REQUIRED_BY_FORMAT[props[SOURCE_FORMAT]]
        if not props[needed]:
            raise PropertiesError(f"{origin}: source.format={props[SOURCE_FORMAT]} needs {needed.name}: {why}")
    if props[AUDIT_REPLAY_ENABLED] and not props[AUDIT_REPLAY_DATABASE]:
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
