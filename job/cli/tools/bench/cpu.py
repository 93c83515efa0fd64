"""CPU per revision for the benchmark: the CPU a consumer's own processes used between two
moments (its first and its last row written), from samples of their cumulative CPU time,
and the arithmetic on it. Pure functions, except ``own_cpu_seconds`` (psutil).

A series is a list of ``(unix time, cumulative CPU seconds)`` in time order; between two
samples CPU is taken to grow linearly, before the first sample it is the first value and
after the last one the last (a process that has ended uses no more).
"""
from __future__ import annotations

from typing import Iterable, Optional


def cpu_at(series: list, at: float) -> float:
    """Cumulative CPU seconds of one series at time ``at`` (linear between samples)."""
    if not series:
        return 0.0
    if at <= series[0][0]:
        return series[0][1]
    for (t0, c0), (t1, c1) in zip(series, series[1:]):
        if at <= t1:
            return c0 if t1 <= t0 else c0 + (c1 - c0) * (at - t0) / (t1 - t0)
    return series[-1][1]


def cpu_between(series_list: Iterable[list], start: float, end: float) -> float:
    """CPU seconds all the series (one per process) used from ``start`` to ``end``."""
    if end <= start:
        return 0.0
    return sum(max(0.0, cpu_at(s, end) - cpu_at(s, start)) for s in series_list)


def us_per_revision(cpu_seconds: Optional[float], revisions: int) -> Optional[float]:
    """Microseconds of CPU per revision (None when either is unknown or zero)."""
    if cpu_seconds is None or revisions <= 0:
        return None
    return round(cpu_seconds * 1e6 / revisions, 1)


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads), as psutil reports it."""
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system

