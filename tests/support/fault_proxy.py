"""A loopback HTTP proxy in front of the Kinesis endpoint that injects the faults AWS has.

It forwards every request to the real endpoint (the moto server) unchanged, except that,
at the rates given, it answers a GetRecords call itself with
``ProvisionedThroughputExceededException`` or ``ExpiredIteratorException`` (HTTP 400,
as Kinesis does), with ``InternalFailure`` (HTTP 500), or resets the connection; and every
n-th ListShards or GetShardIterator call with ``LimitExceededException``. ``restart()`` closes
the listening socket for a while (connections are refused) and opens it again on the same
port, as an endpoint restart looks to a client.
"""
from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class FaultProxy:
    def __init__(self, upstream: str, *, seed: int = 1, throttle: float = 0.0, expire: float = 0.0,
                 server_error: float = 0.0, reset: float = 0.0, limit_every: int = 0,
                 limit_ops: tuple = ("ListShards", "GetShardIterator")):
        target = urlparse(upstream)
        self._upstream = (target.hostname, target.port or 80)
        self._rates = {"throttled": throttle, "expired": expire, "server_error": server_error, "reset": reset}
        # Every ``limit_every``-th call to a ``limit_ops`` operation, the first included, is
        # refused: counted, not rolled, because a run makes only a few such calls and a test
        # that asserts one was refused must not depend on the dice (CI once rolled none).
        self._limit_every = limit_every
        self._limit_ops = limit_ops
        self._limit_calls = 0  # limit_ops calls so far
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.counts = {"forwarded": 0, "get_records": 0, "throttled": 0, "expired": 0, "server_error": 0,
                       "reset": 0, "limit_exceeded": 0, "restarts": 0, "upstream_throttled": 0}
        self.port = 0
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                proxy._handle(self)

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def restart(self, down_s: float) -> None:
        """Refuse connections for ``down_s`` seconds, then listen on the same port again."""
        self.stop()
        time.sleep(down_s)
        self.start()
        with self._lock:
            self.counts["restarts"] += 1

    def _decide(self, operation: str):
        with self._lock:
            if operation == "GetRecords":
                self.counts["get_records"] += 1
                roll = self._rng.random()
                for fault, rate in self._rates.items():
                    if roll < rate:
                        self.counts[fault] += 1
                        return fault
                    roll -= rate
            elif operation in self._limit_ops and self._limit_every:
                refuse = self._limit_calls % self._limit_every == 0  # the 1st, the (n+1)-th, ...
                self._limit_calls += 1
                if refuse:
                    self.counts["limit_exceeded"] += 1
                    return "limit_exceeded"
            self.counts["forwarded"] += 1
            return None

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        operation = (request.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        fault = self._decide(operation)
        if fault == "reset":
            # SO_LINGER 0: closing sends a TCP RST, as a dropped connection does.
            request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.close_connection = True
            request.connection.close()
            return
        if fault == "throttled":
            return _error(request, 400, "ProvisionedThroughputExceededException",
                          "Rate exceeded for shard in stream under account 123456789012.")
        if fault == "expired":
            return _error(request, 400, "ExpiredIteratorException", "Iterator expired.")
        if fault == "server_error":
            return _error(request, 500, "InternalFailure", "Internal service failure.")
        if fault == "limit_exceeded":
            return _error(request, 400, "LimitExceededException", "Rate exceeded for stream.")
        upstream = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request("POST", request.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            if response.status == 400 and (b"ProvisionedThroughputExceeded" in payload or "ProvisionedThroughputExceeded"
                                           in (response.getheader("x-amzn-ErrorType") or "")):
                # LocalStack's kinesis-mock enforces the per-shard rate itself: count its
                # throttles apart from the injected ones.
                with self._lock:
                    self.counts["upstream_throttled"] += 1
            request.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() not in ("server", "date"):
                    request.send_header(key, value)
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
        finally:
            upstream.close()


def _error(request: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
    payload = json.dumps({"__type": code, "message": message}).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/x-amz-json-1.1")
    request.send_header("x-amzn-ErrorType", code)
    request.send_header("Content-Length", str(len(payload)))
    request.end_headers()
    request.wfile.write(payload)
