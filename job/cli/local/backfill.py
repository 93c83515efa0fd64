"""`ledgersync backfill`, run locally: find the export, run the bounded job
(job/pipeline/backfill.py) on a mini-cluster, show progress until it FINISHES.

A backfill and a later ``ledgersync run`` are separate Flink jobs with separate state,
so "nothing applied twice, no deleted document back" across them rests on MySQL: the
version-guarded upserts and the tombstone table (connectors/mysql/writer.py).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Optional

from connectors.formats.qldb_export import Export, ExportError, find_export, open_store
from job.config.properties import Properties
from job.functions.status_board import read_board
from job.cli.local.driver import JobFailed, LocalJob
from job.cli.local.runner import DEFAULT_FLINK_CONF, DEFAULT_LOCAL_DIR


@dataclass
class BackfillProgress:
    objects_total: int
    blocks_total: Optional[int]
    objects: int = 0
    blocks: int = 0
    revisions: int = 0
    system_revisions: int = 0
    skipped: int = 0
    dead_letters: int = 0
    bytes_read: int = 0
    rows_written: int = 0
    writers_pending: int = 0
    verify: bool = False  # backfill --verify: say what verification refused
    refused: int = 0  # blocks failing a check, not written
    objects_failed: int = 0  # objects missing, unparseable or holding no blocks
    elapsed_s: float = 0.0
    # (elapsed_s, done) when the first work was seen: the rate leaves Flink's start-up out.
    first_seen: Optional[tuple] = None

    def done_and_total(self) -> tuple:
        """Blocks when the object names give them, else objects."""
        return (self.blocks, self.blocks_total) if self.blocks_total else (self.objects, self.objects_total)

    def eta_s(self) -> Optional[float]:
        """Time left at the rate since the first work was seen."""
        done, total = self.done_and_total()
        if not total or self.first_seen is None:
            return None
        since, done_then = self.first_seen
        if done <= done_then or self.elapsed_s <= since:
            return None
        return max(0.0, (self.elapsed_s - since) * (total - done) / (done - done_then))

    def line(self) -> str:
        blocks = f"{self.blocks}/{self.blocks_total}" if self.blocks_total is not None else f"{self.blocks}"
        eta = self.eta_s()
        rate = self.revisions / self.elapsed_s if self.elapsed_s > 0 else 0.0
        return (f"objects {self.objects}/{self.objects_total}, blocks {blocks}, revisions read {self.revisions} "
                f"({rate:.0f}/s), rows written {self.rows_written}, dead letters {self.dead_letters}, "
                f"system revisions skipped {self.system_revisions}"
                + (f", other tables skipped {self.skipped}" if self.skipped else "")
                + (f", blocks refused by verification {self.refused}" if self.verify else "")
                + (f", objects failing verification {self.objects_failed}" if self.objects_failed else "")
                + (f", eta {eta:.0f}s" if eta is not None and self.objects < self.objects_total else ""))


    @property
    def verified(self) -> bool:
        return self.verify and not self.refused and not self.objects_failed

    def verdict(self) -> str:
        """The closing line's word on verification (backfill --verify)."""
        if self.verified:
            return "verified: every block passed every check ledgersync verify makes, and was written"
        return (f"verification FAILED: {self.refused} block(s) refused and {self.objects_failed} object(s) failed; "
                "each is a dead letter (stage verify) naming the block and the check, and `ledgersync verify "
                "--export URI` names the same ones")


def summarize(board: dict, export: Export, elapsed_s: float, verify: bool = False) -> BackfillProgress:
    progress = BackfillProgress(objects_total=len(export.keys), blocks_total=export.blocks_total, elapsed_s=elapsed_s,
                                verify=verify)
    for status in board.values():
        if status.get("kind") == "export":
            progress.objects += int(status.get("objects", 0))
            progress.blocks += int(status.get("blocks", 0))
            progress.revisions += int(status.get("revisions", 0))
            progress.system_revisions += int(status.get("system_revisions", 0))
            progress.skipped += int(status.get("skipped", 0))
            progress.dead_letters += int(status.get("dead_letters", 0))
            progress.bytes_read += int(status.get("bytes", 0))
            progress.refused += int(status.get("refused", 0))
            progress.objects_failed += int(status.get("objects_failed", 0))
        elif status.get("kind") == "writer":
            progress.rows_written += int(status.get("written", 0))
            progress.writers_pending += bool(status.get("pending"))
    return progress


def locate_export(props: Properties, uri: str, export_id: Optional[str] = None) -> Export:
    store = open_store(uri, props["source.aws.region"], props["source.aws.endpoint"])
    return find_export(store, export_id)


def run_backfill(props: Properties, uri: str, export_id: Optional[str] = None, *, parallelism: Optional[int] = None,
                 flink_conf: str = DEFAULT_FLINK_CONF, local_dir: str = DEFAULT_LOCAL_DIR,
                 progress_every_s: float = 5.0, timeout_s: Optional[float] = None, verify: bool = False,
                 out=sys.stdout) -> BackfillProgress:
    """Run the backfill to its end. ``verify``: check every block as ``ledgersync verify``
    does and write only those that pass; an export that cannot be verified (JSON) raises
    ``Unverifiable`` before Flink starts."""
    from job.pipeline.backfill import build_backfill

    def say(text: str) -> None:
        print(f"ledgersync: {text}", file=out, flush=True)

    if props["source.format"] != "qldb":
        raise JobFailed(f"backfill reads QLDB journal exports; source.format is {props['source.format']}")
    try:
        export = locate_export(props, uri, export_id)
    except ExportError as exc:
        raise JobFailed(str(exc)) from None
    if verify:
        from connectors.formats.qldb_verify import check_refusal

        check_refusal(export)
    blocks = export.blocks_total
    say(f"export {export.export_id} of ledger {export.ledger_name or '?'} ({export.output_format}, "
        f"{export.inclusive_start or '?'} to {export.exclusive_end or '?'}) under {export.uri}: "
        f"{len(export.keys)} data objects in {len(export.strands)} strand(s)"
        + (f", {blocks} blocks" if blocks is not None else "")
        + ("; verifying every block before it is written" if verify else ""))
    empty = BackfillProgress(objects_total=0, blocks_total=0)
    if not export.keys:
        say("nothing to backfill: the completed manifests list no data objects")
        return empty

    # Not under .local/checkpoints: `run --from-latest-checkpoint` must never pick a backfill's.
    job = LocalJob(flink_conf=flink_conf, checkpoint_dir=os.path.join(local_dir, "backfill-checkpoints"),
                   local_dir=local_dir, parallelism=parallelism, say=say)
    env = job.environment()
    build_backfill(env, props, export, job.status_dir, verify=verify)
    job_id = job.submit(env, f"ledgersync-backfill-{export.export_id}")
    say(f"job {job_id} running; status in {job.status_dir}; Flink REST/web UI {job.rest_url}")
    first_seen = None

    def progress(elapsed_s: float) -> BackfillProgress:
        nonlocal first_seen
        current = summarize(read_board(job.status_dir), export, elapsed_s, verify)
        if first_seen is None and current.done_and_total()[0] > 0:
            first_seen = (current.elapsed_s, current.done_and_total()[0])
        current.first_seen = first_seen
        return current

    with job:
        watched = job.watch(progress, finish=True, progress_every_s=progress_every_s, timeout_s=timeout_s)
        current = watched.progress
        if watched.why == "finished":
            say(f"backfill done after {current.elapsed_s:.1f}s: {current.line()}")
            if verify:
                say(current.verdict())
            return current
        if watched.why == "timeout":
            raise JobFailed(f"backfill not done after {timeout_s:.0f}s: {current.line()}")
        raise JobFailed(f"{watched.why}: backfill stopped after {watched.elapsed_s:.1f}s: {current.line()} "
                        "(run it again: what is written already changes nothing)")
