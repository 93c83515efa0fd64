"""The backfill's progress line and its estimate of the time left (no Flink)."""
from __future__ import annotations

from connectors.formats.qldb_export import ION_TEXT, Export
from job.cli.local.backfill import BackfillProgress, summarize


def test_progress_sums_readers_and_writers_and_estimates_from_the_rate_since_work_began():
    export = Export("e", "s3://b/p", ION_TEXT, strands={"s": ["p/x/s.1-100.ion", "p/x/s.101-200.ion"]})
    board = {"export-0": {"kind": "export", "objects": 1, "blocks": 100, "revisions": 250, "system_revisions": 2,
                          "skipped": 0, "dead_letters": 1, "bytes": 1000},
             "export-1": {"kind": "export", "objects": 0, "blocks": 50, "revisions": 120, "system_revisions": 0,
                          "skipped": 0, "dead_letters": 0, "bytes": 0},
             "writer-0": {"kind": "writer", "written": 300, "pending": True}}
    progress = summarize(board, export, elapsed_s=30.0)
    assert (progress.objects, progress.blocks, progress.revisions, progress.rows_written) == (1, 150, 370, 300)
    assert progress.eta_s() is None  # no rate yet
    progress.first_seen = (20.0, 50)  # 100 blocks in the 10 s since: 50 left take 5 s
    assert progress.eta_s() == 5.0
    assert progress.line() == ("objects 1/2, blocks 150/200, revisions read 370 (12/s), rows written 300, "
                               "dead letters 1, system revisions skipped 2, eta 5s")


def test_without_block_ranges_in_the_names_progress_counts_objects():
    progress = BackfillProgress(objects_total=4, blocks_total=None, objects=2, blocks=70, elapsed_s=10.0,
                                first_seen=(5.0, 1))
    assert progress.eta_s() == 10.0 and "blocks 70," in progress.line()


def test_with_verify_the_line_and_the_verdict_say_what_verification_refused():
    export = Export("e", "s3://b/p", ION_TEXT, strands={"s": ["p/x/s.1-100.ion"]})
    board = {"export-0": {"kind": "export", "objects": 1, "blocks": 100, "revisions": 250, "refused": 2,
                          "objects_failed": 0, "dead_letters": 2}}
    progress = summarize(board, export, elapsed_s=10.0, verify=True)
    assert "blocks refused by verification 2" in progress.line() and not progress.verified
    assert progress.verdict().startswith("verification FAILED: 2 block(s) refused and 0 object(s) failed")
    board["export-0"].update(refused=0, dead_letters=0)
    progress = summarize(board, export, elapsed_s=10.0, verify=True)
    assert progress.verified and progress.verdict().startswith("verified: every block passed")
    assert "refused" not in summarize(board, export, elapsed_s=10.0).line()  # without --verify: not mentioned
