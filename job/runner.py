"""Runs the job on a local Flink mini-cluster and watches it until it is caught up.

"Caught up" (``--until-caught-up``) means: every reader slot reports every shard read
to its tip; then a checkpoint that was triggered after that completes (so every record
read before it has passed every operator and sits in MySQL or in the writer's state);
then every writer slot reports nothing pending. Only then is the job cancelled.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Optional

from job.properties import Properties
from job.run_status import read_board

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FLINK_CONF = os.path.join(PROJECT_ROOT, "flink-conf", "config.yaml")
DEFAULT_LOCAL_DIR = os.path.join(PROJECT_ROOT, ".local")


class JobFailed(RuntimeError):
    pass


def read_flink_conf(path: str) -> dict:
    """Flat ``key: value`` YAML, as Flink's own config.yaml allows."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected flat 'key: value' lines")
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items()}


def checkpoint_numbers(job_checkpoint_dir: str) -> tuple:
    """(highest checkpoint triggered, highest completed) in a job's checkpoint directory."""
    triggered = completed = 0
    if os.path.isdir(job_checkpoint_dir):
        for entry in os.listdir(job_checkpoint_dir):
            match = re.fullmatch(r"chk-(\d+)", entry)
            if not match:
                continue
            number = int(match.group(1))
            triggered = max(triggered, number)
            if os.path.exists(os.path.join(job_checkpoint_dir, entry, "_metadata")):
                completed = max(completed, number)
    return triggered, completed


@dataclass
class Progress:
    readers: int = 0
    shards_total: int = 0
    shards_seen: int = 0
    shards_at_tip: int = 0
    records_read: int = 0
    rows_written: int = 0
    max_behind_ms: Optional[int] = None
    writers_pending: int = 0

    @property
    def all_at_tip(self) -> bool:
        return self.shards_total > 0 and self.shards_seen == self.shards_total == self.shards_at_tip

    def line(self) -> str:
        lag = "?" if self.max_behind_ms is None else f"{self.max_behind_ms} ms"
        return (f"read {self.records_read} records, wrote {self.rows_written} rows, "
                f"shards at tip {self.shards_at_tip}/{self.shards_total}, lag {lag}, "
                f"writer slots pending {self.writers_pending}")


def summarize(board: dict, reader_slots: int) -> Progress:
    progress = Progress()
    shards: dict = {}
    for name, status in board.items():
        if status.get("kind") == "reader":
            progress.readers += 1
            progress.shards_total = max(progress.shards_total, int(status.get("shards_total", 0)))
            shards.update(status.get("shards", {}))
        elif status.get("kind") == "writer":
            progress.rows_written += int(status.get("written", 0))
            progress.writers_pending += bool(status.get("pending"))
    if progress.readers < reader_slots:
        progress.shards_total = max(progress.shards_total, len(shards) + 1)  # not all slots reported yet
    progress.shards_seen = len(shards)
    progress.shards_at_tip = sum(1 for s in shards.values() if s.get("at_tip"))
    progress.records_read = sum(int(s.get("read", 0)) for s in shards.values())
    behind = [s["behind_ms"] for s in shards.values() if s.get("behind_ms") is not None]
    progress.max_behind_ms = max(behind) if behind else None
    return progress


def flink_configuration(conf_path: str, checkpoint_dir: str, extra: Optional[dict] = None):
    from pyflink.common import Configuration

    conf = Configuration()
    for key, value in read_flink_conf(conf_path).items():
        conf.set_string(key, value)
    conf.set_string("python.executable", sys.executable)
    conf.set_string("execution.checkpointing.dir", "file://" + os.path.abspath(checkpoint_dir))
    for key, value in (extra or {}).items():
        conf.set_string(key, value)
    return conf


def run_local(props: Properties, *, until_caught_up: bool,
              flink_conf: str = DEFAULT_FLINK_CONF, local_dir: str = DEFAULT_LOCAL_DIR,
              progress_every_s: float = 5.0, timeout_s: Optional[float] = None,
              from_savepoint: Optional[str] = None, out=sys.stdout) -> Progress:
    from pyflink.datastream import StreamExecutionEnvironment

    from job.pipeline import build_pipeline

    run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    status_dir = os.path.join(local_dir, "runs", run_id, "status")
    checkpoint_dir = os.path.join(local_dir, "checkpoints")
    extra = {"execution.state-recovery.path": from_savepoint} if from_savepoint else {}
    env = StreamExecutionEnvironment.get_execution_environment(
        flink_configuration(flink_conf, checkpoint_dir, extra))
    build_pipeline(env, props, status_dir)
    started = time.monotonic()
    client = env.execute_async("ledgersync")
    job_id = str(client.get_job_id())
    job_checkpoints = os.path.join(checkpoint_dir, job_id)
    print(f"ledgersync: job {job_id} running; checkpoints in {job_checkpoints}", file=out, flush=True)
    reader_slots = props["source.reader.slots"]
    tip_checkpoint: Optional[int] = None
    tip_records = -1
    last_print = 0.0
    try:
        while True:
            _raise_if_ended(client)
            progress = summarize(read_board(status_dir), reader_slots)
            now = time.monotonic()
            if now - last_print >= progress_every_s:
                print(f"ledgersync: [{now - started:6.1f}s] {progress.line()}", file=out, flush=True)
                last_print = now
            if until_caught_up:
                triggered, completed = checkpoint_numbers(job_checkpoints)
                if not progress.all_at_tip or progress.records_read != tip_records:
                    # (Re)start the wait: the tip must hold across a whole checkpoint.
                    tip_checkpoint = triggered if progress.all_at_tip else None
                    tip_records = progress.records_read if progress.all_at_tip else -1
                elif completed > tip_checkpoint and progress.writers_pending == 0:
                    print(f"ledgersync: caught up after {now - started:.1f}s: {progress.line()}",
                          file=out, flush=True)
                    return progress
            if timeout_s is not None and now - started > timeout_s:
                raise JobFailed(f"not caught up after {timeout_s:.0f}s: {progress.line()}")
            time.sleep(0.25)
    finally:
        _cancel_quietly(client)


def _raise_if_ended(client) -> None:
    try:
        status = client.get_job_status().result()
        name = getattr(status, "name", str(status))
    except Exception:
        # A local per-job mini-cluster shuts down as soon as its job has ended.
        name = "ENDED"
    if name in ("FAILED", "CANCELED", "FINISHED", "SUSPENDED", "ENDED"):
        cause = ""
        try:
            client.get_job_execution_result().result()
        except Exception as exc:  # the job's own failure, reported below
            cause = f": {_root_cause(exc)}"
        raise JobFailed(f"Flink job ended ({name}){cause}\n"
                        f"(Python tracebacks are printed above; Flink logs: {pyflink_log_dir()})")


def _root_cause(exc: BaseException) -> str:
    text = str(exc)
    # Py4J wraps Java exceptions; the last "Caused by" line is the useful one.
    causes = [line.strip() for line in text.splitlines() if line.strip().startswith("Caused by:")]
    return causes[-1] if causes else text.splitlines()[0] if text else type(exc).__name__


def _cancel_quietly(client) -> None:
    try:
        status = client.get_job_status().result()
        if getattr(status, "name", "") not in ("FAILED", "CANCELED", "FINISHED"):
            client.cancel().result()
    except Exception:  # already gone: nothing to cancel
        pass


def pyflink_log_dir() -> str:
    import pyflink

    return os.path.join(os.path.dirname(pyflink.__file__), "log")
