"""Simulated keyed change streams (Aurora DSQL CDC, DynamoDB): one workload of row changes,
encoded as either format, and the oracle of what MySQL must hold after replicating it.

The workload: tables with single and composite keys, rows inserted, updated, deleted
(some by TTL for DynamoDB) and some inserted again after their delete; each change has a
commit time (the version) and a tie. The delivery: every record once, a fraction twice,
shuffled over the shards with random partition keys (as DSQL does), large DSQL records
split into parts, and bad records that must become dead letters.
"""
from __future__ import annotations

import base64
import json
import random
import uuid
from dataclasses import dataclass, field


from connectors.formats.changes import canonical_key
from connectors.formats.dsql_cdc import FRAGMENT
from connectors.mysql import sql

# source table (as named in MySQL before sanitising), key columns
DSQL_TABLES = (("order_items", ("order_id", "item_id")), ("customers", ("id",)), ("sales.invoices", ("invoice_no",)))
DSQL_KEYS = "; ".join(f"{t}={'+'.join(k)}" for t, k in DSQL_TABLES)
BASE_NS = 1_780_000_000_000_000_000  # mid-2026, in nanoseconds


@dataclass(frozen=True)
class ChangesSpec:
    tables: int = 3
    rows: int = 40  # per table
    changes: int = 4  # per row, at least (insert, updates, maybe a delete and a new insert)
    deletes: float = 0.25  # fraction of rows deleted once
    reinserts: float = 0.5  # fraction of deleted rows inserted again later
    duplicates: float = 0.1
    shuffle: bool = True
    seed: int = 1
    bad: int = 0  # bad records mixed in
    split_bytes: int = 0  # DSQL: records larger than this are split into parts (0: never)
    incomplete: int = 0  # DSQL: split records whose last part never comes (dead letters after the timeout)


@dataclass(frozen=True)
class SimChange:
    table: str
    key_columns: tuple
    key: tuple
    version: int
    tie: str
    deleted: bool
    data: dict  # the row image as MySQL's document holds it; the key columns for a delete
    first: bool = False  # the row's first insert (DSQL op "c")
    ttl: bool = False

    @property
    def document_id(self) -> str:
        return canonical_key(self.key)


def _tx_id(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(26))


def _dsql_row(rng: random.Random, table: str, key: dict, n: int) -> dict:
    row = dict(key)
    if table == "order_items":
        row.update(quantity=rng.randint(1, 50), price=f"{rng.randint(100, 99999) / 100:.2f}")
        if rng.random() < 0.6:  # a NULL column is left out of the image
            row["note"] = f"note {n} " + "x" * rng.choice((0, 10, 400))
    elif table == "customers":
        row.update(name=f"customer {key['id']} v{n}", vip=rng.random() < 0.3)
        if rng.random() < 0.5:
            row["email"] = f"{key['id']}@example.com"
    else:
        row.update(total=f"{rng.randint(1, 10 ** 7) / 100:.2f}", paid=rng.random() < 0.5,
                   lines=[{"sku": f"s{i}", "qty": rng.randint(1, 9)} for i in range(rng.randint(0, 3))])
    return row


def _keys(rng: random.Random, table: str, i: int) -> dict:
    if table == "order_items":
        return {"order_id": 1000 + i // 3, "item_id": i % 3 + 1}
    if table == "customers":
        return {"id": f"c-{rng.getrandbits(40):010x}"}
    return {"invoice_no": 500_000 + i}


def generate_dsql(spec: ChangesSpec) -> list:
    """Every row change, in commit order per row (versions are commit times in ns)."""
    rng = random.Random(spec.seed)
    out = []
    for table, key_columns in DSQL_TABLES[:spec.tables]:
        for i in range(spec.rows):
            key = _keys(rng, table, i)
            values = tuple(key[c] for c in key_columns)
            t = BASE_NS + rng.randrange(10 ** 12)
            plan = ["c"] + ["u"] * (spec.changes - 1)
            if rng.random() < spec.deletes:
                plan.insert(rng.randrange(1, len(plan) + 1), "d")
                if rng.random() < spec.reinserts and plan[-1] == "d":
                    plan += ["c", "u"]
            for n, op in enumerate(plan):
                t += rng.randrange(1, 5 * 10 ** 9)
                deleted = op == "d"
                data = dict(key) if deleted else _dsql_row(rng, table, key, n)
                out.append(SimChange(table, key_columns, values, t, _tx_id(rng), deleted, data, first=op == "c"))
    return out


def dsql_record(change: SimChange) -> bytes:
    schema, _, name = change.table.rpartition(".")
    image = change.data
    return json.dumps({
        "type": "full", "op": "d" if change.deleted else "c" if change.first else "u",
        "before": image if change.deleted else None, "after": None if change.deleted else image,
        "source": {"version": "1.0", "ts_ms": change.version // 10 ** 6, "ts_ns": change.version,
                   "txId": change.tie, "schema": schema or "public", "table": name, "db": "postgres",
                   "cluster": "simulatedclusterabcdefghij"},
        "ts_ms": change.version // 10 ** 6 + 40, "ts_ns": change.version + 40_000_000}).encode("utf-8")


def split_record(record: bytes, group: str, part_bytes: int) -> list:
    """A whole record as fragment records of at most ``part_bytes`` of it each, in the
    marking connectors/formats/dsql_cdc.py reads (its ``_piece``)."""
    slices = [record[i:i + part_bytes] for i in range(0, len(record), part_bytes)]
    return [json.dumps({"type": FRAGMENT, "fragment": {"id": group, "index": i, "count": len(slices)},
                        "data": base64.b64encode(chunk).decode("ascii")}).encode("utf-8")
            for i, chunk in enumerate(slices)]


DSQL_BAD = (
    ("not-json", b"{\"type\": \"full\", \"op\": \"c\", \"after\": {"),
    ("no-source", json.dumps({"type": "full", "op": "c", "after": {"id": "x"}}).encode()),
    ("unknown-table", json.dumps({"type": "full", "op": "c", "after": {"id": 1}, "source": {
        "ts_ns": BASE_NS, "txId": "t", "schema": "public", "table": "not_listed"}}).encode()),
    ("delete-without-key", json.dumps({"type": "full", "op": "d", "before": {}, "source": {
        "ts_ns": BASE_NS, "txId": "t", "schema": "public", "table": "customers"}}).encode()),
)


@dataclass
class Delivery:
    records: list  # (partition key, data) in the order to put them
    bad: int = 0
    split: int = 0  # records split into parts
    incomplete_groups: list = field(default_factory=list)


def dsql_delivery(spec: ChangesSpec, changes: list) -> Delivery:
    rng = random.Random(spec.seed + 1)
    out = Delivery([])
    for change in changes:
        record = dsql_record(change)
        if spec.split_bytes and len(record) > spec.split_bytes:
            out.split += 1
            parts = split_record(record, str(uuid.UUID(int=rng.getrandbits(128))), spec.split_bytes)
            out.records += [(uuid.UUID(int=rng.getrandbits(128)).hex, p) for p in parts]
            out.records += [(uuid.UUID(int=rng.getrandbits(128)).hex, p) for p in parts if rng.random() < spec.duplicates]
        else:
            copies = 2 if rng.random() < spec.duplicates else 1
            out.records += [(uuid.UUID(int=rng.getrandbits(128)).hex, record)] * copies
    for n in range(spec.incomplete):  # a big record whose last part never comes
        group = f"incomplete-{spec.seed}-{n}"
        lonely = SimChange("customers", ("id",), (f"never-{n}",), BASE_NS, "t", False,
                           {"id": f"never-{n}", "name": "y" * 600})
        parts = split_record(dsql_record(lonely), group, max(64, spec.split_bytes or 200))
        out.records += [(group, p) for p in parts[:-1]]
        out.incomplete_groups.append(group)
    for n in range(spec.bad):
        kind, data = DSQL_BAD[n % len(DSQL_BAD)]
        out.records.append((f"bad-{kind}-{n}", data))
        out.bad += 1
    if spec.shuffle:
        rng.shuffle(out.records)
    return out


# --- the oracle ------------------------------------------------------------------------

def _newest(changes: list) -> dict:
    newest: dict = {}
    for c in changes:
        k = (c.table, c.document_id)
        if k not in newest or (c.version, c.tie) > (newest[k].version, newest[k].tie):
            newest[k] = c
    return newest


def expected_tables(changes: list, history: bool = True) -> dict:
    """MySQL table -> document_id (history: (document_id, version, tie)) -> what it holds:
    (version, tie, deleted, ttl, data). Deleted rows are not in the current view."""
    tables: dict = {}
    for c in changes:
        tables.setdefault(sql.table_identifier(c.table), {})
        if history:
            tables.setdefault(sql.history_table(sql.table_identifier(c.table)), {})
    for (table, document_id), c in _newest(changes).items():
        if not c.deleted:
            tables[sql.table_identifier(table)][document_id] = (c.version, c.tie, False, False, c.data)
    if history:
        for c in changes:
            tables[sql.history_table(sql.table_identifier(c.table))][(c.document_id, c.version, c.tie)] = (
                c.version, c.tie, c.deleted, c.ttl, c.data)
    return tables


def describe(changes: list, delivery: Delivery) -> str:
    deletes = sum(c.deleted for c in changes)
    return (f"{len(changes)} changes ({deletes} deletes) of {len({(c.table, c.document_id) for c in changes})} rows "
            f"in {len({c.table for c in changes})} tables, {len(delivery.records)} records"
            + (f", {delivery.split} split" if delivery.split else "")
            + (f", {delivery.bad} bad" if delivery.bad else "")
            + (f", {len(delivery.incomplete_groups)} split records left incomplete" if delivery.incomplete_groups else ""))


def simulate(client, stream: str, records: list, shards: int = 2, out=print, what: str = "") -> None:
    from job.tools.simulate.qldb import ensure_stream, put_records

    ensure_stream(client, stream, shards)
    put_records(client, stream, records)
    out(f"simulate: {what} on stream {stream}")


