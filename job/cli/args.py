"""What every `ledgersync` command shares: the default properties file and the argument
types (argparse reports their message)."""
from __future__ import annotations

import argparse
import os

from job.cli.project import PROJECT_ROOT

DEFAULT_PROPERTIES = os.path.join(PROJECT_ROOT, "flink-conf", "application_properties.json")


def at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError("must be at least 1" if low == 1 else
                                             "must not be negative" if low == 0 else f"must be at least {low}")
        return value
    return parse


positive = at_least(1)
non_negative = at_least(0)


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def add_export_arguments(parser) -> None:
    """--export and --export-id, as `backfill` and `verify` take them."""
    parser.add_argument("--export", required=True, metavar="URI",
                        help="s3://bucket/prefix the export was written under (through source.aws.endpoint if set), "
                             "or a local directory with the same layout")
    parser.add_argument("--export-id", default=None, metavar="ID",
                        help="which export under the prefix (needed only when there are several)")
