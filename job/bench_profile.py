"""Where ledgersync's time goes: py-spy on the Flink Python workers during a benchmark
run, summed by kind of work; and CPU seconds per process of the run's tree.

``ledgersync bench --parts ledgersync --py-spy DIR`` attaches ``py-spy record
--nonblocking`` (sampling from outside, without pausing the worker) to each Python
worker of the loopback run, writes the raw stacks to DIR, and prints a summary: each
sample goes to the first kind in ``KINDS`` that one of its frames belongs to.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from typing import Iterable

# (kind, path fragments), first match wins: state access and (de)serialisation first,
# since both happen inside the operators that call them.
KINDS = (
    ("state access (keyed state, timers)", ("pyflink/fn_execution/state_impl", "pyflink/datastream/state",
                                            "timerservice", "internal_timer", "state_impl")),
    ("Java<->Python serialization (coders, pickle)", ("coder_impl", "coders.py", "pickle", "beam_coder",
                                                     "apache_beam/coders", "fast_coders")),
    ("Ion decoding (amazon-ion, KPL, Ion->JSON)", ("amazon/ion", "connectors/qldb_records", "connectors/ion_json",
                                                  "connectors/kpl", "aws_kinesis_agg")),
    ("SQL (writer, pymysql)", ("pymysql", "connectors/mysql_writer", "connectors/mysql_sql",
                               "connectors/mysql_schema")),
    ("Kinesis reads (boto3)", ("botocore", "boto3", "urllib3", "connectors/kinesis_shard_reader",
                               "connectors/kinesis_shards", "http/client")),
    ("status board, metrics", ("job/run_status", "metric")),
    ("row images (JSON text of each revision)", ("connectors/row_images", "json/encoder")),
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
    total = sum(counts.values()) or 1
    lines = [f"py-spy: {total} samples of the Python workers (active threads), by kind of work:"]
    for kind, n in counts.most_common():
        lines.append(f"  {100.0 * n / total:5.1f}%  {kind}")
    lines.append("hottest leaf frames:")
    for frame, n in hot:
        lines.append(f"  {100.0 * n / total:5.1f}%  {frame}")
    return "\n".join(lines)


class PySpy:
    """``py-spy record`` attached to worker processes as they appear; summary at the end."""

    def __init__(self, out_dir: str, rate: int = 100):
        self._dir = os.path.abspath(out_dir)
        self._rate = rate
        self._recorders: list = []
        os.makedirs(self._dir, exist_ok=True)
        self._binary = os.path.join(os.path.dirname(sys.executable), "py-spy")

    def attach(self, pids: list) -> None:
        for pid in pids:
            output = os.path.join(self._dir, f"worker-{pid}.txt")
            log = open(os.path.join(self._dir, f"worker-{pid}.log"), "w")
            self._recorders.append((subprocess.Popen(
                [self._binary, "record", "--pid", str(pid), "--rate", str(self._rate), "--format", "raw",
                 "--nonblocking", "--output", output], stdout=log, stderr=subprocess.STDOUT), output, log))

    def finish(self, timeout_s: float = 30.0) -> str:
        """Wait for the recorders (they end with their worker), then summarize."""
        for process, _output, log in self._recorders:
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
                process.wait(timeout=timeout_s)
            log.close()
        lines = []
        for _process, output, _log in self._recorders:
            if os.path.exists(output):
                with open(output, encoding="utf-8", errors="replace") as handle:
                    lines += handle.readlines()
        summary = format_summary(summarize_raw(lines), hot_frames(lines))
        with open(os.path.join(self._dir, "summary.txt"), "w", encoding="utf-8") as handle:
            handle.write(summary + "\n")
        return summary


def process_kind(cmdline: str, root_pid: int, pid: int) -> str:
    if pid == root_pid:
        return "driver (ledgersync run)"
    if "java" in cmdline.split(" ", 1)[0] or "org.apache.flink" in cmdline:
        return "JVM (Flink runtime, Top-1 state)"
    if "pyflink.fn_execution" in cmdline:
        return "Python workers (reader, decode, writer)"
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
