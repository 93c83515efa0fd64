"""Aurora-style audit lines for load: ``ledgersync simulate audit``.

Generates the advanced-auditing log of one or more Aurora MySQL instances running a
workload on one table (``sim_accounts`` in ``--database``): several connections at
once, inserts, updates and deletes of the rows each connection owns, explicit
transactions (some rolled back), reads, failing statements, statements on another
schema, CONNECT/DISCONNECT, and query text with commas, quotes, backslashes,
newlines and non-ASCII. The lines go on Kinesis exactly as a CloudWatch Logs
subscription puts them: gzip JSON records of up to ``--events-per-record`` log
events, each under a random partition key (so one server's events land on every
shard), after a CONTROL_MESSAGE. The workload is a pure function of its settings, so
``expected_rows`` says what the replica must hold afterwards.
"""
from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from connectors.formats.audit_lines import aurora_line
from connectors.formats.cloudwatch_logs import LogEvent, control_message, encode_subscription_record
from job.cli.tools.simulate.qldb import ensure_stream, put_records

TABLE = "sim_accounts"
CREATE_TABLE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, owner VARCHAR(100) NOT NULL, "
                "balance DECIMAL(14,2) NOT NULL, note TEXT NULL) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
NOTES = ("plain", "a, b, c", "it's", 'say "hi"', "back\\slash", "two\nlines", "tab\there", "Zürich – São Paulo",
         "東京 🦆", "',0\n1700000000000000,fake,line", "")


@dataclass(frozen=True)
class AuditSpec:
    database: str = "sim"
    servers: int = 1
    connections: int = 4  # per server
    statements: int = 1000  # data-changing statements per server
    events_per_record: int = 50
    duplicates: float = 0.0  # fraction of Kinesis records put twice
    bad_lines: int = 0  # unparseable lines mixed in (dead letters)
    seed: int = 1


def sql_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _cents(value: int) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"


def server_name(index: int) -> str:
    return f"sim-aurora-{index + 1}"


def generate(spec: AuditSpec, start_us: int) -> tuple:
    """(lines per server in log order, expected rows {id: (owner, balance, note)})."""
    rng = random.Random(spec.seed)
    expected: dict = {}
    logs = {}
    for s in range(spec.servers):
        server = server_name(s)
        lines = []
        clock = [start_us]
        query_id = [1000]

        def emit(conn: int, operation: str, query: str = "", retcode: int = 0, database: str = spec.database) -> None:
            clock[0] += rng.randrange(1, 3000)
            qid = 0
            if operation == "QUERY":
                query_id[0] += 1
                qid = query_id[0]
            lines.append(aurora_line(time_us=clock[0], server=server, user=f"app{conn}", host=f"10.0.{s}.{conn + 10}",
                                     connection_id=100 + conn, query_id=qid, operation=operation,
                                     database=database, query=query, retcode=retcode))

        emit(0, "CONNECT")
        emit(0, "QUERY", CREATE_TABLE)
        live = {c: [] for c in range(spec.connections)}
        next_id = {c: (s * spec.connections + c) * 10 ** 9 for c in range(spec.connections)}
        open_txn: dict = {}  # conn -> list of pending changes (applied at COMMIT)
        for c in range(1, spec.connections):
            emit(c, "CONNECT")
        done = 0
        while done < spec.statements:
            c = rng.randrange(spec.connections)
            roll = rng.random()
            if c not in open_txn and roll < 0.05:
                open_txn[c] = []
                emit(c, "QUERY", rng.choice(("BEGIN", "START TRANSACTION")))
                continue
            if c in open_txn and roll < 0.15:
                changes = open_txn.pop(c)
                if rng.random() < 0.3:
                    emit(c, "QUERY", "ROLLBACK")
                    for kind, row_id, _value in reversed(changes):  # undo the bookkeeping of `live`
                        if kind == "insert":
                            live[c].remove(row_id)
                        elif kind == "delete":
                            live[c].append(row_id)
                else:
                    emit(c, "QUERY", "COMMIT")
                    for change in changes:
                        _apply(expected, change)
                continue
            if roll < 0.2:
                emit(c, "QUERY", f"SELECT * FROM {TABLE} WHERE note LIKE '%,%'")
                continue
            if roll < 0.22:
                emit(c, "QUERY", f"DELETE FROM {TABLE}", database="other_schema")  # not ours: never replayed
                continue
            if roll < 0.25:
                emit(c, "QUERY", f"INSERT INTO {TABLE} (id) VALUES (NULL)", retcode=1048)  # failed on the source
                continue
            done += 1
            if roll < 0.6 or not live[c]:
                row_id = next_id[c]
                next_id[c] += 1
                owner, cents, note = f"owner-{row_id}", rng.randrange(-10 ** 6, 10 ** 6), rng.choice(NOTES)
                emit(c, "QUERY", f"INSERT INTO {TABLE} (id, owner, balance, note) VALUES "
                                 f"({row_id}, {sql_literal(owner)}, {_cents(cents)}, {sql_literal(note)})")
                live[c].append(row_id)
                change = ("insert", row_id, (owner, cents, note))
            elif roll < 0.85:
                row_id = rng.choice(live[c])
                cents, note = rng.randrange(-10 ** 5, 10 ** 5), rng.choice(NOTES)
                emit(c, "QUERY", f"UPDATE {TABLE} SET balance = balance + {_cents(cents)}, note = {sql_literal(note)} "
                                 f"WHERE id = {row_id}")
                change = ("update", row_id, (cents, note))
            else:
                row_id = live[c].pop(rng.randrange(len(live[c])))
                emit(c, "QUERY", f"DELETE FROM {TABLE} WHERE id = {row_id}")
                change = ("delete", row_id, None)
            if c in open_txn:
                open_txn[c].append(change)
            else:
                _apply(expected, change)
        for c in range(spec.connections):
            if c in open_txn:
                emit(c, "QUERY", "COMMIT")
                for change in open_txn.pop(c):
                    _apply(expected, change)
            emit(c, "DISCONNECT")
        logs[server] = lines
    rows = {row_id: (owner, Decimal(_cents(cents)), note) for row_id, (owner, cents, note) in expected.items()}
    return logs, rows


def _apply(rows: dict, change: tuple) -> None:
    kind, row_id, value = change
    if kind == "insert":
        rows[row_id] = value
    elif kind == "update":
        owner, cents, _ = rows[row_id]
        rows[row_id] = (owner, cents + value[0], value[1])
    else:
        del rows[row_id]


def kinesis_payloads(spec: AuditSpec, logs: dict, start_ms: int) -> list:
    """(partition key, data) in the order a subscription would put them."""
    rng = random.Random(spec.seed + 1)
    payloads = [(uuid.UUID(int=rng.getrandbits(128)).hex, control_message())]
    streams = []
    for number, (server, lines) in enumerate(logs.items()):
        group, stream = f"/aws/rds/cluster/{server}-cluster/audit", f"{server}.audit.log.0.sim"
        events = list(lines)
        if number == 0:  # the bad lines all go into the first server's log
            for position in sorted(rng.sample(range(len(events)), min(spec.bad_lines, len(events))), reverse=True):
                events.insert(position, f"not an audit line #{position}, 'unclosed")
        streams.append((group, stream, events))
    counter = 0
    for group, stream, events in streams:
        for start in range(0, len(events), spec.events_per_record):
            batch = [LogEvent(id=str(10 ** 20 + counter + i), timestamp_ms=start_ms + (counter + i) // 100,
                              message=message) for i, message in enumerate(events[start:start + spec.events_per_record])]
            counter += len(batch)
            data = encode_subscription_record(log_group=group, log_stream=stream, events=batch)
            payloads.append((uuid.UUID(int=rng.getrandbits(128)).hex, data))
            if rng.random() < spec.duplicates:
                payloads.append((uuid.UUID(int=rng.getrandbits(128)).hex, data))  # CloudWatch delivers at least once
    return payloads


def simulate_audit(client, stream: str, spec: AuditSpec, shards: int = 2, out: Callable[[str], None] = print) -> dict:
    """Put the workload on the stream (creating it if needed); returns the rows the replica must hold."""
    ensure_stream(client, stream, shards)
    now_ms = int(time.time() * 1000)
    logs, rows = generate(spec, start_us=now_ms * 1000 - 3_600_000_000)
    payloads = kinesis_payloads(spec, logs, now_ms)
    started = time.monotonic()
    put_records(client, stream, payloads)
    lines = sum(len(v) for v in logs.values())
    out(f"simulate: {lines} audit lines ({spec.statements} data-changing statements per server, "
        f"{spec.servers} server(s)) in {len(payloads)} records on stream {stream} in {time.monotonic() - started:.1f}s; "
        f"replay database must hold {len(rows)} rows in {TABLE}")
    return rows
