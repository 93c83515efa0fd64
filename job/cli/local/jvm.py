"""The options of the local JVM that PyFlink starts for a job run here (its gateway JVM,
which hosts the mini-cluster, or the client of a --jobmanager run).

PyFlink reads them from the ``JVM_ARGS`` environment variable when it launches that JVM;
a ``JVM_ARGS`` the user set (even empty) is left exactly as it is.

``-XX:TieredStopAtLevel=1``: the JIT stops at C1. Measured with ``ledgersync bench
--revisions 3000 --parts ledgersync --parallelism 1`` (BENCHMARKS.md, "Start-up"): the
start-up to the first row fell from 48-60 CPU-s to 30-35, and CPU per revision did not
change measurably; C2 compiles are most of what a fresh JVM burns in its first minute, and
a local run (a demo, a test, a backfill) is over before they pay back. On MSF the service
owns the JVM; none of this applies there.
"""
from __future__ import annotations

import os
from typing import MutableMapping

JVM_ARGS_ENV = "JVM_ARGS"
LOCAL_JVM_ARGS = ("-XX:TieredStopAtLevel=1",)


def apply_local_jvm_defaults(environ: MutableMapping[str, str] = os.environ) -> str:
    """Set ``JVM_ARGS`` to the local defaults unless the user set it; returns what applies."""
    if JVM_ARGS_ENV not in environ:
        environ[JVM_ARGS_ENV] = " ".join(LOCAL_JVM_ARGS)
    return environ[JVM_ARGS_ENV]
