"""Every source format ledgersync reads, in one place: ``source.format`` names one of ``FORMATS``.

A format is one module in ``connectors/formats`` that turns the bytes of a Kinesis record
into what the rest of the job handles. There are three kinds:

- ``revisions``: QLDB stream records (Ion, KPL-aggregated) to revisions with a document
  id and a gap-free version each (``connectors/formats/qldb.py``);
- ``audit``: MySQL/MariaDB audit logs from a CloudWatch Logs subscription, replayed as
  statements (``job/pipeline/audit.py``);
- ``changes``: keyed change streams (Aurora DSQL CDC, DynamoDB) to ``RowChange``s
  (``connectors/formats/changes.py``), which join the QLDB path as revisions: the same
  per-document state, writer, tables and dead letters.

Adding a format: write its module (a ``decode(data, settings)`` that returns a
``RowChange`` or a ``Piece``, or raises ``BadChange``), add its ``FormatSpec`` here, its
properties (if any) to ``job/config/properties.py`` and its settings to ``format_settings``
in ``job/config/settings.py``. Pure: no Flink, no MySQL.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from connectors.formats import dsql_cdc, dynamodb

REVISIONS = "revisions"
AUDIT = "audit"
CHANGES = "changes"


@dataclass(frozen=True)
class FormatSpec:
    name: str  # the value of source.format
    kind: str  # REVISIONS, AUDIT or CHANGES
    description: str  # one line, for `ledgersync properties` and the README
    # replication.order=true needs a gap-free version sequence per document, which only
    # QLDB has; for the others it is refused at start-up, naming the format.
    order_mode: bool = False
    # CHANGES: decode(data: bytes, settings) -> RowChange | Piece, or raises BadChange.
    decode: Optional[Callable[[bytes, Any], Any]] = None


FORMATS: dict = {spec.name: spec for spec in (
    FormatSpec("qldb", REVISIONS, "QLDB stream records (Ion, KPL-aggregated)", order_mode=True),
    FormatSpec("cloudwatch-audit", AUDIT, "MySQL/MariaDB audit logs from a CloudWatch Logs subscription"),
    FormatSpec("dsql-cdc", CHANGES, "Aurora DSQL change data capture (JSON row changes; keys from source.dsql.keys)",
               decode=dsql_cdc.decode),
    FormatSpec("dynamodb", CHANGES, "DynamoDB's Kinesis Data Streams records (item changes, typed attribute values)",
               decode=dynamodb.decode),
)}


class UnknownFormat(ValueError):
    pass


def format_spec(name: str) -> FormatSpec:
    try:
        return FORMATS[name]
    except KeyError:
        raise UnknownFormat(f"unknown source.format {name!r} (known: {', '.join(FORMATS)})") from None
