"""`ledgersync bench`: ledgersync beside a per-record and a batched consumer and beside what
the stream and the database can take, on the local services, with one pre-loaded stream.

Parts (all but soak by default, in this order):
- ceilings: a bare GetRecords loop over every shard (one process per shard), and the
  same rows as ledgersync's batched guarded upserts with no Flink (its own writer, one
  connection), at loopback and through the delay proxy;
- per-record: a Lambda-style consumer, one process per shard (Lambda runs one
  invocation per shard), per revision SELECT ... FOR UPDATE then REPLACE INTO,
  commit per 10 revisions; at loopback and through the delay proxy;
- batched: what a careful engineer writes in a Lambda today, one process per shard:
  GetRecords of up to 10,000, the newest revision per document in the batch,
  ledgersync's own writer (guarded multi-row upserts, insert-once history), a commit
  per batch; at loopback and through the delay proxy;
- ledgersync: ``ledgersync run --until-caught-up --parallelism N`` with history on, at
  loopback for each N of ``--parallelism`` (1 and 2) and with ``sink.mysql.port``
  pointing at the delay proxy (the first N); revisions/s from the job's start (the run
  prints "job ... running") to the last row written (the writer's status board), and
  the peak RSS of the whole process tree;
- latency: a fresh stream and a running job; revisions put at a fixed rate, each with
  its put time; put-to-written time from MySQL's own clock at insert;
- soak (only when asked for): a running job fed at 1,000/s for 10 minutes, RSS of its
  process tree and its lag (from MySQL) every 10 s, a table and a PNG plot.

Every row has CPU per revision: the CPU seconds of that consumer's own processes (psutil;
not MariaDB's, not the endpoint's) over its writing, divided by revisions (see
``ShardRun`` and ``part_ledgersync`` for the spans).

Every consumer writes into its own fresh database ``bench_<id>_<part>`` and is checked
afterwards (every document at its newest version, every distinct revision once in
history). Streams are ``bench-<id>``, ``bench-<id>-latency`` and ``bench-<id>-soak``;
all are removed at the end unless ``--keep``.
"""
from __future__ import annotations

import datetime as _dt
import json
import multiprocessing
import os
import platform
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from connectors.mysql.client import MySqlSettings
from connectors.formats.qldb import decode_record
from job.cli.tools.bench import consumers as db
from job.cli.tools.bench import stream as ks
from job.cli.tools.bench.cpu import cpu_between, own_cpu_seconds, us_per_revision
from job.cli.tools.bench.job_run import JobRun, process_tree_rss
from job.cli.tools.bench.profile import cpu_by_kind, service_cpu_seconds
from job.cli.tools.bench.report import format_table, ratios, targets
from job.cli.tools.delay_proxy import DelayProxy
from job.cli.local.runner import DEFAULT_LOCAL_DIR
from job.cli.tools.simulate.qldb import TABLE_NAMES, WorkloadSpec, delivery, encode, simulate_qldb

PARTS = ("ceilings", "per-record", "batched", "ledgersync", "latency", "soak")
# The soak takes 10 minutes by default: only when asked for (--parts soak).
DEFAULT_PARTS = tuple(p for p in PARTS if p != "soak")
# The parts that read the pre-loaded stream (latency and soak put their own).
PRELOADED_PARTS = {"ceilings", "per-record", "batched", "ledgersync"}


@dataclass
class BenchOptions:
    revisions: int = 20_000  # distinct revisions; duplicates come on top
    shards: int = 4
    tables: int = 2
    versions: int = 5  # revisions per document
    duplicates: float = 0.05
    seed: int = 1
    rtt_ms: float = 1.0
    batch_rows: int = 1000  # sink.batch.max.rows, also the ceiling's batch
    latency_rate: int = 1000
    latency_seconds: float = 30.0
    latency_warmup_s: float = 5.0
    parts: tuple = DEFAULT_PARTS
    ledgersync_parallelism: tuple = (1, 2)  # loopback rows; the delayed row and the soak use the first
    soak_seconds: float = 600.0
    soak_rate: int = 1000
    timeout_s: float = 1800.0
    json_path: Optional[str] = None
    keep: bool = False
    py_spy_dir: Optional[str] = None  # record the Python operators of the loopback ledgersync run
    python_worker_mode: Optional[str] = None  # None: PyFlink's default (loopback on a local mini-cluster)

    def spec(self) -> WorkloadSpec:
        documents = max(1, self.revisions // (self.tables * self.versions))
        return WorkloadSpec(tables=self.tables, documents=documents, revisions=self.versions,
                            duplicates=self.duplicates, shuffle=True, seed=self.seed)


@dataclass
class Services:
    host: str
    port: int
    user: str
    password: str
    aws_endpoint: str

    def settings(self, database: str, port: Optional[int] = None) -> MySqlSettings:
        return MySqlSettings(host=self.host, port=port or self.port, database=database, user=self.user,
                             password=self.password, history=True)

    def admin(self):
        return db.admin_connection(self.host, self.port, self.user, self.password)


def local_services(say: Callable[[str], None] = print) -> Services:
    from job.cli.local import services as s
    services = Services(s.HOST, s.MYSQL_PORT, s.MYSQL_USER, s.MYSQL_PASSWORD, s.aws_endpoint())
    try:
        s.up()
    except s.ServiceError as exc:
        # Shared services can be slow to answer services up's probes while others load
        # them; a Kinesis call and a MySQL login that answer are all the benchmark needs.
        try:
            ks.kinesis(services.aws_endpoint).list_streams(Limit=1)
            services.admin().close()
        except Exception:
            raise exc from None
        say(f"services up said: {exc}; MariaDB and Kinesis answer, going on")
    return services


def round_trip_ms(services: Services, port: int, samples: int = 300) -> float:
    """Median ``SELECT 1`` round trip through ``port``."""
    conn = db.admin_connection(services.host, port, services.user, services.password)
    times = []
    try:
        with conn.cursor() as cursor:
            for _ in range(samples):
                started = time.perf_counter()
                cursor.execute("SELECT 1")
                cursor.fetchall()
                times.append(time.perf_counter() - started)
    finally:
        conn.close()
    return sorted(times)[len(times) // 2] * 1000.0


# --- per-shard worker processes (per-record and batched consumers, read ceiling) ----------

def shard_worker(mode: str, endpoint: str, stream: str, shard_id: str, settings: Optional[MySqlSettings],
                 ready, start, results) -> None:
    """One shard, as one Lambda invocation would have it: read to the tip, and apply each
    revision (mode ``per-record``) or each GetRecords batch (mode ``batched``). Reports
    a dict: counts, retries, and (time, own CPU seconds) at the start, at its first and
    last commit and at the end, for CPU per revision between the first and last row."""
    report = {"shard": shard_id, "records": 0, "revisions": 0, "retries": 0, "error": None,
              "first_commit": None, "last_commit": None}
    try:
        client = ks.kinesis(endpoint)
        consumer = None
        if mode == "per-record":
            consumer = db.PerRecordConsumer(settings)
            consumer.connect()  # now, so the timed part starts warm
        elif mode == "batched":
            consumer = db.BatchedConsumer(settings)
        ready.put(shard_id)
        start.wait()
        report["start"] = _mark()
        limit = ks.MAX_READ_LIMIT if mode == "batched" else ks.READ_LIMIT
        committed = 0
        for batch in ks.read_to_tip(client, stream, shard_id, limit):
            report["records"] += len(batch)
            if mode == "per-record":
                for revision in ks.revisions_of(batch):
                    consumer.apply(revision)
                    report["revisions"] += 1
                    if consumer.applied != committed:  # it just committed
                        committed = consumer.applied
                        _note_commit(report)
            elif mode == "batched":
                revisions = list(ks.revisions_of(batch))
                consumer.apply_batch(revisions)
                report["revisions"] += len(revisions)
                _note_commit(report)
        if mode == "per-record":
            consumer.flush()
            if consumer.applied != committed:
                _note_commit(report)
        if consumer is not None:
            report["retries"] = consumer.retries
            consumer.close()
        report["end"] = _mark()
    except BaseException as exc:  # reported to the parent, which fails the run with it
        ready.put(shard_id)
        report["error"] = f"{type(exc).__name__}: {exc}"
        report.setdefault("end", _mark())
    results.put(report)


def _mark() -> tuple:
    return time.time(), own_cpu_seconds()


def _note_commit(report: dict) -> None:
    mark = _mark()
    report["first_commit"] = report["first_commit"] or mark
    report["last_commit"] = mark


@dataclass
class ShardRun:
    seconds: float  # start signal to the last worker's end
    records: int
    revisions: int
    retries: int
    processes: int = 0
    cpu_s: float = 0.0  # the workers' CPU from the start signal to the last row written (or their end)
    rows_seconds: Optional[float] = None  # first row written (any worker) to the last
    cpu_rows_s: Optional[float] = None  # the workers' CPU over that span

    def figures(self) -> dict:
        """The JSON figures every shard-worker row has, CPU per revision included."""
        count = self.revisions or self.records
        out = {"revisions_per_s": _rate(count, self.seconds), "seconds": round(self.seconds, 2),
               "processes": self.processes, "cpu_seconds": round(self.cpu_s, 2),
               "cpu_us_per_revision": us_per_revision(self.cpu_s, count)}
        if self.cpu_rows_s is not None:
            out.update(first_to_last_row_s=round(self.rows_seconds, 2),
                       cpu_seconds_first_to_last_row=round(self.cpu_rows_s, 2),
                       cpu_us_per_revision_first_to_last_row=us_per_revision(self.cpu_rows_s, count))
        return out


def shard_run_of(reports: list, started: float) -> ShardRun:
    """Sum the workers' reports. CPU counts from the start signal: the workers connect
    before it, so nothing before it is start-up, and from the first row written on
    only would leave out a whole GetRecords batch per worker (a third of the work of a
    25,000-record shard read 10,000 at a time). The literal first-to-last-row figure is
    kept beside it."""
    series = [[p for p in (r.get("start"), r.get("first_commit"), r.get("last_commit"), r.get("end")) if p]
              for r in reports]
    commits = [r for r in reports if r.get("first_commit")]
    last = max(r["last_commit"][0] for r in commits) if commits else max(r["end"][0] for r in reports)
    run = ShardRun(seconds=max(r["end"][0] for r in reports) - started,
                   records=sum(r["records"] for r in reports), revisions=sum(r["revisions"] for r in reports),
                   retries=sum(r["retries"] for r in reports), processes=len(reports),
                   cpu_s=cpu_between(series, started, last))
    if commits:
        first = min(r["first_commit"][0] for r in commits)
        run.rows_seconds = last - first
        run.cpu_rows_s = cpu_between(series, first, last)
    return run


def run_shard_workers(mode: str, endpoint: str, stream: str, shard_ids: list,
                      settings: Optional[MySqlSettings], timeout_s: float) -> ShardRun:
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked boto3 or sockets
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    workers = [ctx.Process(target=shard_worker, args=(mode, endpoint, stream, shard, settings, ready, start, results),
                           daemon=True) for shard in shard_ids]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            ready.get(timeout=120)
        started = time.time()
        start.set()
        done = [results.get(timeout=timeout_s) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()
    errors = [f"{d['shard']}: {d['error']}" for d in done if d["error"]]
    if errors:
        raise RuntimeError(f"{mode} worker failed: {'; '.join(errors)}")
    return shard_run_of(done, started)


# --- ledgersync runs ----------------------------------------------------------------------

def write_properties(path: str, *, services: Services, stream: str, database: str, mysql_port: int,
                     batch_rows: int) -> str:
    groups = [
        {"PropertyGroupId": "source", "PropertyMap": {
            "stream.name": stream, "aws.region": "us-east-1", "aws.endpoint": services.aws_endpoint,
            "initial.position": "TRIM_HORIZON"}},
        {"PropertyGroupId": "sink", "PropertyMap": {
            "mysql.host": services.host, "mysql.port": str(mysql_port), "mysql.database": database,
            "mysql.user": services.user, "mysql.password": services.password,
            "batch.max.rows": str(batch_rows)}},
        {"PropertyGroupId": "replication", "PropertyMap": {"history": "true"}},
    ]
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(groups, handle, indent=2)
    return path


# --- the benchmark ---------------------------------------------------------------------

@dataclass
class Context:
    options: BenchOptions
    services: Services
    run_id: str
    work_dir: str
    stream: str
    records: int = 0
    revisions: list = field(default_factory=list)  # decoded, in put order (duplicates included)
    expected: Optional[db.Expected] = None
    proxy: Optional[DelayProxy] = None
    databases: list = field(default_factory=list)
    say: Callable[[str], None] = print

    def database(self, part: str) -> str:
        name = f"bench_{self.run_id}_{part}"
        with self.services.admin() as conn:
            db.create_database(conn, name)
        self.databases.append(name)
        return name

    def check(self, database: str) -> dict:
        with self.services.admin() as conn:
            check = db.check_tables(conn, database, self.expected)
        if not check.ok:
            self.say(f"CHECK FAILED for {database}: {'; '.join(check.problems)}")
        return {"ok": check.ok, "current_rows": check.current_rows, "history_rows": check.history_rows,
                "problems": check.problems}


def _rate(records: int, seconds: float) -> float:
    return round(records / seconds, 1) if seconds > 0 else 0.0


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            models = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        info["cpu_model"] = models[0] if models else "?"
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kib = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(kib / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return info


def preload(ctx: Context) -> dict:
    options = ctx.options
    spec = options.spec()
    client = ks.kinesis(ctx.services.aws_endpoint)
    started = time.monotonic()
    generated = simulate_qldb(client, ctx.stream, spec, shards=options.shards,
                              out=lambda text: ctx.say(text))
    seconds = time.monotonic() - started
    put_order = delivery(spec, generated)
    ctx.records = len(put_order)
    ctx.revisions = [decode_record(encode(r)).revision for r in put_order]
    tables = list(TABLE_NAMES[:spec.tables])
    ctx.expected = db.Expected(documents={t: spec.documents for t in tables}, newest_version=spec.revisions - 1,
                               history_rows={t: spec.documents * spec.revisions for t in tables})
    return {"revisions": len(generated), "records": ctx.records, "shards": options.shards, "tables": spec.tables,
            "documents": spec.tables * spec.documents, "versions_per_document": spec.revisions,
            "duplicates": spec.duplicates, "shuffled": spec.shuffle, "history": True,
            "stream": ctx.stream, "preload_s": round(seconds, 1)}


def part_ceilings(ctx: Context, out: dict) -> None:
    options, services = ctx.options, ctx.services
    shard_ids = ks.shard_ids(ks.kinesis(services.aws_endpoint), ctx.stream)
    ctx.say(f"ceiling: bare GetRecords loop over {len(shard_ids)} shards ...")
    read = run_shard_workers("read", services.aws_endpoint, ctx.stream, shard_ids, None, options.timeout_s)
    out["read"] = {**read.figures(), "records": read.records}
    ctx.say(f"ceiling: read {read.records} records in {read.seconds:.1f}s")
    batches = db.ceiling_batches(ctx.revisions, options.batch_rows)
    for label, port in (("loopback", services.port), ("delayed", ctx.proxy.port)):
        database = ctx.database(f"ceil_{label[:4]}")
        ctx.say(f"ceiling: batched guarded upserts, {label}, {len(batches)} batches ...")
        cpu_before = time.thread_time()  # this thread only: the delay proxy's threads share the process
        run = db.upsert_ceiling(services.settings(database, port), batches)
        cpu = time.thread_time() - cpu_before
        out["database" if label == "loopback" else "database_delayed"] = {
            "revisions_per_s": _rate(ctx.records, run.seconds), "seconds": round(run.seconds, 2),
            "batches": run.batches, "retries": run.retries, "cpu_seconds": round(cpu, 2),
            "cpu_us_per_revision": us_per_revision(cpu, ctx.records), "check": ctx.check(database)}
        ctx.say(f"ceiling: {label}: {ctx.records} revisions in {run.seconds:.1f}s")


def part_per_record(ctx: Context, out: dict) -> None:
    options, services = ctx.options, ctx.services
    shard_ids = ks.shard_ids(ks.kinesis(services.aws_endpoint), ctx.stream)
    for label, port in (("loopback", services.port), ("delayed", ctx.proxy.port)):
        database = ctx.database(f"rec_{label[:4]}")
        db.PerRecordConsumer(services.settings(database)).create_tables(ctx.expected.documents)
        ctx.say(f"per-record consumer, {label}, {len(shard_ids)} processes ...")
        run = run_shard_workers("per-record", services.aws_endpoint, ctx.stream, shard_ids,
                                services.settings(database, port), options.timeout_s)
        out[label] = {**run.figures(), "revisions": run.revisions, "retries": run.retries,
                      "check": ctx.check(database)}
        ctx.say(f"per-record consumer, {label}: {run.revisions} revisions in {run.seconds:.1f}s, "
                f"{out[label].get('cpu_us_per_revision')} µs CPU per revision")


def part_batched(ctx: Context, out: dict) -> None:
    """One process per shard, GetRecords of up to 10,000, newest per document in the
    batch, ledgersync's writer, a commit per batch: the tables are the writer's own."""
    options, services = ctx.options, ctx.services
    shard_ids = ks.shard_ids(ks.kinesis(services.aws_endpoint), ctx.stream)
    for label, port in (("loopback", services.port), ("delayed", ctx.proxy.port)):
        database = ctx.database(f"bat_{label[:4]}")
        ctx.say(f"batched consumer, {label}, {len(shard_ids)} processes ...")
        run = run_shard_workers("batched", services.aws_endpoint, ctx.stream, shard_ids,
                                services.settings(database, port), options.timeout_s)
        out[label] = {**run.figures(), "revisions": run.revisions, "retries": run.retries,
                      "check": ctx.check(database)}
        ctx.say(f"batched consumer, {label}: {run.revisions} revisions in {run.seconds:.1f}s, "
                f"{out[label].get('cpu_us_per_revision')} µs CPU per revision")


def ledgersync_runs(parallelisms: tuple) -> list:
    """(key, proxied, parallelism) of each ledgersync row: loopback at every parallelism
    asked, through the proxy at the first one. Parallelism 1 keeps the plain keys."""
    def key(base: str, p: int) -> str:
        return base if p == 1 else f"{base}_p{p}"

    return [(key("loopback", p), False, p) for p in parallelisms] + [(key("delayed", parallelisms[0]), True,
                                                                       parallelisms[0])]


def part_ledgersync(ctx: Context, out: dict) -> None:
    options, services = ctx.options, ctx.services
    for label, proxied, parallelism in ledgersync_runs(options.ledgersync_parallelism):
        port = ctx.proxy.port if proxied else services.port
        database = ctx.database(f"ls_{label[:4]}{label[-3:] if '_p' in label else ''}")
        properties = write_properties(os.path.join(ctx.work_dir, f"ledgersync-{label}.json"), services=services,
                                      stream=ctx.stream, database=database, mysql_port=port,
                                      batch_rows=options.batch_rows)
        profiler = None
        if options.py_spy_dir and label == "loopback":
            from job.cli.tools.bench.profile import Profiler

            profiler = Profiler(options.py_spy_dir)
        ctx.say(f"ledgersync, {label}: ledgersync run --until-caught-up --parallelism {parallelism} "
                f"(log {ctx.work_dir}/ledgersync-{label}.log) ...")
        services_before = service_cpu_seconds(services.port, _port_of(services.aws_endpoint))
        run = JobRun(properties, os.path.join(ctx.work_dir, f"ledgersync-{label}.log"),
                     os.path.join(ctx.work_dir, "checkpoints"), until_caught_up=True, timeout_s=options.timeout_s,
                     profiler=profiler, python_worker_mode=options.python_worker_mode, parallelism=parallelism)
        code = run.wait(options.timeout_s + 120)
        services_after = service_cpu_seconds(services.port, _port_of(services.aws_endpoint))
        summary = profiler.finish() if profiler else None
        if code != 0 or run.running_at is None or run.last_write is None:
            raise RuntimeError(f"ledgersync run ({label}) failed with exit code {code}:\n{run.log_tail()}")
        seconds = run.last_write - run.running_at
        # The job's own process tree only (not MariaDB, not the endpoint): start-up is launch
        # to the first row; the steady figure is the first row to the last.
        cpu_rows = cpu_between([run.cpu_series], run.first_write, run.last_write)
        cpu_startup = cpu_between([run.cpu_series], run.launched, run.first_write)
        out[label] = {
            "parallelism": parallelism,
            "revisions_per_s": _rate(ctx.records, seconds), "seconds": round(seconds, 2),
            "launch_to_running_s": round(run.running_at - run.launched, 2),
            "running_to_first_row_s": round(run.first_write - run.running_at, 2),
            "revisions_per_s_from_first_row": _rate(ctx.records, run.last_write - run.first_write),
            "peak_rss_mib": round(run.peak_rss / 2 ** 20, 1),
            "cpu_us_per_revision": us_per_revision(cpu_rows, ctx.records),
            "cpu_seconds_first_to_last_row": round(cpu_rows, 2),
            "startup_cpu_seconds": round(cpu_startup, 2),
            # Whole run, start-up included; the services' share includes other users' load.
            "cpu_seconds": {**cpu_by_kind(run.cpu), **{
                k: round(services_after[k] - services_before[k], 1) for k in services_after}},
            "cpu_seconds_before_first_row": run.cpu_at_first_row,
            "caught_up": run.caught_up_line, "check": ctx.check(database)}
        if summary:
            out[label]["profile"] = summary.splitlines()
            ctx.say(summary)
        ctx.say(f"ledgersync, {label}: {ctx.records} revisions in {seconds:.1f}s, "
                f"peak RSS {run.peak_rss / 2 ** 20:.0f} MiB, {out[label]['cpu_us_per_revision']} µs CPU per "
                f"revision after {cpu_startup:.1f} CPU-s of start-up")


def part_latency(ctx: Context, out: dict) -> None:
    options, services = ctx.options, ctx.services
    stream = f"{ctx.stream}-latency"
    client = ks.kinesis(services.aws_endpoint)
    ks.create_stream(client, stream, options.shards)
    tables = list(TABLE_NAMES[:options.tables])
    database = ctx.database("latency")
    with services.admin() as conn:
        db.prepare_latency_tables(conn, database, tables)
    properties = write_properties(os.path.join(ctx.work_dir, "ledgersync-latency.json"), services=services,
                                  stream=stream, database=database, mysql_port=services.port,
                                  batch_rows=options.batch_rows)
    ctx.say(f"latency: starting ledgersync on {stream} (log {ctx.work_dir}/ledgersync-latency.log) ...")
    run = JobRun(properties, os.path.join(ctx.work_dir, "ledgersync-latency.log"),
                 os.path.join(ctx.work_dir, "checkpoints"), until_caught_up=False, timeout_s=options.timeout_s,
                 python_worker_mode=options.python_worker_mode)
    try:
        deadline = time.monotonic() + 300
        while not readers_at_tip(run.board()):
            if run.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ledgersync (latency) never reached the tip:\n{run.log_tail()}")
            time.sleep(0.2)
        ctx.say(f"latency: job at the tip; putting {options.latency_rate}/s for "
                f"{options.latency_warmup_s:g}s warm-up + {options.latency_seconds:g}s")
        log = ks.put_at_rate(client, stream, rate=options.latency_rate, warmup_s=options.latency_warmup_s,
                             seconds=options.latency_seconds, tables=tables, say=ctx.say)
        deadline = time.monotonic() + 120
        while (visible := _history_count(services, database, tables)) < log.put:
            if run.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"only {visible} of {log.put} latency revisions visible in {database} "
                                   f"(writers report {run.written} rows written):\n{run.log_tail()}")
            time.sleep(0.5)
    finally:
        run.stop()
        if not options.keep:
            ks.delete_stream(client, stream)
    with services.admin() as conn:
        samples = db.latencies_ms(conn, database, tables, log.measured_from_us)
    out.update({
        "rate_asked": options.latency_rate, "rate_put": round(log.rate, 1), "late_put_ticks": log.late_ticks,
        "put": log.put, "measured": len(samples), "warmup_s": options.latency_warmup_s,
        "p50_ms": _round(db.percentile(samples, 0.50)), "p99_ms": _round(db.percentile(samples, 0.99)),
        # How long the PutRecords calls took (counted in the latency above: put time is the call's start).
        "put_call_p50_ms": _round(db.percentile(log.call_ms, 0.50)),
        "put_call_p99_ms": _round(db.percentile(log.call_ms, 0.99)),
        "max_ms": _round(max(samples) if samples else None),
        "peak_rss_mib": round(run.peak_rss / 2 ** 20, 1)})
    ctx.say(f"latency: p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms over {len(samples)} revisions")


def part_soak(ctx: Context, out: dict) -> None:
    """A running job fed at ``soak_rate`` for ``soak_seconds``: RSS and lag every 10 s."""
    from job.cli.tools.bench import soak as bench_soak
    options, services = ctx.options, ctx.services
    stream = f"{ctx.stream}-soak"
    client = ks.kinesis(services.aws_endpoint)
    ks.create_stream(client, stream, options.shards)
    tables = list(TABLE_NAMES[:options.tables])
    database = ctx.database("soak")
    with services.admin() as conn:
        db.prepare_latency_tables(conn, database, tables)  # with bench_written_at: latency over the soak too
    properties = write_properties(os.path.join(ctx.work_dir, "ledgersync-soak.json"), services=services,
                                  stream=stream, database=database, mysql_port=services.port,
                                  batch_rows=options.batch_rows)
    parallelism = options.ledgersync_parallelism[0]
    ctx.say(f"soak: starting ledgersync (parallelism {parallelism}) on {stream} "
            f"(log {ctx.work_dir}/ledgersync-soak.log) ...")
    run = JobRun(properties, os.path.join(ctx.work_dir, "ledgersync-soak.log"),
                 os.path.join(ctx.work_dir, "checkpoints"), until_caught_up=False, timeout_s=options.timeout_s,
                 python_worker_mode=options.python_worker_mode, parallelism=parallelism)
    log = ks.PutLog()
    try:
        # Ready when one probe revision has gone through the whole job into MySQL (seen
        # from MySQL, so this needs nothing of the job's reader).
        probes = _put_probe(client, stream, tables[0])
        deadline = time.monotonic() + 300
        while _history_count(services, database, tables) < probes:
            if run.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ledgersync (soak) wrote no probe row within 300 s:\n{run.log_tail()}")
            time.sleep(0.5)
        ctx.say(f"soak: job replicating; putting {options.soak_rate}/s for {options.soak_seconds:g}s")
        sampler = bench_soak.Sampler(rss_bytes=lambda: process_tree_rss(run.process.pid)[0], put=lambda: log.put,
                                     written=lambda: _history_count(services, database, tables) - probes,
                                     say=ctx.say)
        sampler.start()
        ks.put_at_rate(client, stream, rate=options.soak_rate, warmup_s=0.0, seconds=options.soak_seconds,
                       tables=tables, log=log)
        deadline = time.monotonic() + 300
        while _history_count(services, database, tables) - probes < log.put:
            if run.process.poll() is not None or time.monotonic() > deadline:
                break  # the last sample and the check below say how far it got
            time.sleep(0.5)
        samples = sampler.stop()
    finally:
        run.stop()
        if not options.keep:
            ks.delete_stream(client, stream)
    with services.admin() as conn:
        latencies = db.latencies_ms(conn, database, tables, log.measured_from_us)
    rate = options.soak_rate
    out.update({"rate_asked": rate, "rate_put": round(log.rate, 1), "seconds": options.soak_seconds,
                "put": log.put, "late_put_ticks": log.late_ticks, "parallelism": parallelism,
                "sample_every_s": bench_soak.SAMPLE_EVERY_S, "failed_samples": sampler.errors,
                "peak_rss_mib": round(run.peak_rss / 2 ** 20, 1),
                "all_written": bool(samples) and samples[-1].written >= log.put,
                "p50_ms": _round(db.percentile(latencies, 0.50)), "p99_ms": _round(db.percentile(latencies, 0.99)),
                **bench_soak.summary(samples, rate)})
    base = os.path.splitext(options.json_path)[0] if options.json_path else os.path.join(ctx.work_dir, "bench")
    out["plot"] = bench_soak.plot(
        samples, rate, base + "-soak.png",
        f"ledgersync soak: {rate:,}/s asked for {options.soak_seconds / 60:g} min (put {log.rate:,.0f}/s), "
        f"parallelism {parallelism}, "
        f"RSS growth over the last 80%: {_percent(out['rss_growth_last_80pct'])}")
    ctx.say(f"soak: plot in {out['plot']}")
    if not out["all_written"]:
        raise RuntimeError(f"soak: only {samples[-1].written if samples else 0} of {log.put} revisions in MySQL "
                           f"after putting stopped:\n{run.log_tail()}")


def _put_probe(client, stream: str, table: str) -> int:
    """Put one revision of a document the soak's putter never uses; returns how many (1)."""
    import random

    from connectors.formats.qldb_encode import encode_revision
    from job.cli.tools.simulate.qldb import document_id, put_records

    doc = document_id(random.Random(99))
    now = _dt.datetime.now(_dt.timezone.utc)
    put_records(client, stream, [(doc, encode_revision(
        table=table, document_id=doc, version=0, tx_id="soakprobe", tx_time=now,
        data={"put_us": ks.now_us(), "note": "soak probe"}, sequence_no=0))])
    return 1


def _percent(fraction: Optional[float]) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:+.1f}%"


def readers_at_tip(board: dict) -> bool:
    """Every shard the reader has listed is read to its tip (and it has listed some)."""
    shards = {}
    for status in board.values():
        if status.get("kind") == "reader":
            shards.update(status.get("shards") or {})
    return bool(shards) and all(s.get("at_tip") for s in shards.values())


def _history_count(services: Services, database: str, tables: list) -> int:
    with services.admin() as conn:  # a fresh connection each time: nothing cached between polls
        return db.history_count(conn, database, tables)


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _round(value: Optional[float], digits: int = 1) -> Optional[float]:
    return None if value is None else round(value, digits)


def run_bench(options: BenchOptions, say: Callable[[str], None] = None) -> dict:
    unknown = set(options.parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown bench part(s) {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    say = say or (lambda text: print(f"bench: {text}", flush=True))
    services = local_services(say)
    run_id = time.strftime("%m%d%H%M%S") + f"p{os.getpid()}"  # two runs in one second stay apart
    work_dir = os.path.join(DEFAULT_LOCAL_DIR, "bench", run_id)
    os.makedirs(work_dir, exist_ok=True)
    ctx = Context(options=options, services=services, run_id=run_id, work_dir=work_dir,
                  stream=f"bench-{run_id}", say=say)
    result: dict = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
                    "python_worker_mode": options.python_worker_mode or "PyFlink default (loopback locally)",
                    "command": ("ledgersync bench " + " ".join(sys.argv[2:])).strip() if sys.argv[1:2] == ["bench"] else ""}
    client = ks.kinesis(services.aws_endpoint)
    try:
        if set(options.parts) & PRELOADED_PARTS:
            say(f"pre-loading stream {ctx.stream} ...")
            result["workload"] = preload(ctx)
        load = LoadWatch()
        ctx.proxy = DelayProxy(services.port, options.rtt_ms)
        direct = round_trip_ms(services, services.port)
        through = round_trip_ms(services, ctx.proxy.port)
        result["proxy"] = {"rtt_ms_asked": options.rtt_ms, "rtt_ms_added_measured": round(through - direct, 3),
                           "select1_direct_ms": round(direct, 3), "select1_proxy_ms": round(through, 3)}
        say(f"delay proxy on port {ctx.proxy.port}: SELECT 1 {direct:.3f} ms direct, {through:.3f} ms through it")
        steps = {"ceilings": ("ceilings", part_ceilings), "per-record": ("per_record", part_per_record),
                 "batched": ("batched", part_batched), "ledgersync": ("ledgersync", part_ledgersync),
                 "latency": ("latency", part_latency), "soak": ("soak", part_soak)}
        for part in PARTS:
            if part in options.parts:
                key, step = steps[part]
                result[key] = {}
                try:
                    step(ctx, result[key])
                except Exception as exc:  # keep the other parts' figures; the run still fails
                    result.setdefault("errors", {})[part] = f"{type(exc).__name__}: {exc}"[:4000]
                    say(f"part {part} FAILED: {exc}")
        result["ratios"] = ratios(result)
        result["targets"] = targets(result)
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        result["load_average_1min_during"] = load.stop()
    finally:
        if ctx.proxy:
            ctx.proxy.close()
        if not options.keep:
            ks.delete_stream(client, ctx.stream)
            with services.admin() as conn:
                for name in ctx.databases:
                    db.drop_database(conn, name)
            shutil.rmtree(os.path.join(work_dir, "checkpoints"), ignore_errors=True)
    if options.json_path:
        with open(options.json_path, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    print(format_table(result), flush=True)
    if result.get("errors"):
        raise BenchFailed(f"bench part(s) failed: {', '.join(result['errors'])} (see above)")
    return result


class LoadWatch:
    """The 1-minute load average every few seconds while the parts run: the figures of a
    shared machine only mean something beside it."""

    def __init__(self, every_s: float = 5.0):
        self._values: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(every_s,), daemon=True, name="load-watch")
        self._thread.start()

    def _loop(self, every_s: float) -> None:
        while not self._stop.is_set():
            self._values.append(os.getloadavg()[0])
            self._stop.wait(every_s)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=10)
        values = self._values or [os.getloadavg()[0]]
        return {"min": round(min(values), 2), "median": round(sorted(values)[len(values) // 2], 2),
                "max": round(max(values), 2)}


class BenchFailed(RuntimeError):
    pass
