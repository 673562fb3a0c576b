"""Start real backbone processes for tests on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from testbed.processes import free_port, start_python, stop, wait_for_http


@contextmanager
def running_backbone(
    environment: dict[str, str], *, args: Sequence[str] = ("serve",), log_path: Path | None = None
) -> Iterator[str]:
    """Run `backbone serve` on a free port until the block ends; yield its base URL (host localhost)."""
    port = free_port()
    with open(log_path or "/dev/null", "wb") as log:
        process = start_python(["-m", "backbone", *args, "--port", str(port)], environment, log)
        try:
            url = f"http://localhost:{port}"
            wait_for_http(f"{url}/health", process)
            yield url
        finally:
            stop(process)


@contextmanager
def running_worker(environment: dict[str, str], *, log_path: Path | None = None) -> Iterator[str]:
    """Run `backbone worker` until the block ends; yield the URL of its /metrics and /health."""
    port = free_port()
    with open(log_path or "/dev/null", "wb") as log:
        process = start_python(["-m", "backbone", "worker", "--metrics-port", str(port)], environment, log)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/health", process)
            yield url
        finally:
            stop(process)
