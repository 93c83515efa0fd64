"""Finding the checkpoint to restart from, progress lines, and the reader's properties."""
from __future__ import annotations

import os
import time

import pytest

from job.config.properties import PropertiesError, parse_groups
from job.local.runner import checkpoint_numbers, latest_checkpoint, summarize


def make_checkpoint(root, job: str, number: int, complete: bool = True, mtime: float = None) -> str:
    path = os.path.join(root, job, f"chk-{number}")
    os.makedirs(path)
    if complete:
        metadata = os.path.join(path, "_metadata")
        with open(metadata, "wb") as handle:
            handle.write(b"flink")
        if mtime is not None:
            os.utime(metadata, (mtime, mtime))
    return path


def test_latest_checkpoint_is_the_newest_complete_one_of_any_job(tmp_path):
    now = time.time()
    assert latest_checkpoint(str(tmp_path / "none")) is None
    make_checkpoint(tmp_path, "job-a", 7, mtime=now - 30)
    newest = make_checkpoint(tmp_path, "job-b", 9, mtime=now - 10)  # a restored job counts on from 8
    make_checkpoint(tmp_path, "job-b", 10, complete=False)  # killed while it was being written
    os.makedirs(tmp_path / "job-b" / "shared")
    empty = make_checkpoint(tmp_path, "job-b", 11, complete=False)
    open(os.path.join(empty, "_metadata"), "wb").close()  # an empty _metadata is no checkpoint either
    assert latest_checkpoint(str(tmp_path)) == newest
    assert checkpoint_numbers(str(tmp_path / "job-b")) == (11, 9)


def test_progress_comes_from_the_reader_and_writer_boards():
    board = {
        "reader": {"kind": "reader", "shards_total": 3, "throttled": 4, "failed": 1, "shards": {
            "a": {"at_tip": True, "finished": True, "read": 10, "behind_ms": 0},
            "b": {"at_tip": True, "finished": False, "read": 5, "behind_ms": 0},
            "c": {"at_tip": False, "finished": False, "read": 7, "behind_ms": 1500},
        }},
        "writer-0": {"kind": "writer", "written": 12, "pending": True},
        "writer-1": {"kind": "writer", "written": 3, "pending": False},
    }
    progress = summarize(board)
    assert (progress.records_read, progress.rows_written, progress.shards_at_tip, progress.shards_finished) == \
        (22, 15, 2, 1)
    assert progress.max_behind_ms == 1500 and progress.writers_pending == 1 and not progress.all_at_tip
    assert "read 22 records, wrote 15 rows, shards at tip 2/3 (1 closed), lag 1500 ms, throttled 4, errors 1" \
        in progress.line()
    board["reader"]["shards"]["c"]["at_tip"] = True
    assert summarize(board).all_at_tip
    assert not summarize({}).all_at_tip  # the reader has not reported yet


def props(**source) -> list:
    return [{"PropertyGroupId": "source", "PropertyMap": {"stream.name": "s", **source}},
            {"PropertyGroupId": "sink", "PropertyMap": {"mysql.host": "h", "mysql.database": "d",
                                                        "mysql.user": "u", "mysql.password": "p"}}]


def test_reader_properties_have_defaults_and_kinesis_limits():
    parsed = parse_groups(props())
    assert parsed["source.poll.interval.ms"] == 200 and parsed["source.idle.poll.interval.ms"] == 1000
    assert parsed["source.shard.discovery.interval.ms"] == 10_000 and parsed["source.reader.slots"] == 4
    assert parse_groups(props(**{"shard.discovery.interval.ms": "1000"}))["source.shard.discovery.interval.ms"] == 1000
    with pytest.raises(PropertiesError, match=r"source.poll.interval.ms.*5 GetRecords calls/s per shard"):
        parse_groups(props(**{"poll.interval.ms": "100"}))
    with pytest.raises(PropertiesError, match=r"source.get.records.limit"):
        parse_groups(props(**{"get.records.limit": "10001"}))
    with pytest.raises(PropertiesError, match=r"source.reader.slots"):
        parse_groups(props(**{"reader.slots": "0"}))
