"""The benchmark's pure parts and its delay proxy (a real TCP proxy on loopback, no services)."""
from __future__ import annotations

import socket
import threading
import time

from connectors.formats.qldb import decode_record
from connectors.rows.row_images import CURRENT, HISTORY
from job.cli.tools import delay_proxy
from job.cli.tools.bench import consumers as bench_consumers
from job.cli.tools.bench import cpu as bench_cpu
from job.cli.tools.bench import main as bench
from job.cli.tools.bench import profile as bench_profile
from job.cli.tools.bench import report as bench_report
from job.cli.tools.bench import soak as bench_soak
from job.cli.tools.simulate.qldb import WorkloadSpec, delivery, encode, generate


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert bench_consumers.percentile(values, 0.50) == 50
    assert bench_consumers.percentile(values, 0.99) == 99
    assert bench_consumers.percentile(values, 1.0) == 100
    assert bench_consumers.percentile([7.0], 0.99) == 7.0
    assert bench_consumers.percentile([], 0.5) is None


def test_ceiling_batches_hold_a_current_and_a_history_image_per_revision():
    spec = WorkloadSpec(tables=2, documents=5, revisions=3, duplicates=0.2, shuffle=True)
    revisions = [decode_record(encode(r)).revision for r in delivery(spec, generate(spec))]
    batches = bench_consumers.ceiling_batches(revisions, batch_revisions=4)
    images = [i for b in batches for i in b]
    assert all(len(b) <= 8 for b in batches)
    assert sum(i.kind == CURRENT for i in images) == len(revisions)
    assert sum(i.kind == HISTORY for i in images) == len(revisions)


def test_spec_spreads_the_revisions_over_tables_and_versions():
    spec = bench.BenchOptions(revisions=100_000, tables=2, versions=5).spec()
    assert (spec.tables, spec.documents, spec.revisions, spec.shuffle) == (2, 10_000, 5, True)


def test_profile_kinds_pick_the_most_specific_work():
    assert bench_profile.kind_of(
        "run (threading.py:1);process_element (job/functions/writer.py:63);get (pyflink/fn_execution/state_impl.py:9)"
    ).startswith("state access")
    assert bench_profile.kind_of(
        "flat_map (job/functions/decode.py:40);loads (amazon/ion/simpleion.py:500)").startswith("Ion decoding")
    assert bench_profile.kind_of(
        "_flush (job/functions/writer.py:83);write (connectors/mysql/writer.py:150);_read_bytes (pymysql/connections.py:1)"
    ).startswith("SQL")
    assert bench_profile.kind_of("map (job/pipeline/assembly.py:120)").startswith("other ledgersync")
    assert bench_profile.kind_of("sleep (time.py:1)") == bench_profile.OTHER
    counts = bench_profile.summarize_raw(["a (job/x.py:1);b (pymysql/c.py:2) 7\n", "x (amazon/ion/y.py:3) 3\n",
                                          "garbage\n"])
    assert counts == {"SQL (writer, pymysql)": 7, "Ion decoding (amazon-ion, KPL, Ion->JSON)": 3}


def _result(ls_loop=9000.0, ls_delay=8000.0, rec_loop=3000.0, rec_delay=700.0, read=40000.0, database=15000.0,
            bat_loop=10000.0, bat_delay=9000.0, ls_p2=9900.0):
    def part(rate, **extra):
        return {"revisions_per_s": rate, "seconds": 1.0, **extra}

    check = {"ok": True, "current_rows": 1, "history_rows": 1, "problems": []}
    ls = dict(peak_rss_mib=1100.0, running_to_first_row_s=3.0, startup_cpu_seconds=20.0, check=check)
    return {
        "workload": {"revisions": 1000, "records": 1050, "shards": 4, "tables": 2},
        "proxy": {"rtt_ms_asked": 1.0, "rtt_ms_added_measured": 1.1},
        "ledgersync": {
            "loopback": part(ls_loop, parallelism=1, cpu_us_per_revision=140.0, **ls),
            "loopback_p2": part(ls_p2, parallelism=2, cpu_us_per_revision=160.0, **ls),
            "delayed": part(ls_delay, parallelism=1, cpu_us_per_revision=150.0,
                            **{**ls, "peak_rss_mib": 1000.0})},
        "per_record": {"loopback": part(rec_loop, processes=4, retries=0, cpu_us_per_revision=300.0, check=check),
                       "delayed": part(rec_delay, processes=4, retries=2, cpu_us_per_revision=400.0, check=check)},
        "batched": {"loopback": part(bat_loop, processes=4, retries=0, cpu_us_per_revision=77.0, check=check),
                    "delayed": part(bat_delay, processes=4, retries=1, cpu_us_per_revision=80.0, check=check)},
        "ceilings": {"read": part(read), "database": part(database, check=check),
                     "database_delayed": part(database / 2, check=check)},
        "latency": {"rate_asked": 1000, "rate_put": 998.0, "p50_ms": 400.0, "p99_ms": 2500.0, "max_ms": 2600.0,
                    "measured": 30000},
    }


def test_ratios_and_targets():
    result = _result()
    result["ratios"] = bench_report.ratios(result)
    assert result["ratios"] == {"ledgersync_vs_batched_loopback": 0.9,
                                "ledgersync_vs_batched_delayed": 0.89,
                                "ledgersync_vs_per_record_loopback": 3.0,
                                "ledgersync_vs_per_record_delayed": 11.43,
                                "ledgersync_vs_min_ceiling": 0.6,
                                "ledgersync_p2_vs_p1_loopback": 1.1}
    targets = bench_report.targets(result)
    # issue 24's goals
    assert targets["batched_loopback_x"] == {"goal": 1.0, "value": 0.9, "met": False}
    assert targets["per_record_delayed_x"]["met"] is True
    assert targets["per_record_loopback_x"] == {"goal": 2.5, "value": 3.0, "met": True}
    assert targets["cpu_us_per_revision"] == {"goal": 120, "value": 140.0, "met": False}
    assert targets["startup_cpu_seconds"] == {"goal": 12, "value": 20.0, "met": False}
    assert targets["p99_latency_ms"] == {"goal": 1000, "value": 2500.0, "met": False}
    assert targets["peak_rss_mib"] == {"goal": 1024, "value": 1100.0, "met": False}
    assert targets["p2_vs_p1_x"] == {"goal": 1.0, "value": 1.1, "met": True}
    assert targets["soak_rss_growth"]["met"] is None  # no soak in this run


def test_missing_parts_are_not_measured_rather_than_failed():
    result = {"ledgersync": {"loopback": {"revisions_per_s": 100.0}}}
    result["ratios"] = bench_report.ratios(result)
    assert set(result["ratios"].values()) == {None}
    assert all(t["met"] is None for name, t in bench_report.targets(result).items() if name != "peak_rss_mib")
    # A soak-only run has no workload and no rows: the table still prints.
    assert bench_report.format_table({"ratios": result["ratios"]}).startswith("ledgersync bench")


def test_table_names_every_figure():
    result = _result()
    result["ratios"] = bench_report.ratios(result)
    result["targets"] = bench_report.targets(result)
    table = bench_report.format_table(result)
    for text in ("ledgersync, loopback, parallelism 1", "ledgersync, loopback, parallelism 2",
                 "ledgersync, +1 ms RTT", "per-record consumer, loopback",
                 "per-record consumer, +1 ms RTT", "batched consumer, loopback", "batched consumer, +1 ms RTT",
                 "ceiling: bare GetRecords loop", "CPU µs/rev",
                 "ceiling: batched upserts, no Flink, loopback", "p50 400.0 ms", "p99 2500.0 ms",
                 "9,000", "3,000", "700", "10,000", "40,000", "15,000", "11.43x", "0.9x", "NOT met",
                 "start-up 20.0 CPU-s"):
        assert text in table, text
    batched_row = next(line for line in table.splitlines() if line.startswith("batched consumer, loopback"))
    assert batched_row.split()[3:6] == ["10,000", "1.0", "77"]  # rate, seconds, CPU µs per revision


def test_cpu_between_interpolates_each_process_and_clamps_outside_its_samples():
    a = [(10.0, 1.0), (20.0, 3.0)]  # 0.2 CPU-s per second between 10 and 20
    b = [(15.0, 0.0), (16.0, 1.0), (30.0, 1.0)]  # busy 15..16, then idle until it ends
    assert bench_cpu.cpu_at(a, 5.0) == 1.0
    assert bench_cpu.cpu_at(a, 15.0) == 2.0
    assert bench_cpu.cpu_at(a, 99.0) == 3.0
    assert bench_cpu.cpu_at([], 1.0) == 0.0
    assert bench_cpu.cpu_between([a, b], 12.0, 18.0) == 0.2 * 6 + 1.0
    assert bench_cpu.cpu_between([a], 18.0, 12.0) == 0.0
    assert bench_cpu.us_per_revision(0.5, 1000) == 500.0
    assert bench_cpu.us_per_revision(None, 1000) is None
    assert bench_cpu.us_per_revision(1.0, 0) is None


def _report(shard, start, first, last, end, revisions):
    return {"shard": shard, "records": revisions, "revisions": revisions, "retries": 0, "error": None,
            "start": start, "first_commit": first, "last_commit": last, "end": end}


def test_shard_run_counts_cpu_from_the_start_and_from_the_first_row():
    # Two workers, started at t=100 (CPU 1.0 each at their start mark).
    reports = [_report("a", (100.0, 1.0), (102.0, 3.0), (104.0, 5.0), (104.5, 5.1), 600),
               _report("b", (100.0, 1.0), (103.0, 2.5), (106.0, 4.0), (106.1, 4.0), 400)]
    run = bench.shard_run_of(reports, started=100.0)
    assert (run.records, run.revisions, run.processes) == (1000, 1000, 2)
    assert abs(run.seconds - 6.1) < 1e-9
    assert abs(run.cpu_s - (4.1 + 3.0)) < 1e-9  # start to the last row (t=106); a had ended at 104.5
    assert run.rows_seconds == 4.0  # first row 102 (a), last 106 (b)
    assert abs(run.cpu_rows_s - ((5.1 - 3.0) + (4.0 - 2.0))) < 1e-9  # b at 102: interpolated 2.0
    figures = run.figures()
    assert figures["cpu_us_per_revision"] == 7100.0
    assert figures["cpu_us_per_revision_first_to_last_row"] == 4100.0
    assert figures["revisions_per_s"] == round(1000 / 6.1, 1)
    # A read-only run (no commits): CPU from the start to the end, per record.
    reads = [{**r, "revisions": 0, "first_commit": None, "last_commit": None} for r in reports]
    figures = bench.shard_run_of(reads, started=100.0).figures()
    assert figures["cpu_us_per_revision"] == 7100.0 and "cpu_us_per_revision_first_to_last_row" not in figures


def test_batch_images_send_the_newest_current_image_per_document_and_every_history_image():
    from connectors.formats.qldb import Revision

    def rev(doc, version, table="A", redacted=False):
        return Revision(table=table, document_id=doc, version=version, tx_id=f"t{version}", tx_time=None,
                        data=None if redacted else {"v": version}, redacted=redacted)

    batch = [rev("d1", 1), rev("d1", 3), rev("d1", 2), rev("d2", 0), rev("d2", 0, table="B"),
             rev("d2", 5, redacted=True), rev("d1", 3)]
    images = bench_consumers.batch_images(batch)
    current = {(i.table, i.document_id): i.version for i in images if i.kind == CURRENT}
    assert current == {("A", "d1"): 3, ("A", "d2"): 0, ("B", "d2"): 0}  # a redaction never moves it
    assert sum(i.kind == HISTORY for i in images) == len(batch)  # the writer keeps each revision once
    assert not any(i.kind == HISTORY for i in bench_consumers.batch_images(batch, history=False))


def test_ledgersync_rows_per_parallelism_keep_the_plain_keys_at_one():
    assert bench.ledgersync_runs((1, 2)) == [("loopback", False, 1), ("loopback_p2", False, 2),
                                             ("delayed", True, 1)]
    assert bench.ledgersync_runs((2,)) == [("loopback_p2", False, 2), ("delayed_p2", True, 2)]
    import argparse

    import pytest

    from job.cli.bench import parallelisms

    assert parallelisms("1,2") == (1, 2)
    for bad in ("0", "1,x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parallelisms(bad)


def test_soak_is_off_by_default_and_its_flags_parse():
    from job.cli.main import build_parser

    args = build_parser().parse_args(["bench", "--parts", "soak", "--soak-minutes", "1", "--parallelism", "2"])
    assert (args.parts, args.soak_minutes, args.parallelism) == ("soak", 1.0, (2,))
    assert "soak" not in bench.BenchOptions().parts and "batched" in bench.BenchOptions().parts
    assert build_parser().parse_args(["bench"]).parallelism == (1, 2)


def _samples(rss):
    return [bench_soak.SoakSample(t_s=10.0 * i, rss_mib=m, put=1000 * i, written=1000 * i - 50 * (i % 2))
            for i, m in enumerate(rss)]


def test_soak_growth_looks_at_the_last_80_percent():
    # 0..100 s: the window starts at 20 s (1,000 MiB) and ends at 1,050 MiB; the warm-up's climb is left out.
    samples = _samples([600, 900, 1000, 1010, 1020, 1020, 1030, 1040, 1040, 1045, 1050])
    assert bench_soak.rss_growth(samples) == 0.05
    assert bench_soak.rss_growth(samples[:1]) is None
    assert bench_soak.rss_growth([]) is None
    assert samples[1].behind == 50 and samples[2].behind == 0
    assert bench_soak.SoakSample(0, 1.0, put=5, written=7).behind == 0  # the job counted ahead of the putter
    assert bench_soak.lag_seconds(samples[1], rate=1000) == 0.05
    summary = bench_soak.summary(samples, rate=1000)
    assert (summary["rss_mib_first"], summary["rss_mib_last"], summary["rss_mib_max"]) == (600, 1050, 1050)
    assert summary["max_behind"] == 50 and summary["max_lag_s"] == 0.05
    assert summary["samples"][1] == {"t_s": 10.0, "rss_mib": 900, "put": 1000, "written": 950, "behind": 50,
                                     "lag_s": 0.05}


def test_soak_table_and_plot(tmp_path):
    samples = _samples([600, 900, 1000, 1010])
    soak = {"rate_asked": 1000, "rate_put": 999.0, "seconds": 30.0, "p99_ms": 900.0,
            "plot": str(tmp_path / "b-soak.png"), **bench_soak.summary(samples, 1000)}
    table = bench_report.format_table({"soak": soak})
    assert "soak at 1,000/s for 0.5 min" in table and "growth over the last 80% +12.2%" in table  # from t=10 s (900 MiB)
    assert "t (s)" in table and "    20     1,000      2,000      2,000        0     0.00" in table
    path = bench_soak.plot(samples, 1000, soak["plot"], "test soak")
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


class _FakeKinesis:
    """GetRecords pages of a shard: a throttled call first, then the pages, then empty at the tip."""

    def __init__(self, pages):
        self.pages = list(pages)
        self.calls = 0

    def get_shard_iterator(self, **kwargs):
        assert kwargs["ShardIteratorType"] == "TRIM_HORIZON"
        return {"ShardIterator": "it-0"}

    def get_records(self, ShardIterator, Limit):
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls == 1:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "GetRecords")
        page = self.pages.pop(0) if self.pages else []
        records = [{"SequenceNumber": str(n), "Data": b"x", "PartitionKey": "k"} for n in page]
        return {"Records": records, "NextShardIterator": f"it-{self.calls}",
                "MillisBehindLatest": 100 if self.pages else 0}


def test_read_to_tip_is_a_plain_boto3_loop_that_stops_at_the_tip(monkeypatch):
    from job.cli.tools.bench import stream as bench_stream
    monkeypatch.setattr(bench_stream, "RETRY_WAIT_S", 0.0)
    client = _FakeKinesis([[1, 2], [3]])
    batches = list(bench_stream.read_to_tip(client, "s", "shard-1", limit=10_000))
    assert [[r.sequence_number for r in b] for b in batches] == [["1", "2"], ["3"]]
    assert batches[0][0] == bench_stream.ShardRecord("s", "shard-1", "1", b"x")
    assert client.calls == 4  # throttled, two pages, one empty call at the tip


def _echo_server() -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(65536), b"")],
                             daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def _round_trips(port: int, payload: bytes, n: int) -> list:
    times = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            started = time.perf_counter()
            sock.sendall(payload)
            received = b""
            while len(received) < len(payload):
                chunk = sock.recv(65536)
                assert chunk, "proxy closed the connection"
                received += chunk
            times.append(time.perf_counter() - started)
            assert received == payload
    return times


def test_delay_proxy_passes_bytes_unchanged_and_adds_at_least_the_round_trip():
    echo = _echo_server()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    rtt_ms = 20.0  # large beside scheduling noise, so the lower bound below is safe
    threading.Thread(target=delay_proxy.serve, args=(listener, "127.0.0.1", echo, rtt_ms), daemon=True).start()
    port = listener.getsockname()[1]
    times = _round_trips(port, b"x" * 10, 5)
    assert min(times) >= 0.9 * rtt_ms / 1000.0
    # A large message arrives whole and in order.
    big = bytes(range(256)) * 4096  # 1 MiB
    assert len(_round_trips(port, big, 1)) == 1


def test_readers_at_tip_needs_every_listed_shard_at_its_tip():
    assert not bench.readers_at_tip({})
    assert not bench.readers_at_tip({"reader": {"kind": "reader", "shards": {}}})
    board = {"reader": {"kind": "reader", "shards": {"a": {"at_tip": True}, "b": {"at_tip": False}}},
             "writer-0": {"kind": "writer", "written": 3}}
    assert not bench.readers_at_tip(board)
    board["reader"]["shards"]["b"]["at_tip"] = True
    assert bench.readers_at_tip(board)


def test_a_failed_part_is_named_in_the_table():
    result = _result()
    result["errors"] = {"latency": "RuntimeError: only 3 of 5 latency revisions visible\nlog..."}
    result["ratios"] = bench_report.ratios(result)
    assert "part latency FAILED: RuntimeError: only 3 of 5" in bench_report.format_table(result)


def test_putter_routes_partition_keys_like_kinesis():
    from job.cli.tools.bench.stream import shard_of

    half = 2 ** 127
    ranges = [("shard-0", 0, half - 1), ("shard-1", half, 2 ** 128 - 1)]
    # MD5("a") starts with 0x0c..., MD5("b") with 0x92...
    assert shard_of("a", ranges) == "shard-0"
    assert shard_of("b", ranges) == "shard-1"
