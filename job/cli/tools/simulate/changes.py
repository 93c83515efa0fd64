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
import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field


from connectors.formats.changes import canonical_key
from job.cli.tools.simulate.dsql_cdc import envelope, split, to_bytes
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


def dsql_doc(change: SimChange) -> dict:
    schema, _, name = change.table.rpartition(".")
    image = change.data
    return envelope("d" if change.deleted else "c" if change.first else "u", name, change.version, change.tie,
                    after=None if change.deleted else image, before=image if change.deleted else None,
                    schema=schema or "public")


def dsql_record(change: SimChange) -> bytes:
    return to_bytes(dsql_doc(change))


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
            # DSQL names each split record uniquely; from its bytes and the part size, so runs
            # of the simulator with other settings never reuse a group for other parts.
            group = str(uuid.uuid5(uuid.NAMESPACE_OID, f"{spec.split_bytes}:{hashlib.sha1(record).hexdigest()}"))
            parts = split(dsql_doc(change), spec.split_bytes, group)
            out.records += [(uuid.UUID(int=rng.getrandbits(128)).hex, p) for p in parts]
            out.records += [(uuid.UUID(int=rng.getrandbits(128)).hex, p) for p in parts if rng.random() < spec.duplicates]
        else:
            copies = 2 if rng.random() < spec.duplicates else 1
            out.records += [(uuid.UUID(int=rng.getrandbits(128)).hex, record)] * copies
    for n in range(spec.incomplete):  # a big record whose last part never comes
        group = f"incomplete-{spec.seed}-{n}"
        lonely = SimChange("customers", ("id",), (f"never-{n}",), BASE_NS, "t", False,
                           {"id": f"never-{n}", "name": "y" * 600})
        parts = split(dsql_doc(lonely), max(64, spec.split_bytes or 200), group)
        out.records += [(group, p) for p in parts[:-1]]  # the last fragment never comes
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
    from job.cli.tools.simulate.qldb import ensure_stream, put_records

    ensure_stream(client, stream, shards)
    put_records(client, stream, records)
    out(f"simulate: {what} on stream {stream}")




# --- DynamoDB ----------------------------------------------------------------------------

# table, key attributes, whether its stream has millisecond precision (ties happen there)
DYNAMODB_TABLES = (("Orders", ("customer", "placed"), False), ("Sessions", ("session_id",), False),
                   ("Counters", ("counter_id",), True))
BASE_US = 1_780_000_000_000_000


def _pair(rng: random.Random, kind: str):
    """(typed attribute value, what the decoder must make of it), built independently of it."""
    if kind == "S":
        text = f"s{rng.getrandbits(20)} é"
        return {"S": text}, text
    if kind == "N":
        text = rng.choice(("0", "-17", "12345678901234567890123456789012345678", "3.14159", "1E+100", "0.000001"))
        return {"N": text}, text
    if kind == "B":
        raw = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 12)))).decode()
        return {"B": raw}, raw
    if kind == "BOOL":
        flag = rng.random() < 0.5
        return {"BOOL": flag}, flag
    if kind == "NULL":
        return {"NULL": True}, None
    if kind == "SS":
        items = sorted({f"tag{rng.randint(0, 9)}" for _ in range(rng.randint(1, 4))})
        return {"SS": list(reversed(items))}, items
    if kind == "NS":
        items = sorted({rng.choice(("10", "9", "-1.5", "100", "2.25")) for _ in range(rng.randint(1, 4))},
                       key=float)
        return {"NS": list(reversed(items))}, items
    if kind == "BS":
        items = sorted({base64.b64encode(bytes([rng.randint(0, 255)])).decode() for _ in range(rng.randint(1, 3))})
        return {"BS": list(reversed(items))}, items
    if kind == "M":
        typed_a, plain_a = _pair(rng, "N")
        typed_b, plain_b = _pair(rng, "L")
        return {"M": {"a": typed_a, "b": typed_b}}, {"a": plain_a, "b": plain_b}
    typed_s, plain_s = _pair(rng, "S")  # "L"
    return {"L": [typed_s, {"BOOL": True}, {"NULL": True}]}, [plain_s, True, None]


_ATTRIBUTES = (("note", "S"), ("amount", "N"), ("blob", "B"), ("active", "BOOL"), ("gone", "NULL"),
               ("tags", "SS"), ("scores", "NS"), ("chunks", "BS"), ("details", "M"), ("items", "L"))


def _dynamodb_key(rng: random.Random, table: str, i: int) -> dict:
    """key attribute -> (typed, plain)"""
    if table == "Orders":
        return {"customer": ({"S": f"cust-{i // 2}"}, f"cust-{i // 2}"),
                "placed": ({"S": f"2026-0{i % 2 + 1}-01"}, f"2026-0{i % 2 + 1}-01")}
    if table == "Sessions":
        sid = f"{rng.getrandbits(64):016x}"
        return {"session_id": ({"S": sid}, sid)}
    return {"counter_id": ({"N": str(i + 1)}, str(i + 1))}


def generate_dynamodb(spec: ChangesSpec) -> list:
    """Every item change, per item in time order; SimChange.extra holds the typed images."""
    rng = random.Random(spec.seed)
    out = []
    for table, key_names, millis in DYNAMODB_TABLES[:spec.tables]:
        for i in range(spec.rows):
            key = _dynamodb_key(rng, table, i)
            typed_key = {n: key[n][0] for n in key_names}
            plain_key = {n: key[n][1] for n in key_names}
            values = tuple(plain_key[n] for n in sorted(key_names))
            t = BASE_US + rng.randrange(10 ** 9) * (1000 if millis else 1)
            plan = ["INSERT"] + ["MODIFY"] * (spec.changes - 1)
            if rng.random() < spec.deletes:
                plan.insert(rng.randrange(1, len(plan) + 1), "REMOVE")
                if rng.random() < spec.reinserts and plan[-1] == "REMOVE":
                    plan += ["INSERT", "MODIFY"]
            for op in plan:
                # at millisecond precision, one change in four lands in the same tick as the one before
                step = 0 if (millis and rng.random() < 0.25) else rng.randrange(1, 3000) * (1000 if millis else 1)
                t += step
                typed, plain = dict(typed_key), dict(plain_key)
                if op != "REMOVE":
                    for name, kind in rng.sample(_ATTRIBUTES, rng.randint(3, len(_ATTRIBUTES))):
                        typed[name], plain[name] = _pair(rng, kind)
                ttl = op == "REMOVE" and table == "Sessions" and rng.random() < 0.7
                change = SimChange(table, tuple(sorted(key_names)), values, t, uuid.UUID(int=rng.getrandbits(128)).hex,
                                   op == "REMOVE", plain, first=op == "INSERT", ttl=ttl)
                out.append((change, op, typed_key, typed, millis))
    return out


def dynamodb_record(change: SimChange, op: str, typed_key: dict, typed: dict, millis: bool) -> bytes:
    stream = {"ApproximateCreationDateTime": change.version // 1000 if millis else change.version,
              "ApproximateCreationDateTimePrecision": "MILLISECOND" if millis else "MICROSECOND",
              "Keys": typed_key, "SizeBytes": 100}
    if op != "REMOVE":
        stream["NewImage"] = typed
    identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"} if change.ttl else None
    return json.dumps({"awsRegion": "us-east-1", "eventID": change.tie, "eventName": op, "userIdentity": identity,
                       "recordFormat": "application/json", "tableName": change.table, "dynamodb": stream,
                       "eventSource": "aws:dynamodb"}).encode("utf-8")


DYNAMODB_BAD = (
    ("not-json", b"{\"eventName\": "),
    ("unknown-event", json.dumps({"eventName": "TRUNCATE", "tableName": "T", "eventID": "e", "dynamodb": {}}).encode()),
    ("key-schema", json.dumps({"eventName": "INSERT", "tableName": "Sessions", "eventID": "e", "dynamodb": {
        "ApproximateCreationDateTime": BASE_US, "Keys": {"session_id": {"S": "a"}},
        "NewImage": {"session_id": {"S": "b"}}}}).encode()),
    ("keys-only", json.dumps({"eventName": "MODIFY", "tableName": "Sessions", "eventID": "e", "dynamodb": {
        "ApproximateCreationDateTime": BASE_US, "Keys": {"session_id": {"S": "a"}}}}).encode()),
    ("bad-number", json.dumps({"eventName": "INSERT", "tableName": "Counters", "eventID": "e", "dynamodb": {
        "ApproximateCreationDateTime": BASE_US, "Keys": {"counter_id": {"N": "1"}},
        "NewImage": {"counter_id": {"N": "1"}, "x": {"N": "1e999"}}}}).encode()),
)


def dynamodb_delivery(spec: ChangesSpec, generated: list) -> Delivery:
    rng = random.Random(spec.seed + 1)
    out = Delivery([])
    for change, op, typed_key, typed, millis in generated:
        record = dynamodb_record(change, op, typed_key, typed, millis)
        copies = 2 if rng.random() < spec.duplicates else 1
        out.records += [(change.document_id, record)] * copies
    for n in range(spec.bad):
        kind, data = DYNAMODB_BAD[n % len(DYNAMODB_BAD)]
        out.records.append((f"bad-{kind}-{n}", data))
        out.bad += 1
    if spec.shuffle:
        rng.shuffle(out.records)
    return out
