"""Command-line parts of audit-log sync: ``ship-audit`` and ``audit-source`` (``simulate audit``
is in job/cli/simulate.py)."""
from __future__ import annotations

import dataclasses
import os
import socket
import sys

from job.cli.args import DEFAULT_PROPERTIES, positive
from job.config.properties import load_properties


def default_log_stream() -> str:
    return f"{socket.gethostname()}.server_audit.log"


def add_parser(commands) -> None:
    ship = commands.add_parser(
        "ship-audit", help="ship a MariaDB server_audit log through CloudWatch Logs (subscription filter) to Kinesis")
    ship.add_argument("--properties", default=DEFAULT_PROPERTIES,
                      help="take stream, region and endpoint from these properties (default: %(default)s)")
    ship.add_argument("--log", default=None, metavar="PATH",
                      help="the server_audit log (default: the audit source's, .local/audit-source/server_audit.log)")
    ship.add_argument("--log-group", default="/aws/rds/instance/ledgersync-audit-source/audit",
                      help="CloudWatch Logs log group (default: %(default)s)")
    ship.add_argument("--log-stream", default=None, help="log stream (default: <hostname>.server_audit.log)")
    ship.add_argument("--stream", help="Kinesis stream (default: source.stream.name)")
    ship.add_argument("--shards", type=positive, default=2, help="shards if the stream is created (default 2)")
    ship.add_argument("--state", default=None, metavar="FILE",
                      help="where the position in the log is kept (default: <log>.shipped-to-<stream>.json)")
    ship.add_argument("--start", choices=("beginning", "end"), default="beginning",
                      help="with no saved position: ship the whole log, or only what is written from now on")
    ship.add_argument("--follow", action="store_true", help="keep tailing the log until Ctrl-C or SIGTERM")
    ship.add_argument("--role-arn", default=None,
                      help="IAM role CloudWatch Logs uses to put records on Kinesis (required on AWS)")

    source = commands.add_parser("audit-source",
                                 help="a local MariaDB with the server_audit plugin (the demo's and tests' source)")
    source.add_argument("action", choices=("up", "down", "status", "workload", "compare"),
                        help="up|down|status: the server (127.0.0.1:13307); workload: inserts, updates and deletes "
                             "from several connections at once; compare: source tables against the replica's")
    source.add_argument("--database", default=None,
                        help="source schema (default: audit.source.database, else audit.replay.database, else shop)")
    source.add_argument("--properties", default=DEFAULT_PROPERTIES, help="for compare (default: %(default)s)")
    source.add_argument("--connections", type=positive, default=4, help="workload: connections (default 4)")
    source.add_argument("--operations", type=positive, default=200, help="workload: operations each (default 200)")
    source.add_argument("--seed", type=int, default=1, help="workload: random seed (default 1)")
    source.add_argument("--reset", action="store_true",
                        help="workload: drop and recreate the tables first (the DROP/CREATE are audited too)")
    ship.set_defaults(handler=_ship_audit)
    source.set_defaults(handler=_audit_source)


def _ship_audit(args) -> int:
    props = load_properties(args.properties)
    from connectors.aws_clients import aws_client

    region, endpoint = props["source.aws.region"], props["source.aws.endpoint"]
    kinesis = aws_client("kinesis", region, endpoint)
    stream = args.stream or props["source.stream.name"]
    from job.cli.local import audit_source
    from job.cli.tools.ship_audit import LOCAL_ROLE_ARN, ship_audit

    log_path = args.log or audit_source.default_paths().audit_log
    role_arn = args.role_arn
    if role_arn is None and endpoint:
        # The stand-in role must be in the caller's account (moto 123456789012, LocalStack
        # 000000000000): LocalStack assumes it and looks for the stream in that account.
        account = aws_client("sts", region, endpoint).get_caller_identity()["Account"]
        role_arn = ":".join(LOCAL_ROLE_ARN.split(":")[:4] + [account] + LOCAL_ROLE_ARN.split(":")[5:])
    if role_arn is None:
        print("ledgersync: ship-audit to AWS needs --role-arn (a role CloudWatch Logs may use to put records "
              "on the stream)", file=sys.stderr)
        return 2
    ship_audit(logs=aws_client("logs", region, endpoint), kinesis=kinesis, log_path=log_path,
               state_path=args.state or f"{log_path}.shipped-to-{stream}.json", log_group=args.log_group,
               log_stream=args.log_stream or default_log_stream(), stream=stream, shards=args.shards,
               role_arn=role_arn, follow=args.follow, start=args.start)
    return 0


def _audit_source(args) -> int:
    from job.cli.local import audit_source
    if args.action == "up":
        audit_source.up()
        return 0
    if args.action == "down":
        audit_source.down()
        return 0
    if args.action == "status":
        return 0 if audit_source.status() else 1
    props = load_properties(args.properties) if os.path.exists(args.properties) or args.action == "compare" else None
    database = args.database or (props and (props["audit.source.database"] or props["audit.replay.database"])) or "shop"
    if args.action == "workload":
        audit_source.create_schema(database, reset=args.reset)
        audit_source.workload(database, connections=args.connections, operations=args.operations, seed=args.seed,
                              progress=lambda line: print(f"audit-source: {line}", flush=True))
        return 0
    from connectors.mysql.client import connect
    from job.config.settings import mysql_settings

    replica_db = props["audit.replay.database"]
    if not replica_db:
        print(f"ledgersync: {args.properties} sets no audit.replay.database to compare with", file=sys.stderr)
        return 2
    replica = connect(dataclasses.replace(mysql_settings(props), database=replica_db))
    try:
        print(f"audit-source: {database} on the source against {replica_db} on the replica")
        same = audit_source.compare_databases(database, replica, replica_db,
                                              out=lambda line: print(f"audit-source: {line}"))
    finally:
        replica.close()
    print("audit-source: " + ("replica equals source" if same else "replica DIFFERS from source"))
    return 0 if same else 1
