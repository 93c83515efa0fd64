"""Small revision histories with deletes, for the semantics tests, put straight on a stream."""
from __future__ import annotations

import datetime as dt
import random

from connectors.formats.qldb import decode_record
from connectors.formats.qldb_encode import encode_revision

T0 = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)


def history_with_deletes(seed: int, tables=("Person", "Vehicle"), documents: int = 40, max_versions: int = 5,
                         delete_fraction: float = 0.3) -> list:
    """Encoded records (bytes) of every revision; some documents end in a delete."""
    rng = random.Random(seed)
    records = []
    tx = 0
    for table in tables:
        for d in range(documents):
            doc = f"{table[:3]}{seed}x{d:04d}"
            versions = rng.randint(1, max_versions)
            deleted = rng.random() < delete_fraction
            for v in range(versions + (1 if deleted else 0)):
                tx += 1
                is_delete = deleted and v == versions
                data = None if is_delete else {"n": v, "name": f"{doc}-{v}", "score": rng.random(),
                                               "flag": rng.random() < 0.5, "nested": {"v": v}}
                records.append(encode_revision(table=table, document_id=doc, version=v, data=data,
                                               tx_id=f"tx{seed}-{tx}", tx_time=T0 + dt.timedelta(seconds=tx)))
    return records


def deliver(records: list, seed: int, duplicates: float = 0.2) -> list:
    """At least once, in no order: some records twice, all shuffled."""
    rng = random.Random(seed)
    out = records + [r for r in records if rng.random() < duplicates]
    rng.shuffle(out)
    return out


def put(kinesis, stream: str, records: list, shards: int = 2) -> None:
    from job.cli.tools.simulate.qldb import ensure_stream, put_records

    ensure_stream(kinesis, stream, shards)
    put_records(kinesis, stream, [(decode_record(r).revision.document_id, r) for r in records])


def revisions(records: list) -> list:
    return [decode_record(r).revision for r in records]
