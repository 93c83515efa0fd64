"""A status board on local disk: how far each reader and writer slot has got.

Flink's Python functions write one small JSON file per slot (atomically, via rename);
``ledgersync run`` reads them to print progress and to decide, for
``--until-caught-up``, that every shard is read to its tip and nothing is in flight.
Only used where the job and the driver share a disk (the local mini-cluster); on MSF
no status directory is set and nothing is written.
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional


class StatusBoard:
    def __init__(self, directory: Optional[str], min_interval_s: float = 0.5):
        self._directory = directory
        self._min_interval = min_interval_s
        self._last: dict = {}
        if directory:
            os.makedirs(directory, exist_ok=True)

    def publish(self, name: str, status: dict, force: bool = False) -> None:
        """Write ``status`` for ``name`` (e.g. ``reader-2``), at most every min_interval unless forced."""
        if not self._directory:
            return
        now = time.time()
        if not force and now - self._last.get(name, 0.0) < self._min_interval:
            return
        self._last[name] = now
        path = os.path.join(self._directory, f"{name}.json")
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({**status, "updated": now}, handle)
        os.replace(tmp, path)


def read_board(directory: str) -> dict:
    """name -> last published status."""
    board: dict = {}
    if not os.path.isdir(directory):
        return board
    for entry in os.listdir(directory):
        if not entry.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, entry), encoding="utf-8") as handle:
                board[entry[:-5]] = json.load(handle)
        except (OSError, ValueError):
            continue  # being replaced right now; the next read sees it
    return board
