"""A local standalone Flink cluster: one JobManager and N TaskManagers as separate processes.

The mini-cluster of ``ledgersync run`` is one JVM; a standalone cluster is what a Flink
deployment on machines of one's own looks like (and what MSF runs underneath): the job is
submitted over REST and its tasks run in TaskManager processes that can die on their own.
PyFlink's wheel ships Flink's distribution (``bin/``, ``lib/``, ``opt/``), so nothing is
downloaded: each process is ``bin/jobmanager.sh`` / ``bin/taskmanager.sh start-foreground``
(which exec the JVM, so the pid we spawn is the JVM's), with a configuration and logs of
its own under ``.local/cluster/``, listening on 127.0.0.1 only, and stopped by pid.

``ledgersync cluster up|down|status|add-taskmanager``; ``ledgersync run --jobmanager
127.0.0.1:PORT`` submits to it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Optional

import yaml

from connectors.kinesis.source import LOCAL_ENDPOINT_JAVA_OPTS
from job.cli.local import processes
from job.cli.local.driver import free_port
from job.cli.local.runner import DEFAULT_LOCAL_DIR


class ClusterError(RuntimeError):
    pass


def flink_home() -> str:
    import pyflink

    return os.path.dirname(os.path.abspath(pyflink.__file__))


@dataclass
class ClusterState:
    """What ``cluster up`` started, kept in ``cluster.json`` so that ``down`` finds it."""
    rest_port: int
    rpc_port: int
    slots: int
    jobmanager_pid: int = 0
    taskmanager_pids: list = field(default_factory=list)

    @property
    def jobmanager(self) -> str:
        return f"127.0.0.1:{self.rest_port}"


class LocalCluster:
    def __init__(self, root: Optional[str] = None):
        self.root = os.path.abspath(root or os.path.join(DEFAULT_LOCAL_DIR, "cluster"))
        self.conf_dir = os.path.join(self.root, "conf")
        self.lib_dir = os.path.join(self.root, "lib")
        self.log_dir = os.path.join(self.root, "log")
        # The cluster's temporary files (RPC jar, blob stores: tens of MB a process), removed by `down`,
        # not left in /tmp by every cluster as Flink leaves them.
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.state_path = os.path.join(self.root, "cluster.json")

    # -- state ---------------------------------------------------------------------------
    def state(self) -> Optional[ClusterState]:
        try:
            with open(self.state_path, encoding="utf-8") as handle:
                return ClusterState(**json.load(handle))
        except (OSError, ValueError, TypeError):
            return None

    def _save(self, state: ClusterState) -> None:
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(state.__dict__, handle)
        os.replace(tmp, self.state_path)

    # -- start / stop --------------------------------------------------------------------
    def up(self, taskmanagers: int = 2, slots: int = 2, timeout_s: float = 90.0,
           conf: Optional[dict] = None) -> ClusterState:
        """``conf``: Flink options over the ones below (the tests shorten timeouts with it)."""
        state = self.state()
        if state and processes.alive(state.jobmanager_pid):
            raise ClusterError(f"a cluster is already running (JobManager pid {state.jobmanager_pid}, "
                               f"REST {state.jobmanager}); `ledgersync cluster down` stops it")
        os.makedirs(self.log_dir, exist_ok=True)
        state = ClusterState(rest_port=free_port(), rpc_port=free_port(), slots=slots)
        self._write_conf(state, conf)
        state.jobmanager_pid = self._spawn("jobmanager.sh", "jobmanager")
        self._save(state)
        try:
            self._wait(lambda: self.overview(state) is not None, timeout_s, "the JobManager's REST endpoint",
                       state.jobmanager_pid)
            for _ in range(taskmanagers):
                self.add_taskmanager(state)
            self.wait_for_taskmanagers(taskmanagers, timeout_s, state)
        except Exception:
            self.down()
            raise
        return state

    def add_taskmanager(self, state: Optional[ClusterState] = None) -> int:
        state = state or self._running()
        pid = self._spawn("taskmanager.sh", f"taskmanager-{len(state.taskmanager_pids)}")
        state.taskmanager_pids.append(pid)
        self._save(state)
        return pid

    def kill_taskmanager(self, pid: int) -> None:
        """SIGKILL, as a machine that dies: no deregistration, the JobManager finds out by
        heartbeat. The whole process group goes, the TaskManager's Python workers too (each
        process was started as its own group), as they would with the machine."""
        _kill_group(pid, signal.SIGKILL)
        _reap(pid, 30.0)
        _wait_group_gone(pid, 30.0)

    def down(self) -> None:
        state = self.state()
        if state is None:
            return
        for pid in [*state.taskmanager_pids, state.jobmanager_pid]:
            if processes.alive(pid):
                os.kill(pid, signal.SIGTERM)
        for pid in [*state.taskmanager_pids, state.jobmanager_pid]:
            if not _reap(pid, 30.0):
                os.kill(pid, signal.SIGKILL)
                _reap(pid, 10.0)
            # A TaskManager's Python workers outlive it when it is killed: stop what is left
            # of each group.
            _kill_group(pid, signal.SIGKILL)
            _wait_group_gone(pid, 10.0)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        os.remove(self.state_path)

    def overview(self, state: Optional[ClusterState] = None) -> Optional[dict]:
        state = state or self.state()
        if state is None:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{state.rest_port}/overview", timeout=3) as response:
                return json.load(response)
        except (OSError, ValueError):
            return None

    def wait_for_taskmanagers(self, count: int, timeout_s: float = 90.0,
                              state: Optional[ClusterState] = None) -> None:
        state = state or self._running()
        self._wait(lambda: (self.overview(state) or {}).get("taskmanagers", 0) >= count, timeout_s,
                   f"{count} TaskManagers to register", state.jobmanager_pid)

    def _running(self) -> ClusterState:
        state = self.state()
        if state is None or not processes.alive(state.jobmanager_pid):
            raise ClusterError("no local cluster is running: `ledgersync cluster up` starts one")
        return state

    # -- internals -----------------------------------------------------------------------
    def _write_conf(self, state: ClusterState, overrides: Optional[dict] = None) -> None:
        home = flink_home()
        os.makedirs(self.conf_dir, exist_ok=True)
        os.makedirs(self.tmp_dir, exist_ok=True)
        for name in os.listdir(os.path.join(home, "conf")):
            if name.startswith(("log4j", "logback")):
                shutil.copy(os.path.join(home, "conf", name), self.conf_dir)
        with open(os.path.join(home, "conf", "config.yaml"), encoding="utf-8") as handle:
            java_opts = yaml.safe_load(handle)["env"]["java"]["opts"]["all"]  # the --add-opens Java 17 needs
        conf = {
            # The cluster serves local endpoints (moto, LocalStack), which speak JSON, not CBOR
            # (connectors/kinesis/source.py); real Kinesis takes JSON too.
            "env.java.opts.all": f"{java_opts} {LOCAL_ENDPOINT_JAVA_OPTS}",
            "metrics.fetcher.update-interval": 1000,
            "jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": state.rpc_port,
            "jobmanager.bind-host": "127.0.0.1",
            "rest.address": "127.0.0.1", "rest.port": state.rest_port, "rest.bind-address": "127.0.0.1",
            "taskmanager.host": "127.0.0.1", "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.numberOfTaskSlots": state.slots,
            "jobmanager.memory.process.size": "1024m", "taskmanager.memory.process.size": "2048m",
            # A TaskManager that dies is noticed within seconds, not the default 50.
            "heartbeat.interval": 2000, "heartbeat.timeout": 10000,
            "python.executable": sys.executable,
            "io.tmp.dirs": self.tmp_dir,
            **(overrides or {}),
        }
        with open(os.path.join(self.conf_dir, "config.yaml"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(conf, handle, default_flow_style=False)
        # The TaskManagers run Python operators: Flink's Python runtime (opt/) joins lib/.
        if os.path.isdir(self.lib_dir):
            shutil.rmtree(self.lib_dir)
        os.makedirs(self.lib_dir)
        jars = [os.path.join(home, "lib", n) for n in os.listdir(os.path.join(home, "lib"))]
        jars += [os.path.join(home, "opt", n) for n in os.listdir(os.path.join(home, "opt"))
                 if n.startswith("flink-python")]
        for jar in jars:
            os.symlink(jar, os.path.join(self.lib_dir, os.path.basename(jar)))

    def _spawn(self, script: str, name: str) -> int:
        env = dict(os.environ, FLINK_HOME=flink_home(), FLINK_CONF_DIR=self.conf_dir, FLINK_LIB_DIR=self.lib_dir,
                   FLINK_LOG_DIR=self.log_dir, FLINK_PID_DIR=self.root, FLINK_IDENT_STRING=name)
        log = open(os.path.join(self.log_dir, f"{name}.out"), "ab")
        process = subprocess.Popen(["bash", os.path.join(flink_home(), "bin", script), "start-foreground"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return process.pid

    def _wait(self, check, timeout_s: float, what: str, pid: int) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            if not processes.alive(pid):
                raise ClusterError(f"the JobManager (pid {pid}) exited while waiting for {what}; "
                                   f"logs in {self.log_dir}")
            time.sleep(0.5)
        raise ClusterError(f"timed out after {timeout_s:.0f}s waiting for {what}; logs in {self.log_dir}")


def group_members(pgid: int) -> list:
    """The live processes of process group ``pgid`` that are Flink's (the JVM, PyFlink's
    Python workers), so that a group id reused by something else after a stale
    ``cluster.json`` is never touched."""
    return processes.group_members(pgid, b"pyflink")


def _kill_group(pgid: int, sig: int) -> None:
    for pid in group_members(pgid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_group_gone(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        _kill_group(pgid, signal.SIGKILL)
        time.sleep(0.1)
    return True


def _reap(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` is gone (collecting it if it is our child); True if it is."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        if not processes.alive(pid):
            return True
        time.sleep(0.1)
    return False


def cluster_command(args) -> int:
    cluster = LocalCluster()
    if args.action == "up":
        state = cluster.up(taskmanagers=args.taskmanagers, slots=args.slots)
        print(f"cluster: JobManager pid {state.jobmanager_pid}, TaskManagers {state.taskmanager_pids} "
              f"({args.slots} slots each); web UI http://{state.jobmanager}; logs in {cluster.log_dir}")
        print(f"cluster: submit with: ledgersync run --jobmanager {state.jobmanager} --parallelism "
              f"{args.taskmanagers * args.slots}")
    elif args.action == "add-taskmanager":
        pid = cluster.add_taskmanager()
        print(f"cluster: TaskManager pid {pid} started")
    elif args.action == "down":
        cluster.down()
        print("cluster: stopped")
    else:
        state, overview = cluster.state(), cluster.overview()
        if overview is None:
            print("cluster: not running")
            return 1
        print(f"cluster: REST {state.jobmanager}, {overview.get('taskmanagers')} TaskManagers, "
              f"{overview.get('slots-available')}/{overview.get('slots-total')} slots free, "
              f"{overview.get('jobs-running')} jobs running")
    return 0
