"""A loopback OTLP/HTTP receiver that accepts trace exports and only counts them.

The telemetry benchmark points the backbone's OTLP exporter at it, so tracing costs what it
costs in production (serialising and posting batches) without a collector on the machine.
`python -m testbed.bench.otlp_sink --port N` runs it on its own.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TRACES_PATH = "/v1/traces"


@dataclass
class SinkCounts:
    """What arrived: export requests and their bytes (protobuf, as the exporter sends them)."""

    exports: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class _Handler(BaseHTTPRequestHandler):
    counts: SinkCounts

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != TRACES_PATH:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with self.counts.lock:
            self.counts.exports += 1
            self.counts.bytes += len(body)
        # An empty ExportTraceServiceResponse is zero bytes of protobuf.
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: a benchmark's output is its figures."""


@contextmanager
def running_sink(port: int = 0) -> Iterator[tuple[str, SinkCounts]]:
    """Serve on a loopback port (a free one by default); yield the traces endpoint URL and the counts."""
    counts = SinkCounts()
    handler = type("Handler", (_Handler,), {"counts": counts})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-sink", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{TRACES_PATH}", counts
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench.otlp_sink", description=__doc__)
    parser.add_argument("--port", type=int, default=4318, help="loopback port (default 4318, OTLP/HTTP)")
    args = parser.parse_args(argv)
    with running_sink(args.port) as (url, counts):
        print(f"accepting OTLP trace exports on {url}; Ctrl-C to stop", flush=True)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()
    print(f"received {counts.exports} exports, {counts.bytes} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
