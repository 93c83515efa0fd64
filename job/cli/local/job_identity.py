"""Whose checkpoint is this? Restores belong to the job that wrote them.

A checkpoint or savepoint holds a job's positions (per shard id), its per-document state
and its writer's pending rows. Restored into a job for another stream, format or target
database, it would silently skip records (positions of another stream's shards) or write
another job's rows. So every local run writes its identity beside its checkpoints
(``<checkpoint dir>/<flink job id>/ledgersync-job.json``) and into each savepoint it takes;
``--from-latest-checkpoint`` only picks checkpoints of the same identity, and
``--from-savepoint`` refuses one that names another.
"""
from __future__ import annotations

import json
import os
from typing import Optional

IDENTITY_FILE = "ledgersync-job.json"
# What makes two runs the same job: where records come from, how they are read, where
# they go. (Parallelism, batch sizes and timeouts may change between restores.)
IDENTITY_KEYS = ("source.stream.name", "source.aws.region", "source.format", "sink.mysql.host",
                 "sink.mysql.port", "sink.mysql.database", "replication.history", "replication.order")


class ForeignRestore(ValueError):
    pass


def job_identity(props) -> dict:
    return {key: props[key] for key in IDENTITY_KEYS}


def describe(identity: dict) -> str:
    return (f"stream {identity.get('source.stream.name')} ({identity.get('source.format')}, "
            f"{identity.get('source.aws.region')}) -> {identity.get('sink.mysql.host')}:"
            f"{identity.get('sink.mysql.port')}/{identity.get('sink.mysql.database')}"
            + (", history" if identity.get("replication.history") else "")
            + (", order" if identity.get("replication.order") else ""))


def write_identity(directory: str, identity: dict) -> None:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, IDENTITY_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(identity, handle, sort_keys=True)
    os.replace(tmp, path)


def read_identity(path: str) -> Optional[dict]:
    """The identity of a savepoint, a ``chk-N`` directory or a job's checkpoint directory
    (its own file, else its parent's), or None when it has none."""
    for directory in (path, os.path.dirname(os.path.abspath(path))):
        candidate = os.path.join(directory, IDENTITY_FILE)
        if os.path.isfile(candidate):
            try:
                with open(candidate, encoding="utf-8") as handle:
                    return json.load(handle)
            except (OSError, ValueError):
                return None
    return None


def differences(mine: dict, theirs: dict) -> list:
    return [key for key in IDENTITY_KEYS if mine.get(key) != theirs.get(key)]


def check_restore(path: str, identity: dict) -> Optional[str]:
    """Raises ForeignRestore when ``path`` belongs to another job; returns a warning when it
    says nothing of whose it is (written by Flink's own tools, or before ledgersync 0.3)."""
    theirs = read_identity(path)
    if theirs is None:
        return (f"{path} does not say which job wrote it (no {IDENTITY_FILE}): restoring it as this job's; "
                "Flink refuses it if its operators differ")
    changed = differences(identity, theirs)
    if changed:
        raise ForeignRestore(
            f"{path} belongs to another job: {describe(theirs)}; this one is {describe(identity)} "
            f"(differs in {', '.join(changed)}). Restoring it would read from that job's positions and skip "
            "records; start without it, or run that job's properties")
    return None
