"""`ledgersync bench`: its arguments; the benchmark itself is job/cli/tools/bench/."""
from __future__ import annotations

import argparse
import sys

from job.cli.args import positive
from job.cli.tools.bench.main import DEFAULT_PARTS, PARTS, BenchFailed, BenchOptions, run_bench


def add_parser(commands) -> None:
    bench = commands.add_parser(
        "bench", help="benchmark ledgersync against a per-record and a batched consumer and the stream/database "
                      "ceilings",
        description="Pre-load one stream on the local services, then measure ledgersync (history on, at "
                    "parallelism 1 and 2), a per-record consumer, a batched consumer (GetRecords of 10,000, "
                    "ledgersync's writer, no Flink), a bare GetRecords loop and batched upserts without Flink, "
                    "at loopback and through a delay proxy, with CPU per revision for each, and put-to-visible "
                    "latency at a fixed rate. Prints one table. --parts soak (not run by default) feeds a "
                    "running job for --soak-minutes and samples its RSS and lag every 10 s (a table, and a "
                    "PNG next to --json).")
    bench.add_argument("--revisions", type=positive, default=20_000,
                       help="distinct revisions on the stream (default 20000, about 10 minutes here; 100000 for a longer run; duplicates on top)")
    bench.add_argument("--shards", type=positive, default=4, help="shards (default 4)")
    bench.add_argument("--tables", type=positive, default=2, help="QLDB tables (default 2, at most 6)")
    bench.add_argument("--versions", type=positive, default=5, help="revisions per document (default 5)")
    bench.add_argument("--duplicates", type=float, default=0.05, help="fraction put twice (default 0.05)")
    bench.add_argument("--rtt-ms", type=float, default=1.0,
                       help="round trip the delay proxy adds between a consumer and MariaDB (default 1)")
    bench.add_argument("--batch-rows", type=positive, default=1000,
                       help="sink.batch.max.rows for ledgersync and the ceiling's batch (default 1000)")
    bench.add_argument("--latency-rate", type=positive, default=1000,
                       help="revisions put per second in the latency part (default 1000)")
    bench.add_argument("--latency-seconds", type=float, default=30.0,
                       help="measured seconds of the latency part (default 30)")
    bench.add_argument("--latency-warmup", type=float, default=5.0,
                       help="seconds put before measuring (default 5)")
    bench.add_argument("--parts", default=None, metavar="LIST",
                       help=f"comma-separated subset of {','.join(PARTS)} (default: all but soak)")
    bench.add_argument("--parallelism", type=parallelisms, default=(1, 2), metavar="LIST",
                       help="ledgersync's loopback rows, one per parallelism (default 1,2); the +RTT row and "
                            "the soak run at the first")
    bench.add_argument("--soak-minutes", type=float, default=10.0,
                       help="how long the soak part puts (default 10; the growth figure looks at the last 80%%)")
    bench.add_argument("--soak-rate", type=positive, default=1000,
                       help="revisions put per second in the soak part (default 1000)")
    bench.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                       help="give up on one part after this long (default 1800)")
    bench.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON to FILE")
    bench.add_argument("--py-spy", default=None, metavar="DIR",
                       help="record the processes running the job's Python operators (loopback run) with "
                            "py-spy into DIR and print where their time goes")
    bench.add_argument("--python-worker-mode", choices=("loopback", "process"), default=None,
                       help="where the job's Python operators run: PyFlink's local default is loopback (threads "
                            "of the `ledgersync run` process); process runs them in Python worker processes, "
                            "as on a cluster")
    bench.add_argument("--keep", action="store_true", help="keep the bench databases, streams and checkpoints")
    bench.set_defaults(handler=bench_command)


def parallelisms(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of whole numbers, e.g. 1,2") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("every parallelism must be at least 1")
    return values


def bench_command(args) -> int:
    options = BenchOptions(
        revisions=args.revisions, shards=args.shards, tables=args.tables, versions=args.versions,
        duplicates=args.duplicates, rtt_ms=args.rtt_ms, batch_rows=args.batch_rows,
        latency_rate=args.latency_rate, latency_seconds=args.latency_seconds,
        latency_warmup_s=args.latency_warmup,
        parts=tuple(args.parts.split(",")) if args.parts else DEFAULT_PARTS,
        timeout_s=args.timeout, json_path=args.json, keep=args.keep, py_spy_dir=args.py_spy,
        python_worker_mode=args.python_worker_mode, ledgersync_parallelism=args.parallelism,
        soak_seconds=args.soak_minutes * 60.0, soak_rate=args.soak_rate)
    try:
        run_bench(options)
    except BenchFailed as exc:
        print(f"ledgersync: {exc}", file=sys.stderr)
        return 1
    return 0
