"""`ledgersync` command line (also `python -m job.cli`): one module per command in job/cli/,
each adding its parser and naming its handler (``set_defaults(handler=...)``)."""
from __future__ import annotations

import argparse
import sys

from job.cli import audit, backfill, bench, cluster, record, run, services, show, simulate, verify
from job.cli.args import DEFAULT_PROPERTIES  # noqa: F401 (where tests and tools find it)
from job.cli.errors import report_error
from job.cli.local.jvm import apply_local_jvm_defaults
from job.config.properties import PropertiesError

COMMANDS = (run, cluster, simulate, services, show, record, audit, bench, backfill, verify)  # in --help's order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgersync",
        description="Keep MySQL in step with QLDB-format change streams and database audit logs on Kinesis "
                    "(a PyFlink job).")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    _debug_everywhere(parser)
    return parser


def _debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--debug`` after the command too (``ledgersync show --debug``); SUPPRESS keeps a
    sub-command from resetting the global flag to False."""
    for action in parser._actions:  # argparse keeps its sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                if "--debug" not in sub._option_string_actions:
                    sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                     help="print the full traceback of an error")
                _debug_everywhere(sub)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # Before any command starts PyFlink's JVM (job/cli/local/jvm.py); the backfill's heap is its own.
    apply_local_jvm_defaults(command=str(getattr(args, "command", None) or ""))
    try:
        return args.handler(args)
    except PropertiesError as exc:
        print(f"ledgersync: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from job.cli.local.cluster import ClusterError
        from job.cli.local.driver import JobFailed
        from job.cli.local.services import ServiceError

        if isinstance(exc, (ServiceError, JobFailed, ClusterError)):
            print(f"ledgersync: {exc}", file=sys.stderr)
            return 1
        # Anything else: one or two lines, the traceback in a log file (job/cli/errors.py).
        return report_error(exc, command=_command_name(args), debug=getattr(args, "debug", False))


def _command_name(args) -> str:
    """``simulate dynamodb``, ``record decode``, ``show``: the words that chose the handler."""
    words = [args.command]
    for name in ("action", "kind"):
        value = getattr(args, name, None)
        if isinstance(value, str) and value not in words:
            words.append(value)
    return " ".join(words)
