"""Watching one ``ledgersync run`` from outside, for the benchmark: its output, its status
board (rows written and when) and the memory and CPU of its whole process tree."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Optional

from job.cli.tools.bench.profile import cpu_by_kind, process_kind
from job.functions.status_board import read_board
from job.cli.local.runner import PROJECT_ROOT

SAMPLE_EVERY_S = 0.1


def process_tree_rss(pid: int) -> tuple:
    """(total RSS in bytes, the processes) of ``pid`` and all its descendants (0 if gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, []
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total, processes


class JobRun:
    """``ledgersync run`` in its own process, watched from outside: its output, its
    status board (rows written and when) and the RSS of its whole process tree."""

    def __init__(self, properties: str, log_path: str, checkpoint_dir: str, *, until_caught_up: bool,
                 timeout_s: float, profiler=None,
                 python_worker_mode: Optional[str] = None, parallelism: Optional[int] = None):
        command = [sys.executable, "-m", "job.cli", "run", "--properties", properties,
                   "--checkpoint-dir", checkpoint_dir]
        if parallelism:
            command += ["--parallelism", str(parallelism)]
        if until_caught_up:
            command += ["--until-caught-up", "--timeout", str(int(timeout_s))]
        self.log_path = log_path
        self.launched = time.time()
        self.running_at: Optional[float] = None
        self.status_dir: Optional[str] = None
        self.first_write: Optional[float] = None
        self.last_write: Optional[float] = None
        self.written = 0
        self.peak_rss = 0
        self.caught_up_line = ""
        self._written: dict = {}
        self.cpu: dict = {}  # pid -> (kind, CPU seconds so far)
        # (time, CPU seconds of the whole tree so far), one per sample: CPU between two
        # moments (first and last row written) is read off it (job/cli/tools/bench/cpu.py).
        self.cpu_series: list = [(self.launched, 0.0)]
        self._kinds: dict = {}
        # Told (see job/bench_profile.Profiler) when the job runs, of every process that runs
        # Python operators (the driver itself: PyFlink's local default, "loopback" mode, runs
        # them in its threads; and any Python worker process, "process" mode), and when the
        # run is caught up (before it cancels the job).
        self._profiler = profiler
        self.cpu_at_first_row: dict = {}
        self._workers_seen: set = set()
        self._log = open(log_path, "w", encoding="utf-8")
        env = dict(os.environ)
        if python_worker_mode:
            env["_python_worker_execution_mode"] = python_worker_mode  # read by PyFlink at job start
        self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=env)
        self._threads = [threading.Thread(target=self._read_output, daemon=True),
                         threading.Thread(target=self._sample, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_output(self) -> None:
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            if self.running_at is None and re.search(r"ledgersync: job \S+ running", line):
                self.running_at = time.time()
                match = re.search(r"status in (\S+);", line)
                self.status_dir = match.group(1) if match else None
                if self._profiler is not None:
                    self._workers_seen.add(self.process.pid)
                    self._profiler.job_running(self.process.pid)
            if "caught up after" in line:
                self.caught_up_line = line.strip()
                if self._profiler is not None:
                    self._profiler.caught_up()

    def _sample(self) -> None:
        while self.process.poll() is None:
            rss, processes = process_tree_rss(self.process.pid)
            self.peak_rss = max(self.peak_rss, rss)
            self._note_cpu(processes)
            self.cpu_series.append((time.time(), sum(cpu for _kind, cpu in self.cpu.values())))
            if self._profiler is not None:
                self._notice_workers(processes)
            if self.status_dir:
                self._read_writers()
            time.sleep(SAMPLE_EVERY_S)

    def _note_cpu(self, processes: list) -> None:
        for process in processes:
            try:
                times = process.cpu_times()
                if process.pid not in self._kinds:
                    self._kinds[process.pid] = process_kind(" ".join(process.cmdline()), self.process.pid,
                                                            process.pid)
            except Exception:  # gone meanwhile: its last sample stands
                continue
            self.cpu[process.pid] = (self._kinds[process.pid], times.user + times.system)

    def _notice_workers(self, processes: list) -> None:
        fresh = []
        for process in processes:
            try:
                if process.pid not in self._workers_seen and "pyflink.fn_execution" in " ".join(process.cmdline()):
                    self._workers_seen.add(process.pid)
                    fresh.append(process.pid)
            except Exception:  # gone meanwhile
                continue
        if fresh:
            self._profiler.attach(fresh)

    def _read_writers(self) -> None:
        for name, status in read_board(self.status_dir).items():
            if status.get("kind") != "writer":
                continue
            written = int(status.get("written", 0))
            if written != self._written.get(name, 0):
                self._written[name] = written
                # The writer publishes right after each commit, so this is when it wrote.
                at = float(status.get("updated", time.time()))
                if self.first_write is None:
                    self.cpu_at_first_row = cpu_by_kind(self.cpu)  # start-up's share of the CPU
                self.first_write = at if self.first_write is None else min(self.first_write, at)
                self.last_write = at if self.last_write is None else max(self.last_write, at)
        self.written = sum(self._written.values())

    def board(self) -> dict:
        return read_board(self.status_dir) if self.status_dir else {}

    def wait(self, timeout_s: float) -> int:
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"ledgersync run did not end within {timeout_s:.0f}s (log: {self.log_path})")
        self._finish()
        return code

    def stop(self) -> int:
        """SIGTERM: the run cancels its job and ends (see job/cli/local/driver.py)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._finish()
        return self.process.returncode

    def _finish(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)
        if self.status_dir:
            self._read_writers()
        self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
