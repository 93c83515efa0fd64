"""`ledgersync backfill`: its arguments and the command."""
from __future__ import annotations

import os
import sys

from job.cli.args import DEFAULT_PROPERTIES, add_export_arguments, positive
from job.config.properties import load_properties


def add_parser(commands) -> None:
    p = commands.add_parser(
        "backfill", help="replicate a QLDB journal export (S3 or a local directory) into MySQL, then end",
        description="Read every data object the export's completed manifests list (ION_TEXT, ION_BINARY or JSON) "
                    "and write its revisions through the stream's path (per-document state, writer, the same "
                    "tables); the Flink job ends when everything is written. Run it again or carry on with "
                    "`ledgersync run` from the stream: revisions already applied change nothing. With --verify "
                    "every block is checked as `ledgersync verify` checks it and only blocks that pass are "
                    "written; exit 1 when any failed.")
    p.add_argument("--properties", default=DEFAULT_PROPERTIES,
                   help="application properties (sink, replication; source.aws.* for S3) (default: %(default)s)")
    add_export_arguments(p)
    p.add_argument("--parallelism", type=positive, default=None, metavar="N",
                   help="Flink parallelism for this run (default: parallelism.default of the Flink config)")
    p.add_argument("--verify", action="store_true",
                   help="recompute every revision hash, Merkle root, blockHash and the chain as `ledgersync verify` "
                        "does and refuse to write a block that fails (a dead letter, stage verify, naming the block "
                        "and the check); exit 1 if any did, 2 for an export that cannot be verified (JSON)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="fail if not done by then")
    p.add_argument("--flink-conf", default=None, help="Flink config.yaml (default: flink-conf/config.yaml)")
    p.set_defaults(handler=run_backfill_command)


def run_backfill_command(args) -> int:
    from connectors.formats.qldb_verify import Unverifiable
    from job.cli.local.backfill import DEFAULT_FLINK_CONF, run_backfill  # PyFlink and the runner: only when it runs
    from job.cli.local.driver import remove_tmp_dirs

    props = load_properties(args.properties)
    try:
        progress = run_backfill(props, args.export, args.export_id, parallelism=args.parallelism,
                                flink_conf=args.flink_conf or DEFAULT_FLINK_CONF, timeout_s=args.timeout,
                                verify=args.verify)
    except Unverifiable as exc:  # before Flink started: nothing to shut down
        print(f"ledgersync: cannot verify: {exc}", file=sys.stderr)
        return 2
    remove_tmp_dirs()
    sys.stdout.flush()
    sys.stderr.flush()
    # as `run`: leave before PyFlink's gRPC servers complain at interpreter shutdown
    os._exit(1 if args.verify and not progress.verified and progress.objects_total else 0)
