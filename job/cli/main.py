"""`ledgersync` command line (also `python -m job`): one module per command in job/cli/,
each adding its parser and naming its handler (``set_defaults(handler=...)``)."""
from __future__ import annotations

import argparse
import sys

from job.cli import audit, backfill, bench, cluster, record, run, services, show, simulate, verify
from job.cli.args import DEFAULT_PROPERTIES  # noqa: F401 (where tests and tools find it)
from job.config.properties import PropertiesError

COMMANDS = (run, cluster, simulate, services, show, record, audit, bench, backfill, verify)  # in --help's order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgersync",
        description="Keep MySQL in step with QLDB-format change streams and database audit logs on Kinesis "
                    "(a PyFlink job).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except PropertiesError as exc:
        print(f"ledgersync: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from job.local.cluster import ClusterError
        from job.local.runner import JobFailed
        from job.local.services import ServiceError

        if isinstance(exc, (ServiceError, JobFailed, ClusterError)):
            print(f"ledgersync: {exc}", file=sys.stderr)
            return 1
        raise
