"""`run --parallelism/--jobmanager` and `cluster` arguments, the cluster's configuration (no
Flink processes), and how a TaskManager is killed (stand-in processes)."""
from __future__ import annotations

import os

import pytest
import yaml

from job.cli.main import build_parser
from job.cli.local.cluster import ClusterState, LocalCluster
from job.cli.local.driver import JobFailed, parse_jobmanager


def test_jobmanager_address_is_host_and_port():
    assert parse_jobmanager("127.0.0.1:8081") == ("127.0.0.1", 8081)
    assert parse_jobmanager("flink-jm.internal:443") == ("flink-jm.internal", 443)


@pytest.mark.parametrize("text", ["127.0.0.1", ":8081", "host:http", "host:0", "host:70000"])
def test_a_bad_jobmanager_address_names_the_flag(text):
    with pytest.raises(JobFailed, match="--jobmanager"):
        parse_jobmanager(text)


def test_run_takes_parallelism_and_a_jobmanager():
    args = build_parser().parse_args(["run", "--parallelism", "4", "--jobmanager", "127.0.0.1:8081"])
    assert (args.parallelism, args.jobmanager) == (4, "127.0.0.1:8081")
    assert build_parser().parse_args(["run"]).parallelism is None


def test_parallelism_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--parallelism", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_cluster_actions():
    args = build_parser().parse_args(["cluster", "up", "--taskmanagers", "3", "--slots", "1"])
    assert (args.action, args.taskmanagers, args.slots) == ("up", 3, 1)
    assert build_parser().parse_args(["cluster", "add-taskmanager"]).action == "add-taskmanager"


def test_cluster_config_listens_on_loopback_only_and_ships_the_python_runtime(tmp_path):
    cluster = LocalCluster(str(tmp_path))
    cluster._write_conf(ClusterState(rest_port=41001, rpc_port=41002, slots=3))
    with open(os.path.join(cluster.conf_dir, "config.yaml")) as handle:
        conf = yaml.safe_load(handle)
    for key in ("jobmanager.bind-host", "rest.bind-address", "taskmanager.bind-host", "taskmanager.host",
                "jobmanager.rpc.address"):
        assert conf[key] == "127.0.0.1", key
    assert (conf["rest.port"], conf["jobmanager.rpc.port"], conf["taskmanager.numberOfTaskSlots"]) == (41001, 41002, 3)
    assert "--add-opens" in conf["env.java.opts.all"]
    jars = os.listdir(cluster.lib_dir)
    assert any(j.startswith("flink-python") for j in jars) and any(j.startswith("flink-dist") for j in jars)


def test_cluster_options_given_to_up_win_over_the_defaults(tmp_path):
    cluster = LocalCluster(str(tmp_path))
    cluster._write_conf(ClusterState(rest_port=41001, rpc_port=41002, slots=1),
                        {"heartbeat.timeout": 4000, "resourcemanager.standalone.start-up-time": "1 s"})
    with open(os.path.join(cluster.conf_dir, "config.yaml")) as handle:
        conf = yaml.safe_load(handle)
    assert (conf["heartbeat.timeout"], conf["resourcemanager.standalone.start-up-time"]) == (4000, "1 s")
    assert conf["rest.bind-address"] == "127.0.0.1"


def test_no_cluster_state_means_not_running(tmp_path):
    cluster = LocalCluster(str(tmp_path))
    assert cluster.state() is None and cluster.overview() is None
    cluster.down()  # nothing to stop: no error


def test_a_killed_taskmanager_takes_its_workers_with_it(tmp_path):
    import subprocess
    import sys
    import time

    from job.cli.local.cluster import group_members

    # A stand-in TaskManager (its own process group, as _spawn starts them) with a worker
    # child; "pyflink" in their command lines marks them as Flink's.
    script = ("import subprocess, sys, time; "
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', 'pyflink-worker']); "
              "time.sleep(60)")
    leader = subprocess.Popen([sys.executable, "-c", script, "pyflink-taskmanager"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(group_members(leader.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(group_members(leader.pid)) == 2
        LocalCluster(str(tmp_path)).kill_taskmanager(leader.pid)
        deadline = time.monotonic() + 10
        while group_members(leader.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert group_members(leader.pid) == []
    finally:
        leader.kill()
        leader.wait()
