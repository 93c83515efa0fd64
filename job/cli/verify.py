"""`ledgersync verify`: check a QLDB journal export's hashes and hash chain, and with
--against-mysql compare MySQL's current view with the export's final state.

Exit 0: every check passed (and MySQL holds what the export ends with); 1: a check failed
(the first failure and the others are listed) or MySQL differs; 2: the export cannot be
verified at all (JSON, unfinished, not there), with the reason.
"""
from __future__ import annotations

import base64
import json
import sys
import time
from typing import Optional

from job.cli.args import DEFAULT_PROPERTIES, add_export_arguments
from job.config.properties import load_properties

PROGRESS_EVERY_S = 5.0
FAILURES_SHOWN = 20


def add_parser(commands) -> None:
    p = commands.add_parser(
        "verify", help="check a QLDB journal export's hashes and hash chain (and MySQL against it)",
        description="Recompute every revision hash, each block's Merkle roots and blockHash, and the chain between "
                    "blocks of a QLDB journal export (ION_TEXT or ION_BINARY; a JSON export cannot be verified). "
                    "Exit 0 when all hold, 1 naming the first failing block (all failures are counted), 2 when "
                    "the export cannot be verified.")
    add_export_arguments(p)
    p.add_argument("--properties", default=DEFAULT_PROPERTIES,
                   help="application properties: source.aws.* for S3, sink for --against-mysql "
                        "(default: %(default)s)")
    p.add_argument("--against-mysql", action="store_true",
                   help="also compare each document's final state in the export (version, deleted, data) with "
                        "the current view in the sink's database; prints a JSON report")
    p.add_argument("--report", default=None, metavar="FILE", help="write the whole result as JSON to FILE")
    p.set_defaults(handler=run_verify_command)


class Progress:
    """Objects and blocks done of total, and MB/s, on stderr every few seconds."""

    def __init__(self, out=None, every_s: float = PROGRESS_EVERY_S, clock=time.monotonic):
        self._out = out or sys.stderr
        self._every, self._clock = every_s, clock
        self._start = clock()
        self._next = self._start + every_s

    def __call__(self, summary) -> None:
        now = self._clock()
        if now >= self._next:
            self._next = now + self._every
            print(f"ledgersync: [{now - self._start:6.1f}s] verify: {self.line(summary, now)}", file=self._out,
                  flush=True)

    def line(self, summary, now: Optional[float] = None) -> str:
        elapsed = max((now if now is not None else self._clock()) - self._start, 1e-9)
        blocks_total = summary.blocks_total if summary.blocks_total is not None else "?"
        return (f"objects {summary.objects}/{summary.objects_total}, blocks {summary.blocks}/{blocks_total}, "
                f"{summary.bytes_read / 1e6:.1f} MB read ({summary.bytes_read / 1e6 / elapsed:.1f} MB/s), "
                f"failures {summary.failure_count}")

    def done(self, summary) -> None:
        now = self._clock()
        print(f"ledgersync: verify read the export in {now - self._start:.1f}s: {self.line(summary, now)}",
              file=self._out, flush=True)


def summary_lines(export, summary) -> list:
    final = summary.final_block_hash
    head = (f"export {export.export_id} ({export.output_format}) at {export.uri}: "
            + ("verified, every check holds" if summary.ok else f"FAILED: {summary.failure_count} failure"
               + ("s" if summary.failure_count != 1 else "")))
    lines = [head,
             f"  objects {summary.objects}/{summary.objects_total}, blocks {summary.blocks}"
             + (f"/{summary.blocks_total}" if summary.blocks_total is not None else "")
             + f", revisions {summary.revisions} ({summary.redactions} redacted, {summary.deletes} deletes), "
               f"system revisions {summary.system_revisions}",
             f"  first block {summary.first_block or '-'}, last block {summary.last_block or '-'}",
             f"  final block hash {final.hex() if final else '-'}"
             + (f" ({base64.b64encode(final).decode()})" if final else "")]
    if summary.failures:
        first = summary.failures[0]
        lines.append(f"  first failure: {first.describe()}")
        for failure in summary.failures[1:FAILURES_SHOWN]:
            lines.append(f"  also: {failure.describe()}")
        if summary.failure_count > FAILURES_SHOWN:
            lines.append(f"  ... {summary.failure_count - FAILURES_SHOWN} more (all in --report FILE)")
    return lines


def run_verify_command(args) -> int:
    from connectors.formats.qldb_export import ExportError, block_revisions, find_export, open_store
    from connectors.formats.qldb_reconcile import StateCollector
    from connectors.formats.qldb_verify import Unverifiable, check_refusal, verify_export

    props = load_properties(args.properties)
    try:
        store = open_store(args.export, props["source.aws.region"], props["source.aws.endpoint"])
        export = find_export(store, args.export_id)
        check_refusal(export)
    except (ExportError, Unverifiable) as exc:
        print(f"ledgersync: cannot verify: {exc}", file=sys.stderr)
        return 2
    collector = StateCollector() if args.against_mysql else None

    def collect(key, block, where) -> None:
        for item in block_revisions(export.export_id, key, block, where, export.output_format):
            if hasattr(item, "document_id"):
                collector.add(item)
            else:
                collector.undecodable += 1

    progress = Progress()
    summary = verify_export(store, export, visit_block=collect if collector else None, progress=progress)
    progress.done(summary)
    for line in summary_lines(export, summary):
        print(f"ledgersync: {line}" if not line.startswith("  ") else line)
    result = {"verify": summary.as_dict()}
    mysql_ok = True
    if collector is not None:
        result["mysql"] = _against_mysql(props, collector)
        mysql_ok = result["mysql"]["ok"]
        print(json.dumps(result["mysql"], indent=2))
    if args.report:
        with open(args.report, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    sys.stdout.flush()
    return 0 if summary.ok and mysql_ok else 1


def _against_mysql(props, collector) -> dict:
    from connectors.formats.qldb_reconcile import verify_against_mysql
    from connectors.mysql.current_view import read_current_rows
    from job.config.settings import mysql_settings

    settings = mysql_settings(props)
    report = verify_against_mysql(collector.states, lambda tables: read_current_rows(settings, tables))
    report["database"] = settings.describe()
    report["undecodableRevisions"] = collector.undecodable
    report["redactionsSkipped"] = collector.redactions_skipped
    return report
