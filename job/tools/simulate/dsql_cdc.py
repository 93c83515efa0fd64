"""Aurora DSQL CDC records for tests and the simulator, in the documented shape
(https://docs.aws.amazon.com/aurora-dsql/latest/userguide/cdc-record-format.html),
including oversized records split into a ``chunked`` main record and ``fragment``s.
Tooling: the runtime decoder is connectors/formats/dsql_cdc.py."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Optional

from connectors.formats.changes import canonical_key
from connectors.formats.dsql_cdc import crc32c


def envelope(op: str, table: str, ts_ns: int, tx_id: str, *, after: Optional[dict] = None,
             before: Optional[dict] = None, schema: str = "public") -> dict:
    return {"type": "full", "op": op, "before": before, "after": after,
            "source": {"version": "1.0", "ts_ms": ts_ns // 1_000_000, "ts_ns": ts_ns, "txId": tx_id,
                       "schema": schema, "table": table, "db": "postgres", "cluster": "simcluster"},
            "ts_ms": ts_ns // 1_000_000 + 125, "ts_ns": ts_ns + 125_000_000}


def to_bytes(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def split(doc: dict, fragment_chars: int, chunk_id: str) -> list:
    """The Kinesis records DSQL sends for ``doc`` when it is too large: the main record,
    then the fragments of its image (``after``, or ``before`` for a delete), each at most
    ``fragment_chars`` characters of the image's JSON text (split on characters, so each
    is valid UTF-8)."""
    image = "before" if doc["op"] == "d" else "after"
    text = json.dumps(doc[image], ensure_ascii=False, separators=(",", ":"))
    pieces = [text[i:i + fragment_chars] for i in range(0, len(text), fragment_chars)]
    main = dict(doc, type="chunked", **{image: None})
    main["chunked"] = {image: {"chunk_id": chunk_id, "total_fragments": len(pieces),
                               "crc32c": str(crc32c(text.encode("utf-8")))}}
    return [to_bytes(main)] + [to_bytes({"type": "fragment", "chunk_id": chunk_id, "index": i, "data": p})
                               for i, p in enumerate(pieces)]


# --- the simulated workload -------------------------------------------------------------

# (schema, table, key columns, column -> value maker); the MySQL table names as the
# decoder names them (schema prefix when not public). The keys property for them is KEYS.
_TABLES = (
    ("public", "order_items", ("order_id", "item_id"),
     {"quantity": lambda r: r.randint(1, 50), "price": lambda r: f"{r.randint(1, 9999) / 100:.2f}",
      "note": lambda r: r.choice([None, "gift", "rush", "é" * r.randint(1, 40)])}),
    ("sales", "orders", ("id",),
     {"customer": lambda r: f"c{r.randint(1, 99)}", "total": lambda r: f"{r.randint(1, 10**6) / 100:.2f}",
      "status": lambda r: r.choice(["new", "paid", "shipped"])}),
    ("public", "customers", ("id",),
     {"name": lambda r: r.choice(["Ana", "Bo", "Chen", "Dara"]) + "x" * r.randint(0, 300),
      "email": lambda r: r.choice([None, "a@example.com"])}),
)
KEYS = "order_items=order_id+item_id; sales.orders=id; customers=id"


def table_name(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


@dataclass(frozen=True)
class DsqlWorkload:
    tables: int = 3  # 1..3
    rows: int = 20  # rows per table
    changes: int = 4  # changes per row (the first an insert; deletes and re-inserts among the rest)
    duplicates: float = 0.0  # fraction of records put twice
    shuffle: bool = False
    split_bytes: int = 9 * 1024 * 1024  # records larger than this are split (the docs: over 9 MiB)
    bad: int = 0  # bad records added (bad JSON, unknown table, keyless delete, incomplete split)
    seed: int = 1


def generate(spec: DsqlWorkload) -> list:
    """Every change (an envelope dict), in commit order: the history."""
    rng = random.Random(spec.seed)
    if not 1 <= spec.tables <= len(_TABLES):
        raise ValueError(f"tables must be 1..{len(_TABLES)}")
    steps = []
    for schema, table, keys, columns in _TABLES[:spec.tables]:
        for n in range(spec.rows):
            key = {"order_id": 1000 + n // 3, "item_id": n % 3} if len(keys) == 2 else \
                {keys[0]: f"A{n}" if schema == "sales" else n}
            alive = False
            for _ in range(spec.changes):
                op = "c" if not alive else rng.choice(["u", "u", "u", "d"])
                steps.append((rng.random(), schema, table, key, columns, op))
                alive = op != "d"
    # Changes of one row stay in order; rows interleave (sort by a per-row-increasing time).
    per_row, ordered = {}, []
    for step in steps:
        ident = (step[1], step[2], canonical_key(tuple(step[3].values())))
        per_row.setdefault(ident, []).append(step)
    queue = [(rng.random(), ident) for ident in per_row]
    ts = 1_767_225_600_000_000_000  # 2026-01-01
    while queue:
        queue.sort()
        _, ident = queue.pop(0)
        _, schema, table, key, columns, op = per_row[ident].pop(0)
        ts += rng.randint(1, 5_000_000)
        tx = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(26))
        if op == "d":
            doc = envelope("d", table, ts, tx, before=dict(key), schema=schema)
        else:
            after = dict(key)
            for name, make in columns.items():
                value = make(rng)
                if value is not None or rng.random() < 0.5:  # NULL: as null or (older records) absent
                    after[name] = value
            doc = envelope(op, table, ts, tx, after=after, schema=schema)
        ordered.append(doc)
        if per_row[ident]:
            queue.append((rng.random(), ident))
    return ordered


def expected_tables(changes: list) -> dict:
    """The oracle: {table as the decoder names it: {document_id: row image}}, the final
    state of every row, deleted rows left out."""
    keys = {name: tuple(cols.split("+")) for name, cols in
            (part.strip().split("=") for part in KEYS.split(";"))}
    out = {}
    for doc in sorted(changes, key=lambda d: (d["source"]["ts_ns"], d["source"]["txId"])):
        table = table_name(doc["source"]["schema"], doc["source"]["table"])
        image = doc["before"] if doc["op"] == "d" else doc["after"]
        doc_id = canonical_key(tuple(image[c] for c in keys[table]))
        rows = out.setdefault(table, {})
        if doc["op"] == "d":
            rows.pop(doc_id, None)
        else:
            rows[doc_id] = dict(doc["after"])
    return out


def bad_records(n: int, rng: random.Random) -> list:
    """``n`` records that must each end as one dead letter."""
    kinds = [
        lambda i: b'{"type": "full", "op": "c", ' + str(i).encode(),  # cut JSON
        lambda i: to_bytes(envelope("c", f"unlisted_{i}", 1_767_225_600_000_000_000 + i, "bad", after={"id": i})),
        lambda i: to_bytes(envelope("d", "customers", 1_767_225_600_000_000_000 + i, "bad", before=None)),
        # A split record whose main record never comes: its fragments expire as one dead letter.
        lambda i: split(envelope("c", "customers", 1_767_225_600_000_000_000 + i, "bad",
                                 after={"id": 10**6 + i, "name": "x" * 60}), 20, f"lost-{i}")[1:],
    ]
    out = []
    for i in range(n):
        made = kinds[i % len(kinds)](i)
        out.extend(made if isinstance(made, list) else [made])
    return out


def kinesis_records(spec: DsqlWorkload, changes: list) -> list:
    """(partition key, data) to put: random partition keys as DSQL uses, records larger
    than split_bytes split, duplicates, shuffled when asked, bad records mixed in."""
    rng = random.Random(spec.seed + 1)
    records = []
    for n, doc in enumerate(changes):
        data = to_bytes(doc)
        if len(data) > spec.split_bytes:
            records.extend(split(doc, max(1, spec.split_bytes // 2), f"chunk-{spec.seed}-{n}"))
        else:
            records.append(data)
    records.extend(bad_records(spec.bad, rng))
    records.extend(rng.sample(records, int(len(records) * spec.duplicates)))
    if spec.shuffle:
        rng.shuffle(records)
    return [(f"{rng.getrandbits(64):016x}", data) for data in records]


def simulate_dsql(client, stream: str, spec: DsqlWorkload, shards: int = 2, out=print) -> list:
    """Put the workload on the stream (creating it if needed); returns the changes (history)."""
    from job.tools.simulate.qldb import ensure_stream, put_records

    changes = generate(spec)
    payloads = kinesis_records(spec, changes)
    ensure_stream(client, stream, shards)
    sent = put_records(client, stream, payloads)
    rows = sum(len(t) for t in expected_tables(changes).values())
    out(f"put {sent} records on {stream}: {len(changes)} changes, {rows} live rows at the end, {spec.bad} bad")
    return changes
