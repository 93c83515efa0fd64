"""The benchmark's figures as ratios, the issue's targets (met or not) and one table."""
from __future__ import annotations

from typing import Optional


def ratios(result: dict) -> dict:
    ls, rec, ceil = result.get("ledgersync", {}), result.get("per_record", {}), result.get("ceilings", {})

    def rate(part: dict, key: str) -> Optional[float]:
        return (part.get(key) or {}).get("revisions_per_s")

    def ratio(a, b):
        return round(a / b, 2) if a and b else None

    ceilings = [r for r in (rate(ceil, "read"), rate(ceil, "database")) if r]
    return {
        "ledgersync_vs_per_record_loopback": ratio(rate(ls, "loopback"), rate(rec, "loopback")),
        "ledgersync_vs_per_record_delayed": ratio(rate(ls, "delayed"), rate(rec, "delayed")),
        "ledgersync_vs_min_ceiling": ratio(rate(ls, "loopback"), min(ceilings) if ceilings else None),
    }


def targets(result: dict) -> dict:
    """The issue's targets on this machine, each met or not (None: not measured)."""
    r, latency = result["ratios"], result.get("latency", {})
    peak = max([p.get("peak_rss_mib") or 0 for p in result.get("ledgersync", {}).values()] + [0]) or None

    def at_least(value, goal):
        return {"goal": goal, "value": value, "met": None if value is None else value >= goal}

    def below(value, goal):
        return {"goal": goal, "value": value, "met": None if value is None else value < goal}

    return {
        "per_record_delayed_x": at_least(r["ledgersync_vs_per_record_delayed"], 10),
        "per_record_loopback_x": at_least(r["ledgersync_vs_per_record_loopback"], 3),
        "min_ceiling_fraction": at_least(r["ledgersync_vs_min_ceiling"], 0.5),
        "p99_latency_ms": below(latency.get("p99_ms"), 2000),
        "peak_rss_mib": below(peak, 1536),
    }


def format_table(result: dict) -> str:
    work = result.get("workload", {})
    rtt = result.get("proxy", {})
    delayed = f"+{rtt.get('rtt_ms_asked', '?'):g} ms RTT (measured {rtt.get('rtt_ms_added_measured', '?')} ms)"
    rows = []

    def add(name: str, part: Optional[dict], note: str = "") -> None:
        if part is None:
            return
        check = part.get("check")
        ok = "" if check is None else ("ok" if check["ok"] else "WRONG: " + "; ".join(check["problems"])[:60])
        rows.append((name, f"{part['revisions_per_s']:,.0f}", f"{part['seconds']:.1f}", ", ".join(
            x for x in (note, ok) if x)))

    ls, rec, ceil = result.get("ledgersync", {}), result.get("per_record", {}), result.get("ceilings", {})
    for label, text in (("loopback", "loopback"), ("delayed", delayed)):
        part = ls.get(label)
        add(f"ledgersync, {text}", part, part and f"peak RSS {part['peak_rss_mib']:,.0f} MiB, "
            f"first row after {part['running_to_first_row_s']:.1f}s")
    for label, text in (("loopback", "loopback"), ("delayed", delayed)):
        part = rec.get(label)
        add(f"per-record consumer, {text}", part, part and f"{part['processes']} processes, "
            f"{part['retries']} retries")
    add("ceiling: bare GetRecords loop", ceil.get("read"))
    add("ceiling: batched upserts, no Flink, loopback", ceil.get("database"))
    add(f"(batched upserts, no Flink, {delayed})", ceil.get("database_delayed"))
    width = max([len(r[0]) for r in rows] + [10])
    lines = [f"ledgersync bench, {result.get('date', '')}: {work.get('revisions', '?'):,} revisions "
             f"({work.get('records', '?'):,} records with duplicates) over {work.get('shards', '?')} shards, "
             f"{work.get('tables', '?')} tables, history on",
             f"{'':{width}}  {'revisions/s':>12}  {'seconds':>8}  notes"]
    for name, rate, seconds, note in rows:
        lines.append(f"{name:{width}}  {rate:>12}  {seconds:>8}  {note}")
    latency = result.get("latency")
    if latency:
        lines.append(f"latency at {latency['rate_asked']:,}/s (put {latency['rate_put']:,.0f}/s): "
                     f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, max {latency['max_ms']} ms "
                     f"over {latency['measured']:,} revisions")
    ratio = result.get("ratios", {})
    if ratio:
        lines.append("ledgersync / per-record: loopback {}x, {} {}x; ledgersync / min(ceilings): {}".format(
            ratio.get("ledgersync_vs_per_record_loopback"), delayed,
            ratio.get("ledgersync_vs_per_record_delayed"), ratio.get("ledgersync_vs_min_ceiling")))
    for name, target in result.get("targets", {}).items():
        state = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        lines.append(f"target {name}: {target['value']} (goal {target['goal']}): {state}")
    for part, error in result.get("errors", {}).items():
        lines.append(f"part {part} FAILED: {error.splitlines()[0][:200]}")
    return "\n".join(lines)
