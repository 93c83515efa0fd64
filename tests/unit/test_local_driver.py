"""How the local job driver (job/cli/local/driver.py) reads a job's state: only FAILED,
CANCELED or FINISHED is an ended job; a status call that fails is the cluster not answering,
said with its host:port and cause, not a job that ended. PyFlink's JobClient is stood in for
by objects that answer as it does (no Flink here; real jobs: the integration tests)."""
from __future__ import annotations

import enum
import os

import pytest

from job.cli.local import driver
from job.cli.local.driver import JobFailed, LocalJob, read_state

FLINK_CONF = "flink-conf/config.yaml"


class Status(enum.Enum):  # as PyFlink's JobStatus: the state is its name
    RUNNING = 1
    RESTARTING = 2
    FAILED = 3
    CANCELED = 4
    FINISHED = 5


class Py4JNetworkError(Exception):  # named as py4j's: PyFlink's JVM does not answer
    pass


JOB_FAILURE = RuntimeError("An error occurred while calling o12.get.\n"
                           ": org.apache.flink.runtime.client.JobExecutionException: Job execution failed.\n"
                           "Caused by: java.net.ConnectException: Connection refused: localhost/127.0.0.1:4566")
CANCELLED = RuntimeError("An error occurred while calling o12.get.\n"
                         ": java.util.concurrent.ExecutionException: org.apache.flink.runtime.client."
                         "JobCancellationException: Job was cancelled.\n"
                         "Caused by: org.apache.flink.runtime.client.JobCancellationException: Job was cancelled.")
UNREACHABLE = RuntimeError("An error occurred while calling o9.get.\n"
                           ": java.util.concurrent.ExecutionException: org.apache.flink.runtime.rest.util."
                           "RestClientException: Could not connect\n"
                           "Caused by: java.net.ConnectException: Connection refused: /127.0.0.1:8081")


class Future:
    """A completed (``value`` or ``error``) or pending CompletableFuture."""

    def __init__(self, value=None, error=None, pending=False):
        self.value, self.error, self.pending = value, error, pending

    def done(self) -> bool:
        return not self.pending

    def result(self):
        assert not self.pending, "a pending future would block"
        if self.error is not None:
            raise self.error
        return self.value


class Client:
    """A JobClient whose status call answers ``status`` (a Status, or an exception to raise)
    and whose job result is ``result``."""

    def __init__(self, status, result: Future):
        self.status, self.result = status, result
        self.cancelled = False

    def get_job_status(self) -> Future:
        if isinstance(self.status, BaseException):
            return Future(error=self.status)
        return Future(self.status)

    def get_job_execution_result(self) -> Future:
        return self.result

    def get_job_id(self) -> str:
        return "0123456789abcdef0123456789abcdef"

    def cancel(self) -> Future:
        self.cancelled = True
        return Future()


@pytest.mark.parametrize("local", [True, False])
def test_a_running_or_restarting_job_has_not_ended(local):
    for status in (Status.RUNNING, Status.RESTARTING):
        state = read_state(Client(status, Future(pending=True)), local)
        assert (state.name, state.ended, state.unanswered) == (status.name, False, False)


@pytest.mark.parametrize("local", [True, False])
def test_a_failed_job_names_its_root_cause(local):
    state = read_state(Client(Status.FAILED, Future(error=JOB_FAILURE)), local)
    assert state.ended and not state.finished
    assert state.name == "FAILED"
    assert state.cause == "Caused by: java.net.ConnectException: Connection refused: localhost/127.0.0.1:4566"


def test_a_failed_status_call_on_a_cluster_is_the_cluster_not_answering_not_an_ended_job():
    state = read_state(Client(UNREACHABLE, Future(pending=True)), local=False)
    assert state.unanswered and not state.ended and not state.jvm_gone
    assert state.cause == "Caused by: java.net.ConnectException: Connection refused: /127.0.0.1:8081"


def test_a_failed_status_call_on_a_mini_cluster_whose_job_goes_on_is_not_an_ended_job():
    state = read_state(Client(UNREACHABLE, Future(pending=True)), local=True)
    assert state.unanswered and not state.ended


@pytest.mark.parametrize("result, name, cause", [
    (Future("JobExecutionResult"), "FINISHED", ""),
    (Future(error=CANCELLED), "CANCELED",
     "Caused by: org.apache.flink.runtime.client.JobCancellationException: Job was cancelled."),
    (Future(error=JOB_FAILURE), "FAILED", "Caused by: java.net.ConnectException: Connection refused: "
                                          "localhost/127.0.0.1:4566")])
def test_a_mini_cluster_shut_down_after_its_job_ended_reads_as_the_jobs_end(result, name, cause):
    # The mini-cluster is gone (its status calls fail), the job's result is kept by the client.
    state = read_state(Client(RuntimeError("MiniCluster is not yet running or has already been shut down."),
                              result), local=True)
    assert (state.name, state.cause, state.ended) == (name, cause, True)
    assert state.finished == (name == "FINISHED")


def test_a_job_on_a_cluster_that_finished_has_ended_cleanly():
    state = read_state(Client(Status.FINISHED, Future("JobExecutionResult")), local=False)
    assert state.ended and state.finished


class GoneJvm(Client):
    """Every call fails: the Py4J gateway to PyFlink's JVM is gone."""

    def __init__(self):
        super().__init__(None, Future(pending=True))

    def get_job_status(self):
        raise Py4JNetworkError("Answer from Java side is empty")

    get_job_execution_result = get_job_status


def test_pyflinks_jvm_gone_is_said_so():
    state = read_state(GoneJvm(), local=True)
    assert state.unanswered and state.jvm_gone and state.cause == "Answer from Java side is empty"


class Line:
    def __init__(self, text="read 0 records"):
        self.text = text

    def line(self) -> str:
        return self.text


def _job(client, jobmanager=None, said=None) -> LocalJob:
    job = LocalJob(flink_conf=FLINK_CONF, checkpoint_dir="/nonexistent", local_dir="/nonexistent",
                   jobmanager=jobmanager, say=(said.append if said is not None else lambda _t: None))
    job.client, job.job_id = client, client.get_job_id()
    return job


def test_a_cluster_that_stops_answering_shows_in_the_progress_line_then_fails_the_run_naming_it(monkeypatch):
    said = []
    client = Client(UNREACHABLE, Future(pending=True))
    job = _job(client, jobmanager="flink-jm.internal:8081", said=said)
    rounds = iter([False, True])
    watched = job.watch(lambda _elapsed: Line(), done=lambda _p, _e: next(rounds), progress_every_s=0.0)
    assert watched.why == "done"  # not "ended": the run carries on while the cluster is away
    assert said and all("the Flink cluster at flink-jm.internal:8081 (--jobmanager) does not answer "
                        "(Caused by: java.net.ConnectException: Connection refused: /127.0.0.1:8081) for" in text
                        for text in said), said

    monkeypatch.setattr(driver, "UNANSWERED_GIVE_UP_S", 0.0)
    with pytest.raises(JobFailed) as failure:
        job.watch(lambda _elapsed: Line())
    message = str(failure.value)
    assert "flink-jm.internal:8081" in message and "Connection refused: /127.0.0.1:8081" in message
    assert "ended" not in message


def test_a_failed_job_fails_the_watch_with_its_state_and_root_cause():
    job = _job(Client(Status.FAILED, Future(error=JOB_FAILURE)))
    with pytest.raises(JobFailed, match=r"Flink job ended \(FAILED\): Caused by: java.net.ConnectException"):
        job.watch(lambda _elapsed: Line())


def test_a_finished_job_ends_the_watch_of_a_bounded_job_and_fails_that_of_an_unbounded_one():
    client = Client(Status.FINISHED, Future("JobExecutionResult"))
    assert _job(client).watch(lambda _elapsed: Line("final"), finish=True).progress.line() == "final"
    with pytest.raises(JobFailed, match=r"Flink job ended \(FINISHED\)"):
        _job(client).watch(lambda _elapsed: Line())


def test_leaving_cancels_a_job_that_runs_and_not_one_that_ended():
    running = Client(Status.RUNNING, Future(pending=True))
    with _job(running):
        pass
    assert running.cancelled
    ended = Client(Status.FAILED, Future(error=JOB_FAILURE))
    with _job(ended):
        pass
    assert not ended.cancelled


def test_a_gone_jvm_fails_the_watch_at_once_naming_the_cause():
    with pytest.raises(JobFailed, match="lost PyFlink's JVM .*Answer from Java side is empty"):
        _job(GoneJvm()).watch(lambda _elapsed: Line())


@pytest.mark.parametrize("local", [True, False])
def test_an_out_of_memory_failure_names_jvm_args_only_on_the_local_mini_cluster(local):
    oom = RuntimeError("An error occurred while calling o12.get.\nCaused by: java.lang.OutOfMemoryError: Java heap space")
    state = read_state(Client(Status.FAILED, Future(error=oom)), local)
    assert state.cause.startswith("Caused by: java.lang.OutOfMemoryError: Java heap space")
    assert ("JVM_ARGS=-Xmx2g" in state.cause) == local


def test_a_killed_runs_flink_temporary_files_are_swept_and_a_live_ones_kept(tmp_path):
    import subprocess

    from job.cli.local.driver import sweep_run_tmp

    gone = subprocess.Popen(["true"])
    gone.wait()
    for pid in (gone.pid, os.getpid()):
        os.makedirs(tmp_path / f"20261207-120000-{pid}" / "tmp" / "minicluster_x")
        (tmp_path / f"20261207-120000-{pid}" / "status").mkdir()
    sweep_run_tmp(str(tmp_path))
    assert not (tmp_path / f"20261207-120000-{gone.pid}" / "tmp").exists()
    assert (tmp_path / f"20261207-120000-{gone.pid}" / "status").exists()  # only the temporary files go
    assert (tmp_path / f"20261207-120000-{os.getpid()}" / "tmp" / "minicluster_x").exists()
    sweep_run_tmp(str(tmp_path / "none"))  # no runs yet: nothing to do


def test_a_mariadb_socket_path_too_long_for_unix_sockets_is_moved_somewhere_short(tmp_path):
    from job.cli.local.services import MAX_SOCKET_PATH, MariaDB

    short = MariaDB(name="m", base=str(tmp_path), port=1, port_env="X")
    assert short.socket == str(tmp_path / "mysqld.sock")
    deep = MariaDB(name="m", base=str(tmp_path / ("d" * 120)), port=1, port_env="X")
    assert len(deep.socket.encode()) <= MAX_SOCKET_PATH
    assert deep.socket == MariaDB(name="m", base=deep.base, port=2, port_env="Y").socket  # found again by others
    assert deep.socket != MariaDB(name="m", base=deep.base + "x", port=1, port_env="X").socket
