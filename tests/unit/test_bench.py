"""The benchmark's pure parts and its delay proxy (a real TCP proxy on loopback, no services)."""
from __future__ import annotations

import socket
import threading
import time

from connectors.qldb_records import decode_record
from connectors.row_images import CURRENT, HISTORY
from job import bench, bench_consumers, bench_profile, bench_report, delay_proxy
from job.simulate import WorkloadSpec, delivery, encode, generate


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
        "run (threading.py:1);process_element (job/writer_function.py:63);get (pyflink/fn_execution/state_impl.py:9)"
    ).startswith("state access")
    assert bench_profile.kind_of(
        "flat_map (job/decode_function.py:40);loads (amazon/ion/simpleion.py:500)").startswith("Ion decoding")
    assert bench_profile.kind_of(
        "_flush (job/writer_function.py:83);write (connectors/mysql_writer.py:150);_read_bytes (pymysql/connections.py:1)"
    ).startswith("SQL")
    assert bench_profile.kind_of("map (job/pipeline.py:120)").startswith("other ledgersync")
    assert bench_profile.kind_of("sleep (time.py:1)") == bench_profile.OTHER
    counts = bench_profile.summarize_raw(["a (job/x.py:1);b (pymysql/c.py:2) 7\n", "x (amazon/ion/y.py:3) 3\n",
                                          "garbage\n"])
    assert counts == {"SQL (writer, pymysql)": 7, "Ion decoding (amazon-ion, KPL, Ion->JSON)": 3}


def _result(ls_loop=9000.0, ls_delay=8000.0, rec_loop=3000.0, rec_delay=700.0, read=40000.0, database=15000.0):
    def part(rate, **extra):
        return {"revisions_per_s": rate, "seconds": 1.0, **extra}

    check = {"ok": True, "current_rows": 1, "history_rows": 1, "problems": []}
    return {
        "workload": {"revisions": 1000, "records": 1050, "shards": 4, "tables": 2},
        "proxy": {"rtt_ms_asked": 1.0, "rtt_ms_added_measured": 1.1},
        "ledgersync": {
            "loopback": part(ls_loop, peak_rss_mib=1100.0, running_to_first_row_s=3.0, check=check),
            "delayed": part(ls_delay, peak_rss_mib=1000.0, running_to_first_row_s=3.0, check=check)},
        "per_record": {"loopback": part(rec_loop, processes=4, retries=0, check=check),
                       "delayed": part(rec_delay, processes=4, retries=2, check=check)},
        "ceilings": {"read": part(read), "database": part(database, check=check),
                     "database_delayed": part(database / 2, check=check)},
        "latency": {"rate_asked": 1000, "rate_put": 998.0, "p50_ms": 400.0, "p99_ms": 2500.0, "max_ms": 2600.0,
                    "measured": 30000},
    }


def test_ratios_and_targets():
    result = _result()
    result["ratios"] = bench_report.ratios(result)
    assert result["ratios"] == {"ledgersync_vs_per_record_loopback": 3.0,
                                "ledgersync_vs_per_record_delayed": 11.43,
                                "ledgersync_vs_min_ceiling": 0.6}
    targets = bench_report.targets(result)
    assert targets["per_record_delayed_x"]["met"] is True
    assert targets["per_record_loopback_x"]["met"] is True
    assert targets["min_ceiling_fraction"]["met"] is True
    assert targets["p99_latency_ms"] == {"goal": 2000, "value": 2500.0, "met": False}
    assert targets["peak_rss_mib"] == {"goal": 1536, "value": 1100.0, "met": True}


def test_missing_parts_are_not_measured_rather_than_failed():
    result = {"ledgersync": {"loopback": {"revisions_per_s": 100.0}}}
    result["ratios"] = bench_report.ratios(result)
    assert set(result["ratios"].values()) == {None}
    assert all(t["met"] is None for name, t in bench_report.targets(result).items() if name != "peak_rss_mib")


def test_table_names_every_figure():
    result = _result()
    result["ratios"] = bench_report.ratios(result)
    result["targets"] = bench_report.targets(result)
    table = bench_report.format_table(result)
    for text in ("ledgersync, loopback", "ledgersync, +1 ms RTT", "per-record consumer, loopback",
                 "per-record consumer, +1 ms RTT", "ceiling: bare GetRecords loop",
                 "ceiling: batched upserts, no Flink, loopback", "p50 400.0 ms", "p99 2500.0 ms",
                 "9,000", "3,000", "700", "40,000", "15,000", "11.43x", "NOT met"):
        assert text in table, text


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
    from job.bench_stream import shard_of

    half = 2 ** 127
    ranges = [("shard-0", 0, half - 1), ("shard-1", half, 2 ** 128 - 1)]
    # MD5("a") starts with 0x0c..., MD5("b") with 0x92...
    assert shard_of("a", ranges) == "shard-0"
    assert shard_of("b", ranges) == "shard-1"
