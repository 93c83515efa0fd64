"""`ledgersync cluster up|down|status|add-taskmanager`: a local standalone Flink cluster."""
from __future__ import annotations

from job.cli.args import positive


def add_parser(commands) -> None:
    cluster = commands.add_parser(
        "cluster", help="a local standalone Flink cluster (a JobManager and TaskManagers as separate processes, "
                        "from PyFlink's own distribution) under .local/cluster/")
    cluster.add_argument("action", choices=("up", "down", "status", "add-taskmanager"))
    cluster.add_argument("--taskmanagers", type=positive, default=2, help="with up: how many (default 2)")
    cluster.add_argument("--slots", type=positive, default=2, help="with up: task slots each (default 2)")
    cluster.set_defaults(handler=cluster_command)


def cluster_command(args) -> int:
    from job.cli.local.cluster import cluster_command as run

    return run(args)
