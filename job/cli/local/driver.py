"""One Flink job submitted from this process, watched until it ends or is stopped: the
lifecycle `ledgersync run` (job/cli/local/runner.py) and `ledgersync backfill`
(job/cli/local/backfill.py) share.

``LocalJob`` picks the target (a mini-cluster in this process's JVM on a free REST port, or
a running cluster's REST endpoint, ``--jobmanager``), builds the Flink configuration,
submits the job, polls its state and the caller's progress (a callback), prints a progress
line, honours Ctrl-C and SIGTERM (``StopRequests``), stops the job with a savepoint or
cancels it.

Only a job state of FAILED, CANCELED or FINISHED counts as the job having ended. A status
call that fails is the cluster not answering, reported as such (``read_state``); a local
mini-cluster shuts down as soon as its job has ended, so there the job's result (kept in
this process) says whether it ended before a failed status call is taken for an error.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from job.cli.local import processes
from job.cli.local.jvm import apply_local_jvm_defaults, explain_failure

ENDED_STATES = ("FAILED", "CANCELED", "FINISHED")
UNANSWERED = "UNANSWERED"  # not a Flink state: the status call failed
# A cluster that has not answered for this long is given up on (the job may be running
# still: its REST endpoint is named). A JobManager busy restarting a job answers well within it.
UNANSWERED_GIVE_UP_S = 60.0
POLL_EVERY_S = 0.25

# `run --jobmanager`: a lost TaskManager is retried from the newest checkpoint. Once a
# standalone cluster has been up longer than `resourcemanager.standalone.start-up-time`
# (5 min by default), a restart that finds too few slots fails at once ("Could not acquire
# the minimum required resources") and counts as one more attempt, so the attempts must
# outlast the time a replacement TaskManager takes to register: backoff 1 s doubling to
# 30 s, 30 attempts, about 13 minutes in all, before the job is given up.
CLUSTER_RESTART_STRATEGY = {"restart-strategy.type": "exponential-delay",
                            "restart-strategy.exponential-delay.initial-backoff": "1 s",
                            "restart-strategy.exponential-delay.max-backoff": "30 s",
                            "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
                            "restart-strategy.exponential-delay.jitter-factor": "0.1",
                            "restart-strategy.exponential-delay.attempts-before-reset-backoff": "30"}


class JobFailed(RuntimeError):
    pass


def parse_jobmanager(text: str) -> tuple:
    """``HOST:PORT`` of a cluster's REST endpoint (as ``flink run -m`` takes it)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise JobFailed(f"--jobmanager {text!r}: expected HOST:PORT of the cluster's REST endpoint, "
                        "e.g. 127.0.0.1:8081")
    return host, int(port)


def read_flink_conf(path: str) -> dict:
    """Flat ``key: value`` YAML, as Flink's own config.yaml allows."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected flat 'key: value' lines")
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items()}


_TMP_DIRS: list = []  # this process's runs' temporary directories (remove_tmp_dirs)


def remove_tmp_dirs() -> None:
    """Remove this process's runs' temporary directories: once its jobs have ended, before it
    exits (`run` and `backfill` leave with os._exit, which skips atexit)."""
    while _TMP_DIRS:
        shutil.rmtree(_TMP_DIRS.pop(), ignore_errors=True)


atexit.register(remove_tmp_dirs)


def sweep_run_tmp(runs_dir: str) -> None:
    """Remove the Flink temporary files of earlier local runs whose process is gone (a killed
    run cannot remove its own); a run's directory is named ``<time>-<pid>``."""
    try:
        names = os.listdir(runs_dir)
    except FileNotFoundError:
        return
    for name in names:
        tmp = os.path.join(runs_dir, name, "tmp")
        pid = name.rsplit("-", 1)[-1]
        if pid.isdigit() and os.path.isdir(tmp) and not processes.alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def flink_configuration(conf_path: str, checkpoint_dir: str, extra: Optional[dict] = None):
    from pyflink.common import Configuration

    apply_local_jvm_defaults()  # before Configuration(), which starts PyFlink's JVM (job/cli/local/jvm.py)
    conf = Configuration()
    for key, value in read_flink_conf(conf_path).items():
        conf.set_string(key, value)
    conf.set_string("python.executable", sys.executable)
    conf.set_string("execution.checkpointing.dir", "file://" + os.path.abspath(checkpoint_dir))
    for key, value in (extra or {}).items():
        conf.set_string(key, value)
    return conf


class StopRequests:
    """SIGTERM and Ctrl-C ask the run to stop cleanly; a second Ctrl-C gives up waiting."""

    def __init__(self):
        self.requested: Optional[str] = None
        self._previous: dict = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name


@dataclass(frozen=True)
class JobState:
    """One look at the job: its Flink state (RUNNING, RESTARTING, ..., or an ended one), or
    ``UNANSWERED`` when the cluster did not say; ``cause``: why an ended job failed, or why
    the status call failed; ``jvm_gone``: PyFlink's own JVM (Py4J) no longer answers."""

    name: str
    cause: str = ""
    jvm_gone: bool = False

    @property
    def ended(self) -> bool:
        return self.name in ENDED_STATES

    @property
    def unanswered(self) -> bool:
        return self.name == UNANSWERED

    @property
    def finished(self) -> bool:
        """Ended as a bounded job should: FINISHED, its result no failure."""
        return self.name == "FINISHED" and not self.cause


def read_state(client, local: bool) -> JobState:
    """The state of the job ``client`` (a PyFlink JobClient) submitted. ``local``: on a
    mini-cluster in this process, which shuts down once its job has ended, after which its
    status calls fail; the job's result, kept by the client, says so first."""
    try:
        if local:
            result = client.get_job_execution_result()
            if result.done():
                return _ended(result, None, local)
        try:
            status = client.get_job_status().result()
        except Exception:
            if local:  # ended (and shut down) between the two calls?
                result = client.get_job_execution_result()
                if result.done():
                    return _ended(result, None, local)
            raise
        name = getattr(status, "name", str(status))
        return _ended(client.get_job_execution_result(), name, local) if name in ENDED_STATES else JobState(name)
    except Exception as exc:
        return JobState(UNANSWERED, cause=root_cause(exc), jvm_gone=_is_py4j_network_error(exc))


def _ended(result, name: Optional[str], local: bool) -> JobState:
    """An ended job's state and, if it failed, its root cause (from its result); on the
    local mini-cluster, whose JVM ``JVM_ARGS`` sizes, an OutOfMemoryError names it."""
    try:
        result.result()
        return JobState(name or "FINISHED")
    except Exception as exc:  # the job's own failure, reported by the caller
        if name is None:
            name = "CANCELED" if "JobCancellationException" in str(exc) else "FAILED"
        cause = root_cause(exc)
        return JobState(name, cause=explain_failure(cause) if local else cause)


def _is_py4j_network_error(exc: BaseException) -> bool:
    return any(cls.__name__ == "Py4JNetworkError" for cls in type(exc).__mro__)


def root_cause(exc: BaseException) -> str:
    text = str(exc)
    # Py4J wraps Java exceptions; the last "Caused by" line is the useful one.
    causes = [line.strip() for line in text.splitlines() if line.strip().startswith("Caused by:")]
    return causes[-1] if causes else text.splitlines()[0] if text else type(exc).__name__


def pyflink_log_dir() -> str:
    import pyflink

    return os.path.join(os.path.dirname(pyflink.__file__), "log")


@dataclass
class Watched:
    """Why ``LocalJob.watch`` returned: ``"done"`` (the caller's test held), ``"finished"``
    (the job FINISHED), ``"timeout"``, or the stop signal's name (``"SIGTERM"``, ``"SIGINT"``);
    with the last progress and the seconds since submission."""

    why: str
    progress: Any
    elapsed_s: float


class LocalJob:
    """One job from this process: ``environment()``, build the pipeline on it, ``submit``;
    inside ``with job:`` (Ctrl-C and SIGTERM become stop requests) ``watch`` it, then
    ``stop_with_savepoint`` or leave: a job still running is cancelled on the way out."""

    def __init__(self, *, flink_conf: str, checkpoint_dir: str, local_dir: str, jobmanager: Optional[str] = None,
                 parallelism: Optional[int] = None, say: Callable[[str], None] = print):
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.status_dir = os.path.join(local_dir, "runs", self.run_id, "status")
        self.checkpoint_dir = checkpoint_dir
        self.local = not jobmanager
        self._flink_conf = flink_conf
        self._say = say
        if jobmanager:
            # A running cluster (e.g. `ledgersync cluster up`), over REST. Losing a TaskManager is
            # normal there, so a bounded restart strategy replaces the local "fail at once"; the
            # checkpoint directory must be on a disk every TaskManager sees (here: this machine's).
            self.host, self.rest_port = parse_jobmanager(jobmanager)
            target = {"execution.target": "remote", "rest.address": self.host, "rest.port": str(self.rest_port),
                      **CLUSTER_RESTART_STRATEGY}
            self.where = f"the Flink cluster at {self.host}:{self.rest_port} (--jobmanager)"
        else:
            self.host, self.rest_port = "127.0.0.1", free_port()
            # The mini-cluster's temporary files (its RPC jar, 21 MB, and blob store, 64 MB and
            # more a run) under the run's own directory, removed before this process exits (or
            # by the next run, if it was killed), not left in /tmp after every run as Flink
            # leaves them (a disk here filled up with them).
            runs = os.path.join(local_dir, "runs")
            sweep_run_tmp(runs)
            self.tmp_dir = os.path.join(runs, self.run_id, "tmp")
            os.makedirs(self.tmp_dir, exist_ok=True)
            _TMP_DIRS.append(self.tmp_dir)
            target = {"rest.port": str(self.rest_port), "rest.address": self.host, "rest.bind-address": self.host,
                      "io.tmp.dirs": self.tmp_dir}
            self.where = f"the local mini-cluster (REST {self.host}:{self.rest_port})"
        if parallelism:
            target["parallelism.default"] = str(parallelism)
        self._target = target
        self.client = None
        self.job_id: Optional[str] = None
        self.started = 0.0
        self.trouble: Optional[tuple] = None  # (text, since: wall-clock s) while the cluster does not answer
        self._unanswered_since: Optional[float] = None
        self._stop: Optional[StopRequests] = None
        self._done_with = False  # stopped with a savepoint, or seen ended: nothing to cancel

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    @property
    def stop_requested(self) -> Optional[str]:
        return self._stop.requested if self._stop else None

    def environment(self, settings: Optional[dict] = None):
        """The StreamExecutionEnvironment for the target, with these Flink ``settings`` on top
        (starts PyFlink's JVM: anything the JVM must inherit, such as environment variables,
        is set before)."""
        from pyflink.datastream import StreamExecutionEnvironment

        conf = flink_configuration(self._flink_conf, self.checkpoint_dir, {**self._target, **(settings or {})})
        if self.local:
            return StreamExecutionEnvironment.get_execution_environment(conf)
        # get_execution_environment() outside the `flink` CLI always makes a local one
        # (Flink sets execution.target=local there); the constructor honours "remote".
        from pyflink.java_gateway import get_gateway

        return StreamExecutionEnvironment(
            get_gateway().jvm.org.apache.flink.streaming.api.environment.StreamExecutionEnvironment(
                conf._j_configuration))

    def submit(self, env, name: str) -> str:
        """Submit the pipeline built on ``env``; returns the job id."""
        self.started = time.monotonic()
        self.client = env.execute_async(name)
        self.job_id = str(self.client.get_job_id())
        return self.job_id

    def __enter__(self) -> "LocalJob":
        self._stop = StopRequests().__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if not self._done_with:
                self.cancel()
        finally:
            self._stop.__exit__(*exc)

    def state(self) -> JobState:
        """The job's state; raises JobFailed once the cluster has not answered for
        UNANSWERED_GIVE_UP_S (at once when PyFlink's JVM, which a mini-cluster runs in, is gone)."""
        state = read_state(self.client, self.local)
        if not state.unanswered:
            self._unanswered_since, self.trouble = None, None
            return state
        now = time.monotonic()
        if self._unanswered_since is None:
            self._unanswered_since = now
            self.trouble = (f"{self.where} does not answer ({state.cause})", time.time())
        if state.jvm_gone:
            raise JobFailed(f"lost PyFlink's JVM{' (the mini-cluster ran in it)' if self.local else ''} while "
                            f"asking for the state of job {self.job_id}: {state.cause}\n"
                            f"(Flink logs: {pyflink_log_dir()})")
        if now - self._unanswered_since >= UNANSWERED_GIVE_UP_S:
            raise JobFailed(f"{self.where} did not answer for {now - self._unanswered_since:.0f}s when asked for "
                            f"the state of job {self.job_id}: {state.cause}")
        return state

    def watch(self, progress: Callable[[float], Any], *, done: Optional[Callable[[Any, float], bool]] = None,
              finish: bool = False, progress_every_s: float = 5.0, timeout_s: Optional[float] = None) -> Watched:
        """Poll until ``done(progress, elapsed_s)`` holds, the job FINISHED (``finish``: a
        bounded job; otherwise its end is a failure), a stop is requested or ``timeout_s``
        passed. ``progress(elapsed_s)`` is asked every round; its ``line()`` is printed every
        ``progress_every_s``. A job that ended otherwise raises JobFailed naming its root cause."""
        last_print: Optional[float] = None
        while True:
            state = self.state()
            elapsed = time.monotonic() - self.started
            if state.ended:
                self._done_with = True
                if finish and state.finished:
                    return Watched("finished", progress(time.monotonic() - self.started), elapsed)
                raise JobFailed(f"Flink job ended ({state.name}){': ' + state.cause if state.cause else ''}\n"
                                f"(Python tracebacks are printed above; Flink logs: {pyflink_log_dir()})")
            current = progress(elapsed)
            if last_print is None or elapsed - last_print >= progress_every_s:
                self._say(f"[{elapsed:6.1f}s] {current.line()}{self._trouble_text()}")
                last_print = elapsed
            if self.stop_requested:
                return Watched(self.stop_requested, current, elapsed)
            if done is not None and done(current, elapsed):
                return Watched("done", current, elapsed)
            if timeout_s is not None and elapsed > timeout_s:
                return Watched("timeout", current, elapsed)
            time.sleep(POLL_EVERY_S)

    def _trouble_text(self) -> str:
        if self.trouble is None:
            return ""
        text, since = self.trouble
        return f"; {text} for {max(0.0, time.time() - since):.0f} s"

    def stop_with_savepoint(self, directory: str) -> str:
        """Stop the job with a savepoint in ``directory``; returns the savepoint's local path.
        JobClient.stopWithSavepoint is called in Java: PyFlink's wrapper calls a signature
        that lacks the savepoint format."""
        from pyflink.common.completable_future import CompletableFuture
        from pyflink.java_gateway import get_gateway

        canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
        uri = "file://" + os.path.abspath(directory)
        path = CompletableFuture(self.client._j_job_client.stopWithSavepoint(False, uri, canonical), str).result()
        self._done_with = True
        return local_path(path)

    def cancel(self) -> None:
        """Cancel the job unless it has ended; says so if a cluster would not cancel it."""
        if self.client is None or read_state(self.client, self.local).ended:
            return
        try:
            self.client.cancel().result()
        except Exception as exc:
            state = read_state(self.client, self.local)
            if not state.ended and not (self.local and state.jvm_gone):  # a mini-cluster goes with its JVM
                self._say(f"could not cancel job {self.job_id} on {self.where}: {root_cause(exc)}; "
                          f"it may still be running ({self.rest_url})")
        self._done_with = True


def local_path(uri: str) -> str:
    return uri[len("file:"):] if uri.startswith("file:") else uri
