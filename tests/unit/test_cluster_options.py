"""`run --parallelism/--jobmanager` and `cluster` arguments, and the cluster's configuration (no processes)."""
from __future__ import annotations

import os

import pytest
import yaml

from job.cli.main import build_parser
from job.local.cluster import ClusterState, LocalCluster
from job.local.runner import JobFailed, parse_jobmanager


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
