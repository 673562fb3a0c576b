"""SSE replicas as processes, and a device's event stream read in a thread of the test."""

from __future__ import annotations

import contextlib
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testbed.processes import free_port, start_python, stop, wait_for_http


@dataclass
class SseReplica:
    url: str
    port: int
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL: the replica ends without closing anything (a crash)."""
        self.process.kill()
        self.process.wait()


def start_sse_replica(environment: dict[str, str], log_path: Path, port: int | None = None) -> SseReplica:
    port = port or free_port()
    with open(log_path, "ab") as log:
        process = start_python(["-m", "backbone", "serve-sse", "--port", str(port)], environment, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", process)
    except BaseException:
        stop(process)
        raise
    return SseReplica(url, port, process)


@contextmanager
def running_sse_replica(environment: dict[str, str], log_path: Path) -> Iterator[SseReplica]:
    replica = start_sse_replica(environment, log_path)
    try:
        yield replica
    finally:
        stop(replica.process)


@dataclass(frozen=True)
class Received:
    event: str
    at: float


class EventStream:
    """A device's stream, read in a thread over a plain socket (closing it is the client's
    disconnect); each event's name with its arrival time."""

    def __init__(self, base_url: str, token: str, path: str = "/api/v2/sse") -> None:
        self.events: queue.Queue[Received] = queue.Queue()
        self.head = ""
        self.ended = threading.Event()
        host, port = base_url.removeprefix("http://").split(":")
        self._socket = socket.create_connection((host, int(port)), timeout=10)
        self._socket.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        self._socket.settimeout(None)
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._opened.wait(10):
            raise TimeoutError(f"no answer from {base_url}{path}")

    @property
    def status(self) -> int:
        return int(self.head.split(" ", 2)[1]) if self.head else 0

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def _read(self) -> None:
        buffer = b""
        try:
            while chunk := self._socket.recv(65536):
                buffer += chunk
                if not self.head and b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    self.head = head.decode("latin-1")
                    self._opened.set()
                if self.head:
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.startswith(b"event: "):
                            self.events.put(Received(line[7:].decode().strip(), time.monotonic()))
        except OSError:
            pass
        finally:
            self._opened.set()
            self.ended.set()

    def next_event(self, timeout_s: float) -> Received | None:
        try:
            return self.events.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._thread.join(5)
