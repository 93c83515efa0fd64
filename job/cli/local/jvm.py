"""The flags of the local JVM that PyFlink starts for a job run here (the JVM the
mini-cluster of `ledgersync run` / `backfill` runs in, or the client of a --jobmanager run).

PyFlink starts that JVM itself, the first time the job's code needs it, and takes its
flags from the ``JVM_ARGS`` environment variable only: ``env.java.opts.*`` in
flink-conf/config.yaml are for the JVMs Flink's own scripts start, and the mini-cluster's
memory keys (managed memory, network buffers) size Flink's pools, not the JVM. Each
default below is added to ``JVM_ARGS`` unless the user's ``JVM_ARGS`` sets that flag
already (docs/operations.md, "The local JVM"). On MSF the service owns the JVM.
"""
from __future__ import annotations

import os
from typing import MutableMapping

JVM_ARGS = "JVM_ARGS"

# (the flag's prefix, the default).
LOCAL_JVM_FLAGS = (
    # The JIT stops at C1: with `ledgersync bench --revisions 3000 --parts ledgersync` the
    # start-up to the first row fell from 48-60 CPU-s to 30-35 and CPU per revision did not
    # change measurably (BENCHMARKS.md); C2 compiles are most of what a fresh JVM burns in
    # its first minute, and a local run (a demo, a test, a backfill) is over before they
    # pay back. -XX:TieredStopAtLevel=4 gives a long run C2 back.
    ("-XX:TieredStopAtLevel=", "-XX:TieredStopAtLevel=1"),
    # Bounds: left alone the heap may grow to a quarter of the machine's memory (a 300 MB
    # export: 1.75 GiB). The heap holds records in flight between operators and Python's
    # results not yet emitted (a backfill's 100 KB revisions included); metaspace holds
    # Flink's, the connector's and the generated SQL operators' classes; direct memory is
    # Netty's and gRPC's (network buffers, the Python workers' channels).
    ("-Xmx", "-Xmx512m"),
    ("-XX:MaxMetaspaceSize=", "-XX:MaxMetaspaceSize=256m"),
    ("-XX:MaxDirectMemorySize=", "-XX:MaxDirectMemorySize=256m"),
)


# `ledgersync backfill`'s own, in place of the defaults above. Its heap holds only a few
# ranges of blocks in flight (the reader takes one range at a time, job/pipeline/backfill.py;
# the per-document state is RocksDB's, off the heap), and a heap that may grow, grows: the
# 300 MB export of tests/integration/test_large_export.py peaked with the JVM at 610-640
# MiB with -Xmx256m (the whole tree 1,290 MiB) against 890 MiB with -Xmx512m (1,544 MiB,
# over its 1.5 GiB). Metaspace and direct memory 192m/128m saved nothing there, so they
# stay as above.
BACKFILL_JVM_FLAGS = (("-Xmx", "-Xmx256m"),)


def local_jvm_flags(command: str = "") -> tuple:
    """The defaults for a command (its first word): the backfill's heap is its own."""
    if command.split()[:1] != ["backfill"]:
        return LOCAL_JVM_FLAGS
    own = dict(BACKFILL_JVM_FLAGS)
    return tuple((prefix, own.get(prefix, default)) for prefix, default in LOCAL_JVM_FLAGS)


def jvm_args(user: str = "", defaults: tuple = LOCAL_JVM_FLAGS) -> str:
    """``user``'s JVM flags with each default they do not set themselves."""
    flags = user.split()
    added = [default for prefix, default in defaults if not any(f.startswith(prefix) for f in flags)]
    return " ".join(flags + added)


def apply_local_jvm_defaults(environ: MutableMapping[str, str] = os.environ, command: str = "") -> str:
    """Put the defaults (``command``'s, see ``local_jvm_flags``) in ``JVM_ARGS``; it must run
    before PyFlink starts its JVM (a JVM already running keeps the flags it started with).
    Returns what applies."""
    environ[JVM_ARGS] = jvm_args(environ.get(JVM_ARGS, ""), local_jvm_flags(command))
    return environ[JVM_ARGS]


def explain_failure(cause: str) -> str:
    """A job's root cause, with what to change when it is the JVM's memory that ran out."""
    if "OutOfMemoryError" not in cause:
        return cause
    return (f"{cause} (the local JVM ran out of memory: raise the bound it names in {JVM_ARGS}, e.g. "
            f"{JVM_ARGS}=-Xmx2g; the defaults are {jvm_args()}, see docs/operations.md, \"The local JVM\")")
