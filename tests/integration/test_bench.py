"""`ledgersync bench` end to end at a tiny size: every part runs on the real services and
a real mini-cluster, every consumer's result is checked, and the JSON holds every figure.
No assertion on speed: the figures only have to be there and be positive."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_runs_every_part_and_writes_every_figure(services, tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "job.cli", "bench", "--revisions", "300", "--shards", "2", "--versions", "3",
               "--latency-rate", "40", "--latency-seconds", "3", "--latency-warmup", "1", "--timeout", "300",
               "--json", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    figures = json.loads(out.read_text())

    assert figures["workload"]["revisions"] == 300
    assert figures["workload"]["records"] >= 300
    assert figures["machine"]["cpus"] >= 1
    assert figures["proxy"]["rtt_ms_added_measured"] > 0
    consumers = [figures["ledgersync"]["loopback"], figures["ledgersync"]["loopback_p2"],
                 figures["ledgersync"]["delayed"],
                 figures["per_record"]["loopback"], figures["per_record"]["delayed"],
                 figures["batched"]["loopback"], figures["batched"]["delayed"],
                 figures["ceilings"]["database"], figures["ceilings"]["database_delayed"]]
    for part in consumers + [figures["ceilings"]["read"]]:
        assert part["revisions_per_s"] > 0 and part["seconds"] > 0
    for part in consumers:
        assert part["check"]["ok"], part["check"]["problems"]
    assert figures["ceilings"]["read"]["records"] == figures["workload"]["records"]
    for part in consumers:
        assert part["cpu_us_per_revision"] > 0  # the consumer's own processes used some CPU
    for run in (figures["ledgersync"]["loopback"], figures["ledgersync"]["loopback_p2"],
                figures["ledgersync"]["delayed"]):
        assert run["peak_rss_mib"] > 100  # a JVM and Python workers: far more than nothing
        assert run["cpu_seconds"]["JVM (Flink runtime, Top-1 state)"] > 0
        assert run["startup_cpu_seconds"] > 0
    assert [figures["ledgersync"][k]["parallelism"] for k in ("loopback", "loopback_p2", "delayed")] == [1, 2, 1]
    latency = figures["latency"]
    assert latency["measured"] > 0 and latency["put"] >= latency["measured"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert all(value is not None for value in figures["ratios"].values()), figures["ratios"]
    assert set(figures["targets"]) == {"batched_loopback_x", "per_record_loopback_x", "per_record_delayed_x",
                                       "cpu_us_per_revision", "startup_cpu_seconds", "p99_latency_ms", "peak_rss_mib",
                                       "soak_rss_growth", "p2_vs_p1_x"}
    assert all(t["met"] is not None for name, t in figures["targets"].items() if name != "soak_rss_growth")
    assert "soak" not in figures  # off by default
    # The same figures are printed as one table.
    for text in ("ledgersync, loopback", "per-record consumer, loopback", "batched consumer, loopback",
                 "ceiling: bare GetRecords loop", "CPU µs/rev",
                 "ceiling: batched upserts", "latency at 40/s", "ledgersync / per-record"):
        assert text in result.stdout, text
    # Nothing is left behind: the bench's databases are dropped.
    import pymysql

    conn = pymysql.connect(host=services.HOST, port=services.MYSQL_PORT, user=services.MYSQL_USER,
                           password=services.MYSQL_PASSWORD)
    with conn.cursor() as cursor:
        run_id = figures["workload"]["stream"].split("-", 1)[1]
        cursor.execute("SHOW DATABASES LIKE %s", (f"bench\\_{run_id}\\_%",))
        assert cursor.fetchall() == ()
    conn.close()
