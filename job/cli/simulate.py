"""`ledgersync simulate KIND`: put a simulated workload on a stream (or write an export).
The simulators themselves are job/cli/tools/simulate/."""
from __future__ import annotations

from job.cli.args import DEFAULT_PROPERTIES, fraction, non_negative, positive
from job.cli.errors import using
from connectors.formats.qldb_export import FORMATS, ION_TEXT
from job.config.properties import load_properties
from job.cli.tools.simulate.export import ExportSpec


def add_parser(commands) -> None:
    """The `simulate` command, a sub-command per kind of workload."""
    simulate = commands.add_parser("simulate", help="put a simulated workload on a stream")
    kinds = simulate.add_subparsers(dest="kind", required=True, metavar="KIND")
    _add_qldb(kinds)
    _add_export(kinds)
    _add_audit(kinds)
    _add_changes(kinds, "dsql-cdc", "Aurora DSQL CDC records (JSON row changes, some split into parts)")
    _add_changes(kinds, "dynamodb", "DynamoDB Kinesis stream records (typed item images, TTL deletes)")


def _add_qldb(kinds) -> None:
    qldb = kinds.add_parser("qldb", help="QLDB-format revision records")
    qldb.add_argument("--properties", default=DEFAULT_PROPERTIES,
                      help="take stream, region and endpoint from these properties (default: %(default)s)")
    qldb.add_argument("--stream", help="stream name (default: source.stream.name)")
    qldb.add_argument("--shards", type=positive, default=2, help="shards if the stream is created (default 2)")
    qldb.add_argument("--tables", type=positive, default=3, help="QLDB tables (default 3, at most 6)")
    qldb.add_argument("--documents", type=positive, default=100, help="documents per table (default 100)")
    qldb.add_argument("--revisions", type=positive, default=4, help="revisions per document (default 4)")
    qldb.add_argument("--duplicates", type=fraction, default=0.0,
                      help="fraction of revisions put twice (default 0)")
    qldb.add_argument("--shuffle", action="store_true", help="put records in random order")
    qldb.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    qldb.add_argument("--aggregate", type=positive, nargs="?", const=20, default=0, metavar="N",
                      help="KPL-aggregate the records, N user records per Kinesis record (N default 20)")
    qldb.add_argument("--deletes", type=fraction, default=0.0, help="fraction of documents deleted at the end (default 0)")
    qldb.add_argument("--redactions", type=fraction, default=0.0,
                      help="fraction of documents with one older revision redacted (default 0)")
    qldb.add_argument("--block-summaries", action="store_true", help="a BLOCK_SUMMARY record per transaction")
    qldb.add_argument("--control", action="store_true", help="CONTROL records CREATED first and COMPLETED last")
    qldb.add_argument("--bad", type=non_negative, default=0, metavar="N",
                      help="mix in N bad records (not Ion, truncated, bad MD5, ...) that must become dead letters")
    qldb.set_defaults(handler=_simulate_qldb)


def _add_export(kinds) -> None:
    p = kinds.add_parser("qldb-export", help="write a simulated QLDB journal export (S3 or a directory), "
                                             "optionally with the ledger's later revisions on a stream")
    p.add_argument("--to", required=True, metavar="URI", help="s3://bucket/prefix (through source.aws.endpoint) "
                                                              "or a local directory")
    p.add_argument("--format", choices=FORMATS, default=ION_TEXT, help="output format (default %(default)s)")
    p.add_argument("--properties", default=DEFAULT_PROPERTIES,
                   help="AWS region/endpoint and the stream from these properties (default: %(default)s)")
    p.add_argument("--tables", type=positive, default=3, help="QLDB tables (default 3, at most 6)")
    p.add_argument("--documents", type=positive, default=40, help="documents inserted per table (default 40)")
    p.add_argument("--transactions", type=non_negative, default=0,
                   help="user transactions (blocks) in the export (default: 2 per document)")
    p.add_argument("--deletes", type=fraction, default=0.15, help="chance a change is a delete (default 0.15)")
    p.add_argument("--redactions", type=non_negative, default=5, help="older revisions redacted (default 5)")
    p.add_argument("--blocks-per-object", type=positive, default=40, help="blocks per data object (default 40)")
    p.add_argument("--export-id", default=ExportSpec.export_id, help="(default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--corrupt-object", type=non_negative, default=None, metavar="N",
                   help="cut data object N (from 0) in the middle of a block, to see dead letters")
    p.add_argument("--tamper", type=non_negative, default=None, metavar="SEQ",
                   help="after hashing, change a character of a revision's data in the first block from "
                        "sequenceNo SEQ on that has one (ledgersync verify must reject the export)")
    p.add_argument("--drop-block", type=non_negative, default=None, metavar="SEQ",
                   help="leave the block with sequenceNo SEQ out of its data object (verify must reject it)")
    p.add_argument("--stream", default=None, help="put the later revisions on this stream "
                                                  "(default: source.stream.name, when --later or --overlap-blocks)")
    p.add_argument("--overlap-blocks", type=non_negative, default=0,
                   help="put the revisions of the export's last N blocks on the stream too")
    p.add_argument("--later", type=non_negative, default=0, help="transactions after the export, on the stream")
    p.add_argument("--late-deleted", type=non_negative, default=0, metavar="N",
                   help="also put N old revisions of documents the export deleted on the stream (late arrivals)")
    p.set_defaults(handler=_simulate_export)


def _add_audit(kinds) -> None:
    audit = kinds.add_parser("audit", help="Aurora-style audit lines, as a CloudWatch Logs subscription puts them")
    audit.add_argument("--properties", default=DEFAULT_PROPERTIES,
                       help="take stream, region and endpoint from these properties (default: %(default)s)")
    audit.add_argument("--stream", help="stream name (default: source.stream.name)")
    audit.add_argument("--shards", type=positive, default=2, help="shards if the stream is created (default 2)")
    audit.add_argument("--database", default="sim", help="schema the statements run in (default sim)")
    audit.add_argument("--servers", type=positive, default=1, help="Aurora instances (default 1)")
    audit.add_argument("--connections", type=positive, default=4, help="connections per server (default 4)")
    audit.add_argument("--statements", type=positive, default=1000,
                       help="data-changing statements per server (default 1000)")
    audit.add_argument("--events-per-record", type=positive, default=50,
                       help="log events per Kinesis record (default 50)")
    audit.add_argument("--duplicates", type=fraction, default=0.0, help="fraction of records put twice (default 0)")
    audit.add_argument("--bad", type=non_negative, default=0, metavar="N",
                       help="mix in N unparseable lines that must become dead letters")
    audit.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    audit.set_defaults(handler=_simulate_audit)


def _add_changes(kinds, name: str, text: str) -> None:
    p = kinds.add_parser(name, help=text)
    p.add_argument("--properties", default=DEFAULT_PROPERTIES,
                   help="take stream, region and endpoint from these properties (default: %(default)s)")
    p.add_argument("--stream", help="stream name (default: source.stream.name)")
    p.add_argument("--shards", type=positive, default=2, help="shards if the stream is created (default 2)")
    p.add_argument("--tables", type=positive, default=3, help="tables (default 3, at most 3)")
    p.add_argument("--rows", type=positive, default=40, help="rows per table (default 40)")
    p.add_argument("--changes", type=positive, default=4, help="changes per row, at least (default 4)")
    p.add_argument("--deletes", type=fraction, default=0.25, help="fraction of rows deleted once (default 0.25)")
    p.add_argument("--duplicates", type=fraction, default=0.1, help="fraction of records put twice (default 0.1)")
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="put records in commit order")
    p.add_argument("--bad", type=non_negative, default=0, metavar="N", help="mix in N bad records (dead letters)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    if name == "dsql-cdc":
        p.add_argument("--split-bytes", type=non_negative, default=400,
                       help="split records larger than this into parts, 0: never (default 400)")
        p.add_argument("--incomplete", type=non_negative, default=0, metavar="N",
                       help="N split records whose last part never comes (dead letters after the timeout)")
    p.set_defaults(handler=_simulate_changes, format=name)


def _simulate_changes(args) -> int:
    from connectors.aws_clients import aws_client
    from job.cli.tools.simulate import changes

    props = load_properties(args.properties)
    spec = changes.ChangesSpec(tables=min(args.tables, 3), rows=args.rows, changes=args.changes,
                               deletes=args.deletes, duplicates=args.duplicates, shuffle=args.shuffle,
                               seed=args.seed, bad=args.bad, split_bytes=getattr(args, "split_bytes", 0),
                               incomplete=getattr(args, "incomplete", 0))
    if args.format == "dsql-cdc":
        generated = changes.generate_dsql(spec)
        delivery = changes.dsql_delivery(spec, generated)
    else:
        items = changes.generate_dynamodb(spec)
        delivery = changes.dynamodb_delivery(spec, items)
        generated = [change for change, *_ in items]
    client = aws_client("kinesis", props["source.aws.region"], props["source.aws.endpoint"])
    stream = args.stream or props["source.stream.name"]
    with using(_stream_target(props, stream)):
        changes.simulate(client, stream, delivery.records, shards=args.shards,
                         what=changes.describe(generated, delivery))
    return 0


def _stream_target(props, stream: str) -> str:
    """What an AWS error names: the stream, its region and endpoint."""
    endpoint = props["source.aws.endpoint"] or "AWS"
    return f"Kinesis stream {stream!r} ({props['source.aws.region']}, {endpoint})"


def _simulate_qldb(args) -> int:
    from connectors.aws_clients import aws_client
    from job.cli.tools.simulate.qldb import WorkloadSpec, simulate_qldb

    props = load_properties(args.properties)
    client = aws_client("kinesis", props["source.aws.region"], props["source.aws.endpoint"])
    spec = WorkloadSpec(tables=args.tables, documents=args.documents, revisions=args.revisions,
                        duplicates=args.duplicates, shuffle=args.shuffle, seed=args.seed,
                        aggregate=args.aggregate, deletes=args.deletes, redactions=args.redactions,
                        block_summaries=args.block_summaries, control=args.control, bad_records=args.bad)
    stream = args.stream or props["source.stream.name"]
    with using(_stream_target(props, stream)):
        simulate_qldb(client, stream, spec, shards=args.shards)
    return 0


def _simulate_export(args) -> int:
    from connectors.aws_clients import aws_client
    from job.cli.tools.simulate.export import generate_ledger, put_stream, write_export

    props = load_properties(args.properties)
    spec = ExportSpec(tables=args.tables, documents=args.documents, transactions=args.transactions,
                      deletes=args.deletes, redactions=args.redactions, blocks_per_object=args.blocks_per_object,
                      seed=args.seed, output_format=args.format, export_id=args.export_id,
                      overlap_blocks=args.overlap_blocks, later=args.later)
    ledger = generate_ledger(spec)
    region, endpoint = props["source.aws.region"], props["source.aws.endpoint"]
    with using(f"export {args.to} ({region}, {endpoint or 'AWS'})"):
        write_export(ledger, args.to, region=region, endpoint=endpoint, corrupt_object=args.corrupt_object,
                     tamper=args.tamper, drop_block=args.drop_block)
    if spec.overlap_blocks or spec.later or args.late_deleted:
        stream = args.stream or props["source.stream.name"]
        with using(_stream_target(props, stream)):
            put_stream(ledger, aws_client("kinesis", region, endpoint), stream, late_deleted=args.late_deleted)
    return 0


def _simulate_audit(args) -> int:
    from connectors.aws_clients import aws_client
    from job.cli.tools.simulate.audit import AuditSpec, simulate_audit

    props = load_properties(args.properties)
    spec = AuditSpec(database=args.database, servers=args.servers, connections=args.connections,
                     statements=args.statements, events_per_record=args.events_per_record,
                     duplicates=args.duplicates, bad_lines=args.bad, seed=args.seed)
    kinesis = aws_client("kinesis", props["source.aws.region"], props["source.aws.endpoint"])
    stream = args.stream or props["source.stream.name"]
    with using(_stream_target(props, stream)):
        simulate_audit(kinesis, stream, spec, shards=args.shards)
    return 0
