"""A TCP proxy on 127.0.0.1 that adds a fixed round-trip delay (benchmark only).

It stands for the network between a consumer and Aurora in another availability
zone (about 1 ms round trip): half the delay is added to each direction, so a
request/response protocol such as MySQL's pays the whole delay once per round trip,
and a per-record consumer pays it per statement where a batched one pays it per batch.

Why hand-written: ``tc netem`` needs NET_ADMIN and would slow every loopback
connection on a machine other people share, and toxiproxy is a separate Go binary
the project's pinned dependencies cannot install. Why threads and not asyncio: the
asyncio event loop waits on epoll, which counts in whole milliseconds, so a 0.5 ms
sleep there lasts 1 to 2 ms; ``time.sleep`` is precise to tens of microseconds.
Each connection gets two threads per direction: one receives and stamps each chunk
with its due time, one sends it when due (in order, so a slow chunk never lets a
later one overtake it).

Run it in its own process (``python -m job.cli.tools.delay_proxy``) so the benchmark's own
Python threads never hold its GIL; ``--port 0`` picks a free port and prints it.
"""
from __future__ import annotations

import argparse
import collections
import re
import socket
import subprocess
import sys
import threading
import time

from job.cli.project import PROJECT_ROOT

HOST = "127.0.0.1"
CHUNK = 65536


class _Lateness:
    """How late ``time.sleep`` wakes up on this machine now (a moving average).

    On a busy machine a thread wakes 0.1 to 0.3 ms after it asked to; sleeping that
    much less keeps the added round trip near the one asked for instead of 40% over.
    """

    def __init__(self):
        self.seconds = 0.0
        self._lock = threading.Lock()

    def update(self, late: float) -> None:
        with self._lock:
            self.seconds += (late - self.seconds) * 0.05


_LATENESS = _Lateness()


def _sleep(wait: float) -> None:
    # Never trust the estimate for more than half the wait: a burst of late wake-ups
    # (the machine stalled) must not turn the delay off.
    asked = max(wait - _LATENESS.seconds, wait / 2)
    start = time.monotonic()
    time.sleep(asked)
    _LATENESS.update(min(time.monotonic() - start - asked, wait))


class _Direction:
    """Bytes from ``source`` reach ``target`` ``delay_s`` after they were received."""

    def __init__(self, source: socket.socket, target: socket.socket, delay_s: float, on_close):
        self._source = source
        self._target = target
        self._delay = delay_s
        self._on_close = on_close
        self._queue: collections.deque = collections.deque()
        self._ready = threading.Condition()

    def start(self) -> None:
        threading.Thread(target=self._receive, daemon=True).start()
        threading.Thread(target=self._send, daemon=True).start()

    def _receive(self) -> None:
        while True:
            try:
                data = self._source.recv(CHUNK)
            except OSError:
                data = b""
            with self._ready:
                self._queue.append((time.monotonic() + self._delay, data))
                self._ready.notify()
            if not data:
                return

    def _send(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                due, data = self._queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                _sleep(wait)
            if not data:  # the source closed: pass the end on
                self._on_close()
                return
            try:
                self._target.sendall(data)
            except OSError:
                self._on_close()
                return


class _Connection:
    def __init__(self, client: socket.socket, upstream: socket.socket, one_way_s: float):
        self._sockets = (client, upstream)
        self._closed = False
        self._lock = threading.Lock()
        _Direction(client, upstream, one_way_s, self.close).start()
        _Direction(upstream, client, one_way_s, self.close).start()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def serve(listener: socket.socket, target_host: str, target_port: int, rtt_ms: float) -> None:
    one_way = rtt_ms / 2000.0
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((target_host, target_port), timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _Connection(client, upstream, one_way)


class DelayProxy:
    """``python -m job.cli.tools.delay_proxy`` in its own process, so it never waits for our GIL."""

    def __init__(self, target_port: int, rtt_ms: float):
        self._process = subprocess.Popen(
            [sys.executable, "-m", "job.cli.tools.delay_proxy", "--target-port", str(target_port), "--rtt-ms", str(rtt_ms)],
            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
        line = self._process.stdout.readline()
        match = re.search(r"listening on [\d.]+:(\d+) ", line)
        if not match:
            self.close()
            raise RuntimeError(f"delay proxy did not start: {line!r}")
        self.port = int(match.group(1))

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m job.cli.tools.delay_proxy",
                                     description="TCP proxy on 127.0.0.1 adding a fixed round-trip delay")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--target-host", default=HOST)
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--rtt-ms", type=float, default=1.0, help="round trip added (default 1 ms)")
    args = parser.parse_args(argv)
    if args.rtt_ms < 0:
        parser.error("--rtt-ms must not be negative")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, args.port))
    listener.listen(64)
    # The parent reads this line to learn the port.
    print(f"delay-proxy listening on {HOST}:{listener.getsockname()[1]} -> "
          f"{args.target_host}:{args.target_port}, +{args.rtt_ms:g} ms round trip", flush=True)
    try:
        serve(listener, args.target_host, args.target_port, args.rtt_ms)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
