"""`ledgersync record decode|encode`: a Kinesis record payload to readable text and back."""
from __future__ import annotations

from connectors.formats.registry import FORMATS
from job.cli.tools.record import DEFAULT_PARTITION_KEY, run_record


def add_parser(commands) -> None:
    record = commands.add_parser("record", help="decode a Kinesis record payload to readable text, or encode one")
    actions = record.add_subparsers(dest="action", required=True, metavar="ACTION")
    decode = actions.add_parser(
        "decode", help="payload (raw, base64, gzip, KPL-aggregated, get-records JSON) to readable text",
        description="Print what the job would make of each Kinesis record (first), then its layers and user "
                    "records as Ion text (JSON for dsql-cdc and dynamodb). A record the format dead-letters "
                    "gets a hint when another format takes it. Exit code 1 if any record is a dead letter. "
                    "Input: raw bytes of one record, base64 (one record per line), or the JSON of "
                    "`aws kinesis get-records` / a Lambda Kinesis event.")
    decode.add_argument("files", nargs="*", metavar="FILE", help="input files (default: standard input)")
    decode.add_argument("--base64", action="store_true",
                        help="input is base64, one record per line (detected by itself when unambiguous)")
    decode.add_argument("--json", action="store_true",
                        help="one JSON line per user record: verdict (revision, change, dead-letter, ...), "
                             "reason, hint, and the values as they land in MySQL")
    decode.add_argument("--format", choices=list(FORMATS),
                        help="the records' source.format (default: that of --properties, else qldb)")
    decode.add_argument("--properties", metavar="FILE",
                        help="job properties: the format and its settings (dsql-cdc: source.dsql.keys)")
    encode = actions.add_parser(
        "encode", help="Ion text to a payload (binary Ion; optionally KPL-aggregated, gzip, base64)",
        description="Turn Ion text (each top-level value one user record, e.g. what `record decode` "
                    "printed) into a Kinesis record payload.")
    encode.add_argument("file", nargs="?", metavar="FILE", help="input file (default: standard input)")
    encode.add_argument("--raw", action="store_true",
                        help="take the input bytes as the payload as they are (not Ion)")
    encode.add_argument("--aggregate", action="store_true",
                        help="pack all user records into KPL aggregated records (as QLDB streams do)")
    encode.add_argument("--gzip", action="store_true", help="gzip each record (as CloudWatch Logs does)")
    encode.add_argument("--partition-key", help="partition key (default: a revision's document id, else "
                                                f"{DEFAULT_PARTITION_KEY!r})")
    encode.add_argument("--base64", action="store_true", help="print one base64 line per Kinesis record")
    encode.add_argument("-o", "--output", metavar="FILE",
                        help="write the raw bytes of the one Kinesis record here")
    record.set_defaults(handler=run_record)
