"""Runs the job on a local Flink mini-cluster (or a --jobmanager cluster), prints its
progress, and stops it; the job's lifecycle is job/cli/local/driver.py's LocalJob.

"Caught up" (``--until-caught-up``) means: the Kinesis connector's metrics say every
listed shard is read to its tip (its last GetRecords answer held no record and said
``millisBehindLatest`` 0, with EFO the lag alone: see job/cli/local/source_status.py; closed shards read to their
end), and the count of records read stays put; then a checkpoint that was triggered
after that completes (so every record read before it has passed every operator and sits
in MySQL or in the writer's state); then every writer slot reports nothing pending and no
split record waits for its missing parts (it is joined, or its timeout made it a dead letter).
Not covered yet: rows restored into the writer's state from a checkpoint that missed their
flush timer (see job/functions/writer.py) are not on the board, and wait for the next row
of their slot.

Stopping: a caught-up run, Ctrl-C or SIGTERM cancels the job (its checkpoints are
kept: ``--from-latest-checkpoint`` resumes from the newest of the same job, see
job/cli/local/job_identity.py), or, with ``--stop-with-savepoint DIR``, stops it with a
savepoint in DIR (``--from-savepoint`` resumes from it). The closing line says which:
caught up, stopped or failed, and names this job's newest checkpoint.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from job.rules.audit_order import describe_skipped
from job.config.properties import Properties
from job.functions import names
from job.functions.status_board import StatusBoard, read_board
from job.cli.local.source_status import SourceStatus, SourceWatcher
from job.cli.local.connector_jar import JarError, ensure_connector_jar
from job.cli.local.driver import JobFailed, LocalJob
from job.cli.local.job_identity import (ForeignRestore, check_restore, describe as describe_identity, differences,
                                    job_identity, read_identity, write_identity)
from connectors.aws_clients import aws_client
from connectors.kinesis.source import LOCAL_ENDPOINT_ENVIRONMENT, POLLING, is_local_endpoint

from job.cli.project import PROJECT_ROOT
DEFAULT_FLINK_CONF = os.path.join(PROJECT_ROOT, "flink-conf", "config.yaml")
DEFAULT_LOCAL_DIR = os.path.join(PROJECT_ROOT, ".local")
DEFAULT_CHECKPOINT_DIR = os.path.join(DEFAULT_LOCAL_DIR, "checkpoints")
# Flink's REST metric store refreshes every second (metrics.fetcher.update-interval, set
# below): "at the tip, and the count of records read unchanged" must hold at least this long,
# so the decision never rests on a reading from before the checkpoint it waits for.
CAUGHT_UP_SETTLE_S = 2.5


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
            if _complete(os.path.join(job_checkpoint_dir, entry)):
                completed = max(completed, number)
    return triggered, completed


def _complete(checkpoint: str) -> bool:
    """Flink writes ``_metadata`` last: a checkpoint without it (say, killed mid-way) is unusable."""
    try:
        return os.path.getsize(os.path.join(checkpoint, "_metadata")) > 0
    except OSError:
        return False


def latest_checkpoint(checkpoint_dir: str, identity: Optional[dict] = None) -> Optional[str]:
    """The newest complete ``<job-id>/chk-N`` under ``checkpoint_dir``; with ``identity``, of
    the jobs that wrote that identity beside their checkpoints only (job/cli/local/job_identity.py)."""
    best = None
    if not os.path.isdir(checkpoint_dir):
        return None
    for job in os.listdir(checkpoint_dir):
        job_dir = os.path.join(checkpoint_dir, job)
        if not os.path.isdir(job_dir):
            continue
        if identity is not None:
            theirs = read_identity(job_dir)
            if theirs is None or differences(identity, theirs):
                continue
        for key, path in _complete_checkpoints(job_dir):
            if best is None or key > best[0]:
                best = (key, path)
    return best[1] if best else None


def _complete_checkpoints(job_dir: str) -> list:
    """((time written, number), path) of every complete ``chk-N`` of one job."""
    found = []
    for entry in os.listdir(job_dir):
        match = re.fullmatch(r"chk-(\d+)", entry)
        path = os.path.join(job_dir, entry)
        if match and _complete(path):
            found.append(((os.path.getmtime(os.path.join(path, "_metadata")), int(match.group(1))), path))
    return found


def newest_checkpoint_of_job(job_dir: str) -> Optional[str]:
    found = _complete_checkpoints(job_dir) if os.path.isdir(job_dir) else []
    return max(found)[1] if found else None


@dataclass
class Progress:
    source: SourceStatus = field(default_factory=SourceStatus)
    rows_written: int = 0
    current_rows: int = 0
    history_rows: int = 0
    writers_pending: int = 0
    checkpoint: int = 0
    # Audit replay: database -> write statements not replayed (audit.source.database names another).
    skipped: dict = field(default_factory=dict)
    source_database: Optional[str] = None
    # What a writer or the source is retrying (text, since: wall-clock seconds), if anything.
    troubles: list = field(default_factory=list)
    notices: list = field(default_factory=list)  # the writers' schema notes (connectors/mysql/writer.py)
    # Split records held incomplete (dsql-cdc), and the soonest of their timeouts (epoch ms).
    split_held: int = 0
    split_deadline_ms: Optional[int] = None

    @property
    def records_read(self) -> int:
        return self.source.records_read

    @property
    def all_at_tip(self) -> bool:
        return self.source.all_at_tip

    def line(self) -> str:
        source = self.source
        if not source.metrics_seen or not source.shards:
            shards = "waiting for shards"
        else:
            lag = source.max_lag_ms
            closed = len(source.shards) - len(source.open_shards)
            shards = (f"shards at tip {source.shards_at_tip}/{len(source.shards)}"
                      + (f" ({closed} closed)" if closed else "")
                      + (f", lag {lag} ms" if lag is not None else ""))
        written = f"wrote {self.rows_written} rows"
        if self.history_rows:
            written += f" ({self.current_rows} current, {self.history_rows} history)"
        now = time.time()
        if self.split_held:
            due = "" if self.split_deadline_ms is None else \
                f", the first times out in {max(0, self.split_deadline_ms / 1000 - now):.0f} s"
            shards += f", holding {self.split_held} incomplete split records{due}"
        troubles = "".join(f"; {text} for {max(0, now - since):.0f} s" for text, since in self.troubles)
        return (f"read {source.records_read} records, {written}, {shards}, "
                f"writer slots pending {self.writers_pending}, checkpoint {self.checkpoint}"
                + (f"; {describe_skipped(self.skipped, self.source_database)}" if self.skipped else "")
                + troubles)


def summarize(board: dict, source: Optional[SourceStatus] = None) -> Progress:
    """Progress of this run: the source's from its metrics, the writers' from the status
    board (counts start at zero in every run)."""
    progress = Progress(source=source or SourceStatus())
    for status in board.values():
        if status.get("kind") == "reassembly":
            progress.split_held += int(status.get("held", 0))
            deadline = status.get("next_deadline_ms")
            if deadline is not None:
                progress.split_deadline_ms = min(deadline, progress.split_deadline_ms or deadline)
        if status.get("kind") == "notices":
            progress.notices += [text for text in status.get("notices", []) if text not in progress.notices]
        if status.get("kind") == "writer":
            progress.rows_written += int(status.get("written", 0))
            progress.current_rows += int(status.get("current", 0))
            progress.history_rows += int(status.get("history", 0))
            progress.writers_pending += bool(status.get("pending"))
            if status.get("trouble") and status.get("pending"):
                entry = (status["trouble"], float(status.get("trouble_since") or 0.0))
                if entry[0] not in [t for t, _ in progress.troubles]:
                    progress.troubles.append(entry)
            for database, n in (status.get("skipped") or {}).items():
                progress.skipped[database] = progress.skipped.get(database, 0) + int(n)
                progress.source_database = status.get("source_database")
    return progress


class CaughtUp:
    """The ``--until-caught-up`` test, asked once a poll: every shard at its tip and the count
    of records read unchanged since a checkpoint was triggered, that checkpoint (or a later
    one) complete, no writer slot pending, no split record held, and the tip held for
    CAUGHT_UP_SETTLE_S."""

    def __init__(self):
        self._checkpoint: Optional[int] = None  # the highest triggered when the tip was reached
        self._records = -1
        self._since = 0.0

    def check(self, progress: Progress, triggered: int, now: float) -> bool:
        if not progress.all_at_tip or progress.records_read != self._records:
            # (Re)start the wait: the tip must hold across a whole checkpoint.
            self._checkpoint = triggered if progress.all_at_tip else None
            self._records = progress.records_read if progress.all_at_tip else -1
            self._since = now
            return False
        return (progress.checkpoint > self._checkpoint and progress.writers_pending == 0
                and progress.split_held == 0 and now - self._since >= CAUGHT_UP_SETTLE_S)


def run_local(props: Properties, *, until_caught_up: bool,
              flink_conf: str = DEFAULT_FLINK_CONF, local_dir: str = DEFAULT_LOCAL_DIR,
              checkpoint_dir: Optional[str] = None, progress_every_s: float = 5.0,
              timeout_s: Optional[float] = None, from_savepoint: Optional[str] = None,
              from_latest_checkpoint: bool = False, stop_with_savepoint: Optional[str] = None,
              parallelism: Optional[int] = None, jobmanager: Optional[str] = None,
              out=sys.stdout) -> Progress:
    from job.pipeline.assembly import build_pipeline

    def say(text: str) -> None:
        print(f"ledgersync: {text}", file=out, flush=True)

    checkpoint_dir = os.path.abspath(checkpoint_dir or os.path.join(local_dir, "checkpoints"))
    if from_savepoint and from_latest_checkpoint:
        raise JobFailed("use either --from-savepoint or --from-latest-checkpoint, not both")
    identity = job_identity(props)
    if from_latest_checkpoint:
        from_savepoint = latest_checkpoint(checkpoint_dir, identity)
        if from_savepoint is None:
            say(f"no complete checkpoint of this job ({describe_identity(identity)}) under {checkpoint_dir}: "
                "starting from the initial position")
    if not from_savepoint and props["source.initial.position"] == "TRIM_HORIZON":
        say("no checkpoint restored: reading every record still in the stream from its start (TRIM_HORIZON), "
            "those an earlier run replicated too; rows already in MySQL stay as they are")
    if from_savepoint:
        if not os.path.exists(from_savepoint):
            raise JobFailed(f"savepoint or checkpoint not found: {from_savepoint}")
        try:
            warning = check_restore(from_savepoint, identity)
        except ForeignRestore as exc:
            raise JobFailed(str(exc)) from None
        if warning:
            say(warning)
        say(f"restoring from {from_savepoint}")
    job = LocalJob(flink_conf=flink_conf, checkpoint_dir=checkpoint_dir, local_dir=local_dir, jobmanager=jobmanager,
                   parallelism=parallelism, say=say)
    status_dir = job.status_dir
    settings = {}
    if from_savepoint:
        settings["execution.state-recovery.path"] = from_savepoint
    # The connector and our schema class (connectors/jvm), shipped with the job.
    try:
        settings["pipeline.jars"] = "file://" + ensure_connector_jar(say)
    except JarError as exc:
        raise JobFailed(str(exc)) from None
    # The REST metric store (shard lag, records read) refreshes every second, not every 10.
    settings["metrics.fetcher.update-interval"] = "1000"
    if is_local_endpoint(props["source.aws.endpoint"]):
        # Must be in the environment before PyFlink starts its JVM (the mini-cluster runs in it).
        os.environ.update(LOCAL_ENDPOINT_ENVIRONMENT)
    env = job.environment(settings)
    build_pipeline(env, props, status_dir)
    job_id = job.submit(env, "ledgersync")
    job_checkpoints = os.path.join(checkpoint_dir, job_id)
    write_identity(job_checkpoints, identity)
    say(f"job {job_id} running; checkpoints in {job_checkpoints}; status in {status_dir}; "
        f"Flink REST/web UI {job.rest_url}")
    watcher = SourceWatcher(aws_client("kinesis", props["source.aws.region"], props["source.aws.endpoint"], attempts=2),
                            props["source.stream.name"], job.rest_url,
                            polling=props["source.reader.type"] == POLLING)
    # The source's progress on the status board too, for tools that watch a run from
    # outside (the benchmark waits for "every shard at its tip" there).
    source_board = StatusBoard(status_dir)
    shown_notices: set = set()
    triggered = 0

    def progress(elapsed_s: float) -> Progress:
        nonlocal triggered
        # In this order: the checkpoints after the source's metrics (a checkpoint triggered
        # later than the metrics says tip is behind every record they count), the writers'
        # board after the checkpoints (a writer publishes a slot as pending before the
        # barrier of a checkpoint passes it, so a checkpoint seen complete has its rows on
        # the board); the poll's REST calls take long enough under load for either to matter.
        source = watcher.poll(job_id)
        triggered, completed = checkpoint_numbers(job_checkpoints)
        current = summarize(read_board(status_dir), source)
        current.checkpoint = completed
        source_board.publish("reader", source_entry(watcher.status))
        if watcher.trouble:
            current.troubles.append(watcher.trouble)
        for text in current.notices:
            if text not in shown_notices:
                shown_notices.add(text)
                say(text)
        return current

    caught_up = CaughtUp()
    stopped_with_savepoint = False
    outcome = "stopped"
    try:
        with job:
            watched = job.watch(progress, progress_every_s=progress_every_s, timeout_s=timeout_s,
                                done=(lambda current, now: caught_up.check(current, triggered, now))
                                if until_caught_up else None)
            current = watched.progress
            if watched.why == "timeout":
                raise JobFailed(f"not caught up after {timeout_s:.0f}s: {current.line()}")
            if watched.why == "done":
                say(f"caught up after {watched.elapsed_s:.1f}s: {current.line()}")
            else:
                say(f"{watched.why}: stopping after {watched.elapsed_s:.1f}s: {current.line()}")
            say(f"source: {describe_shards(watcher.status)}")
            if stop_with_savepoint:
                path = job.stop_with_savepoint(stop_with_savepoint)
                stopped_with_savepoint = True
                write_identity(path, identity)
                say(f"stopped with savepoint {path}; resume with: ledgersync run --from-savepoint {path}")
            outcome = "caught up" if not job.stop_requested else f"stopped ({job.stop_requested})"
            return current
    except JobFailed as exc:
        outcome = f"failed: {str(exc).splitlines()[0]}"
        raise
    except BaseException as exc:
        outcome = f"failed: {type(exc).__name__}: {exc}"
        raise
    finally:
        if not stopped_with_savepoint:  # the job is cancelled by now (leaving `with job`)
            latest = newest_checkpoint_of_job(job_checkpoints)
            resume = (f"; its newest checkpoint is {latest} (resume with --from-latest-checkpoint"
                      + ("" if checkpoint_dir == DEFAULT_CHECKPOINT_DIR else f" --checkpoint-dir {checkpoint_dir}")
                      + ")") if latest else "; it took no checkpoint"
            say(f"job {job_id} {outcome}{resume}")


def source_entry(status: SourceStatus) -> dict:
    """The source as a status-board entry (kind "reader": per shard at_tip and behind_ms)."""
    return {"kind": "reader", "records_read": status.records_read,
            "shards": {s.shard_id: {"at_tip": status.at_tip(s), "behind_ms": status.lag_ms.get(s.shard_id),
                                    "closed": s.closed} for s in status.shards}}


def describe_shards(status: SourceStatus) -> str:
    """One line of the connector's per-shard lag (ms behind the tip; "done": read to its end)."""
    parts = []
    for shard in status.shards:
        lag = status.lag_ms.get(shard.shard_id)
        parts.append(f"{shard.shard_id} " + ("done" if status.finished(shard) else
                                             "not read yet" if lag is None or lag < 0 else f"{lag} ms behind"))
    subtasks = f" by {status.subtasks} source subtask{'s' if status.subtasks != 1 else ''}" if status.subtasks else ""
    return f"{status.records_read} records read{subtasks}; " + ("; ".join(parts) or "no shards listed")
