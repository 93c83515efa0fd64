"""Where ledgersync's time goes: py-spy on the processes running the job's Python operators
during a benchmark run, summed by kind of work; and CPU seconds per process of the run's tree.

``ledgersync bench --parts ledgersync --py-spy DIR`` attaches ``py-spy record
--nonblocking`` (sampling from outside, without pausing it) to every process that runs
Python operators in the loopback-latency run, from the moment the job runs: on the local
mini-cluster that is the ``ledgersync run`` driver itself (PyFlink's "loopback" mode runs
the operators in its threads), plus any Python worker process. It writes the raw stacks
to DIR and prints a summary: each sample goes to the first kind in ``KINDS`` that one of
its frames belongs to. The job's JVM gets a Java Flight Recorder recording over the same
span (``jcmd JFR.start`` / ``JFR.dump``, ``DIR/jvm.jfr``), summed the same way (``JVM_KINDS``).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from typing import Iterable, Optional

# (kind, path fragments), first match wins: state access and (de)serialisation first,
# since both happen inside the operators that call them.
KINDS = (
    ("state access (keyed state, timers)", ("pyflink/fn_execution/state_impl", "pyflink/datastream/state",
                                            "timerservice", "internal_timer", "state_impl")),
    ("Java<->Python serialization (coders, pickle)", ("coder_impl", "coders.py", "pickle", "beam_coder",
                                                     "apache_beam/coders", "fast_coders")),
    ("Ion decoding (amazon-ion, KPL, Ion->JSON)", ("amazon/ion", "connectors/formats/", "aws_kinesis_agg")),
    ("row images (JSON text of each revision)", ("connectors/rows/row_images", "json/encoder")),
    ("SQL (writer, pymysql)", ("pymysql", "connectors/mysql/")),
    ("Kinesis reads (boto3)", ("botocore", "boto3", "urllib3", "connectors/kinesis/", "http/client")),
    ("status board, metrics", ("job/functions/status_board", "metric")),
    ("other ledgersync Python (operators, filters, lambdas)", ("job/", "connectors/")),
    ("PyFlink/Beam runtime (bundles, gRPC)", ("pyflink", "apache_beam", "grpc")),
)
OTHER = "other"


def kind_of(stack: str) -> str:
    frames = stack.split(";")
    for kind, fragments in KINDS:
        if any(fragment in frame for frame in frames for fragment in fragments):
            return kind
    return OTHER


def summarize_raw(lines: Iterable[str]) -> Counter:
    """Samples per kind, from py-spy's raw (collapsed) output: ``frame;frame;... count``."""
    counts: Counter = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            counts[kind_of(stack)] += int(count)
    return counts


def hot_frames(lines: Iterable[str], top: int = 15) -> list:
    """The leaf frames (where the interpreter was) with the most samples."""
    counts: Counter = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            counts[stack.split(";")[-1]] += int(count)
    return counts.most_common(top)


def format_summary(counts: Counter, hot: list) -> str:
    return _format_shares(counts, "py-spy --gil: {total} samples of the Python thread holding the GIL in the "
                                  "processes running Python operators, by kind of work:", "hottest leaf frames:", hot)


def _format_shares(kinds: Counter, header: str, hot_header: str, hot: list) -> str:
    """Samples by kind of work, then the hottest frames, each as a share of all samples."""
    total = sum(kinds.values()) or 1
    lines = [header.format(total=total)]
    for kind, n in kinds.most_common():
        lines.append(f"  {100.0 * n / total:5.1f}%  {kind}")
    lines.append(hot_header)
    for frame, n in hot:
        lines.append(f"  {100.0 * n / total:5.1f}%  {frame}")
    return "\n".join(lines)


class Profiler:
    """py-spy on every process that runs Python operators, and Java Flight Recorder on the
    job's JVM, from the moment the job runs until it is caught up."""

    def __init__(self, out_dir: str, rate: int = 100):
        self._dir = os.path.abspath(out_dir)
        self._rate = rate
        self._recorders: list = []
        self._jvm: Optional[int] = None
        self._jfr = os.path.join(self._dir, "jvm.jfr")
        os.makedirs(self._dir, exist_ok=True)
        self._binary = os.path.join(os.path.dirname(sys.executable), "py-spy")

    def job_running(self, driver_pid: int) -> None:
        self.attach([driver_pid])
        self._jvm = _java_child(driver_pid)
        if self._jvm and shutil.which("jcmd"):
            _quiet(["jcmd", str(self._jvm), "JFR.start", "name=ledgersync-bench", "settings=profile"])

    def attach(self, pids: list) -> None:
        # --gil: only the thread holding the GIL, i.e. where Python actually spends CPU.
        for pid in pids:
            output = os.path.join(self._dir, f"python-{pid}.txt")
            log = open(os.path.join(self._dir, f"python-{pid}.log"), "w")
            self._recorders.append((subprocess.Popen(
                [self._binary, "record", "--pid", str(pid), "--rate", str(self._rate), "--format", "raw",
                 "--gil", "--nonblocking", "--output", output], stdout=log, stderr=subprocess.STDOUT), output, log))

    def caught_up(self) -> None:
        """Stop sampling now, before the run cancels its job (cancelling is not the work)."""
        if self._jvm and shutil.which("jcmd"):
            _quiet(["jcmd", str(self._jvm), "JFR.dump", "name=ledgersync-bench", f"filename={self._jfr}"])
        for process, _output, _log in self._recorders:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C

    def finish(self, timeout_s: float = 30.0) -> str:
        for process, _output, log in self._recorders:
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=timeout_s)
            log.close()
        lines = []
        for _process, output, _log in self._recorders:
            if os.path.exists(output):
                with open(output, encoding="utf-8", errors="replace") as handle:
                    lines += handle.readlines()
        parts = [format_summary(summarize_raw(lines), hot_frames(lines))]
        if os.path.exists(self._jfr) and shutil.which("jfr"):
            parts.append(format_jvm_summary(*summarize_jfr(self._jfr)))
        summary = "\n".join(parts)
        with open(os.path.join(self._dir, "summary.txt"), "w", encoding="utf-8") as handle:
            handle.write(summary + "\n")
        return summary


def _java_child(pid: int) -> Optional[int]:
    import psutil

    try:
        for child in psutil.Process(pid).children(recursive=True):
            if "java" in child.name():
                return child.pid
    except psutil.Error:
        pass
    return None


def _quiet(command: list) -> None:
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)


# (kind, class-name prefixes), first match in a sample's stack wins, leaf first.
JVM_KINDS = (
    ("RocksDB state (Top-1, timers, checkpoints)", ("org.rocksdb.", "org.apache.flink.state.rocksdb",
                                                    "org.apache.flink.contrib.streaming.state")),
    ("checkpointing", ("org.apache.flink.runtime.checkpoint", "org.apache.flink.runtime.state")),
    ("Java<->Python (Beam runner, coders, gRPC)", ("org.apache.flink.python", "org.apache.flink.streaming.api"
                                                  ".runners.python", "org.apache.beam", "io.grpc",
                                                  "org.apache.flink.fnexecution", "org.apache.flink.shaded.netty")),
    ("Top-1 and SQL operators", ("org.apache.flink.table.runtime",)),
    ("serialization (Flink types)", ("org.apache.flink.api.common.typeutils", "org.apache.flink.api.java.typeutils",
                                     "org.apache.flink.table.data", "org.apache.flink.core.memory")),
    ("network, mailbox, task runtime", ("org.apache.flink.runtime", "org.apache.flink.streaming.runtime")),
    ("start-up: class loading, SQL planner", ("java.lang.ClassLoader", "org.apache.calcite",
                                                   "org.apache.flink.table.planner", "org.codehaus")),
)


def summarize_jfr(path: str) -> tuple:
    """(samples per kind, top leaf methods) of the JVM's execution samples in a JFR file."""
    import json as _json

    printed = subprocess.run(["jfr", "print", "--json", "--events", "jdk.ExecutionSample", "--stack-depth", "64",
                              path], capture_output=True, text=True, timeout=300, check=False)
    try:
        events = _json.loads(printed.stdout)["recording"]["events"]
    except (ValueError, KeyError):
        return Counter(), []
    kinds: Counter = Counter()
    leaves: Counter = Counter()
    for event in events:
        frames = [f"{f['method']['type']['name']}.{f['method']['name']}"
                  for f in event.get("values", {}).get("stackTrace", {}).get("frames", [])]
        if not frames:
            continue
        leaves[frames[0]] += 1
        kinds[_jvm_kind(frames)] += 1
    return kinds, leaves.most_common(15)


def _jvm_kind(frames: list) -> str:
    for kind, prefixes in JVM_KINDS:
        if any(frame.startswith(prefix) for frame in frames for prefix in prefixes):
            return kind
    return OTHER


def format_jvm_summary(kinds: Counter, leaves: list) -> str:
    return _format_shares(kinds, "JFR: {total} execution samples of the job's JVM (Java code only; native RocksDB "
                                 "time not included), by kind of work:", "hottest JVM methods:", leaves)


def process_kind(cmdline: str, root_pid: int, pid: int) -> str:
    if pid == root_pid:
        # PyFlink's local default ("loopback" mode) runs the Python operators in its threads.
        return "driver + Python operators (ledgersync run)"
    if "java" in cmdline.split(" ", 1)[0] or "org.apache.flink" in cmdline:
        return "JVM (Flink runtime, Top-1 state)"
    if "pyflink.fn_execution" in cmdline:
        return "Python worker processes"
    return "other"


def cpu_by_kind(cpu: dict) -> dict:
    """``{pid: (kind, cpu seconds)}`` summed by kind."""
    out: dict = {}
    for kind, seconds in cpu.values():
        out[kind] = round(out.get(kind, 0.0) + seconds, 1)
    return out


def service_cpu_seconds(mysql_port: int, aws_port: int) -> dict:
    """CPU seconds used so far by the local MariaDB and moto server (found by their ports)."""
    import psutil

    out = {"MariaDB": 0.0, "moto server (Kinesis)": 0.0}
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if "mariadbd" in cmdline and f"--port={mysql_port}" in cmdline:
            kind = "MariaDB"
        elif "moto.server" in cmdline and str(aws_port) in cmdline:
            kind = "moto server (Kinesis)"
        else:
            continue
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        out[kind] += times.user + times.system
    return out
