"""The JVM flags of the local mini-cluster (`ledgersync run`, `ledgersync backfill`).

PyFlink starts Flink's JVM itself, the first time the job's code needs it, and the
mini-cluster runs inside that JVM. Its flags come from the ``JVM_ARGS`` environment
variable only: ``env.java.opts.*`` in flink-conf/config.yaml are for the JVMs Flink's own
scripts start, and the mini-cluster's memory keys (managed memory, network buffers, in
config.yaml) size Flink's pools, not the JVM. Left alone, the JVM may take a quarter of
the machine's memory as heap and grows towards it (a 300 MB export: 1.75 GiB), so each
bound below is added to ``JVM_ARGS`` unless the user's ``JVM_ARGS`` sets it already.
"""
from __future__ import annotations

import os
from typing import MutableMapping

JVM_ARGS = "JVM_ARGS"

# (the flag's prefix, the default). The heap holds records in flight between operators and
# Python's results not yet emitted (a backfill's 100 KB revisions included); metaspace
# holds Flink's, the connector's and the generated SQL operators' classes; direct memory
# is Netty's and gRPC's (the Python workers' channels).
DEFAULT_JVM_FLAGS = (
    ("-Xmx", "-Xmx512m"),
    ("-XX:MaxMetaspaceSize=", "-XX:MaxMetaspaceSize=192m"),
    ("-XX:MaxDirectMemorySize=", "-XX:MaxDirectMemorySize=128m"),
)


def jvm_args(user: str = "") -> str:
    """``user``'s JVM flags with each default bound they do not set themselves."""
    flags = user.split()
    added = [default for prefix, default in DEFAULT_JVM_FLAGS if not any(f.startswith(prefix) for f in flags)]
    return " ".join(flags + added)


def bound_jvm_memory(environ: MutableMapping = os.environ) -> None:
    """Put the bounds in ``JVM_ARGS``; it must run before PyFlink starts its JVM (a JVM
    already running keeps the flags it started with)."""
    environ[JVM_ARGS] = jvm_args(environ.get(JVM_ARGS, ""))


def explain_failure(cause: str) -> str:
    """A job's root cause, with what to change when it is the JVM's memory that ran out."""
    if "OutOfMemoryError" not in cause:
        return cause
    return (f"{cause} (the mini-cluster's JVM ran out of memory: raise the bound it names in {JVM_ARGS}, e.g. "
            f"{JVM_ARGS}=-Xmx2g; the defaults are {jvm_args()}, see docs/operations.md#memory-of-a-local-run)")
