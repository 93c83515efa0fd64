"""`ledgersync run`: the job on a local mini-cluster, or submitted to a running cluster."""
from __future__ import annotations

import os
import sys
import time

from job.cli.args import DEFAULT_PROPERTIES, positive
from job.cli.errors import report_error
from job.config.properties import load_properties
from job.cli.project import PROJECT_ROOT


def add_parser(commands) -> None:
    run = commands.add_parser("run", help="run the job on a local Flink mini-cluster (or, with --jobmanager, "
                                          "on a running cluster)")
    run.add_argument("--properties", default=DEFAULT_PROPERTIES,
                     help="application properties JSON in the MSF format (default: %(default)s)")
    run.add_argument("--until-caught-up", action="store_true",
                     help="end once every shard is read to its tip and everything is written")
    run.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                     help="with --until-caught-up: fail if not caught up by then")
    run.add_argument("--from-savepoint", metavar="PATH", help="restore from this savepoint or checkpoint")
    run.add_argument("--from-latest-checkpoint", action="store_true",
                     help="restore from the newest complete checkpoint under --checkpoint-dir (any earlier run)")
    run.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                     help="where checkpoints go, one directory per job id (default: .local/checkpoints)")
    run.add_argument("--stop-with-savepoint", default=None, metavar="DIR",
                     help="when the run ends (caught up, Ctrl-C or SIGTERM), stop the job with a savepoint in DIR "
                          "instead of cancelling it")
    run.add_argument("--flink-conf", default=None, help="Flink config.yaml (default: flink-conf/config.yaml)")
    run.add_argument("--parallelism", type=positive, default=None, metavar="N",
                     help="the job's parallelism (default: parallelism.default in the Flink config, 1)")
    run.add_argument("--jobmanager", default=None, metavar="HOST:PORT",
                     help="submit to this running Flink cluster's REST endpoint (`ledgersync cluster up` starts "
                          "one) instead of a mini-cluster; it retries a lost TaskManager from the newest "
                          "checkpoint (exponential delay 1 s to 30 s, 30 attempts: about 13 minutes)")
    run.set_defaults(handler=run_command)


def run_command(args) -> int:
    from job.cli.local.preflight import preflight

    props = load_properties(args.properties)
    # Before PyFlink starts (about 20 s): a closed port, a refused login or a missing stream
    # is one or two lines and exit 2 (job/cli/errors.py reports what this raises).
    preflight(props, lambda text: print(f"ledgersync: {text}", flush=True))

    from job.cli.local.driver import JobFailed, remove_tmp_dirs
    from job.cli.local.runner import DEFAULT_FLINK_CONF, run_local  # PyFlink: only when it runs

    debug = getattr(args, "debug", False)
    log_path, user_stderr = (None, sys.stderr) if debug else _stderr_to_log()
    code = 0
    try:
        run_local(props, until_caught_up=args.until_caught_up,
                  flink_conf=args.flink_conf or DEFAULT_FLINK_CONF, timeout_s=args.timeout,
                  from_savepoint=args.from_savepoint, from_latest_checkpoint=args.from_latest_checkpoint,
                  checkpoint_dir=args.checkpoint_dir, stop_with_savepoint=args.stop_with_savepoint,
                  parallelism=args.parallelism, jobmanager=args.jobmanager)
    except JobFailed as exc:
        print(f"ledgersync: {exc}" + (f"\n  Flink's and the Python workers' output: {log_path}" if log_path else ""),
              file=user_stderr, flush=True)
        code = 1
    except Exception as exc:
        code = report_error(exc, command="run", debug=debug, stderr=user_stderr)
    remove_tmp_dirs()
    sys.stdout.flush()
    sys.stderr.flush()
    # PyFlink's Beam gRPC servers complain noisily at interpreter shutdown once the job
    # is cancelled; everything is flushed and cancelled by now, so leave at once.
    os._exit(code)


def _stderr_to_log():
    """Send this process's stderr (PyFlink's JVM inherits it, and Python workers in loopback
    mode log to it) to a file, so tracebacks do not bury the progress lines; returns the
    file's path and a stream on the user's own stderr for our messages."""
    directory = os.path.join(PROJECT_ROOT, ".local", "logs")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
    user = os.fdopen(os.dup(2), "w", buffering=1)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stderr.flush()
    os.dup2(log, 2)
    os.close(log)
    print(f"ledgersync: Flink's and the Python workers' output goes to {path} (--debug shows it here)", flush=True)
    return path, user
