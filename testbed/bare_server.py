"""Start the bare app under gunicorn in a child process on a free loopback port, and stop it."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_bare_app(
    *, workers: int = 2, threads: int = 4, startup_timeout_s: float = 20.0, log_path: Path | None = None
) -> Iterator[str]:
    """Run `python -m testbed.bare_app` and yield its base URL; stop it (and its workers) after."""
    port = free_port()
    command = [sys.executable, "-m", "testbed.bare_app", "--host", LOOPBACK, "--port", str(port)]
    command += ["--workers", str(workers), "--threads", str(threads)]
    with ExitStack() as stack:
        log = stack.enter_context(open(log_path, "wb")) if log_path else subprocess.DEVNULL
        process = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            _wait_until_serving(port, process, startup_timeout_s)
            yield f"http://{LOOPBACK}:{port}"
        finally:
            # SIGTERM is gunicorn's graceful stop; its workers exit with the arbiter.
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def post(base_url: str, path: str, timeout_s: float = 5.0) -> int:
    """Send an empty POST to a loopback URL (the bare app's controls) and return the status."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        connection.request("POST", path)
        return connection.getresponse().status
    finally:
        connection.close()


def _wait_until_serving(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        if process.poll() is not None:
            raise RuntimeError(f"the bare app exited with code {process.returncode} before serving")
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=1)
        try:
            connection.request("GET", "/constant")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise RuntimeError(f"the bare app did not answer on port {port} within {timeout_s:g} s")
