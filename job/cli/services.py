"""`ledgersync services up|down|status`: the local MariaDB and moto server; and
`ledgersync properties`, `ledgersync package`: the project's own files."""
from __future__ import annotations


def add_parser(commands) -> None:
    services = commands.add_parser("services", help="local MariaDB and moto server under .local/")
    services.add_argument("action", choices=("up", "down", "status"))
    services.set_defaults(handler=services_command)

    properties = commands.add_parser("properties", help="list every property (group.key), its default and what it means")
    properties.set_defaults(handler=properties_command)

    package = commands.add_parser(
        "package", help="build the zip for Amazon Managed Service for Apache Flink (dependencies for Python 3.11)")
    package.add_argument("--output", default=None, metavar="ZIP", help="where to write it (default: dist/ledgersync-msf.zip)")
    package.add_argument("--update-lock", action="store_true",
                         help="resolve the dependencies afresh and write job/cli/tools/msf-requirements.lock "
                              "(without it, the zip bundles exactly the versions the lock names)")
    package.add_argument("--add", action="append", default=[], metavar="FILE[:PATH]",
                         help="put FILE in the zip at PATH (default certs/<name>), e.g. the RDS CA bundle that "
                              "sink.mysql.ssl.ca then names as certs/global-bundle.pem; repeatable")
    package.set_defaults(handler=package_command)


def services_command(args) -> int:
    from job.cli.local import services

    if args.action == "up":
        services.up()
    elif args.action == "down":
        services.down()
    else:
        return 0 if services.status() else 1
    return 0


def properties_command(args) -> int:
    from job.config.properties import describe_properties

    print(describe_properties())
    return 0


def package_command(args) -> int:
    from job.cli.tools.package import main as package_main

    return package_main(args.output, update_lock=args.update_lock, add=args.add)
