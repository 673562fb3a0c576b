"""Local processes of a landscape or a benchmark: free loopback ports, readiness, clean stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

REPOSITORY = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """Ask the kernel for a free loopback port (never assume a default port is free)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_python(
    args: Sequence[str],
    environment: dict[str, str],
    log: IO[bytes] | int = subprocess.DEVNULL,
    cores: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start `python <args>` in its own process group; BACKBONE_* variables come only from `environment`.

    `cores`: keep the process to these cores (the load generator's, apart from the landscape's).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("BACKBONE_")}
    env.update(environment)
    pinned = tuple(cores)
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPOSITORY,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, pinned)) if pinned else None,
    )


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Wait until `url` answers 200, failing early if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own loopback server
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s} s")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """Stop a process group gracefully (SIGTERM), then forcefully."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()
