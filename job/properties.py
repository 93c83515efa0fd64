"""Application properties: one JSON file in the MSF format, validated at start-up.

The file is a list of ``{"PropertyGroupId": ..., "PropertyMap": {...}}``; locally it is
passed with ``--properties``, on MSF it is ``/etc/flink/application_properties.json``.
Every group and key is listed in ``SPEC`` below (with its type and default); anything
else, or a missing required key, is an error that names it.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

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
    from connectors.mysql_sql import BadIdentifier, quote_identifier

    try:
        quote_identifier(text)
    except BadIdentifier:
        raise ValueError("expected a database name of letters, digits and _ (at most 64)") from None
    return text


def _replay_ddl(text: str) -> frozenset:
    from connectors.audit_statements import parse_ddl_setting

    return parse_ddl_setting(text)


REQUIRED = object()

# group -> key -> (parser, default). REQUIRED marks a key that must be present.
SPEC: dict = {
    "source": {
        "stream.name": (str, REQUIRED),
        "aws.region": (str, "us-east-1"),
        "aws.endpoint": (str, None),
        "initial.position": (_choice("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"), "TRIM_HORIZON"),
        "initial.timestamp": (_timestamp, None),
        "format": (_choice("qldb", "cloudwatch-audit"), "qldb"),
        # Kinesis allows 5 GetRecords calls per second per shard, and 10,000 records per call.
        "poll.interval.ms": (_int_between(200, 3_600_000, " (Kinesis allows 5 GetRecords calls/s per shard)"), 200),
        "idle.poll.interval.ms": (_int_between(200, 3_600_000), 1000),
        "shard.discovery.interval.ms": (_int_between(100, 3_600_000), 10_000),
        "reader.slots": (_int_between(1, 64), 4),
        "get.records.limit": (_int_between(1, 10_000), 1000),
    },
    "sink": {
        "mysql.host": (str, REQUIRED),
        "mysql.port": (_port, 3306),
        "mysql.database": (str, REQUIRED),
        "mysql.user": (str, REQUIRED),
        "mysql.password": (str, None),
        "mysql.secret.arn": (str, None),
        "mysql.ssl.ca": (str, None),
        "mysql.connect.timeout.ms": (_positive_int, 10_000),
        "mysql.read.timeout.ms": (_positive_int, 60_000),
        "batch.max.rows": (_positive_int, 1000),
        "batch.interval.ms": (_positive_int, 200),
        "writer.slots": (_positive_int, 4),
        "retry.deadline.ms": (_positive_int, 300_000),
    },
    "replication": {
        "history": (_bool, False),
        "order": (_bool, False),
        "order.timeout.ms": (_positive_int, 60_000),
        "order.gap": (_choice("skip", "wait"), "skip"),
        "tables.include": (_csv, ()),
    },
    "audit": {
        "replay.enabled": (_bool, False),
        "replay.database": (_mysql_identifier, None),
        "max.out.of.orderness.ms": (_positive_int, 5_000),
        # Audit-log sync (source.format=cloudwatch-audit); see README "Audit-log sync".
        "source.database": (str, None),
        "replay.ddl": (_replay_ddl, frozenset()),
        "replay.stop.on.error": (_bool, False),
        "idle.timeout.ms": (_positive_int, 3_000),
    },
}


SECRET_KEYS = frozenset({"sink.mysql.password"})


@dataclass(frozen=True)
class Properties:
    values: dict  # "group.key" -> typed value (defaults filled in)

    def __repr__(self) -> str:  # never print a password
        shown = {k: ("***" if k in SECRET_KEYS and v else v) for k, v in self.values.items()}
        return f"Properties({shown!r})"

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None else value


def parse_groups(groups: Any, origin: str = "properties") -> Properties:
    if not isinstance(groups, list):
        raise PropertiesError(f"{origin}: expected a JSON list of {{PropertyGroupId, PropertyMap}} objects")
    raw: dict = {}
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
            if key not in SPEC[group_id]:
                known = ", ".join(SPEC[group_id])
                raise PropertiesError(f"{origin}: unknown property {group_id}.{key} (known in {group_id}: {known})")
            raw[f"{group_id}.{key}"] = str(text)
    values: dict = {}
    for group_id, keys in SPEC.items():
        for key, (parse, default) in keys.items():
            name = f"{group_id}.{key}"
            if name in raw and raw[name] != "":
                try:
                    values[name] = parse(raw[name])
                except ValueError as exc:
                    raise PropertiesError(f"{origin}: bad value {raw[name]!r} for {name}: {exc}") from None
            elif default is REQUIRED:
                raise PropertiesError(f"{origin}: missing required property {name}")
            else:
                values[name] = default
    props = Properties(values)
    _check_combinations(props, origin)
    return props


def _check_combinations(props: Properties, origin: str) -> None:
    if props["source.initial.position"] == "AT_TIMESTAMP" and props["source.initial.timestamp"] is None:
        raise PropertiesError(f"{origin}: source.initial.position=AT_TIMESTAMP needs source.initial.timestamp")
    if props["sink.mysql.password"] is None and props["sink.mysql.secret.arn"] is None:
        raise PropertiesError(f"{origin}: set sink.mysql.password or sink.mysql.secret.arn")
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
