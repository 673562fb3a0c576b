"""A loopback TCP proxy between the landscape and a server it shares or owns: cut it, or slow it.

To the processes behind it, a cut proxy is the server going away: `cut()` closes every open
connection and the listening socket, so new connections are refused (as during a broker
restart); `restore()` listens again on the same port. `delay_s` holds every chunk towards the
server that long first (a slow database: each query waits once more per round trip).

The launcher starts one as a landscape process (`python -m testbed.landscape.proxy`) when a
scenario's faults need it (`cut-broker`, `slow-database`): it is recorded, stopped and checked
like any other, and only ever forwards to the server the profile names; the server itself is never
touched. A fault asks it to cut, restore or delay through a one-line command on its control port
(`ProxyControl`); tests run the class in their own process.
"""

from __future__ import annotations

import argparse
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import suppress

from testbed.processes import free_port

CONTROL_TIMEOUT_S = 5.0


class CuttableTcpProxy:
    """Forward 127.0.0.1:<port> to a target until cut; chunks towards the target wait `delay_s`."""

    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.connections_accepted = 0

    def start(self) -> CuttableTcpProxy:
        self.restore()
        return self

    @property
    def cut_now(self) -> bool:
        with self._lock:
            return self._listener is None

    def restore(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            open_sockets, self._sockets = self._sockets, set()
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for connection in open_sockets:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def stop(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for end in (client, upstream):
                # Small writes (a query, a frame) go at once: the proxy adds no batching delay.
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
                self.connections_accepted += 1
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, towards_target: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if towards_target and self.delay_s > 0:
                    time.sleep(self.delay_s)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)


class ProxyControl:
    """The control port of a proxy process: `cut`, `restore` or `delay <ms>`, one line, answered `ok`."""

    def __init__(self, port: int) -> None:
        self.port = port

    def cut(self) -> None:
        self._send("cut")

    def restore(self) -> None:
        self._send("restore")

    def delay(self, milliseconds: float) -> None:
        self._send(f"delay {milliseconds:g}")

    def _send(self, command: str) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=CONTROL_TIMEOUT_S) as connection:
            connection.sendall(command.encode() + b"\n")
            answer = connection.makefile("rb").readline().decode().strip()
        if answer != "ok":
            raise OSError(f"proxy on control port {self.port} answered {answer!r} to {command!r}")


def _serve_control(proxy: CuttableTcpProxy, port: int) -> socketserver.TCPServer:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            words = self.rfile.readline().decode(errors="replace").split()
            match words:
                case ["cut"]:
                    proxy.cut()
                case ["restore"]:
                    proxy.restore()
                case ["delay", milliseconds]:
                    proxy.delay_s = max(float(milliseconds), 0.0) / 1000
                case _:
                    self.wfile.write(b"unknown command\n")
                    return
            self.wfile.write(b"ok\n")

    socketserver.TCPServer.allow_reuse_address = True
    server = socketserver.TCPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.landscape.proxy", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="where the landscape connects")
    parser.add_argument("--control-port", type=int, required=True, help="where faults send commands")
    parser.add_argument("--target", required=True, metavar="HOST:PORT", help="the server behind it")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    proxy = CuttableTcpProxy(host, int(port), args.port).start()
    _serve_control(proxy, args.control_port)
    stopped = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stopped.set())
    print(f"proxy 127.0.0.1:{args.port} -> {args.target}, control port {args.control_port}", flush=True)
    stopped.wait()
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
