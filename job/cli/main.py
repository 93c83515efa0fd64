"""`ledgersync` command line (also `python -m job`)."""
from __future__ import annotations

import argparse
import os
import sys

from job.project import PROJECT_ROOT
from job.cli.args import fraction as _fraction, non_negative as _non_negative, positive as _positive
from job.config.properties import PropertiesError, load_properties

DEFAULT_PROPERTIES = os.path.join(PROJECT_ROOT,
                                  "flink-conf", "application_properties.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgersync",
        description="Keep MySQL in step with QLDB-format change streams and database audit logs on Kinesis "
                    "(a PyFlink job).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the job on a local Flink mini-cluster (or, with --jobmanager, "
                                          "on a running cluster)")
    run.add_argument("--properties", default=DEFAULT_PROPERTIES,
                     help="application properties JSON in the MSF format (default: %(default)s)")
    run.add_argument("--until-caught-up", action="store_true",
                     help="end once every shard is read to its tip and everything is written")
    run.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                     help="with --until-caught-up: fail if not caught up by then")
    run.add_argument("--from-savepoint", metavar="PATH", help="restore from this savepoint or checkpoint")
    run.add_argument("--from-latest-checkpoint", action="store_true",
                     help="restore from the newest complete checkpoint under --checkpoint-dir (any earlier run)")
    run.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                     help="where checkpoints go, one directory per job id (default: .local/checkpoints)")
    run.add_argument("--stop-with-savepoint", default=None, metavar="DIR",
                     help="when the run ends (caught up, Ctrl-C or SIGTERM), stop the job with a savepoint in DIR "
                          "instead of cancelling it")
    run.add_argument("--flink-conf", default=None, help="Flink config.yaml (default: flink-conf/config.yaml)")
    run.add_argument("--parallelism", type=_positive, default=None, metavar="N",
                     help="the job's parallelism (default: parallelism.default in the Flink config, 1)")
    run.add_argument("--jobmanager", default=None, metavar="HOST:PORT",
                     help="submit to this running Flink cluster's REST endpoint (`ledgersync cluster up` starts "
                          "one) instead of a mini-cluster; it retries a lost TaskManager from the newest "
                          "checkpoint (fixed delay, 10 attempts)")

    cluster = commands.add_parser(
        "cluster", help="a local standalone Flink cluster (a JobManager and TaskManagers as separate processes, "
                        "from PyFlink's own distribution) under .local/cluster/")
    cluster.add_argument("action", choices=("up", "down", "status", "add-taskmanager"))
    cluster.add_argument("--taskmanagers", type=_positive, default=2, help="with up: how many (default 2)")
    cluster.add_argument("--slots", type=_positive, default=2, help="with up: task slots each (default 2)")

    simulate = commands.add_parser("simulate", help="put a simulated workload on a stream")
    kinds = simulate.add_subparsers(dest="kind", required=True, metavar="KIND")
    qldb = kinds.add_parser("qldb", help="QLDB-format revision records")
    qldb.add_argument("--properties", default=DEFAULT_PROPERTIES,
                      help="take stream, region and endpoint from these properties (default: %(default)s)")
    qldb.add_argument("--stream", help="stream name (default: source.stream.name)")
    qldb.add_argument("--shards", type=_positive, default=2, help="shards if the stream is created (default 2)")
    qldb.add_argument("--tables", type=_positive, default=3, help="QLDB tables (default 3, at most 6)")
    qldb.add_argument("--documents", type=_positive, default=100, help="documents per table (default 100)")
    qldb.add_argument("--revisions", type=_positive, default=4, help="revisions per document (default 4)")
    qldb.add_argument("--duplicates", type=_fraction, default=0.0,
                      help="fraction of revisions put twice (default 0)")
    qldb.add_argument("--shuffle", action="store_true", help="put records in random order")
    qldb.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    qldb.add_argument("--aggregate", type=_positive, nargs="?", const=20, default=0, metavar="N",
                      help="KPL-aggregate the records, N user records per Kinesis record (N default 20)")
    qldb.add_argument("--deletes", type=_fraction, default=0.0, help="fraction of documents deleted at the end (default 0)")
    qldb.add_argument("--redactions", type=_fraction, default=0.0,
                      help="fraction of documents with one older revision redacted (default 0)")
    qldb.add_argument("--block-summaries", action="store_true", help="a BLOCK_SUMMARY record per transaction")
    qldb.add_argument("--control", action="store_true", help="CONTROL records CREATED first and COMPLETED last")
    qldb.add_argument("--bad", type=_non_negative, default=0, metavar="N",
                      help="mix in N bad records (not Ion, truncated, bad MD5, ...) that must become dead letters")

    services = commands.add_parser("services", help="local MariaDB and moto server under .local/")
    services.add_argument("action", choices=("up", "down", "status"))

    commands.add_parser("properties", help="list every property (group.key), its default and what it means")

    show = commands.add_parser("show", help="row counts and a few rows of the replicated tables")
    show.add_argument("--properties", default=DEFAULT_PROPERTIES, help="(default: %(default)s)")
    show.add_argument("--rows", type=int, default=3, help="sample rows per table (default 3)")

    from job.tools.record import add_record_parser
    add_record_parser(commands)

    from job.cli.audit import add_audit_parsers  # simulate audit, ship-audit, audit-source
    add_audit_parsers(commands, kinds, DEFAULT_PROPERTIES)

    from job.tools.bench.main import add_bench_parser
    add_bench_parser(commands)

    from job.cli.backfill import add_backfill_parser  # backfill from a QLDB journal export
    from job.tools.simulate.export import add_simulate_export_parser
    add_backfill_parser(commands, DEFAULT_PROPERTIES)
    add_simulate_export_parser(kinds, DEFAULT_PROPERTIES)

    package = commands.add_parser(
        "package", help="build the zip for Amazon Managed Service for Apache Flink (dependencies for Python 3.12)")
    package.add_argument("--output", default=None, metavar="ZIP", help="where to write it (default: dist/ledgersync-msf.zip)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "package":
            from job.tools.package import main as package_main

            return package_main(args.output)
        if args.command == "services":
            from job.local import services as local_services
            if args.action == "up":
                local_services.up()
            elif args.action == "down":
                local_services.down()
            else:
                return 0 if local_services.status() else 1
            return 0
        if args.command == "properties":
            from job.config.properties import describe_properties

            print(describe_properties())
            return 0
        if args.command == "cluster":
            from job.local.cluster import cluster_command

            return cluster_command(args)
        if args.command == "bench":
            from job.tools.bench.main import main as bench_main

            return bench_main(args)
        if args.command == "record":
            from job.tools.record import run_record

            return run_record(args)
        from job.cli.audit import is_audit_command, run_audit_command

        if is_audit_command(args):
            return run_audit_command(args)
        props = load_properties(args.properties)
        if args.command == "simulate" and args.kind == "qldb-export":
            from job.tools.simulate.export import run_simulate_export

            return run_simulate_export(args, props)
        if args.command == "simulate":
            return _simulate(args, props)
        if args.command == "show":
            from job.config.settings import mysql_settings
            from job.cli.show import show_tables

            show_tables(mysql_settings(props), sample=args.rows)
            return 0
        if args.command == "run":
            return _run(args, props)
        if args.command == "backfill":
            from job.cli.backfill import run_backfill_command

            return run_backfill_command(args, props)
    except PropertiesError as exc:
        print(f"ledgersync: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from job.local.cluster import ClusterError
        from job.local.services import ServiceError
        from job.local.runner import JobFailed

        if isinstance(exc, (ServiceError, JobFailed, ClusterError)):
            print(f"ledgersync: {exc}", file=sys.stderr)
            return 1
        raise
    return 2


def _simulate(args, props) -> int:
    from connectors.aws_clients import aws_client
    from job.tools.simulate.qldb import WorkloadSpec, simulate_qldb

    client = aws_client("kinesis", props["source.aws.region"], props["source.aws.endpoint"])
    spec = WorkloadSpec(tables=args.tables, documents=args.documents, revisions=args.revisions,
                        duplicates=args.duplicates, shuffle=args.shuffle, seed=args.seed,
                        aggregate=args.aggregate, deletes=args.deletes, redactions=args.redactions,
                        block_summaries=args.block_summaries, control=args.control, bad_records=args.bad)
    simulate_qldb(client, args.stream or props["source.stream.name"], spec, shards=args.shards)
    return 0


def _run(args, props) -> int:
    from job.local.runner import DEFAULT_FLINK_CONF, run_local

    run_local(props, until_caught_up=args.until_caught_up,
              flink_conf=args.flink_conf or DEFAULT_FLINK_CONF, timeout_s=args.timeout,
              from_savepoint=args.from_savepoint, from_latest_checkpoint=args.from_latest_checkpoint,
              checkpoint_dir=args.checkpoint_dir, stop_with_savepoint=args.stop_with_savepoint,
              parallelism=args.parallelism, jobmanager=args.jobmanager)
    sys.stdout.flush()
    sys.stderr.flush()
    # PyFlink's Beam gRPC servers complain noisily at interpreter shutdown once the job
    # is cancelled; everything is flushed and cancelled by now, so leave at once.
    os._exit(0)
