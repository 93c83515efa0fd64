"""The benchmark's soak part: a running job fed at a fixed rate for minutes, its memory and
its lag sampled every few seconds, then a small table and a PNG plot of both.

Lag is read from MySQL, not from the job's internals: revisions put (the putter's count)
minus revisions in the history tables (one row per distinct revision), and the same as
seconds of input at the asked rate. RSS is that of the ``ledgersync run`` process and all
its descendants (JVM, Python workers), as for the peak memory figure.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

SAMPLE_EVERY_S = 10.0
# The growth target looks at the last 8 of 10 minutes: the first fifth is warm-up
# (JIT, RocksDB's caches, the first checkpoints), whatever the soak's length.
GROWTH_WINDOW = 0.8


@dataclass(frozen=True)
class SoakSample:
    t_s: float  # seconds since the putting started
    rss_mib: float
    put: int
    written: int

    @property
    def behind(self) -> int:
        # A PutRecords call is counted once it returns, so the job may be a few ahead.
        return max(0, self.put - self.written)


def lag_seconds(sample: SoakSample, rate: float) -> float:
    """Revisions waiting, as seconds of input at the asked rate."""
    return sample.behind / rate if rate > 0 else 0.0


def rss_growth(samples: list, window: float = GROWTH_WINDOW) -> Optional[float]:
    """Growth of RSS over the last ``window`` of the soak, as a fraction: the last sample
    against the first one at or after the window's start (None if fewer than two)."""
    if len(samples) < 2:
        return None
    end = samples[-1].t_s
    begin = end - window * (end - samples[0].t_s)
    first = next(s for s in samples if s.t_s >= begin)
    if first is samples[-1] or first.rss_mib <= 0:
        return None
    return round((samples[-1].rss_mib - first.rss_mib) / first.rss_mib, 4)


def summary(samples: list, rate: float) -> dict:
    growth = rss_growth(samples)
    return {
        "samples": [{**asdict(s), "behind": s.behind, "lag_s": round(lag_seconds(s, rate), 2)} for s in samples],
        "rss_growth_last_80pct": growth,
        "rss_mib_first": samples[0].rss_mib if samples else None,
        "rss_mib_last": samples[-1].rss_mib if samples else None,
        "rss_mib_max": max((s.rss_mib for s in samples), default=None),
        "max_behind": max((s.behind for s in samples), default=None),
        "max_lag_s": round(max((lag_seconds(s, rate) for s in samples), default=0.0), 2),
    }


class Sampler:
    """Takes a ``SoakSample`` now and every ``every_s`` in a thread, and once more at ``stop``."""

    def __init__(self, rss_bytes: Callable[[], int], put: Callable[[], int], written: Callable[[], int],
                 every_s: float = SAMPLE_EVERY_S, say: Callable[[str], None] = lambda _t: None):
        self._rss, self._put, self._written = rss_bytes, put, written
        self._every = every_s
        self._say = say
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="soak-sampler")
        self.started = 0.0
        self.samples: list = []
        self.errors = 0

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def stop(self) -> list:
        self._stop.set()
        self._thread.join(timeout=60)
        self._take()
        return self.samples

    def _loop(self) -> None:
        due = self.started
        while not self._stop.is_set():
            self._take()
            due += self._every
            self._stop.wait(max(0.0, due - time.monotonic()))

    def _take(self) -> None:
        try:
            put = self._put()  # before MySQL's count, so "behind" is never understated by the order
            written = self._written()
            sample = SoakSample(round(time.monotonic() - self.started, 1), round(self._rss() / 2 ** 20, 1),
                                put, written)
        except Exception as exc:  # one failed sample (MySQL busy) must not end the soak
            self.errors += 1
            self._say(f"soak: sample failed: {exc}")
            return
        self.samples.append(sample)
        self._say(f"soak: t={sample.t_s:.0f}s RSS {sample.rss_mib:,.0f} MiB, put {sample.put:,}, "
                  f"in MySQL {sample.written:,}")


def plot(samples: list, rate: float, path: str, title: str) -> str:
    """RSS and lag over time, one above the other, as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a build machine
    import matplotlib.pyplot as plt

    t = [s.t_s / 60.0 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 5.5), dpi=110)
    top.plot(t, [s.rss_mib for s in samples], marker="o", markersize=3, color="tab:blue")
    top.set_ylabel("RSS of the job (MiB)")
    top.set_ylim(0, 1.15 * max([s.rss_mib for s in samples] + [1.0]))  # headroom above the line
    top.grid(alpha=0.3)
    bottom.plot(t, [lag_seconds(s, rate) for s in samples], marker="o", markersize=3, color="tab:red")
    bottom.set_ylabel("lag (s of input waiting)")
    bottom.set_xlabel("minutes since putting started")
    bottom.set_ylim(0, 1.15 * max([lag_seconds(s, rate) for s in samples] + [0.1]))
    bottom.grid(alpha=0.3)
    if len(samples) >= 2:  # the span the growth figure looks at
        begin = (samples[-1].t_s - GROWTH_WINDOW * (samples[-1].t_s - samples[0].t_s)) / 60.0
        for axis in (top, bottom):
            axis.axvspan(t[0], begin, color="grey", alpha=0.12, lw=0)
        top.text(begin, 0.04, " growth measured from here", transform=top.get_xaxis_transform(), fontsize=8,
                 color="dimgrey")
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, 0.005, "lag = revisions put but not yet in MySQL's history tables, / asked rate; "
                          "RSS = ledgersync run + JVM + Python workers", fontsize=7, color="dimgrey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path
