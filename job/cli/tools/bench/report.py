"""The benchmark's figures as ratios, issue 14's targets (met or not) and one table. Pure."""
from __future__ import annotations

from typing import Optional


def _rate(part: dict, key: str) -> Optional[float]:
    return (part.get(key) or {}).get("revisions_per_s")


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 2) if a and b else None


def ratios(result: dict) -> dict:
    ls, rec, ceil = result.get("ledgersync", {}), result.get("per_record", {}), result.get("ceilings", {})
    batched = result.get("batched", {})
    ceilings = [r for r in (_rate(ceil, "read"), _rate(ceil, "database")) if r]
    return {
        "ledgersync_vs_batched_loopback": ratio(_rate(ls, "loopback"), _rate(batched, "loopback")),
        "ledgersync_vs_batched_delayed": ratio(_rate(ls, "delayed"), _rate(batched, "delayed")),
        "ledgersync_vs_per_record_loopback": ratio(_rate(ls, "loopback"), _rate(rec, "loopback")),
        "ledgersync_vs_per_record_delayed": ratio(_rate(ls, "delayed"), _rate(rec, "delayed")),
        "ledgersync_vs_min_ceiling": ratio(_rate(ls, "loopback"), min(ceilings) if ceilings else None),
        # Above 1: a second subtask found CPU the first could not use.
        "ledgersync_p2_vs_p1_loopback": ratio(_rate(ls, "loopback_p2"), _rate(ls, "loopback")),
    }


def targets(result: dict) -> dict:
    """Issue 24's targets on this machine, each met or not (None: not measured). The keys
    of issue 14's targets stay (with issue 24's goals); start-up and p2/p1 are new."""
    r, latency = result["ratios"], result.get("latency", {})
    ls = result.get("ledgersync", {})
    runs = list(ls.values()) + [result.get("soak", {})]  # every job run that read to the end
    peak = max([p.get("peak_rss_mib") or 0 for p in runs] + [0]) or None

    def at_least(value, goal):
        return {"goal": goal, "value": value, "met": None if value is None else value >= goal}

    def at_most(value, goal):
        return {"goal": goal, "value": value, "met": None if value is None else value <= goal}

    def below(value, goal):
        return {"goal": goal, "value": value, "met": None if value is None else value < goal}

    return {
        "batched_loopback_x": at_least(r.get("ledgersync_vs_batched_loopback"), 1.0),
        "per_record_loopback_x": at_least(r.get("ledgersync_vs_per_record_loopback"), 2.5),
        "per_record_delayed_x": at_least(r.get("ledgersync_vs_per_record_delayed"), 5),
        "cpu_us_per_revision": at_most((ls.get("loopback") or {}).get("cpu_us_per_revision"), 120),
        "startup_cpu_seconds": at_most((ls.get("loopback") or {}).get("startup_cpu_seconds"), 12),
        "p99_latency_ms": below(latency.get("p99_ms"), 1000),
        "peak_rss_mib": below(peak, 1024),
        "soak_rss_growth": below(result.get("soak", {}).get("rss_growth_last_80pct"), 0.10),
        "p2_vs_p1_x": at_least(r.get("ledgersync_p2_vs_p1_loopback"), 1.0),
    }


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, (int, float)) else "?"


def format_table(result: dict) -> str:
    work = result.get("workload", {})
    rtt = result.get("proxy", {})
    asked = rtt.get("rtt_ms_asked")
    delayed = f"+{'?' if asked is None else f'{asked:g}'} ms RTT (measured {rtt.get('rtt_ms_added_measured', '?')} ms)"
    rows = []

    def add(name: str, part: Optional[dict], note: str = "") -> None:
        if part is None:
            return
        check = part.get("check")
        ok = "" if check is None else ("ok" if check["ok"] else "WRONG: " + "; ".join(check["problems"])[:60])
        cpu = part.get("cpu_us_per_revision")
        rows.append((name, f"{part['revisions_per_s']:,.0f}", f"{part['seconds']:.1f}",
                     "" if cpu is None else f"{cpu:,.0f}", ", ".join(x for x in (note, ok) if x)))

    ls, rec, ceil = result.get("ledgersync", {}), result.get("per_record", {}), result.get("ceilings", {})
    batched = result.get("batched", {})
    for label, part in ls.items():
        text = delayed if label.startswith("delayed") else "loopback"
        add(f"ledgersync, {text}, parallelism {part.get('parallelism', 1)}", part,
            f"peak RSS {part['peak_rss_mib']:,.0f} MiB, first row after {part['running_to_first_row_s']:.1f}s, "
            f"start-up {part.get('startup_cpu_seconds', 0):.1f} CPU-s")
    for name, part_set in (("per-record consumer", rec), ("batched consumer", batched)):
        for label, text in (("loopback", "loopback"), ("delayed", delayed)):
            part = part_set.get(label)
            add(f"{name}, {text}", part, part and f"{part['processes']} processes, {part['retries']} retries")
    add("ceiling: bare GetRecords loop", ceil.get("read"))
    add("ceiling: batched upserts, no Flink, loopback", ceil.get("database"))
    add(f"(batched upserts, no Flink, {delayed})", ceil.get("database_delayed"))
    width = max([len(r[0]) for r in rows] + [10])
    load = result.get("load_average_1min_during")
    lines = [f"ledgersync bench, {result.get('date', '')}"
             + (f": {_number(work.get('revisions'))} revisions ({_number(work.get('records'))} records with "
                f"duplicates) over {work.get('shards', '?')} shards, {work.get('tables', '?')} tables, history on"
                if work else "")
             + (f"; load average {load['min']} to {load['max']} during the run" if load else "")]
    if rows:
        lines.append(f"{'':{width}}  {'revisions/s':>12}  {'seconds':>8}  {'CPU µs/rev':>10}  notes")
    for name, rate, seconds, cpu, note in rows:
        lines.append(f"{name:{width}}  {rate:>12}  {seconds:>8}  {cpu:>10}  {note}")
    if rows:
        lines.append("(CPU µs/rev: CPU of the consumer's own processes per revision, not MariaDB's nor the "
                     "endpoint's; ledgersync from its first row written to its last, the others, connected "
                     "beforehand, from their start to their last row)")
    latency = result.get("latency")
    if latency:
        lines.append(f"latency at {latency['rate_asked']:,}/s (put {latency['rate_put']:,.0f}/s): "
                     f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, max {latency['max_ms']} ms "
                     f"over {latency['measured']:,} revisions")
    soak = result.get("soak")
    if soak and soak.get("samples"):
        growth = soak.get("rss_growth_last_80pct")
        lines.append(f"soak at {soak['rate_asked']:,}/s for {soak['seconds'] / 60:g} min (put {soak['rate_put']:,.0f}/s):"
                     f" RSS {soak['rss_mib_first']:,.0f} -> {soak['rss_mib_last']:,.0f} MiB, growth over the last 80% "
                     f"{'n/a' if growth is None else f'{100 * growth:+.1f}%'}, max lag {soak['max_lag_s']} s, "
                     f"p99 {soak.get('p99_ms')} ms; plot {soak.get('plot')}")
        lines.append(soak_table(soak))
    ratio = {k: ("n/a" if v is None else v) for k, v in result.get("ratios", {}).items()}
    if rows:
        lines.append("ledgersync / batched: loopback {}x, {} {}x; ledgersync / per-record: loopback {}x, {} {}x; "
                     "ledgersync / min(ceilings): {}; parallelism 2 / 1: {}x".format(
                         ratio.get("ledgersync_vs_batched_loopback"), delayed,
                         ratio.get("ledgersync_vs_batched_delayed"), ratio.get("ledgersync_vs_per_record_loopback"),
                         delayed, ratio.get("ledgersync_vs_per_record_delayed"),
                         ratio.get("ledgersync_vs_min_ceiling"), ratio.get("ledgersync_p2_vs_p1_loopback")))
    for name, target in result.get("targets", {}).items():
        state = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        lines.append(f"target {name}: {target['value']} (goal {target['goal']}): {state}")
    for part, error in result.get("errors", {}).items():
        lines.append(f"part {part} FAILED: {error.splitlines()[0][:200]}")
    return "\n".join(lines)


def soak_table(soak: dict) -> str:
    """The soak's samples (as in the JSON) as a small table."""
    lines = [f"  {'t (s)':>7}  {'RSS MiB':>8}  {'put':>9}  {'in MySQL':>9}  {'behind':>7}  {'lag (s)':>7}"]
    for s in soak["samples"]:
        lines.append(f"  {s['t_s']:7.0f}  {s['rss_mib']:8,.0f}  {s['put']:9,}  {s['written']:9,}  "
                     f"{s['behind']:7,}  {s['lag_s']:7.2f}")
    return "\n".join(lines)
